"""OpenMMLab (mmcls / mmpretrain) classifier checkpoints -> timm's key layout.

An mm ``ImageClassifier`` saves ``backbone.*``, ``neck.*`` and ``head.*`` entries under mm's own
module names (mmcv ``ConvModule``'s ``conv``/``bn``, ``projection``, ``ffn.layers.0.0``,
``w_msa``, ...).  For the backbones zoo takes from timm, where the timm architecture computes the
same function as the mm one, this module renames the tensors, and reshapes or permutes them where
the two layouts differ:

- ``ResNet`` (mmcls/mmpretrain, 7x7 stem) -> timm ``resnet18``/``resnet50``...: same names;
- ``ResNetV1d`` (deep 3x3 stem, avg-pool shortcut) -> timm ``resnet50d``...: ``stem.i`` ->
  ``conv1.{0,1,3,4,6}``/``bn1``; a stride-1 shortcut (no avg pool in mm, timm's Identity pool at
  index 0) moves from ``downsample.{0,1}`` to ``downsample.{1,2}``;
- ``MobileNetV1`` (cls_KD's own backbone: ``model.0-11`` and ``s4.0-1``) -> timm
  ``mobilenetv1_100`` (``conv_stem``/``bn1`` + ``blocks.{stage}.{i}``, stages of 1, 2, 2, 6, 2);
- ``VGG`` (mmpretrain, ``features.k`` ConvModules/max pools, ``classifier.{0,3,6}`` Linears) ->
  timm ``vgg*_bn``: ``features`` re-indexed (mm: one module per conv, timm: conv, bn, relu), the
  first two Linears become timm's ``pre_logits.fc1``/``fc2`` convolutions (7x7 and 1x1 kernels:
  the same weights reshaped), the last one ``head.fc``;
- ``SwinTransformer`` (mmpretrain) -> timm ``swin_*``: ``stages.i`` -> ``layers.i`` with the
  patch merging of stage i moved to the start of timm's stage i+1, and its 4C channels
  permuted: mm merges 2x2 patches with ``nn.Unfold`` (channel index ``c*4 + 2*dh + dw``), timm
  concatenates them (``(2*dw + dh)*C + c``, the original Swin order).  mm stores each window
  attention's ``relative_position_index``; timm computes it: checked equal, then dropped;
- ``DeiT3`` (mmcls/mmpretrain, layer scale ``gamma1``/``gamma2``) -> timm ``deit3_*``.  Blocks apply
  ``ln1`` before the attention and ``ln2`` before the FFN, as DeiT III and the DeiT3 of
  open-mmlab/mmpretrain PR 1312 do (innerlee/GCR's DeiT3 README says to check that PR out; its
  configs need the PR's loss and augmentation).  mmpretrain releases 1.0.0rc7-1.2.0 apply ``ln1``
  before the FFN too and never use ``ln2``; a checkpoint trained by that code has every ``ln2`` at
  its initial values and is refused, see :func:`_deit3`.

Heads: ``LinearClsHead`` (``head.fc``) and ``VisionTransformerClsHead`` (``head.layers.head``)
go to the timm model's classifier; a family with its own head (GCR) maps ``head.*`` itself.
``neck.GlobalAveragePooling`` holds no tensors.  Checkpoints of cls_KD's
``ClassificationDistiller`` (``student.``/``teacher.``/``distill_losses.`` entries) are reduced to
the student, as upstream's ``pth_transfer.py`` does.

Nothing here imports torch at module level: spec schemas import :class:`MMLayout`.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Literal

from zoo.errors import CheckpointError
from zoo.spec import StrictModel

if TYPE_CHECKING:
    from torch import Tensor

MMBackbone = Literal["ResNet", "ResNetV1d", "MobileNetV1", "VGG", "SwinTransformer", "DeiT3"]
MM_PREFIXES = ("backbone.", "neck.", "head.")
DISTILLER_PREFIXES = ("student.", "teacher.", "distill_losses.")


class MMLayout(StrictModel):
    """An OpenMMLab classifier checkpoint: which framework saved it and which backbone class
    (its key names) it holds."""

    framework: Literal["mmcls", "mmpretrain"]
    backbone: MMBackbone


def split(state_dict: dict[str, "Tensor"], what: str) -> tuple[dict[str, "Tensor"],
                                                                dict[str, "Tensor"]]:
    """``(backbone, head)`` entries of an mm classifier state dict, prefixes stripped.

    A ``ClassificationDistiller`` checkpoint is reduced to its ``student.`` entries first.
    Raises :class:`CheckpointError` for entries outside ``backbone.``/``neck.``/``head.``, or a
    neck with tensors (zoo maps only parameter-free necks: global average pooling)."""
    if state_dict and all(k.startswith(DISTILLER_PREFIXES) for k in state_dict):
        state_dict = {k.removeprefix("student."): v for k, v in state_dict.items()
                      if k.startswith("student.")}
    if not any(k.startswith("backbone.") for k in state_dict):
        sample = sorted(state_dict)[:5]
        raise CheckpointError(f"{what}: no `backbone.` entries (keys start {sample}): not an "
                              "mmcls/mmpretrain classifier checkpoint" +
                              ("; it already looks converted to zoo's layout"
                               if any(k.startswith("model.") for k in state_dict) else ""))
    stray = sorted(k for k in state_dict if not k.startswith(MM_PREFIXES))
    if stray:
        raise CheckpointError(f"{what}: entries outside backbone./neck./head.: {stray[:8]}")
    neck = sorted(k for k in state_dict if k.startswith("neck."))
    if neck:
        raise CheckpointError(f"{what}: the neck holds tensors {neck[:5]}; zoo maps "
                              "parameter-free necks (GlobalAveragePooling) only")
    backbone = {k.removeprefix("backbone."): v for k, v in state_dict.items()
                if k.startswith("backbone.")}
    head = {k.removeprefix("head."): v for k, v in state_dict.items() if k.startswith("head.")}
    return backbone, head


def backbone_to_timm(backbone: str, state_dict: dict[str, "Tensor"],
                     what: str) -> dict[str, "Tensor"]:
    """An mm backbone's entries (``backbone.`` stripped) -> the timm architecture's keys."""
    try:
        fn = _BACKBONES[backbone]
    except KeyError:
        raise CheckpointError(f"{what}: no mm -> timm key mapping for backbone {backbone!r} "
                              f"(known: {', '.join(_BACKBONES)})") from None
    return fn(dict(state_dict), what)


def head_to_timm(head: dict[str, "Tensor"], classifier: str, what: str) -> dict[str, "Tensor"]:
    """An mm linear head (``LinearClsHead``: ``fc``; ``VisionTransformerClsHead`` without hidden
    layer: ``layers.head``) -> ``{classifier}.weight/bias``."""
    for prefix in ("fc.", "layers.head."):
        if any(k.startswith(prefix) for k in head):
            out = {f"{classifier}.{k.removeprefix(prefix)}": v for k, v in head.items()
                   if k.startswith(prefix)}
            rest = sorted(k for k in head if not k.startswith(prefix))
            if rest:
                raise CheckpointError(f"{what}: head entries zoo cannot map: {rest[:5]}")
            return out
    raise CheckpointError(f"{what}: head entries {sorted(head)[:5]} are neither a LinearClsHead "
                          "(head.fc) nor a VisionTransformerClsHead (head.layers.head)")


def to_timm(state_dict: dict[str, "Tensor"], layout: MMLayout, classifier: str,
            what: str) -> dict[str, "Tensor"]:
    """A whole mm classifier (backbone + linear head) -> the timm model's state dict."""
    backbone, head = split(state_dict, what)
    out = backbone_to_timm(layout.backbone, backbone, what)
    if head:
        out.update(head_to_timm(head, classifier, what))
    return out


# -- backbones ----------------------------------------------------------------------------------

def _rename(state_dict: dict, rules: list[tuple[str, str | Callable]], what: str) -> dict:
    """Apply the first matching ``(regex, replacement)`` to every key; a replacement function
    may check an entry and return None to drop it (Swin's stored index).  Unmatched keys are an
    error: nothing is dropped silently."""
    out, unknown = {}, []
    for key, value in state_dict.items():
        for pattern, repl in rules:
            m = re.fullmatch(pattern, key)
            if m:
                new = repl(m) if callable(repl) else m.expand(repl)
                if new is not None:
                    out[new] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{what}: backbone entries zoo cannot map: {sorted(unknown)[:8]}"
                              + (f" ... ({len(unknown)} in all)" if len(unknown) > 8 else ""))
    return out


_BLOCK_PARTS = r"(conv[123]|bn[123])\.(.+)"


def _resnet(sd: dict, what: str) -> dict:
    """mm ``ResNet`` (7x7 stem, projection shortcut ``downsample.{0: conv, 1: bn}``): timm's
    ``resnet*`` has the same names."""
    return _rename(sd, [
        (r"(conv1\.weight|bn1\..+)", r"\1"),
        (rf"(layer\d+\.\d+)\.{_BLOCK_PARTS}", r"\1.\2.\3"),
        (r"(layer\d+\.\d+)\.downsample\.([01])\.(.+)", r"\1.downsample.\2.\3"),
    ], what)


def _resnet_v1d(sd: dict, what: str) -> dict:
    """mm ``ResNetV1d``: deep stem ``stem.{0,1,2}`` (ConvModule conv+bn) -> timm
    ``conv1.{0,3,6}`` convs, ``conv1.{1,4}`` and ``bn1`` norms; shortcuts with stride 2 are
    ``downsample.{0: AvgPool, 1: conv, 2: bn}`` in both, a stride-1 one is ``{0: conv, 1: bn}``
    in mm and ``{0: Identity, 1: conv, 2: bn}`` in timm."""
    avg_pool_first = {m.group(1) for k in sd
                      if (m := re.fullmatch(r"(layer\d+\.\d+)\.downsample\.2\.weight", k))}

    def stem(m: re.Match) -> str:
        i, kind, rest = int(m[1]), m[2], m[3]
        if kind == "conv":
            return f"conv1.{3 * i}.{rest}"
        return f"conv1.{3 * i + 1}.{rest}" if i < 2 else f"bn1.{rest}"

    def shortcut(m: re.Match) -> str:
        index = int(m[2]) + (0 if m[1] in avg_pool_first else 1)
        return f"{m[1]}.downsample.{index}.{m[3]}"

    return _rename(sd, [
        (r"stem\.([012])\.(conv|bn)\.(.+)", stem),
        (rf"(layer\d+\.\d+)\.{_BLOCK_PARTS}", r"\1.\2.\3"),
        (r"(layer\d+\.\d+)\.downsample\.([012])\.(.+)", shortcut),
    ], what)


MOBILENET_V1_STAGES = (1, 2, 2, 6, 2)  # timm mobilenetv1_100: dsa_r1 / r2 / r2 / r6 / r2


def _mobilenet_v1(sd: dict, what: str) -> dict:
    """cls_KD's ``MobileNetV1``: ``model.0`` = conv_bn(3, 32, 2) (Sequential conv, bn, relu),
    ``model.1-11`` and ``s4.0-1`` = 13 conv_dw blocks (dw conv, bn, relu, pw conv, bn, relu at
    indices 0-5) -> timm ``conv_stem``/``bn1`` and ``blocks.{stage}.{i}.{conv_dw,bn1,conv_pw,bn2}``."""
    where = [(s, i) for s, n in enumerate(MOBILENET_V1_STAGES) for i in range(n)]
    parts = {"0": "conv_dw", "1": "bn1", "3": "conv_pw", "4": "bn2"}

    def block(m: re.Match) -> str | None:
        g = int(m[2]) - 1 if m[1] == "model" else 11 + int(m[2])
        if not 0 <= g < len(where) or m[3] not in parts:
            return f"<unmapped {m[0]}>"
        s, i = where[g]
        return f"blocks.{s}.{i}.{parts[m[3]]}.{m[4]}"

    out = _rename(sd, [
        (r"model\.0\.0\.weight", "conv_stem.weight"),
        (r"model\.0\.1\.(.+)", r"bn1.\1"),
        (r"(model|s4)\.(\d+)\.(\d)\.(.+)", block),
    ], what)
    bad = sorted(k for k in out if k.startswith("<unmapped"))
    if bad:
        raise CheckpointError(f"{what}: MobileNetV1 entries zoo cannot map: {bad[:5]}")
    return out


def _vgg(sd: dict, what: str) -> dict:
    """mmpretrain ``VGG``: ``features.k`` is a ConvModule (``conv``, optional ``bn``) or a max
    pool (no tensors); timm's ``features`` has conv, bn, relu (or conv, relu) per layer and one
    index per pool.  ``classifier.0``/``.3`` (Linear 512*7*7 -> 4096, 4096 -> 4096) are timm's
    ``pre_logits.fc1``/``fc2`` convolutions, ``classifier.6`` timm's ``head.fc``."""
    indices = sorted({int(m[1]) for k in sd if (m := re.fullmatch(r"features\.(\d+)\..+", k))})
    index_map, t = {}, 0
    last_conv = None
    for k in range(max(indices, default=-1) + 1):
        if f"features.{k}.conv.weight" in sd:
            index_map[k] = t
            last_conv = k
            t += 3 if f"features.{k}.bn.weight" in sd else 2
        else:
            t += 1  # a max pool

    def feature(m: re.Match) -> str:
        k, kind, rest = int(m[1]), m[2], m[3]
        if k not in index_map:
            return f"<unmapped features.{k}.{kind}.{rest}>"
        return f"features.{index_map[k] + (0 if kind == 'conv' else 1)}.{rest}"

    classifier = {"0": "pre_logits.fc1", "3": "pre_logits.fc2", "6": "head.fc"}
    out = _rename(sd, [
        (r"features\.(\d+)\.(conv|bn)\.(.+)", feature),
        (r"classifier\.([036])\.(weight|bias)", lambda m: f"{classifier[m[1]]}.{m[2]}"),
    ], what)
    bad = sorted(k for k in out if k.startswith("<unmapped"))
    if bad:
        raise CheckpointError(f"{what}: VGG entries zoo cannot map: {bad[:5]}")
    if "pre_logits.fc1.weight" in out:
        if last_conv is None:
            raise CheckpointError(f"{what}: VGG classifier without convolutional features")
        channels = sd[f"features.{last_conv}.conv.weight"].shape[0]
        w = out["pre_logits.fc1.weight"]
        side = round((w.shape[1] / channels) ** 0.5)
        if side * side * channels != w.shape[1]:
            raise CheckpointError(f"{what}: classifier.0 takes {w.shape[1]} inputs, not "
                                  f"{channels} x k x k feature maps")
        out["pre_logits.fc1.weight"] = w.reshape(w.shape[0], channels, side, side)
    if "pre_logits.fc2.weight" in out:
        out["pre_logits.fc2.weight"] = out["pre_logits.fc2.weight"][:, :, None, None]
    return out


def swin_relative_position_index(window: int) -> "Tensor":
    """The (window^2, window^2) index into the (2*window-1)^2-row relative position bias table
    (Swin Transformer, Sec. 3.2), as timm and the original compute it."""
    import torch

    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                        indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


def unfold_to_concat_order(channels: int) -> "Tensor":
    """Index ``p`` with ``timm[..., j] = mm[..., p[j]]`` for Swin's patch merging of
    ``channels`` input channels: timm's j = (2*dw + dh)*C + c, mm's nn.Unfold i = c*4 + 2*dh + dw."""
    import torch

    j = torch.arange(4 * channels)
    pos, c = j // channels, j % channels
    dw, dh = pos // 2, pos % 2
    return c * 4 + 2 * dh + dw


def _swin(sd: dict, what: str) -> dict:
    """mmpretrain ``SwinTransformer`` (out_indices=(3,)) -> timm ``swin_*``."""
    import torch

    merges = {}

    def downsample(m: re.Match) -> str:
        merges[f"layers.{int(m[1]) + 1}.downsample.{m[2]}.{m[3]}"] = m[0]
        return f"layers.{int(m[1]) + 1}.downsample.{m[2]}.{m[3]}"

    def index(m: re.Match) -> None:
        table = sd.get(f"stages.{m[1]}.blocks.{m[2]}.attn.w_msa.relative_position_bias_table")
        if table is None:
            raise CheckpointError(f"{what}: {m[0]} without its relative_position_bias_table")
        window = (round(table.shape[0] ** 0.5) + 1) // 2
        if not torch.equal(sd[m[0]].long(), swin_relative_position_index(window)):
            raise CheckpointError(f"{what}: {m[0]} is not Swin's relative position index for "
                                  f"{window}x{window} windows (timm computes it; a different "
                                  "stored index would change the attention bias)")
        return None

    out = _rename(sd, [
        (r"patch_embed\.projection\.(.+)", r"patch_embed.proj.\1"),
        (r"patch_embed\.norm\.(.+)", r"patch_embed.norm.\1"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.(norm[12])\.(.+)", r"layers.\1.blocks.\2.\3.\4"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\.relative_position_index", index),
        (r"stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\.(qkv|proj|relative_position_bias_table)"
         r"(\..+)?", r"layers.\1.blocks.\2.attn.\3\4"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.ffn\.layers\.0\.0\.(.+)", r"layers.\1.blocks.\2.mlp.fc1.\3"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.ffn\.layers\.1\.(.+)", r"layers.\1.blocks.\2.mlp.fc2.\3"),
        (r"stages\.(\d+)\.downsample\.(norm|reduction)\.(.+)", downsample),
        (r"norm3\.(.+)", r"norm.\1"),
    ], what)
    for key in merges:
        t = out[key]
        perm = unfold_to_concat_order(t.shape[-1] // 4)
        out[key] = t[..., perm].contiguous()
    return out


def _deit3(sd: dict, what: str) -> dict:
    """mm ``DeiT3`` -> timm ``deit3_*``: ``layers.i.{ln1, attn, attn.gamma1, ln2, ffn,
    ffn.gamma2}`` -> ``blocks.i.{norm1, attn, ls1, norm2, mlp, ls2}``, final ``ln1`` -> ``norm``.

    Refuses a checkpoint whose every block has ``ln2`` at its initialization (weight 1, bias 0):
    such weights were trained by mmpretrain 1.0.0rc7-1.2.0's DeiT3, whose blocks normalize the
    FFN input with ``ln1`` (``ln2`` gets no gradient); timm's block, like DeiT III's, uses a
    second norm there."""
    import torch

    ln2 = [(v, sd.get(k.replace(".weight", ".bias"))) for k, v in sd.items()
           if re.fullmatch(r"layers\.\d+\.ln2\.weight", k)]
    if ln2 and all(torch.all(w == 1) and b is not None and torch.all(b == 0) for w, b in ln2):
        raise CheckpointError(
            f"{what}: every layers.*.ln2 is at its initial value (weight 1, bias 0), i.e. never "
            "trained: these weights come from mmpretrain 1.0.0rc7-1.2.0's DeiT3, which "
            "normalizes the FFN input with ln1 and leaves ln2 unused. zoo's DeiT3 (timm "
            "deit3_*, as DeiT III and mmpretrain PR 1312) uses ln2 there, so it would not "
            "compute what these weights were trained for.")
    return _rename(sd, [
        (r"(cls_token|pos_embed)", r"\1"),
        (r"patch_embed\.projection\.(.+)", r"patch_embed.proj.\1"),
        (r"layers\.(\d+)\.ln([12])\.(.+)", r"blocks.\1.norm\2.\3"),
        (r"layers\.(\d+)\.attn\.(qkv|proj)\.(.+)", r"blocks.\1.attn.\2.\3"),
        (r"layers\.(\d+)\.attn\.gamma1\.weight", r"blocks.\1.ls1.gamma"),
        (r"layers\.(\d+)\.ffn\.layers\.0\.0\.(.+)", r"blocks.\1.mlp.fc1.\2"),
        (r"layers\.(\d+)\.ffn\.layers\.1\.(.+)", r"blocks.\1.mlp.fc2.\2"),
        (r"layers\.(\d+)\.ffn\.gamma2\.weight", r"blocks.\1.ls2.gamma"),
        (r"ln1\.(.+)", r"norm.\1"),
    ], what)


_BACKBONES: dict[str, Callable[[dict, str], dict]] = {
    "ResNet": _resnet, "ResNetV1d": _resnet_v1d, "MobileNetV1": _mobilenet_v1, "VGG": _vgg,
    "SwinTransformer": _swin, "DeiT3": _deit3,
}
