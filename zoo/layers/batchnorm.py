"""Batch-norm statistics re-estimation ("post-statistics of batch normalization").

The running BN statistics stored in a supernet were accumulated over many different children;
they are not valid for any one child.  Following Universally Slimmable Networks
(arXiv:1903.05134, Sec. 3.3), BigNAS (arXiv:2003.11142) and AttentiveNAS' evaluation
(``test_attentive_nas.py``: ``reset_running_stats_for_calibration`` + 64 forward batches of
training images), they are re-estimated per child: reset the running statistics, then run the
model in BN-training mode over a few batches with a *cumulative* average (``momentum=None``),
without gradient.  Everything else stays in eval mode.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from zoo.errors import CalibrationError


def iter_bn(model: nn.Module) -> Iterator[nn.modules.batchnorm._BatchNorm]:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            yield m


def reset_bn_statistics(model: nn.Module) -> int:
    """Zero the running means, set variances to one and counters to zero; return #BN layers."""
    n = 0
    for bn in iter_bn(model):
        bn.reset_running_stats()
        n += 1
    return n


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Any], num_batches: int) -> int:
    """Reset BN statistics and re-estimate them as the cumulative average over ``num_batches``
    batches (images, or ``(images, labels)`` pairs).  Returns the number of batches used; the
    model is left in eval mode with its BN momenta restored."""
    if num_batches < 1:
        raise CalibrationError(f"num_batches must be >= 1, got {num_batches}")
    bns = list(iter_bn(model))
    if not bns:
        raise CalibrationError(f"{type(model).__name__} has no BatchNorm layers to calibrate")
    momenta = [bn.momentum for bn in bns]
    device = next(model.parameters()).device
    model.eval()
    reset_bn_statistics(model)
    for bn in bns:
        bn.momentum = None  # cumulative moving average: every batch weighs the same
        bn.train()
    used = 0
    try:
        for batch in batches:
            if used >= num_batches:
                break
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(images.to(device))
            used += 1
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.eval()
    if used == 0:
        raise CalibrationError("no calibration batches: the data is empty")
    return used
