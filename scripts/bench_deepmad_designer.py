"""Benchmark the DeepMAD designer against the published DeepMAD networks.

For each published network (specs/deepmad.yaml), run ``design`` with the budgets of its
TinyNAS search config (the spec's ``arch.search_budget``, from configs/classification/deepmad_*.py:
FLOPs, model size, rho0), its
resolution, block type, stride pattern, stem width and final 1x1 width, in TinyNAS-compatible
scoring with the FLOPs budget in TinyNAS's own unit (``macs_count="tinynas"``: its
``get_flops``, which the configs' budgets bound); print the designer's score / entropy / budget
slack / time next to the published structure's (same score, same cost and params definitions).
``--native`` scores as zoo does and bounds zoo's MAC count instead.

    PYTHONPATH=. python scripts/bench_deepmad_designer.py [--only deepmad_r18,...] [--native]
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the solver's LAPACK calls are tiny: one thread is fastest

import argparse  # noqa: E402
import time  # noqa: E402

import zoo  # noqa: E402
from zoo.families.deepmad import scores  # noqa: E402
from zoo.families.deepmad.designer import design  # noqa: E402

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--native", action="store_true", help="zoo's scoring instead of TinyNAS's")
    args = ap.parse_args()
    compat = not args.native
    names = [n for n in zoo.list_models(family="deepmad")
             if zoo.get_spec(n).arch.search_budget is not None
             and (not args.only or n in args.only.split(","))]
    count = "tinynas" if compat else "zoo"
    print(f"scoring: {'TinyNAS-compatible' if compat else 'native'}; FLOPs budget bounds "
          f"{'TinyNAS get_flops' if compat else 'zoo MACs'}; slack = 1 - used / budget")
    head = (f"{'model':16} {'who':9} {'score':>9} {'entropy':>9} {'rho':>6} {'GMACs':>7} "
            f"{'TN GFLOPs':>9} {'Mparams':>8} {'slack flops/params/rho':>23} {'time s':>7}")
    print(head)
    print("-" * len(head))
    for name in names:
        spec = zoo.get_spec(name)
        arch, res = spec.arch, spec.data.input_size[-1]
        budget = arch.search_budget
        macs, params, rho = budget.macs, budget.params, budget.rho
        pub = scores.evaluate(arch, res, tinynas_compat=compat)
        t0 = time.perf_counter()
        d = design(macs=macs, params=params, rho=rho, block=arch.block, resolution=res,
                   strides=[sb.stride for sb in arch.stages], stem_chs=arch.stem.out_chs,
                   final_chs=arch.final_conv.out_chs if arch.final_conv else None,
                   tinynas_compat=compat, macs_count=count, name=f"{name}_designed")
        seconds = time.perf_counter() - t0
        for who, ev, sec in (("published", pub, None), ("designer", d.evaluation, seconds)):
            slack = (1 - d.space.cost(ev) / macs, 1 - ev.params / params, 1 - ev.rho / rho)
            print(f"{name:16} {who:9} {ev.score:9.2f} {ev.entropy:9.2f} {ev.rho:6.3f} "
                  f"{ev.macs / 1e9:7.3f} {ev.tinynas_flops / 1e9:9.3f} {ev.params / 1e6:8.3f} "
                  f"{'/'.join(f'{s:+.3f}' for s in slack):>23} "
                  f"{'' if sec is None else f'{sec:7.1f}'}")
        gain = d.evaluation.score - pub.score
        shape = ", ".join(f"{sb.out_chs}/{sb.btn_chs}/k{sb.kernel_size}/L{sb.depth}"
                          for sb in d.arch.stages)
        print(f"{'':16} {'gain':9} {gain:+9.2f}  ({'meets or beats' if gain >= 0 else 'BELOW'} "
              f"the published score)  stem {d.arch.stem.out_chs}, out/btn/k/L: {shape}")
        print(flush=True)


if __name__ == "__main__":
    main()
