"""The site's HTML pages: the index (plots, table, paper-claims check) and one page per model.

Pages are built with :func:`zoo.site.html.el`, which escapes every string it is given; they hold
no inline script or style (a Content-Security-Policy forbids both), only ``assets/``.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import yaml

from zoo.site.data import AVAILABILITY_LABEL, ModelRow, bibtex, pareto_front
from zoo.site.html import Raw, el, join
from zoo.site.plots import Axis, Point, Scatter, family_colours, fmt_m, legend

if TYPE_CHECKING:
    from zoo.registry import WeightsRecord
    from zoo.site.exports import ExportMatrix

SHORT_AVAILABILITY = {"hub": "Hub file", "convertible": "convertible", "none": "none"}
CLAIMS_TOLERANCE = 0.02   # the project's bar for MACs against the paper's table
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'")


def page(title: str, body: Raw, *, root: str = "") -> str:
    """A complete HTML document; ``root`` is the relative path to the site's top folder."""
    head = join(
        el("meta", charset="utf-8"),
        el("meta", http_equiv="Content-Security-Policy", content=CSP),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("title", title),
        el("link", rel="icon", href=f"{root}assets/favicon.svg", type="image/svg+xml"),
        el("link", rel="stylesheet", href=f"{root}assets/site.css"),
        el("script", src=f"{root}assets/site.js", defer=True),
    )
    return "<!DOCTYPE html>\n" + el("html", el("head", head), el("body", body), lang="en") + "\n"


def model_href(name: str, root: str = "") -> str:
    return f"{root}models/{name}.html"


def _num(value: float | None, fmt: str = "{:.2f}") -> tuple[str, str]:
    """(display text, sort key) of an optional number."""
    if value is None:
        return "–", ""
    return fmt.format(value), repr(float(value))


def _diff_cell(pct: float | None) -> Raw:
    if pct is None:
        return el("td", "–", data_sort="", class_="num")
    cls = "num diff " + ("diff-ok" if abs(pct) <= CLAIMS_TOLERANCE * 100 else "diff-off")
    return el("td", f"{pct:+.1f}%", data_sort=repr(pct), class_=cls,
              title=f"measured vs paper: {pct:+.2f}% (flagged beyond ±{CLAIMS_TOLERANCE:.0%})")


def _count_cell(value_m: float | None, how: str = "") -> Raw:
    if value_m is None:
        return el("td", "–", data_sort="", class_="num")
    return el("td", fmt_m(value_m), data_sort=repr(value_m), class_="num", title=how or None)


# -- index ----------------------------------------------------------------------------------------
COLUMNS: list[tuple[str, str, str]] = [   # (label, type, tooltip)
    ("Model", "text", "model name (links to its page)"),
    ("Family", "text", "zoo family (builder)"),
    ("Params", "num", "parameters measured by zoo.measure"),
    ("paper", "num", "the paper's parameter count"),
    ("Δ", "num", "parameters: (measured - paper) / paper"),
    ("MACs", "num", "multiply-accumulates measured by zoo.measure at the input size"),
    ("paper", "num", "the paper's MACs (often called FLOPs)"),
    ("Δ", "num", "MACs: (measured - paper) / paper"),
    ("Input", "num", "input size (height x width)"),
    ("Top-1", "num", "top-1 accuracy (%) reported by the paper, with its source"),
    ("Weights", "text", "Hub file: a verified safetensors file; convertible source: an original "
                        "checkpoint to `zoo convert`; none: random init only"),
    ("Licence", "text", "licence of the weights, else of the original code"),
]


def _row(r: ModelRow) -> Raw:
    spec, rep = r.spec, r.spec.reported
    h, w = spec.data.input_size[1:]
    top1 = r.reported("top1")
    top1_cell = el("td", *(["–"] if top1 is None or rep is None else
                           [f"{top1:g}" + (f" ({rep.dataset})" if rep.dataset != "imagenet-1k" else ""),
                            el("span", rep.source, class_="src", title=rep.source)]),
                   data_sort=repr(top1) if top1 is not None else "", class_="num top1")
    lic, lic_of = r.licence
    how = {"cached": "measured (cached)", "measured": "measured"}.get(r.measure_status, r.measure_status)
    ntags = len(r.weights)
    weights = SHORT_AVAILABILITY[r.availability] + (f" ({ntags})" if ntags > 1 else "")
    search = " ".join([r.name, r.family, lic, spec.description, spec.paper.title]).lower()
    cells = [
        el("td", el("a", r.name, href=model_href(r.name)), data_sort=r.name, class_="name"),
        el("td", r.family, data_sort=r.family),
        _count_cell(r.measured_m("params_m"), how),
        _count_cell(r.reported("params_m")),
        _diff_cell(r.diff_pct("params_m")),
        _count_cell(r.measured_m("macs_m"), how),
        _count_cell(r.reported("macs_m")),
        _diff_cell(r.diff_pct("macs_m")),
        el("td", f"{h}×{w}", data_sort=repr(float(h * w)), class_="num"),
        top1_cell,
        el("td", weights, data_sort=r.availability, class_=f"weights w-{r.availability}",
           title=f"{AVAILABILITY_LABEL[r.availability]}: " + (", ".join(t for t, _ in r.weights) or "random init only")),
        el("td", lic, data_sort=lic, title=f"licence of the {lic_of}"),
    ]
    dataset = rep.dataset if rep is not None and rep.top1 is not None else ""
    return el("tr", cells, data_model=r.name, data_family=r.family, data_weights=r.availability,
              data_dataset=dataset, data_search=search)


def _select(ident: str, label: str, options: list[tuple[str, str]], any_label: str) -> Raw:
    opts = [el("option", any_label, value="")] + [el("option", text, value=v) for v, text in options]
    return el("label", label, " ", el("select", opts, id=ident))


def _table(rows: list[ModelRow]) -> Raw:
    families = sorted({r.family for r in rows})
    datasets = sorted({r.spec.reported.dataset for r in rows
                       if r.spec.reported is not None and r.spec.reported.top1 is not None})
    filters = el(
        "div",
        el("label", "Search ", el("input", type="search", id="filter-text",
                                  placeholder="name, family, licence, paper…", autocomplete="off")),
        _select("filter-family", "Family", [(f, f) for f in families], "all"),
        _select("filter-weights", "Weights", list(AVAILABILITY_LABEL.items()), "any"),
        _select("filter-dataset", "Top-1 on", [(d, d) for d in datasets], "any dataset"),
        el("span", f"{len(rows)} of {len(rows)} models", id="shown-count", aria_live="polite"),
        class_="filters", role="search")
    head = el("tr", [el("th", el("button", label, type="button", data_type=kind, title=tip),
                        scope="col", aria_sort="ascending" if i == 0 else "none",
                        class_="group-start" if label in ("Params", "MACs") else None)
                     for i, (label, kind, tip) in enumerate(COLUMNS)])
    body = [_row(r) for r in sorted(rows, key=lambda r: r.name)]
    table = el("table", el("thead", head), el("tbody", body), id="models", class_="models")
    return join(filters, el("div", table, class_="table-wrap"))


def _accuracy_plots(rows: list[ModelRow], colours: dict[str, str]) -> list[Raw]:
    """Top-1 against MACs and parameters, one pair of plots per dataset that top-1 is reported
    on, the dataset with the most models first."""
    by_dataset = Counter(r.spec.reported.dataset for r in rows
                         if r.spec.reported is not None and r.spec.reported.top1 is not None)
    sections = []
    for n, (dataset, _) in enumerate(sorted(by_dataset.items(), key=lambda kv: (-kv[1], kv[0]))):
        figures = []
        for key, what in (("macs_m", "MACs"), ("params_m", "parameters")):
            points = []
            for r in rows:
                rep = r.spec.reported
                cost = r.cost(key)
                if rep is None or rep.top1 is None or rep.dataset != dataset or cost is None:
                    continue
                value, how = cost
                label = (f"{r.name}\n{r.family}\n{what}: {fmt_m(value)} ({how})\n"
                         f"top-1: {rep.top1:g}% ({rep.source})")
                points.append(Point(value, rep.top1, r.name, r.family, label, model_href(r.name),
                                    hollow=how == "paper"))
            front = pareto_front((p.x, p.y, p.model) for p in points)
            for p in points:
                if p.model in front:
                    p.label += "\non the Pareto front"
            ident = f"plot-top1-{key.split('_')[0]}-{n}"
            svg = Scatter(f"Top-1 on {dataset} against {what}",
                          Axis(f"{what} (log scale)"), Axis("top-1 (%)", log=False, unit_millions=False),
                          points, colours, front=front, plot_id=ident).svg()
            figures.append(el("figure", svg, el("figcaption", f"Top-1 against {what}"),
                              class_="plot-fig"))
        sections.append(join(el("h3", f"Top-1 on {dataset}"), el("div", figures, class_="plots")))
    return sections


def _claims(rows: list[ModelRow], colours: dict[str, str]) -> Raw:
    figures, off = [], []
    for key, what in (("params_m", "parameters"), ("macs_m", "MACs")):
        points = []
        for r in rows:
            got, rep, pct = r.measured_m(key), r.reported(key), r.diff_pct(key)
            reported = r.spec.reported
            if got is None or rep is None or pct is None or reported is None:
                continue
            flagged = abs(pct) > CLAIMS_TOLERANCE * 100
            label = (f"{r.name}\n{r.family}\n{what}: measured {fmt_m(got)}, paper {fmt_m(rep)} "
                     f"({pct:+.1f}%)\nsource: {reported.source}")
            points.append(Point(rep, got, r.name, r.family, label, model_href(r.name), flagged=flagged))
            if flagged:
                off.append((r, what, got, rep, pct, reported.source))
        svg = Scatter(f"Measured against paper {what}", Axis(f"paper {what} (log scale)"),
                      Axis(f"measured {what} (log scale)"), points, colours,
                      diagonal=CLAIMS_TOLERANCE, plot_id=f"plot-claims-{key.split('_')[0]}",
                      empty="no model is both measured and reported (generated with --no-measure?)"
                      ).svg()
        figures.append(el("figure", svg, el("figcaption", f"{what}: measured against the paper's "
                                            f"value; band: ±{CLAIMS_TOLERANCE:.0%}"),
                          class_="plot-fig"))
    parts = [el("div", figures, class_="plots")]
    if off:
        trs = [el("tr", el("td", el("a", r.name, href=model_href(r.name))), el("td", what),
                  el("td", fmt_m(got), class_="num"), el("td", fmt_m(rep), class_="num"),
                  el("td", f"{pct:+.1f}%", class_="num"), el("td", source))
               for r, what, got, rep, pct, source in sorted(off, key=lambda t: (t[0].name, t[1]))]
        parts.append(el("details", el("summary", f"{len(off)} value(s) beyond ±{CLAIMS_TOLERANCE:.0%} "
                                      "of the paper"),
                        el("table", el("thead", el("tr", [el("th", h) for h in
                                       ("model", "quantity", "measured", "paper", "Δ", "paper source")])),
                           el("tbody", trs), class_="models off-claims")))
    return join(*parts)


def index_page(rows: list[ModelRow], *, version: str, export_matrix: "ExportMatrix | None") -> str:
    families = sorted({r.family for r in rows})
    colours = family_colours(families)
    measured = sum(r.measured is not None for r in rows)
    fam_legend = legend(colours, families, extra=[("filled", "measured by zoo"),
                                                  ("hollow", "paper's value (not measured)"),
                                                  ("front", "on the Pareto front")])
    plots = _accuracy_plots(rows, colours)
    claims_legend = legend(colours, families, extra=[("flag", f"beyond ±{CLAIMS_TOLERANCE:.0%}")])
    intro = el("p", f"{len(rows)} models in {len(families)} families, generated from zoo's specs "
               f"and weights registry by zoo {version}. Parameters and MACs are measured by "
               f"zoo.measure at each model's input size ({measured} of {len(rows)} measured); "
               "top-1 accuracies are the papers' own, with their source. ",
               "Export support: ", "from the export matrix" if export_matrix else "unknown (no export matrix)",
               ".")
    body = join(
        el("header", el("h1", "zoo model catalog"), intro,
           el("nav", el("a", "Accuracy vs cost", href="#plots"), " · ",
              el("a", "All models", href="#table"), " · ",
              join(el("a", "Other datasets", href="#plots-other"), " · ") if len(plots) > 1 else None,
              el("a", "Paper claims check", href="#claims"))),
        el("main",
           el("section", el("h2", "Accuracy against cost"), fam_legend,
              plots[0] if plots else el("p", "No model reports a top-1 accuracy."), id="plots"),
           el("section", el("h2", "All models"), _table(rows), id="table"),
           el("section", el("h2", "Accuracy on other datasets"), fam_legend, plots[1:],
              id="plots-other") if len(plots) > 1 else None,
           el("section", el("h2", "Paper claims check"),
              el("p", "zoo's measured parameters and MACs against the numbers the papers report. "
                 "Points on the diagonal agree; the band is ±2%."),
              claims_legend, _claims(rows, colours), id="claims")),
        el("div", id="tooltip", role="tooltip", hidden=True),
        el("footer", "Generated by ", el("code", "zoo catalog"), f" (zoo {version})."),
    )
    return page("zoo model catalog", body)


def spec_file_label(source: str) -> str:
    """Where a spec comes from, without the local machine's paths: ``specs/<file>`` for zoo's
    own files, else the file's name."""
    from pathlib import Path

    from zoo.paths import data_dir

    if source.startswith("<"):
        return source
    path = Path(source)
    try:
        return f"specs/{path.resolve().relative_to(data_dir('specs').resolve())}"
    except (ValueError, FileNotFoundError):
        return path.name


class _FlowListDumper(yaml.SafeDumper):
    """Lists of scalars on one line (``input_size: [3, 224, 224]``), everything else blocks."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowListDumper.add_representer(list, _represent_list)
_SPEC_ORDER = ("name", "family", "description", "data", "paper", "reported", "arch")


def spec_as_yaml(spec: Any) -> str:
    """The resolved spec as YAML, in reading order."""
    dumped = spec.model_dump(mode="json")
    ordered = {k: dumped[k] for k in _SPEC_ORDER if k in dumped}
    ordered.update({k: v for k, v in dumped.items() if k not in ordered})
    return yaml.dump(ordered, Dumper=_FlowListDumper, sort_keys=False, allow_unicode=True, width=100)


# -- model pages ----------------------------------------------------------------------------------
def _dl(items: list[tuple[str, Any]]) -> Raw:
    return el("dl", [join(el("dt", k), el("dd", v)) for k, v in items if v not in (None, "")])


def _link(url: str | None) -> Raw | None:
    return el("a", url, href=url) if url else None


def _numbers(r: ModelRow) -> Raw:
    rep = r.spec.reported
    rows = []
    for key, what in (("params_m", "parameters"), ("macs_m", "MACs")):
        got, paper, pct = r.measured_m(key), r.reported(key), r.diff_pct(key)
        rows.append(el("tr", el("th", what, scope="row"),
                       el("td", fmt_m(got) if got is not None else "–", class_="num",
                          title=f"{got * 1e6:,.0f}" if got is not None else None),
                       el("td", fmt_m(paper) if paper is not None else "–", class_="num"),
                       _diff_cell(pct)))
    table = el("table", el("thead", el("tr", el("th", ""), el("th", "measured"), el("th", "paper"),
                                       el("th", "Δ"))), el("tbody", rows), class_="numbers")
    status = {"cached": "measured by zoo.measure (from the measurement cache)",
              "measured": "measured by zoo.measure in this run"}.get(r.measure_status,
                                                                    r.measure_status)
    acc = None
    if rep is not None:
        acc = _dl([("top-1", f"{rep.top1:g}%" if rep.top1 is not None else None),
                   ("top-5", f"{rep.top5:g}%" if rep.top5 is not None else None),
                   ("dataset", rep.dataset), ("source", rep.source), ("note", rep.note)])
    return join(table, el("p", f"Measurement: {status}, input {tuple(r.spec.data.input_size)}.",
                          class_="muted"),
                el("h3", "Reported accuracy"), acc or el("p", "The spec reports no numbers."))


def _weights(r: ModelRow) -> Raw:
    if not r.weights:
        return el("p", "No published weights: ", el("code", f'zoo.create("{r.name}")'),
                  " builds it with random initialization.")
    blocks = []
    for tag, rec in r.weights:
        items: list[tuple[str, Any]] = [("kind", AVAILABILITY_LABEL["hub" if rec.pretrained else "convertible"])]
        if rec.hub:
            hub = rec.hub
            items += [("Hub repository", el("a", hub.repo_id, href=f"https://huggingface.co/{hub.repo_id}")),
                      ("revision", el("code", hub.revision)), ("file", el("code", hub.filename)),
                      ("sha256", el("code", hub.sha256)),
                      ("size", f"{hub.size / 1e6:.1f} MB" if hub.size else "not recorded"),
                      ("layout", hub.layout)]
        src = rec.source
        items += [("source", _link(src.url)), ("source format", src.format),
                  ("source sha256", el("code", src.sha256) if src.sha256 else "not recorded"),
                  ("converter", src.converter), ("source note", src.note),
                  ("licence", rec.license), ("classes", rec.num_classes), ("note", rec.note)]
        if rec.metrics:
            m = rec.metrics
            acc = " / ".join(f"{v:g}%" for v in (m.top1, m.top5) if v is not None)
            items.append(("metrics", f"top-1/top-5 {acc or '–'} on {m.dataset}"
                          + (f" at {m.img_size}px" if m.img_size else "")
                          + f", measured by {m.measured_by}" + (f" ({m.date})" if m.date else "")))
        if not rec.pretrained:
            items.append(("to use", el("code", f"zoo convert {tag} FILE")))
        blocks.append(join(el("h3", el("code", tag)), _dl(items)))
    return join(*blocks)


def _tensor_options(rec: WeightsRecord) -> str:
    """`zoo convert`'s ``--tensor NAME=FILE`` options for a source's tensor files."""
    return "".join(f" --tensor {name}={t.url.rstrip('/').rsplit('/', 1)[-1]}"
                   for name, t in sorted((rec.source.tensors or {}).items()))


def usage(r: ModelRow) -> tuple[str, str, str]:
    """(Python with zoo, shell, Python with timm) snippets for this model."""
    hub = [t for t, rec in r.weights if rec.pretrained]
    conv = [(t, rec) for t, rec in r.weights if not rec.pretrained]
    lines = ["import zoo", ""]
    if hub:
        lines.append(f'model = zoo.create("{hub[0]}", pretrained=True)  # verified Hub weights')
        tag = hub[0]
    elif conv:
        tag, rec = conv[0]
        apart = _tensor_options(rec)
        lines += [f"# first download {rec.source.url}",
                  *(f"# and {t.url}" for _, t in sorted((rec.source.tensors or {}).items())),
                  f"# and convert it once: zoo convert {tag} FILE{apart}",
                  f'model = zoo.create("{tag}", pretrained=True)']
    else:
        tag = None
        lines.append(f'model = zoo.create("{r.name}")  # random init: no published weights')
    lines += ["model.eval()", "print(model.pretrained_cfg)  # input size, mean/std, crop, ...",
              f'spec = zoo.get_spec("{r.name}")']
    shell = [f"zoo info {r.name}", f"zoo demo {r.name}" + (" --pretrained" if tag else "")]
    if conv:
        shell.insert(0, f"zoo convert {conv[0][0]} FILE{_tensor_options(conv[0][1])}   # the "
                     "downloaded original checkpoint")
    target = tag or r.name
    timm_lines = ["import timm", "import zoo  # registers zoo's models in timm", "",
                  f'model = timm.create_model("{target}", pretrained={bool(tag)})'
                  + ("  # after `zoo convert` (above)" if tag and not hub else ""),
                  "# zoo never replaces a timm built-in: if timm has a model of this name,",
                  "# timm.create_model builds timm's; zoo.create always builds zoo's."]
    return "\n".join(lines), "\n".join(shell), "\n".join(timm_lines)


def _exports(r: ModelRow, matrix: "ExportMatrix | None") -> Raw:
    if matrix is None or r.exports is None:
        return el("p", "Unknown: no export matrix was given to this site (see ",
                  el("code", "zoo export"), ").", class_="export-unknown")
    trs = []
    for fmt, res in r.exports.items():
        name = matrix.formats[fmt]
        if res is None:
            trs.append(el("tr", el("th", name, scope="row"), el("td", "unknown", class_="export-unknown"),
                          el("td", ""), el("td", "")))
            continue
        detail = "; ".join(x for x in (f"fails at {res.op}" if res.op else "", res.reason or "",
                                       res.note or "") if x)
        if res.latency_ms:
            detail = "; ".join(filter(None, [detail, ", ".join(f"{k} {v:g} ms"
                                                                for k, v in res.latency_ms.items())]))
        trs.append(el("tr", el("th", name, scope="row"),
                      el("td", res.status, class_=f"export-{res.status}"),
                      el("td", f"{res.max_rel_error:.1e}" if res.max_rel_error is not None else "–",
                         class_="num"), el("td", detail)))
    when = ", ".join(x for x in (matrix.generated and f"run {matrix.generated}",
                                 matrix.zoo_version and f"zoo {matrix.zoo_version}",
                                 matrix.torch_version and f"torch {matrix.torch_version}") if x)
    return join(el("table", el("thead", el("tr", el("th", "format"), el("th", "status"),
                                             el("th", "max rel. error"), el("th", "details"))),
                   el("tbody", trs), class_="numbers"),
                el("p", f"From the export matrix ({when})." if when else "From the export matrix.",
                   class_="muted"),
                el("p", "Caveat: ", matrix.caveat, class_="muted caveat") if matrix.caveat else None)


def model_page(r: ModelRow, *, version: str, export_matrix: "ExportMatrix | None") -> str:
    spec, p, d = r.spec, r.spec.paper, r.spec.data
    py, sh, tm = usage(r)
    paper_items: list[tuple[str, Any]] = [
        ("title", p.title), ("authors", p.authors), ("venue", p.venue),
        ("arXiv", el("a", p.arxiv, href=f"https://arxiv.org/abs/{p.arxiv}") if p.arxiv else None),
        ("code", _link(p.code)), ("code licence", p.license or "unknown")]
    lic, lic_of = r.licence
    facts: list[tuple[str, Any]] = [
        ("family", r.family), ("spec file", spec_file_label(r.source)),
        ("input", f"{d.input_size[0]}×{d.input_size[1]}×{d.input_size[2]}"
                  + (" (fixed)" if d.fixed_input_size else "")
                  + f", {d.interpolation}, crop {d.crop_pct} ({d.crop_mode})"),
        ("mean / std", f"{tuple(d.mean)} / {tuple(d.std)}"),
        ("classes", f"{d.num_classes} ({d.label_set})"),
        ("weights", AVAILABILITY_LABEL[r.availability]), (f"licence ({lic_of})", lic)]
    spec_yaml = spec_as_yaml(spec)
    body = join(
        el("nav", el("a", "← all models", href="../index.html"), class_="crumbs"),
        el("header", el("h1", r.name, id="model-name"),
           el("p", spec.description, class_="desc") if spec.description else None),
        el("main",
           el("section", _dl(facts), id="facts"),
           el("section", el("h2", "Parameters and MACs"), _numbers(r), id="numbers"),
           el("section", el("h2", "Usage"),
              el("h3", "Python (zoo)"), el("pre", el("code", py), class_="code", id="usage-zoo"),
              el("h3", "Command line"), el("pre", el("code", sh), class_="code", id="usage-cli"),
              el("h3", "timm"), el("pre", el("code", tm), class_="code", id="usage-timm"),
              id="usage"),
           el("section", el("h2", "Weights"), _weights(r), id="weights"),
           el("section", el("h2", "Export support"), _exports(r, export_matrix), id="export"),
           el("section", el("h2", "Paper"), _dl(paper_items),
              el("h3", "BibTeX"), el("pre", el("code", bibtex(spec)), class_="code", id="bibtex"),
              el("p", "Entry generated from the spec's paper fields.", class_="muted"), id="paper"),
           el("section", el("h2", "Resolved spec"),
              el("p", "defaults and ", el("code", "extends"), " applied, as zoo validates it:",
                 class_="muted"),
              el("pre", el("code", spec_yaml), class_="code", id="spec-yaml"), id="spec")),
        el("footer", "Generated by ", el("code", "zoo catalog"), f" (zoo {version})."),
    )
    return page(f"{r.name} · zoo model catalog", body, root="../")
