"""Measure a model: parameters (unique tensors) and MACs (multiply-accumulates).

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls,
attention), which reports FLOPs = 2 x MACs; papers' "FLOPs" columns are usually MACs.  The
count runs on the meta device where the model allows it, so it costs no arithmetic.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


def count_params(model: nn.Module, *, trainable_only: bool = False,
                 as_original: bool = False) -> int:
    """Number of parameters, each shared tensor counted once.

    ``as_original``: count as the original implementation does, i.e. also the buffers that it
    registers as (frozen) parameters; a module names their attribute names in
    ``original_parameter_buffers`` (e.g. OFQ's constant ``clip_val``)."""
    seen, total = set(), 0
    for p in model.parameters():
        if trainable_only and not p.requires_grad:
            continue
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
    if as_original and not trainable_only:
        for module in model.modules():
            for name in getattr(module, "original_parameter_buffers", ()):
                buf = module._buffers.get(name)
                if buf is not None and id(buf) not in seen:
                    seen.add(id(buf))
                    total += buf.numel()
    return total


def count_macs(model: nn.Module, input_size: tuple[int, int, int], *, batch_size: int = 1,
               on_meta: bool = True) -> int:
    """Multiply-accumulates of one forward pass at ``input_size`` (C, H, W), per image."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    target = model
    device = torch.device("cpu")
    if on_meta:
        try:
            target = copy.deepcopy(model).to("meta")
            device = torch.device("meta")
        except Exception:  # a module that cannot live on meta: count on CPU
            target, device = model, torch.device("cpu")
    target.eval()
    x = torch.zeros(batch_size, *input_size, device=device)
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            target(x)
    except (NotImplementedError, RuntimeError):
        if device.type != "meta":
            raise
        return count_macs(model, input_size, batch_size=batch_size, on_meta=False)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // batch_size


@dataclass(frozen=True)
class Measurement:
    params: int
    macs: int

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def macs_m(self) -> float:
        return self.macs / 1e6


def measure(model: nn.Module, input_size: tuple[int, int, int]) -> Measurement:
    return Measurement(count_params(model), count_macs(model, input_size))
