"""Scatter plots as inline SVG, drawn here (no plotting library, no JavaScript needed to see
them): log or linear axes, one colour per family, the Pareto front, a y = x reference.

Every point is a link to its model page with ``data-model`` (the filter hides it with the table
row) and ``data-label`` (the hover text ``site.js`` shows).
"""
from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from zoo.site.html import Raw, el, join

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939")


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(v * 255):02x}" for v in rgb)


def _rgb(colour: str) -> tuple[float, float, float]:
    return (int(colour[1:3], 16) / 255, int(colour[3:5], 16) / 255, int(colour[5:7], 16) / 255)


@functools.lru_cache(maxsize=1)
def _candidates() -> tuple[str, ...]:
    """Colours that read well as a dot on white: hues every 10 degrees at a few lightness and
    saturation levels, leaving out the pale ones (luma above 0.6: yellows, light greens)."""
    rgbs = (colorsys.hls_to_rgb(h / 36, light, sat)
            for h in range(36) for light in (0.3, 0.42, 0.54) for sat in (0.55, 0.85))
    return tuple(_hex(c) for c in rgbs if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] <= 0.6)


def family_colours(families: list[str]) -> dict[str, str]:
    """A fixed colour per family (sorted order): the palette first, then, for each further
    family, the candidate colour farthest from every colour already given (so no two families
    share a look-alike colour however many there are)."""
    out: dict[str, str] = {}
    taken = [_rgb(c) for c in PALETTE]
    for i, fam in enumerate(sorted(families)):
        if i < len(PALETTE):
            out[fam] = PALETTE[i]
            continue
        best = max(_candidates(), key=lambda c: (min(math.dist(_rgb(c), t) for t in taken), c))
        taken.append(_rgb(best))
        out[fam] = best
    return out


def fmt_m(value_m: float) -> str:
    """A count given in millions, short: 0.5M, 12M, 4.2G."""
    v = value_m * 1e6
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            x = v / div
            return f"{x:.3g}{unit}"
    return f"{v:.3g}"


@dataclass
class Point:
    x: float
    y: float
    model: str
    family: str
    label: str                 # hover text (plain; escaped when written)
    href: str
    hollow: bool = False       # a paper value rather than a measurement
    flagged: bool = False      # outside the claims tolerance


@dataclass
class Axis:
    label: str
    log: bool = True
    unit_millions: bool = True   # tick labels via fmt_m; else plain numbers
    lo: float | None = None
    hi: float | None = None


@dataclass
class Scatter:
    title: str
    x: Axis
    y: Axis
    points: list[Point]
    colours: dict[str, str]
    front: list[str] = field(default_factory=list)   # Pareto-front model names, by x
    diagonal: float | None = None                     # draw y = x and a +-tolerance band
    plot_id: str = "plot"
    empty: str = "no models with both values"

    W, H = 560, 360
    ML, MR, MT, MB = 64, 18, 14, 50

    # -- scales ----------------------------------------------------------------------------------
    def _range(self, axis: Axis, values: list[float]) -> tuple[float, float]:
        lo = axis.lo if axis.lo is not None else min(values)
        hi = axis.hi if axis.hi is not None else max(values)
        if axis.log:
            lo, hi = lo / 1.3, hi * 1.3
            if hi / lo < 10:  # at least one decade shown
                mid = math.sqrt(lo * hi)
                lo, hi = mid / math.sqrt(10), mid * math.sqrt(10)
        else:
            pad = max((hi - lo) * 0.08, 0.5)
            lo, hi = lo - pad, hi + pad
        return lo, hi

    @staticmethod
    def _ticks(axis: Axis, lo: float, hi: float) -> list[float]:
        if axis.log:
            decades = math.log10(hi / lo)
            steps = (1,) if decades > 4 else (1, 2, 5) if decades > 1.2 else (1, 1.5, 2, 3, 5, 7)
            out = []
            for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
                out += [s * 10 ** k for s in steps if lo <= s * 10 ** k <= hi]
            return out
        span = hi - lo
        raw = span / 6
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        first = math.ceil(lo / step) * step
        return [first + i * step for i in range(int((hi - first) / step) + 1)]

    def _map(self, axis: Axis, lo: float, hi: float, v: float, a: float, b: float) -> float:
        if axis.log:
            t = (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            t = (v - lo) / (hi - lo)
        return a + t * (b - a)

    def _tick_label(self, axis: Axis, v: float) -> str:
        return fmt_m(v) if axis.unit_millions else f"{v:g}"

    # -- drawing ---------------------------------------------------------------------------------
    def svg(self) -> Raw:
        W, H, ML, MR, MT, MB = self.W, self.H, self.ML, self.MR, self.MT, self.MB
        label = f"{self.title}: {len(self.points)} models"
        if not self.points:
            return el("svg", el("text", self.empty, x=W / 2, y=H / 2,
                                text_anchor="middle", class_="empty"),
                      viewBox=f"0 0 {W} {H}", role="img", aria_label=label, class_="plot",
                      id=self.plot_id, data_points=0)
        xs, ys = [p.x for p in self.points], [p.y for p in self.points]
        if self.diagonal is not None:
            xs = ys = xs + ys
        xlo, xhi = self._range(self.x, xs)
        ylo, yhi = self._range(self.y, ys)
        X = lambda v: self._map(self.x, xlo, xhi, v, ML, W - MR)  # noqa: E731
        Y = lambda v: self._map(self.y, ylo, yhi, v, H - MB, MT)  # noqa: E731
        parts: list[Raw] = []
        # grid and ticks
        for v in self._ticks(self.x, xlo, xhi):
            x = X(v)
            parts.append(el("line", x1=f"{x:.1f}", x2=f"{x:.1f}", y1=MT, y2=H - MB, class_="grid"))
            parts.append(el("text", self._tick_label(self.x, v), x=f"{x:.1f}", y=H - MB + 16,
                            text_anchor="middle", class_="tick"))
        for v in self._ticks(self.y, ylo, yhi):
            y = Y(v)
            parts.append(el("line", x1=ML, x2=W - MR, y1=f"{y:.1f}", y2=f"{y:.1f}", class_="grid"))
            parts.append(el("text", self._tick_label(self.y, v), x=ML - 6, y=f"{y + 4:.1f}",
                            text_anchor="end", class_="tick"))
        parts.append(el("rect", x=ML, y=MT, width=W - ML - MR, height=H - MT - MB, class_="frame"))
        parts.append(el("text", self.x.label, x=(ML + W - MR) / 2, y=H - 10, text_anchor="middle",
                        class_="axis-label"))
        parts.append(el("text", self.y.label, x=14, y=(MT + H - MB) / 2, text_anchor="middle",
                        transform=f"rotate(-90 14 {(MT + H - MB) / 2})", class_="axis-label"))
        if self.diagonal is not None:
            lo, hi = max(xlo, ylo), min(xhi, yhi)
            tol = self.diagonal
            band = [(lo, lo * (1 + tol)), (hi, hi * (1 + tol)), (hi, hi * (1 - tol)), (lo, lo * (1 - tol))]
            parts.append(el("polygon", points=" ".join(f"{X(a):.1f},{Y(b):.1f}" for a, b in band),
                            class_="band"))
            parts.append(el("line", x1=f"{X(lo):.1f}", y1=f"{Y(lo):.1f}", x2=f"{X(hi):.1f}",
                            y2=f"{Y(hi):.1f}", class_="diagonal"))
        by_name = {p.model: p for p in self.points}
        if len(self.front) > 1:
            coords: list[str] = []
            for i, name in enumerate(self.front):
                p = by_name[name]
                if i:
                    coords.append(f"{X(p.x):.1f},{Y(by_name[self.front[i - 1]].y):.1f}")
                coords.append(f"{X(p.x):.1f},{Y(p.y):.1f}")
            parts.append(el("polyline", points=" ".join(coords), class_="pareto"))
        on_front = set(self.front)
        for p in sorted(self.points, key=lambda p: (p.model in on_front, p.model)):
            colour = self.colours[p.family]
            cx, cy = f"{X(p.x):.1f}", f"{Y(p.y):.1f}"
            marks = []
            if p.model in on_front:
                marks.append(el("circle", cx=cx, cy=cy, r=8.5, class_="front-ring"))
            if p.flagged:
                marks.append(el("circle", cx=cx, cy=cy, r=8.5, class_="flag-ring"))
            dot = el("circle", cx=cx, cy=cy, r=5, class_="pt" + (" hollow" if p.hollow else ""),
                     fill="#fff" if p.hollow else colour, stroke=colour if p.hollow else "#fff",
                     data_model=p.model, data_family=p.family, data_label=p.label,
                     data_front="1" if p.model in on_front else None)
            parts.append(el("a", marks, dot, href=p.href, class_="pt-link", data_model=p.model,
                            aria_label=p.label.replace("\n", "; ")))
        return el("svg", join(*parts), viewBox=f"0 0 {W} {H}", role="img", aria_label=label,
                  class_="plot", id=self.plot_id, data_points=len(self.points))


def legend(colours: dict[str, str], families: list[str], *, extra: Sequence[tuple[str, str]] = ()) -> Raw:
    """An HTML legend: a swatch per family, then symbol explanations (class, text)."""
    items = [el("li", el("svg", el("circle", cx=6, cy=6, r=5, fill=colours[f]), viewBox="0 0 12 12",
                         width=12, height=12, aria_hidden="true"), " ", f)
             for f in sorted(families)]
    items += [el("li", el("span", class_=f"sym {cls}", aria_hidden="true"), " ", text)
              for cls, text in extra]
    return el("ul", items, class_="legend")
