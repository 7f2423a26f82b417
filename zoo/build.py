"""Spec -> nn.Module -> weights -> adaptation: ``zoo.create``.

With weights to load, the model is built with its parameters on the meta device (no memory,
no random initialization), then the verified safetensors tensors are assigned into it
strictly.  Buffers are built for real, so non-persistent ones (index tables, grids) are right.
Families are called only through :class:`zoo.families.Family`.
"""
from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.catalog import get_spec, split_name
from zoo.errors import CorruptWeightsError, StateDictMismatchError, UnknownArgumentError
from zoo.families import get_family
from zoo.loading import load_into, materialize, parameters_on_meta
from zoo.model import complete_pretrained_cfg, features_only, set_img_size
from zoo.pretrained_cfg import pretrained_cfg
from zoo.spec import SpecBase
from zoo.weights import WeightsSource, resolve_external, resolve_tag
from zoo.weights.refs import is_hub_reference
from zoo.weights.remote import hub_model
from zoo.weights.resolve import is_reference

log = logging.getLogger("zoo")
StateDict = dict[str, torch.Tensor]


def build_model(spec: SpecBase, *, meta: bool = False, tag: str | None = None) -> nn.Module:
    """Build the architecture of ``spec`` (random init, or parameters on meta), with its
    ``pretrained_cfg``."""
    family = get_family(spec.family)
    if meta:
        with parameters_on_meta():
            model = family.build(spec)
    else:
        model = family.build(spec)
    set_pretrained_cfg(model, spec, tag)
    return model


def set_pretrained_cfg(model: nn.Module, spec: SpecBase, tag: str | None = None) -> None:
    """timm's attribute (on any nn.Module): the spec's fields, completed from the model
    (``pool_size``, a dynamic input size)."""
    setattr(model, "pretrained_cfg", complete_pretrained_cfg(model, pretrained_cfg(spec, tag)))


def convert_checkpoint(name: str | SpecBase, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """An original implementation's state dict (its own key layout) -> zoo's layout."""
    spec = get_spec(name) if isinstance(name, str) else name
    return get_family(spec.family).convert(spec, dict(state_dict))


def _in_classifier(key: str, spec: SpecBase) -> bool:
    return any(key == c or key.startswith(c + ".") for c in spec.data.classifiers)


def adapt_state_dict(spec: SpecBase, state_dict: Mapping[str, torch.Tensor], *,
                     num_classes: int, in_chans: int) -> StateDict:
    """Adapt weights trained for the spec's head / input channels to the requested ones."""
    sd = dict(state_dict)
    if num_classes != spec.data.num_classes:
        for k in [k for k in sd if _in_classifier(k, spec)]:
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


def _resolve_source(spec: SpecBase, tag: str | None, pretrained: bool,
                    weights: str | Path | None) -> WeightsSource | None:
    if weights is not None:
        if is_reference(weights):
            return resolve_external(weights, spec)
        return resolve_tag(spec, str(weights).removeprefix(f"{spec.name}."))
    return resolve_tag(spec, tag) if pretrained else None


def _weights_state_dict(source: WeightsSource, spec: SpecBase) -> StateDict:
    """The source's tensors in the module's layout (the family converts an original layout)."""
    state_dict = source.load(spec)
    if source.layout == "original":
        state_dict = convert_checkpoint(spec, state_dict)
    return state_dict


def create(name: str, pretrained: bool = False, *, weights: str | Path | None = None,
           num_classes: int | None = None, in_chans: int | None = None,
           device: str | torch.device | None = None, dtype: torch.dtype | None = None,
           **overrides: Any) -> nn.Module:
    """Build a zoo model by name, optionally with weights.

    Args:
        name: model name, optionally with a weights tag (``"sret_s.in1k_dist"``), or
            ``"hf-hub:org/repo[@revision]"``: a repo written by zoo, built from the spec its
            config.json carries (validated; no catalog entry needed).
        pretrained: load the tag's (or the model's default tag's) registry weights.
        weights: a tag, ``"hf-hub:org/repo[@revision]"``, or a local ``.safetensors`` file or
            folder written by :func:`zoo.save_pretrained`.  Implies pretrained.
        num_classes: replace the classifier (dropped from loaded weights; 0 = no classifier).
        in_chans: number of input channels; a loaded first conv is adapted as timm does.
        device, dtype: where and in which floating dtype to put the model.
        overrides: architecture fields of the spec to change (validated), e.g. drop_path_rate;
            ``img_size`` (where the model can resample its positional embedding);
            ``features_only=True`` (with optional ``out_indices``, ``feature_cls`` 'getter' /
            'hook' / 'fx' and ``feature_cfg``) returns timm's multi-scale feature extractor
            (:func:`zoo.model.features_only`).
    Unknown keyword arguments raise :class:`UnknownArgumentError` (a ``TypeError``, as timm's
    model tests expect).
    """
    features = {k: overrides.pop(k) for k in ("features_only", "out_indices", "feature_cls",
                                              "feature_cfg") if k in overrides}
    img_size = overrides.pop("img_size", None)
    if is_hub_reference(name):  # a self-describing repo: its own spec, no catalog entry
        hub = hub_model(name)
        spec, tag = hub.spec, None
        if pretrained and weights is None:
            weights = hub.ref  # the weights of the snapshot the spec came from
    else:
        model_name, tag = split_name(name)
        spec = get_spec(model_name)
    _check_overrides(spec, overrides)
    source = _resolve_source(spec, tag, pretrained, weights)
    if source is not None and source.num_classes and source.num_classes != spec.data.num_classes:
        spec = spec.with_overrides(num_classes=source.num_classes)
    weights_spec = spec
    want_classes = spec.data.num_classes if num_classes is None else num_classes
    want_chans = spec.data.in_chans if in_chans is None else in_chans
    if num_classes is not None or in_chans is not None or overrides:
        spec = spec.with_overrides(num_classes=want_classes, in_chans=want_chans, **overrides)
    if source is None:
        model = build_model(spec, tag=tag)
    elif source.layout == "packed":
        if want_classes != weights_spec.data.num_classes or want_chans != weights_spec.data.in_chans:
            raise StateDictMismatchError("packed (deployable) weights cannot be adapted to a new "
                                         "num_classes/in_chans; load the latent weights instead")
        family = get_family(spec.family)
        if not family.supports_packed:
            raise CorruptWeightsError(f"{source.describe()} declares the 'packed' layout, but the "
                                      f"{family.name} family has no packed weights; it is not a "
                                      f"file for {spec.name}")
        state_dict, metadata = source.read()
        source.check_architecture(weights_spec, metadata)
        model = family.load_packed(spec, state_dict)
        set_pretrained_cfg(model, spec, source.tag)
    else:
        state_dict = adapt_state_dict(weights_spec, _weights_state_dict(source, weights_spec),
                                      num_classes=want_classes, in_chans=want_chans)
        model = build_model(spec, meta=True, tag=source.tag)
        if want_classes != weights_spec.data.num_classes:
            _materialize_classifier(model, spec)
            own = model.state_dict()
            state_dict.update({k: own[k] for k in own if _in_classifier(k, spec)})
        load_into(model, state_dict, source.describe())
    if img_size is not None:
        set_img_size(model, img_size)
    if features.pop("features_only", False):
        cfg = dict(features.pop("feature_cfg", None) or {})
        cfg.update(features)  # out_indices / feature_cls given directly win over feature_cfg's
        model = features_only(model, **cfg)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval() if source is not None else model


CREATE_ARGS = ("pretrained", "weights", "num_classes", "in_chans", "device", "dtype",
               "img_size", "features_only", "out_indices", "feature_cls", "feature_cfg")


def _check_overrides(spec: SpecBase, overrides: dict[str, Any]) -> None:
    """Unknown keyword arguments of :func:`create` are a ``TypeError`` (as for any Python
    callable) that suggests the name meant."""
    fields = sorted(type(spec.arch).model_fields)
    unknown = [k for k in overrides if k not in fields]
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, [*CREATE_ARGS, *fields], n=3, cutoff=0.7)
        named.append(repr(key) + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    raise UnknownArgumentError(
        f"zoo.create({spec.name!r}): unknown argument {', '.join(named)}; it takes "
        f"{', '.join(CREATE_ARGS)} and the {spec.family} architecture's fields "
        f"({', '.join(fields)})")


def _materialize_classifier(model: nn.Module, spec: SpecBase) -> None:
    """Give a meta-built model a freshly initialized real classifier (num_classes changed)."""
    for prefix in spec.data.classifiers:
        try:
            module = model.get_submodule(prefix)
        except AttributeError:
            continue
        materialize(module)
