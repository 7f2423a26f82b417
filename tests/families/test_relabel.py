"""ReLabel (Re-labeling ImageNet) specs, family timm_arch: upstream trains plain torchvision
ResNets (train.py: ``getattr(torchvision.models, arch)()``); zoo builds timm's, which must be the
same networks: same keys, same parameter counts, same outputs for the same weights."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.measure import count_params

RELABEL = [n for n in zoo.list_models(family="timm_arch")
           if zoo.get_spec(n).paper.arxiv == "2101.05022"]


def _torchvision(name: str) -> torch.nn.Module:
    """The model upstream trains: torchvision's ResNet of the spec's depth."""
    import torchvision

    return getattr(torchvision.models, zoo.get_spec(name).arch.timm_model)()


def _checkpoint(name: str, seed: int = 0) -> tuple[dict, torch.nn.Module]:
    """An upstream-style checkpoint: the torchvision model's state dict (random weights,
    non-trivial BN statistics), as Trainer.save_checkpoint stores it."""
    torch.manual_seed(seed)
    tv = _torchvision(name).eval()
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return tv.state_dict(), tv


def test_the_three_released_depths() -> None:
    assert sorted(zoo.get_spec(n).arch.timm_model for n in RELABEL) == \
        ["resnet101", "resnet18", "resnet50"]


@pytest.mark.parametrize("name", RELABEL)
def test_torchvision_checkpoint_gives_torchvision_outputs(name: str) -> None:
    sd, tv = _checkpoint(name)
    model = zoo.create(name).eval()
    model.load_state_dict(zoo.convert_checkpoint(name, sd), strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", RELABEL)
def test_params_equal_torchvision(name: str) -> None:
    from zoo.build import build_model

    with torch.device("meta"):
        expected = sum(p.numel() for p in _torchvision(name).parameters())
    assert count_params(build_model(zoo.get_spec(name), meta=True)) == expected


def test_wrapped_ddp_checkpoint_file_converts(tmp_path) -> None:
    """Trainer.load_checkpoint accepts {'state_dict': {'module.*': ...}}; so does zoo convert."""
    from zoo.publish import convert_and_check

    name = "relabel_resnet18"
    sd, tv = _checkpoint(name, seed=2)
    path = tmp_path / "rn18_relabel.pth"
    torch.save({"epoch": 300, "arch": "resnet18", "accuracy": 72.5,
                "state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    out = convert_and_check(f"{name}.in1k", path, tmp_path / "hub", family="timm_arch")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(zoo.create(name, weights=out)(x), tv(x), rtol=1e-5, atol=1e-5)


def test_data_config_is_upstream_evaluation() -> None:
    """utils/data_loader.py: Resize(ceil(224 / 0.875)) (torchvision bilinear), CenterCrop(224),
    ImageNet mean/std."""
    for name in RELABEL:
        d = zoo.get_spec(name).data
        assert d.input_size == (3, 224, 224) and d.interpolation == "bilinear"
        assert math.floor(224 / d.crop_pct) == math.ceil(224 / 0.875) == 256
        assert d.mean == (0.485, 0.456, 0.406) and d.std == (0.229, 0.224, 0.225)


# README tables "ReLabel on various architectures" / "with additional tricks": tag -> top-1.
README_TOP1 = {
    "relabel_resnet18.in1k": 72.5, "relabel_resnet18.in1k_cutmix": 73.2,
    "relabel_resnet50.in1k": 78.9, "relabel_resnet50.in1k_cutmix": 80.2,
    "relabel_resnet50.in1k_cutmix_in21k": 81.2,
    "relabel_resnet101.in1k": 80.7, "relabel_resnet101.in1k_cutmix": 81.6,
}


def test_registry_lists_every_readme_model() -> None:
    from zoo.registry import registry

    records = {t: r for t, r in registry().records.items() if t.split(".")[0] in RELABEL}
    assert {t: r.metrics.top1 for t, r in records.items()} == README_TOP1
    for tag, rec in records.items():
        assert rec.hub is None and rec.source.format == "pickle"
        assert rec.source.url.startswith("https://www.dropbox.com/s/")
        assert f"{README_TOP1[tag]}.pth" in rec.source.url
        if tag.endswith(".in1k"):
            assert zoo.get_spec(tag.split(".")[0]).reported.top1 == README_TOP1[tag]


def test_converter_script_reproduces_the_original(tmp_path) -> None:
    """Golden weights (upstream's torchvision model) saved as upstream's Trainer does ->
    scripts/convert_relabel.py -> a folder reproducing the original's logits."""
    from pathlib import Path

    from tests import golden as G
    from tests.util import run_script

    name = "relabel_resnet18"
    g = G.load(Path(__file__).resolve().parents[1] / "golden" / f"{name}.json")
    path = tmp_path / "rn18_relabel_72.5.pth"
    torch.save({"epoch": 300, "arch": "resnet18", "accuracy": 72.5, "optimizer": {},
                "state_dict": G.fill_state_dict(g)}, path)
    assert run_script("convert_relabel.py", f"{name}.in1k", path, "--out", tmp_path / "hub") == 0
    G.assert_matches(g, G.run(g, zoo.create(name, weights=tmp_path / "hub")))
