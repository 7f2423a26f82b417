"""Benchmark zoo's Fourier-KArAt operator against a direct transcription of the paper's equation.

KArAt (Maity et al., arXiv:2503.10632 v3, Sec. 3) activates every row ``a`` of every head's
attention scores with ``W Phi(a)``, ``Phi(a)_p = sum_q phi_pq(a_q)`` and Fourier units
``phi_pq(x) = b(x) + sum_{m=0..G} a_pqm cos(m x) + b_pqm sin(m x)`` (see
``zoo/families/karat/model.py`` for why m starts at 0).  :func:`direct_karat` below transcribes
that literally: it evaluates every unit ``phi_pq`` on every score, materializing a
``B x H x N x r x N x (G+1)`` tensor, as a straightforward implementation does.  zoo's
:class:`~zoo.families.karat.model.FourierKArAt` contracts harmonic features with the
coefficients in one matmul instead.  This transcription lives here, not in the library; the
family tests import it to check that both agree.

    PYTHONPATH=. python scripts/bench_karat.py                # ViT-Tiny size, batch 8, CPU
    PYTHONPATH=. python scripts/bench_karat.py --batch 8 --repeats 10 --json out.json

Each measurement runs in a fresh subprocess, so peak memory (the process's resident-set
high-water mark, reset just before the measured call) is not polluted by the other one.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

# ViT-Tiny/16 at 224 px: 3 heads, 196 patches + class token, r = 12, G = 3 (G3B / G3U).
TINY = {"heads": 3, "tokens": 197, "rank": 12, "grid": 3}


def direct_karat(attn: Tensor, a: Tensor, b: Tensor, w: Tensor, base_activation: str = "zero",
                 l1_projection: bool = False) -> Tensor:
    """The equation, term by term: every unit phi_pq on every score a_kq of every row k.

    attn: (B, H, Nq, N) scores; a, b: (H, r, N, G+1) coefficients a_pqm, b_pqm; w: (H, N, r).
    """
    m = torch.arange(a.shape[-1], dtype=attn.dtype, device=attn.device)
    x = attn[:, :, :, None, :, None] * m                          # (B, H, Nq, 1, N, G+1)
    terms = a[None, :, None] * torch.cos(x) + b[None, :, None] * torch.sin(x)  # (B,H,Nq,r,N,G+1)
    units = terms.sum(-1)                                          # phi_pq(a_kq): (B,H,Nq,r,N)
    if base_activation == "silu":
        units = units + torch.nn.functional.silu(attn)[:, :, :, None, :]
    elif base_activation == "identity":
        units = units + attn[:, :, :, None, :]
    elif base_activation != "zero":
        raise ValueError(f"unknown base activation {base_activation!r}")
    phi = units.sum(-1)                                            # Phi(a_k)_p: (B, H, Nq, r)
    out = torch.einsum("bhkp,hnp->bhkn", phi, w)                   # W Phi(a_k)
    if l1_projection:
        out = out / out.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    return out


def _inputs(batch: int, heads: int, tokens: int, rank: int, grid: int, seed: int = 0):
    from zoo.families.karat.model import FourierKArAt

    torch.manual_seed(seed)
    op = FourierKArAt(heads, tokens, rank, grid)
    # scores of a trained-like ViT head: q.k / sqrt(d) with unit-variance q, k
    attn = torch.randn(batch, heads, tokens, tokens) * 1.5
    return op, attn


def _reset_peak() -> bool:
    try:  # Linux >= 4.0: writing 5 resets the VmHWM high-water mark
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _current_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker(impl: str, what: str, batch: int, repeats: int) -> dict:
    torch.set_grad_enabled(what == "fwd_bwd")
    if what == "model":
        import zoo

        model = zoo.create("karat_vit_tiny_g3b").eval()
        if impl == "direct":
            for op in model.operators():
                op.forward = (lambda o: lambda s: direct_karat(
                    s, o.a, o.b, o.w, "zero", o.l1_projection))(op)
        x = torch.randn(batch, 3, 224, 224)

        def call():
            return model(x)
    else:
        op, attn = _inputs(batch, **TINY)
        if what == "fwd_bwd":
            attn.requires_grad_(True)
        fn = op if impl == "zoo" else (lambda s: direct_karat(s, op.a, op.b, op.w))

        def call():
            out = fn(attn)
            if what == "fwd_bwd":
                out.square().mean().backward()
            return out

    exact = _reset_peak()
    base = _current_kib()
    call()  # first call: its peak is the measured one
    peak = _peak_kib() - base
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return {"impl": impl, "what": what, "batch": batch, "peak_mib": peak / 1024,
            "peak_exact": exact, "median_s": statistics.median(times), "min_s": min(times),
            "threads": torch.get_num_threads()}


def _run_worker(impl: str, what: str, batch: int, repeats: int) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "--worker", impl, "--what", what,
                          "--batch", str(batch), "--repeats", str(repeats)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_equal(batch: int) -> dict:
    """Max |zoo - direct| at the benchmark size, float32 and float64."""
    op, attn = _inputs(batch, **TINY)
    res = {}
    with torch.no_grad():
        for dtype in (torch.float32, torch.float64):
            o = op.to(dtype)
            s = attn.to(dtype)
            diff = (o(s) - direct_karat(s, o.a, o.b, o.w)).abs().max().item()
            res[str(dtype).removeprefix("torch.")] = diff
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-model", action="store_true", help="skip the whole-model comparison")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", choices=("zoo", "direct"), help=argparse.SUPPRESS)
    p.add_argument("--what", choices=("fwd", "fwd_bwd", "model"), default="fwd",
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.what, args.batch, args.repeats)))
        return

    print(f"Fourier-KArAt operator, ViT-Tiny size (heads={TINY['heads']}, N={TINY['tokens']}, "
          f"r={TINY['rank']}, G={TINY['grid']}), batch {args.batch}, CPU, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    eq = check_equal(args.batch)
    print(f"max |zoo - direct|: float32 {eq['float32']:.2e}, float64 {eq['float64']:.2e}")
    results = {"equality": eq, "runs": []}
    whats = ["fwd", "fwd_bwd"] + ([] if args.skip_model else ["model"])
    labels = {"fwd": "operator forward (no grad)", "fwd_bwd": "operator forward+backward",
              "model": "karat_vit_tiny_g3b forward (12 blocks, no grad)"}
    for what in whats:
        z = _run_worker("zoo", what, args.batch, args.repeats)
        d = _run_worker("direct", what, args.batch, max(1, args.repeats // 2))
        results["runs"] += [z, d]
        print(f"{labels[what]:<48} zoo {z['median_s'] * 1e3:9.1f} ms {z['peak_mib']:8.1f} MiB | "
              f"direct {d['median_s'] * 1e3:9.1f} ms {d['peak_mib']:8.1f} MiB | "
              f"speed-up {d['median_s'] / z['median_s']:5.1f}x, "
              f"memory {d['peak_mib'] / max(z['peak_mib'], 1e-3):5.1f}x less")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
