"""The DeepMAD designer: budgets in, a buildable spec out (the paper's MP problem).

DeepMAD designs a CNN by solving a mathematical program over its structural parameters:

    maximize   sum_i w_i H_i - 10 * exp(std(L))       (multi-scale entropy, depth penalty)
    subject to MACs <= budget, params <= budget, rho <= rho0, [layers <= budget]

over, per super-block j: width c_j, bottleneck b_j, kernel k_j, depth L_j (and the stem width).
TinyNAS solves it by 500,000 random mutations over 64 processes.  Here it is solved as the
small mixed-integer nonlinear program it is (NLP-based branching on the integer skeleton,
then exact rounding):

0. *Feasibility.*  The least rho reachable within the MACs / params / layer budgets (a
   relaxed NLP) decides at once whether rho0 can be met; if not, the error says which budget.
1. *Relaxation.*  Widths and kernels in log space, depths real: MACs and params are then
   posynomials (convex in log space), the rho constraint ``log D_i - 2 S_i / D_i <= log rho0``
   is smooth and the entropy is a quadratic form.  SLSQP (scipy; gradients by batched
   forward differences) from several starts gives the relaxed optimum and its (L, k).
2. *Skeleton branching.*  Every depth vector and kernel vector whose entries are the floor or
   ceiling of the relaxed ones (``neighbourhood`` widens this) is a branch; each branch's
   width NLP is solved warm-started.  Its value bounds what rounding can reach in that branch
   up to the NLP's local optimality (the entropy is not concave, so this is a well-founded
   heuristic bound, not a certificate).
3. *Rounding.*  Branches are visited best bound first; in each, all floor/ceil roundings of
   the widths to the channel grid are scored exactly at once (vectorized); if none fits, the
   least-violating one is repaired by integer descent on the violation, and the NLP is re-solved
   with budgets tightened by 0.5-5% to leave room for the grid.  Branches whose bound is below
   the best integer score are pruned.
4. *Polish.*  Steepest-ascent integer local search (one width / bottleneck +-step, one depth
   +-1 with a compensating width change, one kernel step, the stem) until no move improves.

Scores and costs are those of :mod:`.scores` (the result is checked against it).  Budgets:
``macs`` counts what ``zoo.measure.count_macs`` counts (classifier included), or, with
``macs_count="tinynas"``, TinyNAS's own cost (:func:`.scores.tinynas_flops`: conv MACs + BN,
ReLU and pooling element counts, no SE / classifier; the unit of TinyNAS's FLOPs budgets);
``params`` excludes the classifier.  No torch is imported; scipy is needed (``pip install scipy``).
"""
from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from zoo import yamlio
from zoo.errors import ZooError
from zoo.paths import data_dir
from zoo.spec import Paper

from .schema import Arch
from .scores import DEPTH_PENALTY, STAGE_WEIGHTS, Evaluation, evaluate



def family_paper() -> dict[str, Any]:
    """The DeepMAD paper as ``specs/deepmad.yaml`` declares it (its ``defaults.paper``): a
    designed spec cites the same paper, and the YAML stays its only source."""
    doc = yamlio.load(data_dir("specs") / "deepmad.yaml")
    return Paper.model_validate(doc["defaults"]["paper"]).model_dump(mode="json", exclude_none=True)


class DesignError(ZooError, ValueError):
    """Budgets or design options that no network of the space can satisfy (says which)."""


@dataclass(frozen=True)
class Space:
    """The design space and budgets of one designer run (all validated by :func:`design`)."""

    block: str
    strides: tuple[int, ...]
    resolution: int
    macs: float
    params: float
    rho: float
    max_layers: int | None
    stem_chs: tuple[int, int]
    final_chs: int | None
    kernels: tuple[tuple[int, ...], ...]  # allowed kernel sizes per super-block
    max_depth: int
    width: tuple[int, int]
    btn_ratio: tuple[float, float]  # bounds of btn_chs / out_chs
    channel_step: int
    stage_weights: tuple[float, ...]
    depth_penalty: float
    tinynas_compat: bool
    num_classes: int
    in_chans: int
    macs_count: str = "zoo"  # what the ``macs`` budget bounds: "zoo" MACs or "tinynas" FLOPs
    se_ratio: float = 0.25
    se_divisor: int = 8
    stem_kernel: int = 3
    stem_stride: int = 2

    @property
    def n(self) -> int:
        return len(self.strides)

    @property
    def dw(self) -> bool:
        return self.block == "k1dwsek1"

    @property
    def cost_label(self) -> str:
        """What the ``macs`` budget bounds, in words."""
        return "TinyNAS FLOPs" if self.macs_count == "tinynas" else "MACs"

    def cost(self, ev: Evaluation) -> float:
        """The cost of an evaluated network that the ``macs`` budget bounds."""
        return ev.tinynas_flops if self.macs_count == "tinynas" else ev.macs


def _out_res(r: int, k: int, s: int) -> int:
    return (r + 2 * ((k - 1) // 2) - k) // s + 1


class _Geometry:
    """Everything about a space that does not depend on the free variables."""

    def __init__(self, sp: Space) -> None:
        n = sp.n
        r = _out_res(sp.resolution, sp.stem_kernel, sp.stem_stride)
        self.r_stem = r
        self.r_in, self.r_out = np.zeros(n), np.zeros(n)
        # TinyNAS's cost divides resolutions by the strides without rounding
        self.t_in = sp.resolution / sp.stem_stride / np.cumprod([1, *sp.strides[:-1]])
        self.t_out = self.t_in / np.asarray(sp.strides, float)
        compat_r = sp.resolution // sp.stem_stride
        block_res = [r]  # output resolution of every TinyNAS block, as the entropy sees it
        block_res_compat = [compat_r]
        for j, s in enumerate(sp.strides):
            self.r_in[j] = r
            # the kxk conv sets the size; odd kernels with padding (k-1)//2 give ceil(r / s)
            r = (r - 1) // s + 1
            self.r_out[j] = r
            compat_r = 1 if sp.dw else compat_r // s
            block_res.append(r)
            block_res_compat.append(compat_r)
        if sp.final_chs is not None:
            block_res.append(r)
            block_res_compat.append(compat_r)
        blocks_stride = [sp.stem_stride, *sp.strides] + ([1] if sp.final_chs is not None else [])
        nb = len(blocks_stride)
        self.ends = [i - 1 for i in range(1, nb) if blocks_stride[i] == 2] + [nb - 1]
        if len(self.ends) != len(sp.stage_weights):
            raise DesignError(
                f"strides {list(sp.strides)} cut the network into {len(self.ends)} stages but "
                f"{len(sp.stage_weights)} stage weights were given (DeepMAD's [1, 1, 1, 1, 8] "
                "needs exactly 4 stride-2 super-blocks)")
        res = block_res_compat if sp.tinynas_compat else block_res
        self.log_r2 = np.array([2.0 * math.log(res[e]) for e in self.ends])
        self.w = np.asarray(sp.stage_weights, dtype=float)
        self.nb = nb
        self.pen_from = 2 if (sp.tinynas_compat and not sp.dw) else 0


@dataclass
class _Point:
    """A (possibly batched) assignment of all variables, real- or integer-valued."""

    c0: np.ndarray  # (...,)
    c: np.ndarray  # (..., n) out widths
    b: np.ndarray  # (..., n) bottleneck widths
    k: np.ndarray  # (..., n) kernel sizes
    L: np.ndarray  # (..., n) depths


def _terms(sp: Space, g: _Geometry, p: _Point, exact: bool) -> dict[str, np.ndarray]:
    """Entropy, penalty, per-stage log rho, MACs, params and layers of ``p`` (broadcasting).

    ``exact``: integer point, SE width by :func:`se_channels`; otherwise SE = ratio * b."""
    c0, c, b, k, L = p.c0, p.c, p.b, p.k, p.L
    n = sp.n
    cin = np.concatenate([c0[..., None], c[..., :-1]], axis=-1)
    lc, lcin, lb, lk = np.log(c), np.log(cin), np.log(b), np.log(k)
    if sp.dw:
        s_first = 0.5 * (lcin + 2 * lk + lb)
        s_rest = 0.5 * (lc + 2 * lk + lb)
    else:
        s_first = 0.5 * (lcin + 2 * lb + 2 * lk)
        s_rest = 0.5 * (lc + 2 * lb + 2 * lk)
    s_blocks = [np.full(c0.shape, 0.5 * math.log(sp.in_chans * sp.stem_kernel ** 2))]
    s_blocks += [s_first[..., j] + (L[..., j] - 1) * s_rest[..., j] for j in range(n)]
    d_blocks = [np.ones(c0.shape)] + [3.0 * L[..., j] for j in range(n)]
    chans = [c0] + [c[..., j] for j in range(n)]
    if sp.final_chs is not None:
        s_blocks.append(0.5 * lc[..., -1])
        d_blocks.append(np.ones(c0.shape))
        chans.append(np.full(c0.shape, float(sp.final_chs)))
    s_cum = np.cumsum(np.stack(s_blocks, -1), -1)
    d_cum = np.cumsum(np.stack(d_blocks, -1), -1)
    ch = np.stack(chans, -1)
    e = g.ends
    entropy = np.sum(g.w * (np.log(ch[..., e]) + g.log_r2) * s_cum[..., e], -1)
    log_rho = np.log(d_cum[..., e]) - 2.0 * s_cum[..., e] / d_cum[..., e]
    depths = L[..., g.pen_from:]
    std = np.sqrt(np.var(depths, -1) + (0.0 if exact else 1e-9))
    penalty = sp.depth_penalty * np.exp(std)
    # costs
    ri2, ro2 = g.r_in ** 2, g.r_out ** 2
    if exact:
        se = np.maximum(1, np.round(b * sp.se_ratio) // sp.se_divisor) * sp.se_divisor
    else:
        se = b * sp.se_ratio
    if sp.dw:
        m_first = ri2 * cin * b + ro2 * b * k * k + ro2 * b * c + 2 * b * se
        m_rest = ro2 * (2 * c * b + b * k * k) + 2 * b * se
        p_first = cin * b + b * k * k + 2 * b * se + b * c + 6 * b + 2 * se + 2 * c
        p_rest = p_first + (c - cin) * b
    else:
        m_first = ri2 * cin * b + ro2 * b * b * k * k + ro2 * b * c + ro2 * cin * c
        m_rest = ro2 * (2 * c * b + b * b * k * k)
        p_first = cin * b + b * b * k * k + b * c + cin * c + 4 * b + 4 * c
        p_rest = 2 * c * b + b * b * k * k + 4 * b + 2 * c
    feat = float(sp.final_chs) if sp.final_chs is not None else c[..., -1]
    macs = (g.r_stem ** 2 * sp.in_chans * sp.stem_kernel ** 2 * c0
            + np.sum(m_first + (L - 1) * m_rest, -1) + feat * sp.num_classes)
    params = (sp.in_chans * sp.stem_kernel ** 2 * c0 + 2 * c0
              + np.sum(p_first + (L - 1) * p_rest, -1))
    if sp.final_chs is not None:
        macs = macs + ro2[-1] * c[..., -1] * sp.final_chs
        params = params + c[..., -1] * sp.final_chs + 2 * sp.final_chs
    flops = _tinynas_flops(sp, g, p, cin, exact)
    return {"entropy": entropy, "penalty": penalty, "score": entropy - penalty,
            "log_rho": log_rho, "macs": macs, "params": params, "layers": d_cum[..., -1],
            "tinynas_flops": flops, "cost": flops if sp.macs_count == "tinynas" else macs}


def _tinynas_flops(sp: Space, g: _Geometry, p: _Point, cin: np.ndarray,
                   exact: bool) -> np.ndarray:
    """:func:`.scores.tinynas_flops` of ``p`` (broadcasting): per block, conv MACs + 3 per
    BN+ReLU output, the shortcut's projection and stride-2 average pool."""
    c0, c, b, k, L = p.c0, p.c, p.b, p.k, p.L
    ti2, to2 = g.t_in ** 2, g.t_out ** 2
    kxk = b * k * k if sp.dw else b * b * k * k
    first = ti2 * (cin * b + 3 * b) + to2 * (kxk + 3 * b + b * c + 3 * c)
    rest = to2 * (2 * c * b + kxk + 6 * b + 3 * c)
    stride2 = np.asarray(sp.strides) == 2
    if sp.dw:  # identity shortcut only where the widths agree (never in the relaxation)
        if exact:
            first = first + np.where(stride2 & (cin == c), ti2 * cin, 0.0)
    else:  # projected shortcut on every first block, avg-pooled on stride 2
        first = first + to2 * (cin * c + 3 * c) + np.where(stride2, ti2 * cin, 0.0)
    flops = (sp.resolution ** 2 * (sp.in_chans * sp.stem_kernel ** 2 + 3) * c0
             / sp.stem_stride ** 2 + np.sum(first + (L - 1) * rest, -1))
    if sp.final_chs is not None:
        flops = flops + to2[-1] * (c[..., -1] * sp.final_chs + 3 * sp.final_chs)
    return flops


def _violations(sp: Space, t: dict[str, np.ndarray]) -> np.ndarray:
    """Stacked constraint values, feasible where all <= 0 (relative units)."""
    v = [np.log(t["cost"] / sp.macs), np.log(t["params"] / sp.params),
         np.max(t["log_rho"], -1) - math.log(sp.rho)]
    if sp.max_layers is not None:
        v.append((t["layers"] - sp.max_layers) / sp.max_layers)
    return np.stack(v, -1)


# --- continuous relaxation -------------------------------------------------------------------
class _Relaxation:
    """x = [log c0, log c (n), log b (n), log k (n), L (n)]; fixed entries are dropped."""

    def __init__(self, sp: Space, g: _Geometry, fixed_k: np.ndarray | None = None,
                 fixed_L: np.ndarray | None = None, min_rho: bool = False) -> None:
        self.sp, self.g, self.fixed_k, self.fixed_L = sp, g, fixed_k, fixed_L
        # min_rho: minimize (a smooth max of) log rho under the other constraints instead
        self.min_rho = min_rho
        n = sp.n
        lo_w, hi_w = math.log(sp.width[0]), math.log(sp.width[1])
        bounds = [(math.log(sp.stem_chs[0]), math.log(sp.stem_chs[1]))] + [(lo_w, hi_w)] * n
        bounds += [(lo_w + math.log(sp.btn_ratio[0]), hi_w + math.log(sp.btn_ratio[1]))] * n
        if fixed_k is None:
            bounds += [(math.log(min(ks)), math.log(max(ks))) for ks in sp.kernels]
        if fixed_L is None:
            bounds += [(1.0, float(sp.max_depth))] * n
        self.bounds = bounds
        self._cache: tuple[bytes, Any] | None = None

    def point(self, X: np.ndarray) -> _Point:
        """Variables of a batch of points ``X`` (B, dim)."""
        n = self.sp.n
        B = X.shape[0]
        i = 1 + 2 * n
        if self.fixed_k is None:
            k, i = np.exp(X[:, i:i + n]), i + n
        else:
            k = np.broadcast_to(self.fixed_k, (B, n))
        L = X[:, i:i + n] if self.fixed_L is None else np.broadcast_to(self.fixed_L, (B, n))
        return _Point(np.exp(X[:, 0]), np.exp(X[:, 1:1 + n]), np.exp(X[:, 1 + n:1 + 2 * n]),
                      np.asarray(k, float), np.asarray(L, float))

    def _values(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objective (B,) and constraint values (B, m) (feasible where >= 0) of a batch."""
        sp, n = self.sp, self.sp.n
        t = _terms(sp, self.g, self.point(X), exact=False)
        cons = [-np.log(t["cost"] / sp.macs)[:, None], -np.log(t["params"] / sp.params)[:, None]]
        if not self.min_rho:
            cons.append(math.log(sp.rho) - t["log_rho"])
        if sp.max_layers is not None:
            cons.append(((sp.max_layers - t["layers"]) / sp.max_layers)[:, None])
        ratio = X[:, 1 + n:1 + 2 * n] - X[:, 1:1 + n]
        cons += [ratio - math.log(sp.btn_ratio[0]), math.log(sp.btn_ratio[1]) - ratio]
        if self.min_rho:
            z = 50.0 * t["log_rho"]
            zmax = z.max(-1, keepdims=True)
            f = (zmax[:, 0] + np.log(np.exp(z - zmax).sum(-1))) / 50.0
            return f, np.concatenate(cons, axis=1)
        return -t["score"] / 1000.0, np.concatenate(cons, axis=1)

    def _eval(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Values and forward-difference derivatives, from one batched evaluation."""
        key = x.tobytes()
        if self._cache is None or self._cache[0] != key:
            h = 1e-7 * np.maximum(1.0, np.abs(x))
            X = np.vstack([x, x + np.diag(h)])
            f, c = self._values(X)
            grad = (f[1:] - f[0]) / h
            jac = ((c[1:] - c[0]) / h[:, None]).T
            self._cache = (key, (float(f[0]), grad, c[0], jac))
        return self._cache[1]

    def objective(self, x: np.ndarray) -> float:
        return self._eval(x)[0]

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self._eval(x)[1]

    def constraints(self, x: np.ndarray) -> np.ndarray:
        return self._eval(x)[2]

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        return self._eval(x)[3]

    def terms(self, x: np.ndarray) -> dict[str, np.ndarray]:
        t = _terms(self.sp, self.g, self.point(x[None]), exact=False)
        return {k: v[0] for k, v in t.items()}

    def solve(self, x0: np.ndarray) -> tuple[np.ndarray, float, bool]:
        from scipy.optimize import minimize

        x0 = np.clip(x0, [b[0] for b in self.bounds], [b[1] for b in self.bounds])
        res = minimize(self.objective, x0, jac=self.gradient, method="SLSQP", bounds=self.bounds,
                       constraints=[{"type": "ineq", "fun": self.constraints,
                                     "jac": self.jacobian}],
                       options={"maxiter": 150, "ftol": 1e-10})
        x = res.x
        ok = bool(np.all(self.constraints(x) >= -1e-6))
        return x, -self.objective(x) * (1.0 if self.min_rho else 1000.0), ok


def _starts(sp: Space, with_k: bool, with_L: bool) -> list[np.ndarray]:
    """A few spread-out starting points: geometric width ramps at several scales and depths."""
    n = sp.n
    out = []
    for scale, depth in itertools.product((0.15, 0.4, 0.8), (2.0, 4.0, 8.0)):
        w = sp.width[0] * (sp.width[1] / sp.width[0]) ** (scale * (np.arange(1, n + 1) / n) ** 0.5)
        c0 = math.sqrt(sp.stem_chs[0] * sp.stem_chs[1])
        btn = w * math.sqrt(sp.btn_ratio[0] * sp.btn_ratio[1])
        x = [math.log(c0), *np.log(w), *np.log(btn)]
        if with_k:
            x += [math.log(np.median(ks)) for ks in sp.kernels]
        if with_L:
            x += [min(depth, sp.max_depth)] * n
        out.append(np.asarray(x))
    return out


# --- integer phase ----------------------------------------------------------------------------
def _grid_pair(v: np.ndarray, step: int, lo: int, hi: int) -> np.ndarray:
    """floor / ceil of ``v`` on the grid step*Z within [lo, hi] -> (..., 2)."""
    f = np.clip(np.floor(v / step) * step, lo, hi)
    c = np.clip(np.ceil(v / step) * step, lo, hi)
    return np.stack([np.maximum(f, step), np.maximum(c, step)], -1)


def _round_widths(sp: Space, g: _Geometry, x_c0: float, x_c: np.ndarray, x_b: np.ndarray,
                  k: np.ndarray, L: np.ndarray,
                  depth_moves: bool = False) -> tuple[float, _Point] | None:
    """Best feasible floor/ceil rounding of the widths (all 2^(2n+1) at once), or None.  If
    none is feasible, the least-violating one is repaired by integer descent (with
    ``depth_moves``, also moving depths)."""
    n, st = sp.n, sp.channel_step
    wlo, whi = _grid_lo(sp.width[0], st), sp.width[1]
    opts = [_grid_pair(np.array([x_c0]), st, _grid_lo(sp.stem_chs[0], st), sp.stem_chs[1])[0]]
    opts += list(_grid_pair(x_c, st, wlo, whi))
    opts += list(_grid_pair(x_b, st, st, int(whi * sp.btn_ratio[1])))
    combos = np.array(list(itertools.product(*[np.unique(o) for o in opts])), dtype=float)
    rows = (len(combos), n)
    p = _Point(combos[:, 0], combos[:, 1:1 + n], combos[:, 1 + n:], np.broadcast_to(k, rows),
               np.broadcast_to(L, rows))
    excess = _excess(sp, g, p)
    i = int(np.argmin(excess))
    q = _Point(p.c0[i], p.c[i].copy(), p.b[i].copy(), p.k[i].copy(), p.L[i].copy())
    if excess[i] > 0:
        repaired = _repair(sp, g, q, with_depth=depth_moves)
        if repaired is None:
            return None
        q = repaired
    ok, score = _feasible(sp, g, q)
    if ok:  # the best feasible rounding, if one is better than the repaired least-violating one
        t = _terms(sp, g, p, exact=True)
        cand = np.where(excess <= 0, t["score"], -np.inf)
        j = int(np.argmax(cand))
        if cand[j] > score:
            return float(cand[j]), _Point(p.c0[j], p.c[j].copy(), p.b[j].copy(), p.k[j].copy(),
                                          p.L[j].copy())
    return (score, q) if ok else None


def _excess(sp: Space, g: _Geometry, p: _Point) -> np.ndarray:
    """Total constraint violation of a batch (0 where feasible), btn ratio bounds included."""
    t = _terms(sp, g, p, exact=True)
    ratio = p.b / p.c
    v = np.sum(np.maximum(_violations(sp, t), 0.0), -1)
    v += np.sum(np.maximum(math.log(sp.btn_ratio[0]) - np.log(ratio) - 1e-12, 0.0), -1)
    v += np.sum(np.maximum(np.log(ratio) - math.log(sp.btn_ratio[1]) - 1e-12, 0.0), -1)
    return v


def _neighbours(sp: Space, p: _Point, with_depth: bool = True) -> list[_Point]:
    """Integer moves: one width or bottleneck +-step, one depth +-1 (with a compensating
    width/bottleneck step elsewhere), one kernel step, the stem +-step."""
    n, st = sp.n, sp.channel_step
    moves: list[_Point] = []

    def copy() -> _Point:
        return _Point(p.c0, p.c.copy(), p.b.copy(), p.k.copy(), p.L.copy())

    for j in range(n):
        for d in (st, -st):
            for attr in ("c", "b"):
                q = copy()
                getattr(q, attr)[j] += d
                moves.append(q)
        if with_depth:
            for dl in (1, -1):
                for j2 in range(n):
                    for attr in ("c", "b"):
                        for d in (0, -st, -2 * st):
                            q = copy()
                            q.L[j] += dl
                            getattr(q, attr)[j2] += d
                            moves.append(q)
        ks = sp.kernels[j]
        i = ks.index(int(p.k[j]))
        for i2 in (i - 1, i + 1):
            if 0 <= i2 < len(ks):
                q = copy()
                q.k[j] = ks[i2]
                moves.append(q)
    for d in (st, -st):
        q = copy()
        q.c0 = p.c0 + d
        moves.append(q)
    return [q for q in moves if _in_box(sp, q)]


def _batch(moves: list[_Point]) -> _Point:
    return _Point(np.array([q.c0 for q in moves], float), np.stack([q.c for q in moves]),
                  np.stack([q.b for q in moves]), np.stack([q.k for q in moves]),
                  np.stack([q.L for q in moves]))


def _repair(sp: Space, g: _Geometry, p: _Point, max_steps: int = 500,
            with_depth: bool = False) -> _Point | None:
    """Steepest descent on the total violation over integer moves; None if stuck."""
    v = float(_excess(sp, g, _batch([p]))[0])
    for _ in range(max_steps):
        if v <= 0:
            return p
        moves = _neighbours(sp, p, with_depth=with_depth)
        if not moves:
            return None
        ex = _excess(sp, g, _batch(moves))
        i = int(np.argmin(ex))
        if ex[i] >= v - 1e-15:
            return None
        p, v = moves[i], float(ex[i])
    return p if v <= 0 else None


def _grid_lo(v: int, step: int) -> int:
    return int(math.ceil(v / step) * step)


def _feasible(sp: Space, g: _Geometry, p: _Point) -> tuple[bool, float]:
    t = _terms(sp, g, p, exact=True)
    ratio = p.b / p.c
    ok = bool(np.all(_violations(sp, t) <= 0)) and bool(
        np.all((ratio >= sp.btn_ratio[0] - 1e-9) & (ratio <= sp.btn_ratio[1] + 1e-9)))
    return ok, float(t["score"])


def _polish(sp: Space, g: _Geometry, p: _Point, score: float) -> tuple[float, _Point]:
    """Steepest-ascent integer local search among feasible neighbours."""
    while True:
        moves = _neighbours(sp, p)
        if not moves:
            return score, p
        batch = _batch(moves)
        t = _terms(sp, g, batch, exact=True)
        cand = np.where(_excess(sp, g, batch) <= 0, t["score"], -np.inf)
        i = int(np.argmax(cand))
        if cand[i] <= score + 1e-9:
            return score, p
        score, p = float(cand[i]), moves[i]


def _in_box(sp: Space, q: _Point) -> bool:
    return bool(sp.stem_chs[0] <= q.c0 <= sp.stem_chs[1] and np.all(q.c >= sp.width[0])
                and np.all(q.c <= sp.width[1]) and np.all(q.b >= sp.channel_step)
                and np.all(q.L >= 1) and np.all(q.L <= sp.max_depth))


# --- public API -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """A designed network: its spec (``zoo.register_specs(design.spec)``) and evaluation."""

    name: str
    arch: Arch
    evaluation: Evaluation
    space: Space
    seconds: float
    branches: int = 0
    pruned: int = 0
    spec: dict[str, Any] = field(default_factory=dict)

    def to_yaml(self) -> str:
        from zoo import yamlio

        return yamlio.dumps(self.spec)

    def slack(self) -> dict[str, float]:
        """Unused fraction of every budget (>= 0 when the design satisfies it)."""
        e, sp = self.evaluation, self.space
        out = {"macs": 1 - sp.cost(e) / sp.macs, "params": 1 - e.params / sp.params,
               "rho": 1 - e.rho / sp.rho}
        if sp.max_layers is not None:
            out["layers"] = 1 - e.layers / sp.max_layers
        return out


def _check_budgets(macs: float, params: float, rho: float, max_layers: int | None,
                   resolution: int) -> None:
    for name, v in (("macs", macs), ("params", params), ("rho0", rho)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise DesignError(f"budget {name} must be a positive number, got {v!r}")
    if max_layers is not None and max_layers <= 0:
        raise DesignError(f"budget max_layers must be positive, got {max_layers!r}")
    if resolution < 32:
        raise DesignError(f"resolution must be at least 32, got {resolution}")


def _smallest(sp: Space, g: _Geometry) -> dict[str, float]:
    st = sp.channel_step
    w = max(_grid_lo(sp.width[0], st), st)
    b = max(_grid_lo(int(math.ceil(w * sp.btn_ratio[0])), st), st)
    p = _Point(np.array(float(_grid_lo(sp.stem_chs[0], st))), np.full(sp.n, float(w)),
               np.full(sp.n, float(b)), np.array([min(k) for k in sp.kernels], float),
               np.ones(sp.n))
    t = _terms(sp, g, p, exact=True)
    return {"macs": float(t["cost"]), "params": float(t["params"]), "layers": float(t["layers"])}


def _single_blas_thread(fn: Callable[..., Design]) -> Callable[..., Design]:
    """Run ``fn`` with BLAS limited to one thread when ``threadpoolctl`` is installed
    (``zoo[design]``): the solver makes many tiny LAPACK calls, which multi-threaded BLAS only
    slows down (3-4x on a loaded 2-core machine).  Without it, set ``OPENBLAS_NUM_THREADS=1``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Design:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return fn(*args, **kwargs)
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@_single_blas_thread
def design(*, macs: float, params: float, rho: float = 0.5, block: str = "k1dwsek1",
           num_stages: int = 5, strides: Sequence[int] | None = None, resolution: int = 224,
           max_layers: int | None = None, stem_chs: int | tuple[int, int] = (16, 64),
           final_chs: int | None = None, kernel_sizes: Sequence[int] | None = None,
           kernel_rule: bool = True, max_depth: int = 16,
           width: tuple[int, int] = (16, 2048), btn_ratio: tuple[float, float] | None = None,
           channel_step: int = 8, stage_weights: Sequence[float] = STAGE_WEIGHTS,
           depth_penalty: float = DEPTH_PENALTY, tinynas_compat: bool = False,
           num_classes: int = 1000, in_chans: int = 3, name: str = "deepmad_designed",
           neighbourhood: int = 0, macs_count: str = "zoo") -> Design:
    """Design a DeepMAD network for the given budgets.

    Args:
        macs: MACs budget of one forward pass at ``resolution``, classifier included (what
            ``zoo.measure.count_macs`` reports).
        params: parameter budget without the classifier.
        rho: rho0, the bound on the effectiveness rho (0.5 for the 29M-89M models,
            0.3 for R18-R50).
        block: ``"k1dwsek1"`` (MobileNet-like with SE) or ``"k1kxk1"`` (ResNet-like).
        num_stages: number of super-blocks; ``strides`` defaults to 2 for the first four.
        max_layers: optional bound on the number of conv layers (depth budget).
        stem_chs: stem width, or its (min, max) range.
        final_chs: width of a final 1x1 conv (TinyNAS uses 1792-2560 for k1dwsek1), or None.
        kernel_sizes: kernel choices (default (3, 5, 7) for k1dwsek1, (3, 5) for k1kxk1);
            ``kernel_rule`` applies TinyNAS's ``k * 1.5 <= input resolution``.
        max_depth: most blocks per super-block.  ``width``: bounds of super-block widths.
        btn_ratio: bounds of btn / out (default (1.5, 6) for k1dwsek1, (0.1, 1) for k1kxk1,
            TinyNAS's search spaces).  ``channel_step``: widths are multiples of it.
        stage_weights, depth_penalty: the objective's w_i and penalty factor.
        tinynas_compat: score as TinyNAS does (see :mod:`.scores`).
        neighbourhood: also branch on depths/kernels this far beyond floor/ceil.
        macs_count: what ``macs`` bounds: ``"zoo"`` (MACs as ``zoo.measure`` counts them) or
            ``"tinynas"`` (TinyNAS's ``get_flops``, the unit of its configs' FLOPs budgets and
            of the DeepMAD README's FLOPs column: use it to design under a published budget).
    """
    t0 = time.perf_counter()
    _check_budgets(macs, params, rho, max_layers, resolution)
    if block not in ("k1dwsek1", "k1kxk1"):
        raise DesignError(f"block must be 'k1dwsek1' or 'k1kxk1', got {block!r}")
    if macs_count not in ("zoo", "tinynas"):
        raise DesignError(f"macs_count must be 'zoo' or 'tinynas', got {macs_count!r}")
    if strides is None:
        if num_stages < len(stage_weights) - 1:
            raise DesignError(f"num_stages={num_stages} cannot hold the {len(stage_weights) - 1} "
                              "stride-2 super-blocks the stage weights need; pass strides")
        strides = [2 if j < len(stage_weights) - 1 else 1 for j in range(num_stages)]
    strides = tuple(int(s) for s in strides)
    if any(s not in (1, 2) for s in strides):
        raise DesignError(f"strides must be 1 or 2, got {list(strides)}")
    dw = block == "k1dwsek1"
    ks = tuple(sorted(kernel_sizes or ((3, 5, 7) if dw else (3, 5))))
    if any(k % 2 == 0 or k < 1 for k in ks):
        raise DesignError(f"kernel sizes must be odd and positive, got {list(ks)}")
    stem = (stem_chs, stem_chs) if isinstance(stem_chs, int) else tuple(stem_chs)
    if stem[0] <= 0 or stem[0] > stem[1]:
        raise DesignError(f"stem_chs must be a positive width or (min, max), got {stem_chs!r}")
    if width[0] <= 0 or width[0] > width[1]:
        raise DesignError(f"width must be (min, max) with 0 < min <= max, got {width!r}")
    ratio = tuple(btn_ratio or ((1.5, 6.0) if dw else (0.1, 1.0)))
    if not 0 < ratio[0] <= ratio[1]:
        raise DesignError(f"btn_ratio must be (min, max) with 0 < min <= max, got {ratio!r}")
    # per-stage kernel choices under TinyNAS's rule k * 1.5 <= input resolution
    r = _out_res(resolution, 3, 2)
    kernels = []
    for j, s in enumerate(strides):
        allowed = tuple(k for k in ks if not kernel_rule or k * 1.5 <= r) or (min(ks),)
        kernels.append(allowed)
        r = (r - 1) // s + 1
    sp = Space(block=block, strides=strides, resolution=resolution, macs=float(macs),
               params=float(params), rho=float(rho), max_layers=max_layers,
               stem_chs=(int(stem[0]), int(stem[1])), final_chs=final_chs, kernels=tuple(kernels),
               max_depth=max_depth, width=(int(width[0]), int(width[1])),
               btn_ratio=(float(ratio[0]), float(ratio[1])), channel_step=channel_step,
               stage_weights=tuple(float(w) for w in stage_weights),
               depth_penalty=float(depth_penalty), tinynas_compat=tinynas_compat,
               num_classes=num_classes, in_chans=in_chans, macs_count=macs_count)
    g = _Geometry(sp)
    smallest = _smallest(sp, g)
    for key, budget, label in (("macs", sp.macs, sp.cost_label), ("params", sp.params, "params")):
        if smallest[key] > budget:
            raise DesignError(
                f"{label} budget {budget:.4g} cannot be met: the smallest {block} network of this "
                f"space (widths {sp.width[0]}, depth 1 everywhere) already needs "
                f"{smallest[key]:.4g}")
    if max_layers is not None and smallest["layers"] > max_layers:
        raise DesignError(f"layer budget {max_layers} cannot be met: {sp.n} super-blocks need at "
                          f"least {int(smallest['layers'])} conv layers")
    try:
        import scipy  # noqa: F401
    except ImportError:
        raise ImportError("zoo's DeepMAD designer needs scipy: pip install scipy "
                          "(or zoo[design])") from None

    # 0. feasibility: the least rho reachable within the other budgets
    reach = _min_rho(sp, g)
    if not reach <= sp.rho * (1 + 1e-6):
        raise DesignError(_why_infeasible(sp, g, reach))

    # 1. relaxation over everything
    relax = _Relaxation(sp, g)
    best_x, best_val = None, -math.inf
    for x0 in _starts(sp, with_k=True, with_L=True):
        x, val, ok = relax.solve(x0)
        if ok and val > best_val:
            best_x, best_val = x, val
    if best_x is None:
        raise DesignError(_why_infeasible(sp, g))
    n = sp.n
    k_rel = np.exp(best_x[1 + 2 * n:1 + 3 * n])
    L_rel = best_x[1 + 3 * n:1 + 4 * n]

    # 2. skeleton branches: floor/ceil (+- neighbourhood) of depths and kernels
    def around(v: float, lo: int, hi: int) -> list[int]:
        if abs(v - round(v)) < 1e-3:  # converged onto an integer: no branching there
            v = float(round(v))
        base = {math.floor(v), math.ceil(v)}
        for d in range(1, neighbourhood + 1):
            base |= {math.floor(v) - d, math.ceil(v) + d}
        return sorted(x for x in base if lo <= x <= hi)

    def kernels_around(v: float, allowed: tuple[int, ...]) -> list[int]:
        near = [k for k in allowed if abs(v - k) < 1e-3 * k]
        if near:
            return near
        below = [k for k in allowed if k <= v + 1e-9]
        above = [k for k in allowed if k >= v - 1e-9]
        out = {max(below) if below else min(allowed), min(above) if above else max(allowed)}
        return sorted(out)

    L_opts = [around(L_rel[j], 1, sp.max_depth) for j in range(n)]
    k_opts = [kernels_around(k_rel[j], sp.kernels[j]) for j in range(n)]
    branches: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
    for depth_choice in itertools.product(*L_opts):
        for kernel_choice in itertools.product(*k_opts):
            k_arr, L_arr = np.array(kernel_choice, float), np.array(depth_choice, float)
            sub = _Relaxation(sp, g, fixed_k=k_arr, fixed_L=L_arr)
            x, val, ok = sub.solve(best_x[:1 + 2 * n])
            # a branch whose NLP did not converge to a feasible point is still rounded and
            # repaired, but its value is no bound: it is never pruned
            branches.append((val if ok else math.inf, x, k_arr, L_arr))
    branches.sort(key=lambda b: -b[0])

    # 3. exact rounding, best bound first, with pruning
    best: tuple[float, _Point] | None = None
    pruned = 0
    for val, x, k, L in branches:
        if best is not None and val <= best[0]:
            pruned += 1
            continue
        got = _round_widths(sp, g, math.exp(x[0]), np.exp(x[1:1 + n]),
                            np.exp(x[1 + n:1 + 2 * n]), k, L)
        for margin in ((0.005, 0.02, 0.05) if got is None else ()):
            # no rounding of the exact-budget optimum fits: re-solve with budgets tightened by
            # `margin`, leaving room for the grid, and round that
            tight = replace(sp, macs=sp.macs * (1 - margin), params=sp.params * (1 - margin),
                            rho=sp.rho * (1 - margin))
            x2, _, ok2 = _Relaxation(tight, g, fixed_k=k, fixed_L=L).solve(x)
            if ok2:
                got = _round_widths(sp, g, math.exp(x2[0]), np.exp(x2[1:1 + n]),
                                    np.exp(x2[1 + n:1 + 2 * n]), k, L)
                if got is not None:
                    break
        if got is None:
            # the skeleton's feasible set is too thin for the channel grid: repair the
            # exact-budget rounding with depth moves too (the skeleton may change)
            got = _round_widths(sp, g, math.exp(x[0]), np.exp(x[1:1 + n]),
                                np.exp(x[1 + n:1 + 2 * n]), k, L, depth_moves=True)
        if got is not None and (best is None or got[0] > best[0]):
            best = got
    if best is None:
        raise DesignError(
            "the relaxed problem is feasible but no network on the channel grid "
            f"(multiples of {sp.channel_step}) was found within every budget; loosen a budget "
            "slightly or use a smaller channel_step")

    # 4. polish
    score, p = _polish(sp, g, best[1], best[0])
    arch = _to_arch(sp, p, None)
    ev = evaluate(arch, resolution, tinynas_compat=tinynas_compat, stage_weights=sp.stage_weights,
                  depth_penalty=sp.depth_penalty, num_classes=num_classes, in_chans=in_chans)
    if abs(ev.score - score) > 1e-6 * max(1.0, abs(score)):
        raise AssertionError(f"designer and scores disagree: {score} vs {ev.score}")
    seconds = time.perf_counter() - t0
    record = {"budget": {"macs": sp.macs, "params": sp.params, "rho": sp.rho,
                         "layers": max_layers, "resolution": resolution,
                         "macs_count": macs_count},
              "tinynas_compat": tinynas_compat, "score": ev.score, "entropy": ev.entropy,
              "rho": ev.rho, "macs": ev.macs, "tinynas_flops": ev.tinynas_flops,
              "params": ev.params,
              "stage_weights": list(sp.stage_weights),
              "solver": f"SLSQP relaxation + branch on {len(branches)} (L, k) skeletons "
                        f"({pruned} pruned) + exact rounding + local polish",
              "seconds": round(seconds, 3)}
    arch = _to_arch(sp, p, record)
    spec = {"models": {name: {
        "family": "deepmad",
        "description": (f"DeepMAD design ({block}) for {sp.macs / 1e9:.4g} GMACs, "
                        f"{sp.params / 1e6:.4g}M params, rho0 {sp.rho:g} at {resolution}px"),
        "paper": family_paper(),
        "data": {"input_size": [in_chans, resolution, resolution], "num_classes": num_classes,
                 "first_conv": "stem.conv", "classifier": "head.fc"},
        "arch": arch.model_dump(exclude_defaults=True, mode="json")}}}
    return Design(name=name, arch=arch, evaluation=ev, space=sp, seconds=seconds,
                  branches=len(branches), pruned=pruned, spec=spec)


def _to_arch(sp: Space, p: _Point, record: dict[str, Any] | None) -> Arch:
    prev = int(p.c0)
    stages = []
    for j in range(sp.n):
        stages.append({"in_chs": prev, "out_chs": int(p.c[j]), "kernel_size": int(p.k[j]),
                       "stride": sp.strides[j], "depth": int(p.L[j]), "btn_chs": int(p.b[j])})
        prev = int(p.c[j])
    raw: dict[str, Any] = {"block": sp.block,
                           "stem": {"out_chs": int(p.c0), "kernel_size": sp.stem_kernel,
                                    "stride": sp.stem_stride},
                           "stages": stages}
    if sp.final_chs is not None:
        raw["final_conv"] = {"out_chs": sp.final_chs, "kernel_size": 1, "stride": 1}
    if record is not None:
        raw["design"] = record
    return Arch.model_validate(raw)


def _min_rho(sp: Space, g: _Geometry) -> float:
    """The least effectiveness reachable within the MACs / params / layer budgets (relaxed;
    inf when even those cannot be met together)."""
    relax = _Relaxation(sp, g, min_rho=True)
    best = math.inf
    for x0 in _starts(sp, with_k=True, with_L=True)[::4]:
        x, _, ok = relax.solve(x0)
        if ok:
            best = min(best, float(np.exp(np.max(relax.terms(x)["log_rho"]))))
    return best


def _why_infeasible(sp: Space, g: _Geometry, reach: float | None = None) -> str:
    """Name the constraint that cannot be met."""
    best = _min_rho(sp, g) if reach is None else reach
    if math.isinf(best):
        return (f"no {sp.block} network meets {sp.cost_label} <= {sp.macs:.4g} and params <= "
                f"{sp.params:.4g}"
                + (f" with at most {sp.max_layers} layers" if sp.max_layers else "")
                + " in this space; raise those budgets")
    return (f"rho0 = {sp.rho:g} cannot be met: within {sp.cost_label} <= {sp.macs:.4g} and "
            f"params <= {sp.params:.4g} the smallest effectiveness reachable is about "
            f"{best:.3g}; raise rho0 or the MACs/params budgets")


__all__ = ["Design", "DesignError", "Space", "design"]
