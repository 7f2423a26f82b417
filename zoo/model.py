"""The model API every zoo model has: timm's.

``pretrained_cfg`` (with ``pool_size``), ``num_features`` / ``head_hidden_size``,
``forward_features`` / ``forward_head(pre_logits)``, ``forward_intermediates`` /
``prune_intermediate_layers``, ``set_grad_checkpointing``, ``group_matcher``,
``no_weight_decay``, ``get_classifier`` / ``reset_classifier``, and ``features_only`` through
timm's own feature wrappers (:func:`features_only`), so zoo models drop into timm-based code
unchanged.  docs/timm.md describes the contract and what each family does.

No ``from __future__ import annotations`` here: TorchScript and ``torch.fx`` read the
signatures of these methods, and they need real annotations, not strings.
"""
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, TYPE_CHECKING, Tuple, Union, cast

import torch
from timm.layers import ClassifierHead, NormMlpClassifierHead, register_notrace_function
from timm.models import checkpoint
from timm.models._features import FeatureGetterNet, FeatureHookNet, feature_take_indices
from timm.models._features_fx import FeatureGraphNet
from torch import nn

from zoo.errors import InputShapeError, ZooError

IndicesT = Optional[Union[int, List[int]]]

#: ``feature_cls`` values of :func:`features_only` (timm's names)
FEATURE_CLASSES = ("getter", "hook", "fx")


class ZooModel(nn.Module):
    """Base class of zoo's image classifiers.

    Subclasses set ``num_classes``, ``num_features``, ``head_hidden_size``, ``in_chans`` and
    ``feature_info`` and implement ``forward_features`` (image -> unpooled features),
    ``forward_head`` (features -> logits, or pooled features with ``pre_logits=True``),
    ``forward_intermediates``, ``prune_intermediate_layers``, ``get_classifier`` and
    ``reset_classifier``.  Attributes are not annotated at class level: TorchScript would read
    such annotations as the attributes' types.  They are declared for the type checker only,
    under ``if TYPE_CHECKING:`` (never run, so ``__annotations__`` stays empty).
    """

    # TorchScript compiles properties unless told not to; default_cfg is a Python dict
    __jit_unused_properties__ = ["default_cfg"]

    if TYPE_CHECKING:  # for the type checker only (never run, so TorchScript does not see them)
        num_classes: int
        num_features: int
        head_hidden_size: int
        in_chans: int
        feature_info: List[Dict[str, Any]]

    def __init__(self) -> None:
        super().__init__()
        self.pretrained_cfg: Dict[str, Any] = {}
        self.grad_checkpointing = False

    @property
    def default_cfg(self) -> Dict[str, Any]:
        """timm's legacy name for ``pretrained_cfg``."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, value: Dict[str, Any]) -> None:
        self.pretrained_cfg = value

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        raise NotImplementedError

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in the backward pass instead of storing them (per stage or
        block: ``torch.utils.checkpoint`` through timm's ``checkpoint_seq``/``checkpoint``)."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        first = self.pretrained_cfg.get("first_conv", "")
        return {"stem": rf"^{first}" if first else r"^$", "blocks": r".*"}

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return set()

    @torch.jit.ignore
    def feature_map_size(self, img_size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        """Spatial size of ``forward_features`` for an ``img_size`` input (timm's
        ``pool_size``), or None when the features are not a map (token sequences).  Default:
        ``ceil(size / reduction)`` of the last ``feature_info`` level (padded convs and
        pools); families with unpadded layers override it."""
        info = getattr(self, "feature_info", None)
        if not info:
            return None
        r = info[-1]["reduction"]
        return math.ceil(img_size[0] / r), math.ceil(img_size[1] / r)

    @torch.jit.ignore
    def _input_size_changed(self, img_size: Tuple[int, int]) -> None:
        """Keep ``pretrained_cfg`` in step after ``set_input_size`` (input and pool size)."""
        cfg = self.pretrained_cfg
        if "input_size" in cfg:
            cfg["input_size"] = (cfg["input_size"][0], *img_size)
            pool = self.feature_map_size(img_size)
            if pool is not None:
                cfg["pool_size"] = pool

    @torch.jit.ignore
    def as_backbone(self) -> None:
        """Called by :func:`features_only` before wrapping (a family whose classifier forward
        differs from its backbone forward switches here)."""


def set_img_size(model: nn.Module, img_size: Union[int, Tuple[int, int]]) -> None:
    """``img_size=`` of ``zoo.create`` / ``timm.create_model``: the model's ``set_input_size``
    (positional embeddings resampled), or :class:`~zoo.errors.UnknownArgumentError` for models
    that take any size (CNNs) or whose layers are tied to one token count; a size that is not
    one or two whole positive sides is a :class:`~zoo.errors.SpecError`."""
    from zoo.errors import SpecError, UnknownArgumentError
    from zoo.spec import MAX_SIDE, short_repr

    cfg = getattr(model, "pretrained_cfg", {})
    name = cfg.get("architecture") or type(model).__name__
    size = (img_size, img_size) if isinstance(img_size, int) else \
        tuple(img_size) if isinstance(img_size, (tuple, list)) else ()
    if len(size) != 2 or not all(type(s) is int and 0 < s <= MAX_SIDE for s in size):
        raise SpecError(f"img_size must be a side or (height, width) in whole pixels from 1 to "
                        f"{MAX_SIDE}, got {short_repr(img_size)}", model=name)
    setter = getattr(model, "set_input_size", None)
    if not callable(setter):
        why = ("its layers are tied to the token count of its input size"
               if cfg.get("fixed_input_size") else "it takes any input size as it is")
        raise UnknownArgumentError(f"{name} takes no img_size argument: {why}")
    setter(img_size=size)


def complete_pretrained_cfg(model: nn.Module, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The parts of timm's ``pretrained_cfg`` that depend on the built model: ``pool_size``
    (``forward_features``' spatial size at ``input_size``) and ``fixed_input_size`` (off for a
    model built with ``dynamic_img_size``)."""
    size = getattr(model, "feature_map_size", None)
    pool = size(tuple(cfg["input_size"][1:])) if callable(size) else None
    if pool is not None:
        cfg["pool_size"] = tuple(pool)
    if getattr(model, "dynamic_img_size", False):  # e.g. pos-embed interpolation asked for
        cfg["fixed_input_size"] = False
    return cfg


# -- classifier helpers ----------------------------------------------------------------------------

def linear_or_identity(in_features: int, num_classes: int, parent: Optional[nn.Module] = None
                       ) -> nn.Module:
    """The classifier timm uses: a Linear, or Identity when ``num_classes == 0``.  With
    ``parent`` (the model), on its device, in its floating dtype and in its train/eval mode, as
    timm's ``reset_classifier`` keeps a model's head where the model is."""
    if num_classes <= 0:
        head: nn.Module = nn.Identity()
    else:
        ref = first_param(parent) if parent is not None else None
        head = nn.Linear(in_features, num_classes) if ref is None else nn.Linear(
            in_features, num_classes, device=ref.device,
            dtype=ref.dtype if ref.is_floating_point() else None)
    if parent is not None:
        head.train(parent.training)
    return head


def head_like(parent: nn.Module, make: Callable[[], nn.Module]) -> nn.Module:
    """``make()`` built where ``parent`` is: on its device (meta included), in its floating
    dtype and train/eval mode, as timm's ``reset_classifier`` keeps a model's head."""
    ref = first_param(parent)
    if ref is None:
        head = make()
    else:
        with torch.device(ref.device):
            head = make()
        if ref.is_floating_point():
            head = head.to(dtype=ref.dtype)
    return head.train(parent.training)


def first_param(module: nn.Module) -> Optional[torch.Tensor]:
    """A parameter of ``module`` (device/dtype reference for rebuilt heads), or None."""
    return next(module.parameters(), None)


class ClassifierHeadModel(ZooModel):
    """A ZooModel whose ``head`` is timm's :class:`~timm.layers.ClassifierHead` (global pooling,
    dropout, ``fc``) or :class:`~timm.layers.NormMlpClassifierHead`: the CNN families' shared
    ``forward_head`` / ``get_classifier`` / ``reset_classifier``.  ``head_hidden_size`` follows
    the pooling (``catavgmax`` doubles it)."""

    if TYPE_CHECKING:  # for the type checker only (never run, so TorchScript does not see it)
        head: Union[ClassifierHead, NormMlpClassifierHead]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        ref = first_param(self)
        dd: Dict[str, Any] = {} if ref is None else {"device": ref.device, "dtype": ref.dtype}
        self.head.reset(num_classes, pool_type=global_pool, in_features=self.num_features, **dd)
        self.head_hidden_size = self.head.num_features


# -- input checks (kept when fx traces: wrapped as graph leaves) ----------------------------------

@register_notrace_function
def check_input_size(x: torch.Tensor, expected: Tuple[int, int], model: str) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is (B, C, *expected)."""
    if x.ndim != 4 or tuple(x.shape[-2:]) != tuple(expected):
        raise InputShapeError(
            f"{model} takes inputs of size {expected[0]}x{expected[1]} only (its positional "
            f"embedding/token layout is fixed), got shape {tuple(x.shape)}. Resize the input to "
            f"{expected[0]}x{expected[1]} (timm.data.resolve_data_config(model=model) with "
            "create_transform does), or build the model for your size: zoo.create(name, "
            "img_size=(h, w)) where its family can resample the positional embedding, else a "
            "spec variant with that data.input_size (and arch.img_size where the arch has one).")


@register_notrace_function
def check_image(x: torch.Tensor, in_chans: int, min_size: int, multiple: int = 1) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is (B, in_chans, H, W) with H, W >=
    ``min_size`` and multiples of ``multiple``."""
    if x.ndim != 4 or x.shape[1] != in_chans or min(x.shape[-2:]) < min_size \
            or x.shape[-2] % multiple or x.shape[-1] % multiple:
        extra = f" and multiples of {multiple}" if multiple > 1 else ""
        raise InputShapeError(
            f"expected images (B, {in_chans}, H, W) with H, W >= {min_size}{extra}, got shape "
            f"{tuple(x.shape)}")


# -- intermediates -----------------------------------------------------------------------------------

def check_output_fmt(output_fmt: str, allowed: Sequence[str] = ("NCHW",)) -> None:
    if output_fmt not in allowed:
        raise ValueError(f"output_fmt must be {' or '.join(repr(a) for a in allowed)}, "
                         f"got {output_fmt!r}")


class StepChainModel(ZooModel):
    """A ZooModel whose ``forward_features`` is a chain of single-input modules, named by
    :meth:`feature_steps` (e.g. ``["stem", "stages.0", ..., "final_conv"]``), and whose
    ``feature_info`` levels are outputs of some of those steps.

    Provides timm's ``forward_intermediates`` (outputs of the levels' steps, ``stop_early``
    stopping after the deepest one asked for) and ``prune_intermediate_layers`` (the steps after
    the deepest kept level become ``nn.Identity``, so ``forward_features`` ends there; the head is
    removed with ``reset_classifier(0, '')`` plus :meth:`prune_head_extras`).  Steps run under
    gradient checkpointing when it is on (``set_grad_checkpointing``), each as a whole, except
    the first.
    """

    @torch.jit.ignore
    def feature_steps(self) -> List[str]:
        """Names of the chain's steps in forward order (submodule paths)."""
        raise NotImplementedError

    def step_modules(self) -> List[nn.Module]:
        """The modules of :meth:`feature_steps`, in order."""
        return [self.get_submodule(n) for n in self.feature_steps()]

    @torch.jit.ignore
    def prune_steps_after(self, step: int) -> None:
        """Make every step after ``step`` an identity."""
        for name in self.feature_steps()[step + 1:]:
            replace_module(self, name, nn.Identity())

    def _tap_steps(self) -> List[int]:
        names = self.feature_steps()
        try:
            return [names.index(d["module"]) for d in self.feature_info]
        except ValueError:
            raise ZooError(f"{type(self).__name__}: feature_info modules "
                           f"{[d['module'] for d in self.feature_info]} are not all steps of "
                           f"{names}") from None

    def _run_step(self, i: int, step: nn.Module, x: torch.Tensor) -> torch.Tensor:
        # a step is recomputed as a whole: steps start with a conv, while checkpointing the
        # in-place activations inside them one by one would modify inputs saved for recompute
        if self.grad_checkpointing and i > 0 and not torch.jit.is_scripting():
            return checkpoint(step, x)
        return step(x)

    def run_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``forward_features``' chain, with gradient checkpointing when enabled."""
        for i, step in enumerate(self.step_modules()):
            x = self._run_step(i, step, x)
        return x

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """What ``forward_features`` does to the image before the first step (checks, resize)."""
        return x

    @torch.jit.ignore
    def forward_intermediates(
            self, x: torch.Tensor, indices: IndicesT = None, norm: bool = False,
            stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """timm's ``forward_intermediates``: the ``feature_info`` levels' maps (all, the last
        ``n`` for an int, or those listed), and unless ``intermediates_only`` the
        ``forward_features`` output.  ``norm`` is accepted for timm's interface (these networks
        have no final norm); ``output_fmt`` 'NCHW' or 'NHWC'."""
        check_output_fmt(output_fmt, ("NCHW", "NHWC"))
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        taps = self._tap_steps()
        wanted = {taps[i]: i for i in take}
        last = taps[max_index] if stop_early or intermediates_only else None
        x = self.prepare_input(x)
        out: Dict[int, torch.Tensor] = {}
        for i, step in enumerate(self.step_modules()):
            x = self._run_step(i, step, x)
            if i in wanted:
                out[wanted[i]] = x if output_fmt == "NCHW" else x.permute(0, 2, 3, 1)
            if last is not None and i >= last:
                break
        intermediates = [out[i] for i in take]
        if intermediates_only:
            return intermediates
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        """Keep the network up to the deepest level in ``indices``; returns the levels' indices
        (absolute), for :meth:`forward_intermediates`."""
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        names, taps = self.feature_steps(), self._tap_steps()
        self.prune_steps_after(taps[max_index])
        if taps[max_index] + 1 < len(names):
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head:
            self.prune_head_extras()
            self.reset_classifier(0, "")
        return take

    @torch.jit.ignore
    def prune_head_extras(self) -> None:
        """Remove head layers that ``reset_classifier(0, '')`` keeps (e.g. a conv after the
        pooling); none by default."""


def replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Set the submodule ``name`` (dotted path) of ``root`` to ``module``."""
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def tokens_to_map(x: torch.Tensor, grid: Tuple[int, int], num_prefix_tokens: int) -> torch.Tensor:
    """(B, prefix + H*W, C) tokens -> (B, C, H, W) map of the patch tokens."""
    x = x[:, num_prefix_tokens:]
    return x.reshape(x.shape[0], grid[0], grid[1], -1).permute(0, 3, 1, 2).contiguous()


# -- features_only -----------------------------------------------------------------------------------

def _nchw(maps: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: v.permute(0, 3, 1, 2) for k, v in maps.items()}


class NhwcFeatureGraphNet(FeatureGraphNet):
    """timm's ``FeatureGraphNet`` (a ``torch.fx`` graph cut at the levels' modules) for a model
    whose levels are NHWC maps (Swin): the maps come out NCHW, as ``forward_intermediates``
    gives them (timm's own returns them as the modules do)."""

    def forward(self, x: torch.Tensor):  # the return type as TorchScript infers it
        out = _nchw(self.graph_module(x))
        if self.return_dict:
            return out
        return list(out.values())


class NhwcFeatureHookNet(FeatureHookNet):
    """timm's ``FeatureHookNet`` (forward hooks on the levels' modules) for a model whose levels
    are NHWC maps (Swin): the maps come out NCHW, as ``forward_intermediates`` gives them."""

    def forward(self, x: torch.Tensor) -> Any:
        out = super().forward(x)
        if isinstance(out, dict):
            return _nchw(out)
        return [v.permute(0, 3, 1, 2) for v in out]


def features_only(model: nn.Module, out_indices: Any = None, feature_cls: Any = None,
                  **feature_cfg: Any) -> nn.Module:
    """Wrap ``model`` in one of timm's feature extractors, as timm's ``features_only=True`` does.

    Args:
        out_indices: levels of ``model.feature_info`` (indices, negative from the end, or an
            int ``n``: the last ``n``); default: the family's ``default_out_indices``, else all.
        feature_cls: ``'getter'`` (default; timm's ``FeatureGetterNet``: the model's
            ``forward_intermediates`` after pruning it), ``'hook'`` (``FeatureHookNet``: forward
            hooks on the levels' modules, the model unchanged) or ``'fx'`` (``FeatureGraphNet``:
            a ``torch.fx`` graph cut at the levels' modules); or one of those classes.  Models
            whose levels are NHWC maps (``feature_fmt``, Swin) get the hook and fx taps
            permuted to NCHW; those whose levels are token sequences take only ``'getter'``.
        feature_cfg: further arguments of the class (``norm``, ``output_fmt``, ...).
    """
    from timm.models._builder import pretrained_cfg_for_features

    name = getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__
    if not getattr(model, "feature_info", None):
        hint = getattr(model, "features_only_hint", "")
        raise ZooError(f"{name} does not support features_only: it declares no feature_info "
                       "(multi-scale feature maps)" + (f"; {hint}" if hint else ""))
    net = cast(ZooModel, model)  # every zoo model is one (and this one declares feature_info)
    classes = {"getter": FeatureGetterNet, "hook": FeatureHookNet, "fx": FeatureGraphNet}
    feature_cls = feature_cls or feature_cfg.pop("feature_cls", None) or "getter"
    if isinstance(feature_cls, str):
        if feature_cls.lower() not in classes:
            raise ZooError(f"feature_cls must be one of {', '.join(FEATURE_CLASSES)} (or one of "
                           f"timm's feature classes), got {feature_cls!r}")
        feature_cls = classes[feature_cls.lower()]
    level_fmt = getattr(model, "feature_fmt", "NCHW")
    if feature_cls is not FeatureGetterNet and level_fmt != "NCHW":
        if level_fmt != "NHWC" or feature_cls not in (FeatureHookNet, FeatureGraphNet):
            raise ZooError(f"{name}: feature_cls={feature_cls.__name__} would return its "
                           f"{level_fmt} outputs as they are; use feature_cls='getter' (the "
                           "default), whose forward_intermediates gives NCHW maps")
        # the levels' modules return NHWC maps (Swin): the same taps, permuted to NCHW
        feature_cls = NhwcFeatureHookNet if feature_cls is FeatureHookNet else NhwcFeatureGraphNet
    if out_indices is None:
        out_indices = getattr(model, "default_out_indices", None)
    if out_indices is None:
        out_indices = tuple(range(len(net.feature_info)))
    if isinstance(out_indices, list):
        out_indices = tuple(out_indices)
    cfg = net.pretrained_cfg
    net.as_backbone()
    if issubclass(feature_cls, FeatureHookNet):
        feature_cfg.setdefault("no_rewrite", True)
    elif issubclass(feature_cls, FeatureGraphNet):
        net.reset_classifier(0, "")
    wrapper = feature_cls(model, out_indices=out_indices, **feature_cfg)
    wrapper.pretrained_cfg = pretrained_cfg_for_features(cfg)
    wrapper.default_cfg = wrapper.pretrained_cfg
    wrapper.in_chans = getattr(model, "in_chans", None)
    return wrapper


__all__ = ["ClassifierHeadModel", "FEATURE_CLASSES", "StepChainModel", "ZooModel",
           "check_image", "complete_pretrained_cfg", "head_like", "set_img_size", "check_input_size", "check_output_fmt", "features_only", "first_param",
           "linear_or_identity", "replace_module", "tokens_to_map"]
