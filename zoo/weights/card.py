"""The model card (``README.md``) of a weights folder: Hub front matter (licence, tags,
model-index with measured metrics), the paper and usage."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.spec import SpecBase


def model_card(name: str, cfg: dict[str, Any], spec: SpecBase, metrics: dict[str, Any] | None,
              license_: str | None) -> str:
    import yaml

    front: dict[str, Any] = {"library_name": "timm", "license": (license_ or "other").lower(),
                             "tags": ["image-classification", "timm", "zoo", spec.family],
                             "pipeline_tag": "image-classification"}
    if metrics and metrics.get("top1") is not None:
        results = [{"task": {"type": "image-classification"},
                    "dataset": {"name": metrics.get("dataset", "imagenet-1k"),
                                "type": metrics.get("dataset", "imagenet-1k")},
                    "metrics": [{"type": "accuracy", "name": "top-1", "value": metrics["top1"]}]
                    + ([{"type": "accuracy", "name": "top-5", "value": metrics["top5"]}]
                       if metrics.get("top5") is not None else [])}]
        front["model-index"] = [{"name": name, "results": results}]
    paper = spec.paper
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             f"# {name}", "", spec.description or f"{spec.family} model built by zoo.", "",
             f"- Paper: {paper.title}" + (f" (arXiv:{paper.arxiv})" if paper.arxiv else ""),
             f"- Original code: {paper.code or 'n/a'}",
             f"- Input size: {tuple(cfg['input_size'])}, classes: {cfg['num_classes']}", "",
             "## Use", "", "```python", "import zoo, timm",
             f'model = timm.create_model("hf-hub:<this repo>", pretrained=True)  # or zoo.create("{name}", weights="hf-hub:<this repo>")',
             "```", ""]
    return "\n".join(lines)


