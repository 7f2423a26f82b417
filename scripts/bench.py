#!/usr/bin/env python
"""zoo's performance benchmark, every figure next to an anchor measured in the same run.

    python scripts/bench.py            # full mode (the numbers in docs/benchmarks.md)
    python scripts/bench.py --quick    # CI mode: fewer repeats, reports only, never fails on noise
    python scripts/bench.py --reference-root DIR   # also time original implementations found there

Rows: operation, zoo time, anchor time, ratio (anchor / zoo: > 1 means zoo is faster), peak
memory.  Times are medians over repeated runs; cold-start rows run a fresh interpreter each time.
Original implementations are never committed: ``--reference-root`` points at checkouts you made
(``SReT/``, ``SimpleNet_Pytorch/``, ...); rows whose reference is absent are skipped.
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


def _median_time(cmd: list[str], repeats: int, env: dict | None = None) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _row(op: str, zoo_s: float, anchor: str, anchor_s: float | None, mem: str = "") -> dict:
    ratio = anchor_s / zoo_s if anchor_s else None
    return {"operation": op, "zoo_s": zoo_s, "anchor": anchor, "anchor_s": anchor_s,
            "ratio": ratio, "peak_memory": mem}


def bench_cold_start(repeats: int) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    timm_list = _median_time([PY, "-c", "import timm; timm.list_models()"], repeats, env)
    timm_import = _median_time([PY, "-c", "import timm"], repeats, env)
    rows = [
        _row("zoo list (cold start)", _median_time([PY, "-m", "zoo", "list"], repeats, env),
             "import timm; timm.list_models()", timm_list),
        _row("zoo info sret_s --no-measure (cold)",
             _median_time([PY, "-m", "zoo", "info", "sret_s", "--no-measure"], repeats, env),
             "import timm; timm.list_models()", timm_list),
        _row("import zoo", _median_time([PY, "-c", "import zoo"], repeats, env),
             "import timm", timm_import),
    ]
    return rows


_LOAD_CHILD = r"""
import json, resource, sys, time
mode, arg, path = sys.argv[1], sys.argv[2], sys.argv[3]
import torch, timm, zoo  # imports are not part of what is timed
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if mode == "zoo":
    m = zoo.create(arg, weights=path)
else:
    m = timm.create_model(arg, pretrained=True, pretrained_cfg_overlay={"file": path})
dt = time.perf_counter() - t0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"s": dt, "extra_rss_mb": (rss1 - rss0) / 1024}))
"""


def bench_pretrained_load(repeats: int, zoo_name: str, timm_name: str) -> list[dict]:
    """zoo.create(pretrained) from a local file vs timm.create_model(pretrained) from a local
    checkpoint of a model of similar size, each in fresh processes."""
    import torch
    import timm
    from safetensors.torch import save_file

    import zoo

    with tempfile.TemporaryDirectory() as tmp:
        zoo_dir = Path(tmp) / "zoo"
        zoo.save_pretrained(zoo.create(zoo_name), zoo_dir)
        timm_file = Path(tmp) / "timm.safetensors"
        save_file(timm.create_model(timm_name).state_dict(), str(timm_file))
        size_mb = (zoo_dir / "model.safetensors").stat().st_size / 2**20
        env = {**os.environ, "PYTHONPATH": str(ROOT)}

        def run(mode, arg, path):
            res = [json.loads(subprocess.run([PY, "-c", _LOAD_CHILD, mode, arg, str(path)],
                                             check=True, capture_output=True, text=True,
                                             env=env).stdout) for _ in range(repeats)]
            return statistics.median(r["s"] for r in res), max(r["extra_rss_mb"] for r in res)

        z_s, z_mem = run("zoo", zoo_name, zoo_dir)
        t_s, t_mem = run("timm", timm_name, timm_file)
    return [_row(f"create {zoo_name} pretrained (local file)", z_s,
                 f"timm {timm_name} pretrained (local file)", t_s,
                 f"zoo +{z_mem:.0f} MB (file {size_mb:.0f} MB, {z_mem / size_mb:.2f}x); "
                 f"timm +{t_mem:.0f} MB")]


def _throughput(model, x, repeats: int) -> float:
    import torch

    model.eval()
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_forward(repeats: int, names: list[str], batch: int, reference_root: Path | None,
                  compile_too: bool) -> list[dict]:
    import torch

    import zoo

    sys.path.insert(0, str(ROOT / "scripts"))
    import references

    rows = []
    for name in names:
        spec = zoo.get_spec(name)
        x = torch.randn(batch, *spec.data.input_size)
        model = zoo.create(name).eval()
        z = _throughput(model, x, repeats)
        ref = references.build(name, reference_root)
        r_s = None
        anchor = "original implementation (not given)"
        if ref is not None:  # its own random weights: throughput does not depend on values
            r_s = _throughput(ref.eval(), x, repeats)
            anchor = "original implementation" if reference_root else "timm's port"
        rows.append(_row(f"forward {name} b{batch} eval fp32", z, anchor, r_s))
        if compile_too:
            compiled = torch.compile(model)
            with torch.inference_mode():
                compiled(x)  # compile outside the timing
            c = _throughput(compiled, x, repeats)
            rows.append(_row(f"forward {name} b{batch} torch.compile", c, "eager zoo", z))
    return rows


def print_table(rows: list[dict]) -> None:
    head = f"{'operation':<46} {'zoo':>10} {'anchor':>10} {'ratio':>7}  anchor / memory"
    print(head)
    print("-" * len(head))
    for r in rows:
        a = f"{r['anchor_s'] * 1e3:9.1f}ms" if r["anchor_s"] else f"{'-':>10}"
        ratio = f"{r['ratio']:6.2f}x" if r["ratio"] else f"{'-':>7}"
        print(f"{r['operation']:<46} {r['zoo_s'] * 1e3:8.1f}ms {a} {ratio}  {r['anchor']}"
              + (f"; {r['peak_memory']}" if r["peak_memory"] else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few repeats (CI): report, never fail")
    p.add_argument("--reference-root", type=Path, help="folder with original implementations")
    p.add_argument("--models", nargs="*", help="models for the forward rows")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from zoo.catalog import catalog

    repeats = 3 if args.quick else 7
    default_models = ["simplenetv1_5m_m2", "sret_s", "nasnet_a_mobile", "deepmad_29m_224",
                      "bignas_attentivenas_a0", "ofq_deit_small_w4a4", "karat_vit_tiny_g3b"]
    names = [n for n in (args.models or default_models) if n in catalog().entries]
    if args.quick:
        names = names[:2]
    rows = bench_cold_start(repeats)
    load_model = "sret_s" if "sret_s" in catalog().entries else "simplenetv1_9m_m2"
    rows += bench_pretrained_load(repeats, load_model, "deit_small_patch16_224")
    rows += bench_forward(repeats, names, args.batch_size, args.reference_root,
                          compile_too=not args.quick)
    print(f"# zoo benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'quick' if args.quick else 'full'} mode, medians of {repeats} runs")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
