"""Spec -> nn.Module -> weights -> adaptation: ``zoo.create``.

With weights to load, the model is built with its parameters on the meta device (no memory,
no random initialization), then the verified safetensors tensors are assigned into it
strictly.  Buffers are built for real, so non-persistent ones (index tables, grids) are right.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from zoo.catalog import catalog, get_spec, list_models, split_name  # noqa: F401 (re-exported)
from zoo.errors import StateDictMismatchError, UnknownModelError
from zoo.families import get_family
from zoo.spec import SpecBase

log = logging.getLogger("zoo")


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create every ``nn.Parameter`` on the meta device inside this block (buffers stay real).

    Initializers then run on meta tensors, i.e. cost nothing; the weights are assigned later.
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def build_model(spec: SpecBase, *, meta: bool = False) -> nn.Module:
    """Build the architecture of ``spec`` (random init, or parameters on meta)."""
    family = get_family(spec.family)  # type: ignore[attr-defined]
    if meta:
        with parameters_on_meta():
            model = family.build(spec)
    else:
        model = family.build(spec)
    _set_cfg(model, spec)
    return model


def _set_cfg(model: nn.Module, spec: SpecBase, tag: str | None = None) -> None:
    from zoo.model import complete_pretrained_cfg

    model.pretrained_cfg = complete_pretrained_cfg(model, pretrained_cfg(spec, tag))


def pretrained_cfg(spec: SpecBase, tag: str | None = None) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` dict for a spec (and weights tag)."""
    d = spec.data
    cfg: dict[str, Any] = {
        "architecture": spec.name, "tag": tag or "", "num_classes": d.num_classes,
        "input_size": tuple(d.input_size), "fixed_input_size": d.fixed_input_size,
        "interpolation": d.interpolation, "crop_pct": d.crop_pct, "crop_mode": d.crop_mode,
        "mean": tuple(d.mean), "std": tuple(d.std), "first_conv": d.first_conv,
        "classifier": d.classifier, "license": spec.paper.license,
        "paper_ids": f"arXiv:{spec.paper.arxiv}" if spec.paper.arxiv else "",
        "paper_name": spec.paper.title, "origin_url": spec.paper.code or "",
    }
    if d.label_set == "imagenet-1k" and d.num_classes == 1000:
        cfg["label_names"] = _imagenet_1k_labels()
    if tag:
        from zoo.registry import registry

        rec = registry().records.get(f"{spec.name}.{tag}")
        if rec is not None:
            cfg["license"] = rec.license
            if rec.hub is not None:
                cfg["hf_hub_id"] = rec.hub.repo_id
                cfg["hf_hub_filename"] = rec.hub.filename
                cfg["hf_hub_revision"] = rec.hub.revision
            cfg["source_url"] = rec.source.url
    return cfg


@functools.cache
def _imagenet_1k_labels() -> tuple[str, ...]:
    """ImageNet-1k's class names (WordNet synsets, index order), from timm's dataset info."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo("imagenet-1k").label_names())


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Raise :class:`StateDictMismatchError` unless keys, shapes and dtypes match exactly."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                   for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    wrong_dtype = [f"{k}: checkpoint {state_dict[k].dtype} vs model {own[k].dtype}"
                   for k in own if k in state_dict
                   and state_dict[k].dtype != own[k].dtype
                   and not (state_dict[k].is_floating_point() and own[k].is_floating_point())]
    if missing or unexpected or wrong_shape or wrong_dtype:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("wrong shapes", wrong_shape), ("wrong dtypes", wrong_dtype)):
            if items:
                shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
                parts.append(f"{label}: {shown}")
        raise StateDictMismatchError(
            f"{what} does not fit the model, nothing was loaded:\n  " + "\n  ".join(parts) +
            "\nCheck that the weights belong to this model (and were converted with "
            "`zoo convert` if they come from the original implementation).")


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Strictly load ``state_dict`` into ``model`` (whose parameters may be on meta)."""
    check_state_dict(model, state_dict, what)
    own = model.state_dict()
    state_dict = {k: v.to(own[k].dtype) if v.dtype != own[k].dtype else v
                  for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=True)
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()]
                  if t.device.type == "meta"]
    if still_meta:
        raise StateDictMismatchError(f"{what}: tensors left uninitialized: {still_meta[:8]}")


def adapt_state_dict(spec: SpecBase, state_dict: dict[str, torch.Tensor], *,
                     num_classes: int, in_chans: int) -> dict[str, torch.Tensor]:
    """Adapt weights trained for the spec's head / input channels to the requested ones."""
    sd = dict(state_dict)
    if num_classes != spec.data.num_classes:
        dropped = [k for k in sd if any(k == c or k.startswith(c + ".")
                                        for c in spec.data.classifiers)]
        for k in dropped:
            del sd[k]
        log.info("%s: classifier %s dropped for num_classes=%d (freshly initialized)",
                 spec.name, spec.data.classifier, num_classes)
    if in_chans != spec.data.in_chans:
        from timm.models import adapt_input_conv

        key = f"{spec.data.first_conv}.weight"
        if key not in sd:
            raise StateDictMismatchError(f"{spec.name}: first_conv weight {key!r} not in checkpoint")
        sd[key] = adapt_input_conv(in_chans, sd[key])
        log.info("%s: first conv %s adapted from %d to %d input channels", spec.name, key,
                 spec.data.in_chans, in_chans)
    return sd


def create(name: str, pretrained: bool = False, *, weights: str | Path | None = None,
           num_classes: int | None = None, in_chans: int | None = None,
           device: str | torch.device | None = None, dtype: torch.dtype | None = None,
           **overrides: Any) -> nn.Module:
    """Build a zoo model by name, optionally with weights.

    Args:
        name: model name, optionally with a weights tag (``"sret_s.in1k_dist"``).
        pretrained: load the tag's (or the model's default tag's) registry weights.
        weights: a tag, ``"hf-hub:org/repo[@revision]"``, or a local ``.safetensors`` file or
            folder written by :func:`zoo.save_pretrained`.  Implies pretrained.
        num_classes: replace the classifier (dropped from loaded weights; 0 = no classifier).
        in_chans: number of input channels; a loaded first conv is adapted as timm does.
        device, dtype: where and in which floating dtype to put the model.
        overrides: architecture fields of the spec to change (validated), e.g. drop_path_rate;
            ``features_only=True`` (with optional ``out_indices``, ``feature_cls`` 'getter' /
            'hook' / 'fx' and ``feature_cfg``) returns timm's multi-scale feature extractor
            (:func:`zoo.model.features_only`).
    """
    from zoo import weights as W

    features = {k: overrides.pop(k) for k in ("features_only", "out_indices", "feature_cls",
                                              "feature_cfg") if k in overrides}
    img_size = overrides.pop("img_size", None)
    model_name, tag = split_name(name)
    spec = get_spec(model_name)
    _check_overrides(spec, overrides)
    source = None
    if weights is not None:
        text = str(weights)
        is_ref = text.startswith("hf-hub:") or "/" in text or text.endswith(".safetensors") \
            or Path(text).exists()
        source = W.resolve_external(weights, spec) if is_ref \
            else W.resolve_tag(spec, text.removeprefix(f"{model_name}."))
    elif pretrained:
        source = W.resolve_tag(spec, tag)
    if source is not None and source.num_classes and source.num_classes != spec.data.num_classes:
        spec = spec.with_overrides(num_classes=source.num_classes)
    weights_spec = spec
    want_classes = spec.data.num_classes if num_classes is None else num_classes
    want_chans = spec.data.in_chans if in_chans is None else in_chans
    if num_classes is not None or in_chans is not None or overrides:
        spec = spec.with_overrides(num_classes=want_classes, in_chans=want_chans, **overrides)
    if source is None:
        model = build_model(spec)
        _set_cfg(model, spec, tag)
    elif source.layout == "packed":
        if want_classes != weights_spec.data.num_classes or want_chans != weights_spec.data.in_chans:
            raise StateDictMismatchError("packed (deployable) weights cannot be adapted to a new "
                                         "num_classes/in_chans; load the latent weights instead")
        state_dict, _ = source.read()
        model = get_family(spec.family).model.load_packed(spec, state_dict)  # type: ignore[attr-defined]
        _set_cfg(model, spec, source.tag)
    else:
        state_dict = adapt_state_dict(weights_spec, source.load(weights_spec),
                                      num_classes=want_classes, in_chans=want_chans)
        model = build_model(spec, meta=True)
        if want_classes != weights_spec.data.num_classes:
            _materialize_classifier(model, spec)
            own = model.state_dict()
            for k in own:
                if any(k == c or k.startswith(c + ".") for c in spec.data.classifiers):
                    state_dict[k] = own[k]
        load_into(model, state_dict, source.describe())
        _set_cfg(model, spec, source.tag)
    if img_size is not None:
        from zoo.model import set_img_size

        set_img_size(model, img_size)
    if features.pop("features_only", False):
        from zoo.model import features_only

        cfg = dict(features.pop("feature_cfg", None) or {})
        cfg.update(features)  # out_indices / feature_cls given directly win over feature_cfg's
        model = features_only(model, **cfg)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval() if source is not None else model


def _check_overrides(spec: SpecBase, overrides: dict[str, Any]) -> None:
    """Unknown keyword arguments are a TypeError (as for any Python callable, and timm's tests
    expect it), naming the arguments the model takes."""
    known = set(type(spec.arch).model_fields)  # type: ignore[attr-defined]
    unknown = sorted(set(overrides) - known)
    if unknown:
        from zoo.errors import UnknownArgumentError

        raise UnknownArgumentError(
            f"{spec.name} got unexpected argument(s) {', '.join(unknown)}; besides num_classes, "
            f"in_chans, weights, device, dtype, img_size and features_only/out_indices/"
            f"feature_cls/feature_cfg it takes the {spec.family} architecture fields: "
            f"{', '.join(sorted(known))}")


def _materialize_classifier(model: nn.Module, spec: SpecBase) -> None:
    """Give a meta-built model a freshly initialized real classifier (num_classes changed)."""
    for prefix in spec.data.classifiers:
        try:
            module = model.get_submodule(prefix)
        except AttributeError:
            continue
        module.to_empty(device="cpu")
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        for sub in module.modules():
            if sub is not module and hasattr(sub, "reset_parameters"):
                sub.reset_parameters()


def convert_checkpoint(name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An original implementation's state dict (its own key layout) -> zoo's layout."""
    spec = get_spec(name)
    return get_family(spec.family).convert(spec, dict(state_dict))  # type: ignore[attr-defined]


def ensure_known(name: str) -> None:
    if split_name(name)[0] not in catalog().entries:
        raise UnknownModelError(split_name(name)[0], catalog().entries)
