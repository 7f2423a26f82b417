"""torch.compile works for every family: one variant of each (the smallest) compiled on CPU
gives the eager model's outputs.

The comparison runs in float64: quantized families (OFQ) round ~10^7 values per forward and
some lie within float32 rounding error of a rounding boundary, so any reordering of float32
arithmetic (which inductor's fusion does) legitimately flips a few decisions and moves the
logits by O(0.1) (see the OFQ golden vectors' notes).  In float64 every family must match
eager to 1e-9.  Speedups of the float32 compiled models are reported by scripts/bench.py, not
asserted.
"""
from __future__ import annotations

import pytest
import torch

import zoo
from tests.test_perf import family_params, representative


@pytest.mark.slow
@pytest.mark.parametrize("family", family_params())
def test_compiled_matches_eager(family: str) -> None:
    torch._dynamo.reset()
    name = representative(family)
    torch.manual_seed(0)
    spec = zoo.get_spec(name)
    model = zoo.create(name).eval().double()
    x = torch.randn(2, *spec.data.input_size, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    compiled = torch.compile(model, fullgraph=False)
    with torch.inference_mode():
        torch.manual_seed(1)  # SReT's sliced attention draws torch.randperm in eval mode
        eager = model(x)
        torch.manual_seed(1)
        out = compiled(x)
        torch.manual_seed(1)
        again = compiled(x)  # the cached graph, not only the first (compiling) call
    assert out.shape == eager.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, eager, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(again, eager, rtol=1e-9, atol=1e-9)
