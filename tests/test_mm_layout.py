"""zoo.layers.mm_layout: OpenMMLab (mmcls/mmpretrain) checkpoints -> timm keys.

The end-to-end parity of every mapping with the original mm code is in the golden vectors
(tests/golden/gcr_*.json, cls_kd_*.json, made by running mmpretrain/mmcls).  Here: the layout
facts the mappings rest on, checked against timm's own modules, and the error cases."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.errors import CheckpointError
from zoo.layers import mm_layout as L


def test_swin_patch_merging_order_against_unfold_and_timm() -> None:
    """mmpretrain merges 2x2 patches with nn.Unfold(2, stride=2); timm's PatchMerging
    concatenates them: the permutation maps one onto the other, exactly."""
    from timm.models.swin_transformer import PatchMerging

    B, H, W, C = 2, 8, 6, 5
    x = torch.randn(B, H, W, C)
    merge = PatchMerging(C)
    captured = {}  # timm's concatenation: the input of the module's norm
    merge.norm.register_forward_hook(lambda m, i, o: captured.setdefault("x", i[0]))
    merge(x)
    concat = captured["x"]                                            # (B, H/2, W/2, 4C)
    unfold = nn.Unfold(kernel_size=2, stride=2)(x.permute(0, 3, 1, 2))  # (B, 4C, L)
    unfold = unfold.transpose(1, 2).reshape(B, H // 2, W // 2, 4 * C)
    perm = L.unfold_to_concat_order(C)
    assert sorted(perm.tolist()) == list(range(4 * C))
    torch.testing.assert_close(concat, unfold[..., perm], rtol=0, atol=0)
    assert not torch.equal(concat, unfold)


def test_swin_relative_position_index_is_timms() -> None:
    from timm.models.swin_transformer import WindowAttention

    for window in (7, 12):
        attn = WindowAttention(dim=32, num_heads=2, window_size=window)
        assert torch.equal(L.swin_relative_position_index(window),
                           attn.relative_position_index)


def _swin_block_sd(window: int = 7) -> dict:
    table = torch.randn((2 * window - 1) ** 2, 3)
    return {"stages.0.blocks.0.attn.w_msa.relative_position_bias_table": table,
            "stages.0.blocks.0.attn.w_msa.relative_position_index":
                L.swin_relative_position_index(window)}


def test_swin_index_checked_then_dropped() -> None:
    out = L.backbone_to_timm("SwinTransformer", _swin_block_sd(), "t")
    assert list(out) == ["layers.0.blocks.0.attn.relative_position_bias_table"]
    bad = _swin_block_sd()
    bad["stages.0.blocks.0.attn.w_msa.relative_position_index"] = torch.zeros(49, 49).long()
    with pytest.raises(CheckpointError, match="not Swin's relative position index"):
        L.backbone_to_timm("SwinTransformer", bad, "t")


def test_swin_merge_moves_to_next_stage_and_is_permuted() -> None:
    C = 4
    w, n = torch.randn(2 * C, 4 * C), torch.randn(4 * C)
    out = L.backbone_to_timm("SwinTransformer", {"stages.1.downsample.reduction.weight": w,
                                                 "stages.1.downsample.norm.weight": n}, "t")
    perm = L.unfold_to_concat_order(C)
    assert torch.equal(out["layers.2.downsample.reduction.weight"], w[:, perm])
    assert torch.equal(out["layers.2.downsample.norm.weight"], n[perm])


def test_resnet_v1d_shortcut_indices() -> None:
    """Stride-1 shortcut (no AvgPool in mm) -> timm's downsample.1/2 (Identity pool at 0)."""
    conv, bn = torch.zeros(8, 4, 1, 1), torch.ones(8)
    sd = {"layer1.0.downsample.0.weight": conv, "layer1.0.downsample.1.weight": bn,
          "layer2.0.downsample.1.weight": conv, "layer2.0.downsample.2.weight": bn,
          "stem.0.conv.weight": conv, "stem.1.bn.bias": bn, "stem.2.bn.weight": bn}
    out = L.backbone_to_timm("ResNetV1d", sd, "t")
    assert set(out) == {"layer1.0.downsample.1.weight", "layer1.0.downsample.2.weight",
                        "layer2.0.downsample.1.weight", "layer2.0.downsample.2.weight",
                        "conv1.0.weight", "conv1.4.bias", "bn1.weight"}


def test_resnet_v1d_keys_are_timms() -> None:
    """The mapped key set of an mm ResNetV1d-50 (from its golden vector) is timm resnet50d's."""
    import json
    from pathlib import Path

    import timm

    g = json.loads((Path(__file__).parent / "golden" / "gcr_resnet50d_vector.json").read_text())
    sd = {k.removeprefix("backbone."): torch.empty(s) for k, s, _ in g["state_dict"]
          if k.startswith("backbone.")}
    out = L.backbone_to_timm("ResNetV1d", sd, "t")
    with torch.device("meta"):
        ref = timm.create_model("resnet50d", num_classes=0).state_dict()
    assert set(out) == set(ref)
    assert all(out[k].shape == ref[k].shape for k in ref)


def test_vgg_linear_to_conv_reshape() -> None:
    sd = {"features.0.conv.weight": torch.randn(2, 3, 3, 3), "features.0.bn.weight": torch.ones(2),
          "classifier.0.weight": torch.randn(5, 2 * 3 * 3), "classifier.3.weight": torch.randn(5, 5),
          "classifier.6.bias": torch.randn(7)}
    out = L.backbone_to_timm("VGG", sd, "t")
    assert out["pre_logits.fc1.weight"].shape == (5, 2, 3, 3)
    assert torch.equal(out["pre_logits.fc1.weight"].flatten(1), sd["classifier.0.weight"])
    assert out["pre_logits.fc2.weight"].shape == (5, 5, 1, 1)
    assert set(out) == {"features.0.weight", "features.1.weight", "pre_logits.fc1.weight",
                        "pre_logits.fc2.weight", "head.fc.bias"}
    sd["classifier.0.weight"] = torch.randn(5, 17)
    with pytest.raises(CheckpointError, match="feature maps"):
        L.backbone_to_timm("VGG", sd, "t")


def test_vgg_feature_indices_skip_pools() -> None:
    # mm: conv(0) conv(1) pool(2) conv(3): timm conv/bn/relu x2, pool, conv -> index 7
    sd = {f"features.{k}.conv.weight": torch.zeros(1) for k in (0, 1, 3)}
    sd.update({f"features.{k}.bn.weight": torch.zeros(1) for k in (0, 1, 3)})
    out = L.backbone_to_timm("VGG", sd, "t")
    assert set(out) == {"features.0.weight", "features.1.weight", "features.3.weight",
                        "features.4.weight", "features.7.weight", "features.8.weight"}


def test_mobilenet_v1_blocks() -> None:
    sd = {"model.0.0.weight": torch.zeros(1), "model.0.1.running_var": torch.zeros(1),
          "model.1.0.weight": torch.zeros(1), "model.11.4.bias": torch.zeros(1),
          "s4.1.3.weight": torch.zeros(1)}
    out = L.backbone_to_timm("MobileNetV1", sd, "t")
    assert set(out) == {"conv_stem.weight", "bn1.running_var", "blocks.0.0.conv_dw.weight",
                        "blocks.3.5.bn2.bias", "blocks.4.1.conv_pw.weight"}
    with pytest.raises(CheckpointError, match="cannot map"):
        L.backbone_to_timm("MobileNetV1", {"s4.2.0.weight": torch.zeros(1)}, "t")


def test_deit3_refuses_untrained_ln2() -> None:
    sd = {f"layers.{i}.ln2.{p}": (torch.ones(4) if p == "weight" else torch.zeros(4))
          for i in range(2) for p in ("weight", "bias")}
    with pytest.raises(CheckpointError, match="ln2 is at its initial value"):
        L.backbone_to_timm("DeiT3", sd, "t")
    sd["layers.1.ln2.bias"] = torch.full((4,), 0.01)  # one trained norm: PR 1312's forward
    out = L.backbone_to_timm("DeiT3", sd, "t")
    assert set(out) == {f"blocks.{i}.norm2.{p}" for i in range(2) for p in ("weight", "bias")}


def test_split_and_heads() -> None:
    sd = {"backbone.conv1.weight": torch.zeros(1), "head.fc.weight": torch.zeros(3, 2),
          "head.fc.bias": torch.zeros(3)}
    backbone, head = L.split(sd, "t")
    assert set(backbone) == {"conv1.weight"} and set(head) == {"fc.weight", "fc.bias"}
    assert set(L.head_to_timm(head, "fc", "t")) == {"fc.weight", "fc.bias"}
    vit = {"layers.head.weight": torch.zeros(3, 2), "layers.head.bias": torch.zeros(3)}
    assert set(L.head_to_timm(vit, "head", "t")) == {"head.weight", "head.bias"}
    with pytest.raises(CheckpointError, match="neither a LinearClsHead"):
        L.head_to_timm({"layers.pre_logits.weight": torch.zeros(1)}, "head", "t")


def test_distiller_checkpoint_keeps_the_student() -> None:
    """cls_KD's ClassificationDistiller saves student., teacher. and distill_losses.; its
    pth_transfer.py keeps the student's entries."""
    sd = {"student.backbone.conv1.weight": torch.ones(1), "teacher.backbone.conv1.weight":
          torch.zeros(1), "teacher.head.fc.weight": torch.zeros(1),
          "student.head.fc.weight": torch.ones(1)}
    backbone, head = L.split(sd, "t")
    assert backbone == {"conv1.weight": sd["student.backbone.conv1.weight"]}
    assert head == {"fc.weight": sd["student.head.fc.weight"]}


@pytest.mark.parametrize("sd, match", [
    ({"conv1.weight": torch.zeros(1)}, "no `backbone.` entries"),
    ({"model.conv1.weight": torch.zeros(1)}, "already looks converted"),
    ({"backbone.conv1.weight": torch.zeros(1), "data_preprocessor.mean": torch.zeros(3)},
     "outside backbone"),
    ({"backbone.conv1.weight": torch.zeros(1), "neck.fc.weight": torch.zeros(1)},
     "neck holds tensors"),
])
def test_split_errors(sd, match) -> None:
    with pytest.raises(CheckpointError, match=match):
        L.split(sd, "t")


def test_unknown_backbone_entries_are_errors() -> None:
    with pytest.raises(CheckpointError, match="cannot map.*layer1.0.se"):
        L.backbone_to_timm("ResNet", {"layer1.0.se.fc.weight": torch.zeros(1)}, "t")
    with pytest.raises(CheckpointError, match="no mm -> timm key mapping"):
        L.backbone_to_timm("ConvNeXt", {}, "t")
