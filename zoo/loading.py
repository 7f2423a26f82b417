"""Putting a state dict into a module: strict checks, meta-device building, in-place assignment.

Used by the core when weights follow a build (the module is built with its parameters on the
meta device and the checked tensors are assigned into it) and by families that build a second
form of a model (OFQ's packed one).
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from zoo.errors import StateDictMismatchError


_ORIGINAL_REGISTER = nn.Module.register_parameter
_patch_lock = threading.Lock()
_patch_users = 0                 # threads inside parameters_on_meta(), all together
_local = threading.local()       # this thread's nesting depth


def _register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
    if getattr(_local, "depth", 0) > 0 and param is not None and param.device.type != "meta":
        param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
    _ORIGINAL_REGISTER(module, name, param)


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create every ``nn.Parameter`` on the meta device inside this block (buffers stay real).

    Initializers then run on meta tensors, i.e. cost nothing; the weights are assigned later.
    Thread-safe: ``nn.Module.register_parameter`` is patched while any thread is inside such a
    block (installed and restored under a lock, so concurrent builds -- ``zoo mirror --jobs`` --
    never leave it patched), and only the threads inside one get meta parameters.
    """
    global _patch_users
    with _patch_lock:
        if _patch_users == 0:
            nn.Module.register_parameter = _register_on_meta  # type: ignore[method-assign, assignment]
        _patch_users += 1
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                nn.Module.register_parameter = _ORIGINAL_REGISTER  # type: ignore[method-assign]


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
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


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Strictly load ``state_dict`` into ``model`` (whose parameters may be on meta)."""
    check_state_dict(model, state_dict, what)
    own = model.state_dict()
    cast = {k: v.to(own[k].dtype) if v.dtype != own[k].dtype else v
            for k, v in state_dict.items()}
    model.load_state_dict(cast, strict=True, assign=True)
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()]
                  if t.device.type == "meta"]
    if still_meta:
        raise StateDictMismatchError(f"{what}: tensors left uninitialized: {still_meta[:8]}")


def materialize(module: nn.Module) -> None:
    """Give a meta-built submodule real, freshly initialized parameters (``reset_parameters``)."""
    module.to_empty(device="cpu")
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
