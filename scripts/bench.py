#!/usr/bin/env python
"""zoo's performance benchmark, every figure next to an anchor measured in the same run.

    python scripts/bench.py                      # full mode (the numbers in docs/benchmarks.md)
    python scripts/bench.py --quick              # CI mode: fewer repeats, reports, never fails
    python scripts/bench.py --reference-root DIR # also time the original implementations there
    python scripts/bench.py --only baseline --baseline DIR  # this checkout against an older one

Rows: operation, zoo time, anchor time, ratio (anchor / zoo: > 1 means zoo is faster), peak
memory.  Times are medians; zoo and its anchor run alternately (zoo, anchor, zoo, anchor, ...)
so that a load change on a shared machine hits both alike.  Cold-start and loading rows run a
fresh interpreter for every repeat.  The machine's load average is printed with the table.

Anchors: ``import timm; timm.list_models()`` for listing, ``import timm`` for ``import zoo``,
``timm.create_model(..., pretrained=True)`` from a local file for pretrained loading (and zoo's
own slow path, random init + ``load_state_dict``), the original implementation (or timm's port)
for forward throughput, eager zoo for ``torch.compile``, eager PyTorch for ONNX Runtime (the ``onnx``
rows: one exported model per family, ratio = eager / ONNX Runtime), and the same operation run
from another zoo checkout for the ``baseline`` rows (``--baseline DIR``: did a change make zoo
slower?).  Original implementations are never
committed: ``--reference-root`` points at checkouts you made (see scripts/references.py); rows
whose reference is absent show no anchor.

Peak memory of a load is the process's peak resident set (VmHWM, reset just before) above its
resident set before the load, up to a model whose every tensor has been read once (so lazily
mapped weights count), next to the weights file's size.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DEFAULT_MODELS = ["simplenetv1_5m_m2", "sret_t", "sret_s", "nasnet_a_mobile", "deepmad_29m_224",
                  "bignas_attentivenas_a0", "ofq_deit_tiny_w4a4", "ofq_deit_small_w4a4"]
QUICK_MODELS = ["simplenetv1_small_m1_05", "sret_t"]


def _env(root: Path = ROOT) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _wall(cmd: list[str], root: Path = ROOT) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(root), cwd=root)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return dt


def _alternate(zoo_fn, anchor_fn, repeats: int) -> tuple[list, list]:
    """Run zoo and anchor alternately ``repeats`` times each; return both result lists."""
    zs, anchors = [], []
    for _ in range(repeats):
        zs.append(zoo_fn())
        anchors.append(anchor_fn())
    return zs, anchors


def _row(op: str, zoo_s: float, anchor: str, anchor_s: float | None, mem: str = "",
         note: str = "") -> dict:
    ratio = anchor_s / zoo_s if anchor_s else None
    return {"operation": op, "zoo_s": zoo_s, "anchor": anchor, "anchor_s": anchor_s,
            "ratio": ratio, "peak_memory": mem, "note": note}


# -- cold starts ---------------------------------------------------------------------------------

def bench_cold_start(repeats: int) -> list[dict]:
    timm_list = [PY, "-c", "import timm; timm.list_models()"]
    rows = []
    for op, cmd, anchor_name, anchor in (
            ("zoo list (cold start)", [PY, "-m", "zoo", "list"],
             "import timm; timm.list_models()", timm_list),
            ("zoo info sret_s --no-measure (cold start)",
             [PY, "-m", "zoo", "info", "sret_s", "--no-measure"],
             "import timm; timm.list_models()", timm_list),
            ("import zoo", [PY, "-c", "import zoo"], "import timm", [PY, "-c", "import timm"]),
            ("python -c pass (interpreter alone)", [PY, "-c", "pass"], "", None)):
        if anchor is None:
            z = [_wall(cmd) for _ in range(repeats)]
            rows.append(_row(op, statistics.median(z), "(floor of every cold-start row)", None))
            continue
        z, a = _alternate(lambda: _wall(cmd), lambda: _wall(anchor), repeats)
        rows.append(_row(op, statistics.median(z), anchor_name, statistics.median(a)))
    return rows


# -- pretrained loading --------------------------------------------------------------------------

_LOAD_CHILD = r"""
import json, sys, time
mode, arg, path = sys.argv[1], sys.argv[2], sys.argv[3]
import torch, timm, zoo  # imports are not part of what is timed
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
def touch(model):  # read every tensor once: lazily mapped weights become resident
    with torch.no_grad():
        for t in model.state_dict().values():
            t.sum()
if mode == "timm":  # warm timm's lazy registries outside the timing, as zoo's catalog is
    timm.list_models("deit_small*")
zoo.get_spec(arg) if mode != "timm" else None
try:
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM)
    hwm = True
except OSError:
    hwm = False
rss0 = status("VmRSS")
t0 = time.perf_counter()
if mode == "zoo":
    m = zoo.create(arg, weights=path)
elif mode == "zoo-slow":
    from zoo.weights import load_safetensors
    m = zoo.create(arg)
    m.load_state_dict(load_safetensors(path + "/model.safetensors", path)[0], strict=True)
    m.eval()
else:
    m = timm.create_model(arg, pretrained=True, pretrained_cfg_overlay={"file": path})
    m.eval()
dt = time.perf_counter() - t0
touch(m)
peak = (status("VmHWM") if hwm else status("VmRSS")) - rss0
print(json.dumps({"s": dt, "extra_mb": peak}))
"""


def _load_child(mode: str, arg: str, path: Path, root: Path = ROOT) -> dict:
    """Time one load (``mode``: zoo, zoo-slow or timm) in a fresh interpreter running the zoo
    of ``root``."""
    proc = subprocess.run([PY, "-c", _LOAD_CHILD, mode, arg, str(path)], capture_output=True,
                          text=True, env=_env(root), cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"loading {arg} ({mode}) from {root} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_against_baseline(repeats: int, baseline: Path, zoo_name: str = "sret_s") -> list[dict]:
    """The cold-start and pretrained-load rows of this checkout against the same operations run
    from ``baseline`` (another zoo checkout), alternately: ratio > 1 means this one is faster."""
    import zoo

    label = f"the same from {baseline.name}"
    rows = []
    for op, cmd in (("zoo list (cold start)", [PY, "-m", "zoo", "list"]),
                    (f"zoo info {zoo_name} --no-measure (cold start)",
                     [PY, "-m", "zoo", "info", zoo_name, "--no-measure"]),
                    ("import zoo", [PY, "-c", "import zoo"])):
        z, a = _alternate(lambda: _wall(cmd), lambda: _wall(cmd, baseline), repeats)
        rows.append(_row(op, statistics.median(z), label, statistics.median(a)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "zoo"
        zoo.save_pretrained(zoo.create(zoo_name), folder)
        z, a = _alternate(lambda: _load_child("zoo", zoo_name, folder),
                          lambda: _load_child("zoo", zoo_name, folder, baseline), repeats)
    rows.append(_row(f"create {zoo_name} pretrained (local file)",
                     statistics.median(r["s"] for r in z), label,
                     statistics.median(r["s"] for r in a),
                     f"+{statistics.median(r['extra_mb'] for r in z):.0f} MB here, "
                     f"+{statistics.median(r['extra_mb'] for r in a):.0f} MB there"))
    return rows


def bench_pretrained_load(repeats: int, zoo_name: str, timm_name: str) -> list[dict]:
    """zoo.create(pretrained) from a local file vs timm.create_model(pretrained) from a local
    file of a model of similar size, and vs zoo's own slow path, each in fresh processes."""
    import timm
    from safetensors.torch import save_file

    import zoo

    def child(mode: str, arg: str, path: Path) -> dict:
        return _load_child(mode, arg, path)

    with tempfile.TemporaryDirectory() as tmp:
        zoo_dir = Path(tmp) / "zoo"
        zoo.save_pretrained(zoo.create(zoo_name), zoo_dir)
        timm_file = Path(tmp) / "timm.safetensors"
        save_file(timm.create_model(timm_name).state_dict(), str(timm_file))
        z_mb = (zoo_dir / "model.safetensors").stat().st_size / 2**20
        t_mb = timm_file.stat().st_size / 2**20
        fast, anchor = _alternate(lambda: child("zoo", zoo_name, zoo_dir),
                                  lambda: child("timm", timm_name, timm_file), repeats)
        fast2, slow = _alternate(lambda: child("zoo", zoo_name, zoo_dir),
                                 lambda: child("zoo-slow", zoo_name, zoo_dir), repeats)

    def med(rs):
        return statistics.median(r["s"] for r in rs)

    def mem(rs):
        return statistics.median(r["extra_mb"] for r in rs)

    zm, tm, sm = mem(fast + fast2), mem(anchor), mem(slow)
    return [
        _row(f"create {zoo_name} pretrained (local file)", med(fast),
             f"timm {timm_name} pretrained (local file)", med(anchor),
             f"zoo +{zm:.0f} MB = {zm / z_mb:.2f}x its {z_mb:.0f} MB file; "
             f"timm +{tm:.0f} MB = {tm / t_mb:.2f}x its {t_mb:.0f} MB file"),
        _row(f"create {zoo_name} pretrained (local file)", med(fast2),
             "zoo slow path: random init + load_state_dict", med(slow),
             f"slow path +{sm:.0f} MB = {sm / z_mb:.2f}x"),
    ]


# -- forward throughput --------------------------------------------------------------------------

def _timed(fn, x) -> float:
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def _seeded(model):
    """A forward with the global RNG seeded: SReT's sliced attention draws torch.randperm in
    eval mode (zoo and the original alike)."""
    import torch

    def run(x):
        torch.manual_seed(0)
        return model(x)
    return run


def bench_forward(repeats: int, names: list[str], batch: int, reference_root: Path | None,
                  compile_too: bool) -> list[dict]:
    import torch

    import zoo

    sys.path.insert(0, str(ROOT / "scripts"))
    import references

    rows = []
    for name in names:
        spec = zoo.get_spec(name)
        x = torch.randn(batch, *spec.data.input_size, generator=torch.Generator().manual_seed(0))
        model = zoo.create(name).eval()
        ref = references.build(name, reference_root)
        zoo_fn = _seeded(model)
        with torch.inference_mode():
            for _ in range(2):  # warm-up (allocator, lazily created quantizer scales, ...)
                zoo_fn(x)
            if ref is None:
                z = [_timed(zoo_fn, x) for _ in range(repeats)]
                r = None
                anchor = "original implementation (not given)"
            else:
                ref_fn = _seeded(ref.eval())
                for _ in range(2):
                    ref_fn(x)
                z, r = _alternate(lambda: _timed(zoo_fn, x), lambda: _timed(ref_fn, x), repeats)
                anchor = ("timm's port" if references.KIND[name] != "original"
                          else "original implementation")
        z_s = statistics.median(z)
        rows.append(_row(f"forward {name} b{batch} eval fp32", z_s, anchor,
                         statistics.median(r) if r else None,
                         note=f"{batch / z_s:.1f} img/s"))
        if compile_too:
            compiled = torch.compile(model)
            comp_fn = _seeded(compiled)
            t0 = time.perf_counter()
            with torch.inference_mode():
                comp_fn(x)  # compile outside the timing
                compile_s = time.perf_counter() - t0
                comp_fn(x)
                c, e = _alternate(lambda: _timed(comp_fn, x), lambda: _timed(zoo_fn, x), repeats)
            rows.append(_row(f"forward {name} b{batch} torch.compile", statistics.median(c),
                             "eager zoo", statistics.median(e),
                             note=f"compiled in {compile_s:.0f} s"))
        del model, ref
    return rows


# -- ONNX Runtime against eager PyTorch -----------------------------------------------------------

def one_model_per_family() -> list[str]:
    """Each family's cheapest model that exports (fewest parameters, counted on the meta device,
    then the name), derived from the catalog."""
    import zoo
    from zoo.families import family_names, get_family
    from zoo.measure import count_params

    names = []
    for family in family_names():
        metas = {n: zoo.create(n, device="meta") for n in zoo.list_models(family=family)}
        ranked = sorted(metas, key=lambda n: (count_params(metas[n]), n))
        names.append(next(n for n in ranked if get_family(family).export_refusal(metas[n]) is None))
    return names


def bench_onnx(repeats: int, names: list[str], threads: int = 2) -> list[dict]:
    """Each model exported to ONNX (checked against eager by ``zoo.export``), then ONNX Runtime
    and eager PyTorch timed alternately at batch 1 and 8, both with ``threads`` threads."""
    import torch

    import zoo
    from zoo.export.formats import Runner
    from zoo.export.run import example_input, export

    torch.set_num_threads(threads)
    rows = []
    for name in names:
        spec = zoo.get_spec(name)
        model = zoo.create(name).eval()
        with tempfile.TemporaryDirectory() as tmp:
            report = export(name, format="onnx", out=Path(tmp) / "m.onnx", model=model)
            runner = Runner(Path(report.path), threads=threads)
            for batch in (1, 8):
                x = example_input(spec.data.input_size, batch)
                with torch.inference_mode():
                    for _ in range(2):  # warm-up of both
                        runner(x)
                        model(x)
                    o, e = _alternate(lambda: _timed(runner, x), lambda: _timed(model, x), repeats)
                rows.append(_row(f"onnxruntime {spec.family}: {name} b{batch}",
                                 statistics.median(o), "eager PyTorch", statistics.median(e),
                                 note=f"max rel. error {report.max_rel_error:.1e}"))
        del model
    return rows


# -- output --------------------------------------------------------------------------------------

def print_table(rows: list[dict]) -> None:
    head = (f"{'operation':<48} {'zoo':>10} {'anchor':>10} {'ratio':>7}  "
            "anchor; peak memory; note")
    print(head)
    print("-" * len(head))
    for r in rows:
        a = f"{r['anchor_s'] * 1e3:8.1f}ms" if r["anchor_s"] else f"{'-':>10}"
        ratio = f"{r['ratio']:6.2f}x" if r["ratio"] else f"{'-':>7}"
        tail = "; ".join(filter(None, [r["anchor"], r["peak_memory"], r["note"]]))
        print(f"{r['operation']:<48} {r['zoo_s'] * 1e3:8.1f}ms {a} {ratio}  {tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="CI mode: 3 repeats, two small models, no torch.compile; reports only")
    p.add_argument("--reference-root", type=Path,
                   help="folder with checkouts of the original implementations")
    p.add_argument("--models", nargs="*", help="models for the forward rows")
    p.add_argument("--repeats", type=int, help="repeats per measurement (default 7, quick 3)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    p.add_argument("--only", nargs="*", choices=("cold", "load", "forward", "onnx", "baseline"),
                   help="run only these groups of rows (onnx: ONNX Runtime against eager "
                        "PyTorch, one model per family unless --models; not in quick mode; "
                        "baseline: needs --baseline)")
    p.add_argument("--baseline", type=Path,
                   help="a checkout of another zoo version: the baseline rows time the cold "
                        "starts and the pretrained load of this checkout against it")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from zoo.catalog import catalog

    if args.reference_root is not None and not args.reference_root.is_dir():
        p.error(f"--reference-root {args.reference_root} is not a folder")
    if args.baseline is not None and not (args.baseline / "zoo" / "__init__.py").is_file():
        p.error(f"--baseline {args.baseline} is not a zoo checkout (no zoo/__init__.py)")
    repeats = args.repeats or (3 if args.quick else 7)
    names = args.models or (QUICK_MODELS if args.quick else DEFAULT_MODELS)
    unknown = [n for n in names if n not in catalog().entries]
    if unknown:
        p.error(f"unknown models: {unknown}")
    groups = set(args.only or ("cold", "load", "forward", *(() if args.quick else ("onnx",)),
                               *(("baseline",) if args.baseline else ())))
    if "baseline" in groups and args.baseline is None:
        p.error("the baseline rows need --baseline DIR (a checkout of another zoo version)")
    load0, t0 = os.getloadavg(), time.time()
    rows: list[dict] = []
    if "cold" in groups:
        rows += bench_cold_start(repeats)
    if "load" in groups:
        rows += bench_pretrained_load(repeats, "sret_s", "deit_small_patch16_224")
    if "forward" in groups:
        rows += bench_forward(repeats, names, args.batch_size, args.reference_root,
                              compile_too=not (args.quick or args.no_compile))
    if "onnx" in groups:
        rows += bench_onnx(repeats, args.models or one_model_per_family())
    if "baseline" in groups:
        rows += bench_against_baseline(repeats, args.baseline.resolve())
    load1 = os.getloadavg()
    print(f"# zoo benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads on "
          f"{os.cpu_count()} CPUs, {'quick' if args.quick else 'full'} mode, medians of "
          f"{repeats} alternating runs, {time.time() - t0:.0f} s; load average "
          f"{load0[0]:.1f} at start, {load1[0]:.1f} at end")
    print("# ratio = anchor / zoo: > 1 means zoo is faster (onnxruntime rows: zoo = the exported "
          "model in ONNX Runtime, anchor = eager PyTorch)")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
