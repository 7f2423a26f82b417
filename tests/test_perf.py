"""Performance contracts that can be checked deterministically (issue 10).

Timings are benchmarks (``scripts/bench.py``), never assertions.  What is tested here is what
makes the fast paths fast without changing results:

- the fast pretrained path (parameters built on the meta device, no initializers, safetensors
  tensors assigned) gives a model identical to the slow path (random init, then
  ``load_state_dict``): same outputs bit for bit, same state dict, same non-persistent buffers;
- it runs no random initializer on real tensors and leaves the global RNG untouched;
- ``import zoo`` imports neither torch, timm nor huggingface_hub; ``zoo list`` and
  ``zoo info NAME --no-measure`` import no torch;
- the benchmark's quick mode (CI) runs and prints its table.
"""
from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import zoo

ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "timm", "huggingface_hub", "safetensors", "numpy")


@functools.cache
def representative(family: str) -> str:
    """The family's variant with the fewest parameters (what the per-family tests run).

    The specs' reported parameter counts decide; a family whose specs report none is measured
    on the meta device (no memory, no arithmetic).  Computed when a test first needs it, not at
    collection."""
    from zoo.build import build_model
    from zoo.measure import count_params

    names = zoo.list_models(family=family)
    reported = {n: (zoo.get_spec(n).reported.params_m if zoo.get_spec(n).reported else None)
                for n in names}
    if all(v is not None for v in reported.values()):
        sizes = reported
    else:
        sizes = {n: count_params(build_model(zoo.get_spec(n), meta=True)) for n in names}
    return min(names, key=lambda n: (sizes[n], n))


def family_params() -> list:
    """One pytest param per family that has models (ids are family names)."""
    return [pytest.param(f, id=f, marks=pytest.mark.xdist_group(f"perf-{f}"))
            for f in zoo.list_families() if zoo.list_models(family=f)]


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


# -- cheap imports -------------------------------------------------------------------------------

_REPORT_MODULES = "import json, sys; print(json.dumps(sorted(m for m in {mods!r} if m in sys.modules)))"


def test_import_zoo_imports_no_heavy_module() -> None:
    proc = _run_python("import zoo; zoo.__version__; zoo.__all__\n"
                       + _REPORT_MODULES.format(mods=HEAVY_MODULES))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_import_zoo_discovers_nothing_until_asked() -> None:
    """``import zoo`` installs the timm hook and nothing else: no schema library, no YAML, no
    family discovery (a ``from zoo import <submodule>`` at import time once went through
    ``zoo.__getattr__``, which discovers the families: pydantic and every family schema)."""
    proc = _run_python("import zoo\n" + _REPORT_MODULES.format(
        mods=("pydantic", "yaml", "zoo.spec", "zoo.families", "zoo.catalog", "zoo.registry")))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize("argv", [["list"], ["list", "sret*"], ["families"],
                                  ["info", "sret_s", "--no-measure"],
                                  ["info", "simplenetv1_5m_m2", "--no-measure"]],
                         ids=" ".join)
def test_cli_listing_imports_no_torch(argv: list[str]) -> None:
    code = ("import contextlib, io, sys\n"
            "from zoo.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    rc = main(sys.argv[1:])\n"
            "assert rc == 0, rc\n"
            "assert out.getvalue().strip(), 'the command printed nothing'\n"
            + _REPORT_MODULES.format(mods=("torch", "timm", "huggingface_hub", "safetensors")))
    proc = _run_python(code, *argv)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_timm_import_after_zoo_still_registers_models() -> None:
    """The lazy import hook is what keeps ``import zoo`` cheap; it must still register zoo's
    models once timm is imported."""
    proc = _run_python("import zoo, timm; print('sret_s' in timm.list_models('sret*'))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "True"


# -- fast pretrained path == slow path -----------------------------------------------------------

_RANDOM_OPS = {"normal_", "uniform_", "bernoulli_", "random_", "exponential_", "geometric_",
               "cauchy_", "log_normal_", "randn", "rand", "randint", "randperm", "normal",
               "uniform", "bernoulli", "multinomial"}


class _RecordRandomOps(TorchDispatchMode):
    """Records every random-number op that produces real (non-meta) data."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.overloadpacket.__name__ in _RANDOM_OPS:
            tensors = [t for t in (out if isinstance(out, (tuple, list)) else (out,))
                       if isinstance(t, torch.Tensor)]
            if any(t.device.type != "meta" and t.numel() > 0 for t in tensors):
                self.calls.append(f"{func}{tuple(tensors[0].shape) if tensors else ''}")
        return out


def _input(name: str, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    return torch.randn(batch, *zoo.get_spec(name).data.input_size, generator=g)


def _forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Eval forward with the global RNG seeded (SReT's sliced attention permutes tokens with
    torch.randperm in eval mode, as the original does)."""
    torch.manual_seed(7)
    with torch.inference_mode():
        return model(x)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory):
    """name -> (reference model with its own random weights, folder it was saved to)."""
    cache: dict[str, tuple[torch.nn.Module, Path]] = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            model = zoo.create(name).eval()
            folder = zoo.save_pretrained(model, tmp_path_factory.mktemp(name))
            cache[name] = (model, folder)
        return cache[name]

    return get


def _all_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and every buffer, non-persistent ones included."""
    return {**dict(model.named_parameters(remove_duplicate=False)),
            **dict(model.named_buffers(remove_duplicate=False))}


@pytest.mark.parametrize("family", family_params())
def test_fast_pretrained_path_equals_slow_path(family: str, saved) -> None:
    name = representative(family)
    reference, folder = saved(name)

    fast = zoo.create(name, weights=folder)          # meta build + assign
    torch.manual_seed(1)                             # slow path: other random init, then load
    slow = zoo.create(name)
    slow.load_state_dict(reference.state_dict(), strict=True)
    slow.eval()

    assert not fast.training
    fast_t, slow_t = _all_tensors(fast), _all_tensors(slow)
    assert fast_t.keys() == slow_t.keys()
    meta = [k for k, t in fast_t.items() if t.device.type == "meta"]
    assert not meta, f"left on the meta device: {meta[:5]}"
    for k in fast_t:
        assert fast_t[k].dtype == slow_t[k].dtype, k
        assert torch.equal(fast_t[k], slow_t[k]), f"{k} differs between fast and slow path"
    # parameters are parameters again (trainable), shared tensors stay shared
    assert [n for n, _ in fast.named_parameters()] == [n for n, _ in slow.named_parameters()]
    assert all(p.requires_grad == q.requires_grad
               for p, q in zip(fast.parameters(), slow.parameters()))

    out_fast, out_slow, out_ref = (_forward(m, _input(name)) for m in (fast, slow, reference))
    # bit-identical tensors in aligned storage (zoo.weights reads each tensor into its own
    # allocation): the kernels take the same paths, so the outputs are bit-identical too
    assert torch.equal(out_fast, out_slow) and torch.equal(out_fast, out_ref)
    assert torch.isfinite(out_fast).all()


@pytest.mark.parametrize("family", family_params())
def test_non_persistent_buffers_right_after_meta_build(family: str) -> None:
    """Buffers that are not in the state dict cannot be repaired by loading weights: the meta
    build must compute them exactly as a normal build does."""
    from zoo.build import build_model

    spec = zoo.get_spec(representative(family))
    meta, normal = build_model(spec, meta=True), build_model(spec)
    persistent = set(normal.state_dict())
    for (k, a), (k2, b) in zip(meta.named_buffers(), normal.named_buffers(), strict=True):
        assert k == k2
        if k in persistent:
            continue
        assert a.device.type != "meta", f"non-persistent buffer {k} built on meta"
        assert a.dtype == b.dtype and torch.equal(a, b), f"non-persistent buffer {k} differs"
    assert all(p.device.type == "meta" for p in meta.parameters())


@pytest.mark.parametrize("family", family_params())
def test_pretrained_create_runs_no_initializer(family: str, saved) -> None:
    """Weights about to be overwritten are never randomly initialized (nor the RNG advanced)."""
    name = representative(family)
    _, folder = saved(name)
    rng = torch.get_rng_state()
    recorder = _RecordRandomOps()
    with recorder:
        model = zoo.create(name, weights=folder)
    assert recorder.calls == [], f"random init on real tensors: {recorder.calls[:5]}"
    assert torch.equal(torch.get_rng_state(), rng), "zoo.create(weights=...) consumed random numbers"
    # the recorder itself works: a normal build does initialize
    with _RecordRandomOps() as control:
        zoo.create(name)
    assert control.calls, "control failed: a random-init build recorded no random op"
    assert isinstance(model, torch.nn.Module)


def test_pretrained_from_hub_equals_slow_path(publish, saved) -> None:
    """``pretrained=True`` through a (local, emulated) Hub download takes the fast path too."""
    name = "simplenetv1_small_m1_05"
    reference, _ = saved(name)
    publish(f"{name}.perf_test", reference.state_dict())
    rng = torch.get_rng_state()
    fast = zoo.create(f"{name}.perf_test", pretrained=True)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(_forward(fast, _input(name)), _forward(reference, _input(name)))


def test_fast_path_with_new_head_initializes_only_the_head(saved) -> None:
    """num_classes changed: the backbone comes from the file, only the classifier is new."""
    name = "simplenetv1_small_m1_05"
    reference, folder = saved(name)
    model = zoo.create(name, weights=folder, num_classes=10)
    head = zoo.get_spec(name).data.classifier
    ref_sd, sd = reference.state_dict(), model.state_dict()
    for k, v in sd.items():
        if k.startswith(head + "."):
            assert v.shape[0] == 10 and torch.isfinite(v).all() and v.device.type == "cpu"
        else:
            assert torch.equal(v, ref_sd[k]), k
    assert model(_input(name)).shape == (2, 10)


# -- benchmark quick mode (CI hook) --------------------------------------------------------------

@pytest.mark.slow
def test_bench_quick_runs_and_prints_table(tmp_path: Path) -> None:
    """``scripts/bench.py --quick`` is CI's benchmark: it must run to the end and report; its
    numbers are not asserted (noise must not fail CI)."""
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick",
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("operation") for line in lines), proc.stdout
    rows = json.loads(out.read_text())
    ops = [r["operation"] for r in rows]
    for expected in ("zoo list (cold start)", "import zoo"):
        assert any(op.startswith(expected) for op in ops), ops
    assert any(op.startswith("create ") for op in ops) and any(op.startswith("forward ") for op in ops)
    for r in rows:
        assert r["zoo_s"] > 0 and math.isfinite(r["zoo_s"]), r
        assert r["operation"] in proc.stdout


@pytest.mark.slow
def test_bench_onnx_rows_compare_onnx_runtime_with_eager_per_family(tmp_path: Path) -> None:
    """The benchmark's ``onnx`` group: one exportable model per family (from the catalog),
    each with ONNX Runtime and eager PyTorch timed at batch 1 and 8 in one run (run here on the
    smallest model only; the numbers are not asserted)."""
    from zoo.families import family_names, get_family

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench

    chosen = bench.one_model_per_family()
    assert sorted(zoo.get_spec(n).family for n in chosen) == sorted(family_names())
    for name in chosen:
        model = zoo.create(name, device="meta")
        assert get_family(zoo.get_spec(name).family).export_refusal(model) is None, name
    small = "simplenetv1_small_m1_05"
    rows = bench.bench_onnx(1, [small])
    assert [r["operation"] for r in rows] == [f"onnxruntime simplenet: {small} b{b}" for b in (1, 8)]
    for r in rows:
        assert r["zoo_s"] > 0 and r["anchor_s"] > 0 and r["anchor"] == "eager PyTorch"
        assert r["ratio"] == r["anchor_s"] / r["zoo_s"]


def test_bench_baseline_rows_time_this_checkout_against_another(tmp_path: Path) -> None:
    """``--baseline DIR``: the cold-start and pretrained-load rows of this checkout against the
    same operations run from another zoo checkout (here this one again; numbers not asserted);
    without a zoo checkout, or without --baseline, a usage error."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench

    small = "simplenetv1_small_m1_05"
    rows = bench.bench_against_baseline(1, ROOT, small)
    assert [r["operation"] for r in rows] == [
        "zoo list (cold start)", f"zoo info {small} --no-measure (cold start)", "import zoo",
        f"create {small} pretrained (local file)"]
    for r in rows:
        assert r["anchor"] == f"the same from {ROOT.name}" and r["ratio"] == r["anchor_s"] / r["zoo_s"]
    assert "MB here" in rows[-1]["peak_memory"] and "MB there" in rows[-1]["peak_memory"]
    for argv, message in ((["--only", "baseline"], "need --baseline"),
                          (["--baseline", str(tmp_path)], "is not a zoo checkout")):
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), *argv],
                              capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_loaded_tensors_have_their_own_aligned_storage(saved) -> None:
    """zoo.weights reads every tensor into a fresh allocation (64-byte aligned by torch's CPU
    allocator), not as a view at the file's byte offset; a batch of one then gives the same
    bits as the model the weights came from."""
    from zoo.weights import load_safetensors

    name = representative("simplenet")
    reference, folder = saved(name)
    tensors, _ = load_safetensors(folder / "model.safetensors", "test")
    storages = {t.untyped_storage().data_ptr() for t in tensors.values()}
    assert len(storages) == len(tensors)
    assert all(t.data_ptr() % 64 == 0 for t in tensors.values() if t.numel())
    x = torch.randn(1, *zoo.get_spec(name).data.input_size)
    assert torch.equal(_forward(zoo.create(name, weights=folder), x), _forward(reference, x))

