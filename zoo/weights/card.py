"""The model card (``README.md``) of a weights folder: Hub front matter (licence, tags,
model-index with the metrics), the paper with its BibTeX citation, provenance and usage."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.spec import Paper, SpecBase


def model_card(name: str, cfg: dict[str, Any], spec: SpecBase, metrics: dict[str, Any] | None,
               license_: str | None, *, repo_id: str | None = None,
               provenance: dict[str, Any] | None = None) -> str:
    """The card's text.  ``metrics``: a registry ``metrics`` dict (``top1``, ``top5``,
    ``dataset``, ``measured_by``); ``provenance``: where the weights come from (``url``,
    ``sha256``, ``size``, ``converter``, ``note``...), listed as given."""
    import yaml

    front: dict[str, Any] = {"library_name": "timm", "license": (license_ or "other").lower(),
                             "tags": ["image-classification", "timm", "zoo", spec.family],
                             "pipeline_tag": "image-classification"}
    if metrics and metrics.get("top1") is not None:
        dataset = metrics.get("dataset", "imagenet-1k")
        results = [{"task": {"type": "image-classification"},
                    "dataset": {"name": dataset, "type": dataset},
                    "metrics": [{"type": "accuracy", "name": "top-1", "value": metrics["top1"]}]
                    + ([{"type": "accuracy", "name": "top-5", "value": metrics["top5"]}]
                       if metrics.get("top5") is not None else [])}]
        if metrics.get("measured_by"):
            results[0]["source"] = {"name": str(metrics["measured_by"])}
        front["model-index"] = [{"name": name, "results": results}]
    paper = spec.paper
    where = f"hf-hub:{repo_id}" if repo_id else "hf-hub:<this repo>"
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             f"# {name}", "", spec.description or f"{spec.family} model built by zoo.", "",
             f"- Paper: {paper.title}" + (f" (arXiv:{paper.arxiv})" if paper.arxiv else ""),
             f"- Original code: {paper.code or 'n/a'}",
             f"- Input size: {tuple(cfg['input_size'])}, classes: {cfg['num_classes']}",
             f"- Weights licence: {license_ or 'not stated'}", ""]
    if metrics and metrics.get("top1") is not None:
        acc = f"top-1 {metrics['top1']}" + (f", top-5 {metrics['top5']}"
                                            if metrics.get("top5") is not None else "")
        lines += [f"Accuracy: {acc} on {metrics.get('dataset', 'imagenet-1k')}"
                  + (f" ({metrics['measured_by']})" if metrics.get("measured_by") else ""), ""]
    if provenance:
        lines += ["## Provenance", ""]
        lines += [f"- {key}: {value}" for key, value in provenance.items() if value is not None]
        lines += [""]
    lines += ["## Use", "", "```python", "import zoo, timm",
              f'model = zoo.create("{where}", pretrained=True)',
              f'model = timm.create_model("{where}", pretrained=True)  # after `import zoo`',
              "```", "", "## Citation", "", "```bibtex", bibtex(paper), "```", ""]
    return "\n".join(lines)


def bibtex(paper: Paper) -> str:
    """A BibTeX entry for a spec's paper (from its title, authors, venue and arXiv id)."""
    found = re.search(r"(19|20)\d{2}", paper.venue or "")
    year = found.group(0) if found else None
    if year is None and paper.arxiv:
        year = "20" + paper.arxiv[:2]
    authors = [a.strip() for a in (paper.authors or "").split(",") if a.strip()]
    surname = re.sub(r"[^a-z]", "", authors[0].split()[-1].lower()) if authors else "anon"
    word = next((re.sub(r"[^a-z]", "", w.lower()) for w in paper.title.split()
                 if len(re.sub(r"[^a-z]", "", w.lower())) > 3), "paper")
    key = f"{surname}{year or ''}{word}"
    fields = [("title", "{" + paper.title + "}")]  # double braces keep the title's capitals
    if authors:
        fields.append(("author", " and ".join(authors)))
    if paper.venue:
        fields.append(("booktitle", re.sub(r"\s*(19|20)\d{2}$", "", paper.venue)))
    elif paper.arxiv:
        fields.append(("journal", f"arXiv preprint arXiv:{paper.arxiv}"))
    if paper.arxiv:
        fields.append(("eprint", paper.arxiv))
        fields.append(("archivePrefix", "arXiv"))
    if year:
        fields.append(("year", year))
    kind = "inproceedings" if paper.venue else "article"
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
    return f"@{kind}{{{key},\n{body}\n}}"
