"""What the site shows about each model, gathered from the catalog, the registry, the
measurement cache and the export matrix.  No torch here (measuring is in measurements.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Literal

if TYPE_CHECKING:
    from zoo.registry import WeightsRecord
    from zoo.site.exports import ExportResult
    from zoo.site.measurements import Measured
    from zoo.spec import SpecBase

Availability = Literal["hub", "convertible", "none"]
AVAILABILITY_LABEL = {"hub": "Hub file", "convertible": "convertible source", "none": "none"}


@dataclass
class ModelRow:
    """One model of the site."""

    spec: "SpecBase"
    source: str                                   # the spec file (or "<dict>")
    measured: "Measured | None" = None
    measure_status: str = "not measured"          # cached / measured / not measured / failed: ...
    weights: list[tuple[str, "WeightsRecord"]] = field(default_factory=list)
    exports: "dict[str, ExportResult | None] | None" = None   # None: no export matrix at all

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def availability(self) -> Availability:
        if any(rec.pretrained for _, rec in self.weights):
            return "hub"
        return "convertible" if self.weights else "none"

    @property
    def licence(self) -> tuple[str, str]:
        """(licence text, what it is the licence of): the weights' licences where there are
        weights, else the original code's."""
        if self.weights:
            return ", ".join(dict.fromkeys(rec.license for _, rec in self.weights)), "weights"
        if self.spec.paper.license:
            return self.spec.paper.license, "code"
        return "unknown", "code"

    # -- numbers ---------------------------------------------------------------------------------
    def reported(self, key: str) -> float | None:
        rep = self.spec.reported
        return getattr(rep, key) if rep is not None else None

    def measured_m(self, key: str) -> float | None:
        if self.measured is None:
            return None
        return self.measured.params_m if key == "params_m" else self.measured.macs_m

    def diff_pct(self, key: str) -> float | None:
        """(measured - paper) / paper, in percent; None if either is missing."""
        got, rep = self.measured_m(key), self.reported(key)
        if got is None or rep is None:
            return None
        return (got - rep) / rep * 100.0

    def cost(self, key: str) -> tuple[float, str] | None:
        """Value for a plot axis: measured where measured, else the paper's."""
        got = self.measured_m(key)
        if got is not None:
            return got, "measured"
        rep = self.reported(key)
        return (rep, "paper") if rep is not None else None


def pareto_front(points: Iterable[tuple[float, float, str]]) -> list[str]:
    """Names of the points no other point beats: none has lower-or-equal cost (x) and
    higher-or-equal accuracy (y) with one of them strict.  In order of increasing cost."""
    front, best = [], float("-inf")
    for x, y, name in sorted(points, key=lambda p: (p[0], -p[1], p[2])):
        if y > best:
            front.append(name)
            best = y
    return front


def _year(spec: "SpecBase") -> str | None:
    venue = spec.paper.venue or ""
    m = re.search(r"(19|20)\d\d", venue)
    if m:
        return m.group(0)
    if spec.paper.arxiv:  # arXiv ids are YYMM.NNNNN
        return "20" + spec.paper.arxiv[:2]
    return None


def _bib_text(text: str) -> str:
    """Characters that BibTeX treats specially, escaped."""
    out = text.replace("\\", r"\textbackslash{}")
    for ch in "{}&%$#_":
        out = out.replace(ch, "\\" + ch)
    return out.replace("~", r"\textasciitilde{}").replace("^", r"\textasciicircum{}")


def bibtex(spec: "SpecBase") -> str:
    """A BibTeX entry made from the spec's ``paper`` fields (title, authors, venue, arXiv id).

    ``@inproceedings`` when a venue is known, else ``@article`` for the arXiv preprint; authors
    are the spec's comma-separated list joined with ``and``."""
    p = spec.paper
    authors = [a.strip() for a in (p.authors or "").split(",") if a.strip()]
    year = _year(spec)
    first = re.sub(r"[^a-z]", "", (authors[0].split()[-1] if authors else "anon").lower()) or "anon"
    word = next((re.sub(r"[^a-z0-9]", "", w.lower()) for w in p.title.split()
                 if len(re.sub(r"[^a-z0-9]", "", w.lower())) > 3), "paper")
    key = f"{first}{year or ''}{word}"
    fields: list[tuple[str, str]] = [("title", "{" + _bib_text(p.title) + "}")]
    if authors:
        fields.append(("author", " and ".join(_bib_text(a) for a in authors)))
    if p.venue:
        fields.append(("booktitle", _bib_text(p.venue)))
    elif p.arxiv:
        fields.append(("journal", f"arXiv preprint arXiv:{p.arxiv}"))
    if year:
        fields.append(("year", year))
    if p.arxiv:
        fields += [("eprint", p.arxiv), ("archivePrefix", "arXiv")]
    if p.code:
        fields.append(("url", re.sub(r"[{}\s\\]", "", p.code)))
    kind = "inproceedings" if p.venue else "article"
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
    return f"@{kind}{{{key},\n{body}\n}}"
