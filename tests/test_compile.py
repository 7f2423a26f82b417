"""torch.compile works for every family: one variant of each (the smallest by reported
parameters) compiled on CPU matches eager within tolerance."""
from __future__ import annotations

import pytest
import torch

import zoo


def _smallest_per_family() -> list[str]:
    out = []
    for family in zoo.list_families():
        names = zoo.list_models(family=family)
        if not names:
            continue
        out.append(min(names, key=lambda n: (zoo.get_spec(n).reported.params_m or 1e9)
                       if zoo.get_spec(n).reported else 1e9))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", _smallest_per_family())
def test_compiled_matches_eager(name: str) -> None:
    torch.manual_seed(0)
    spec = zoo.get_spec(name)
    model = zoo.create(name).eval()
    x = torch.randn(1, *spec.data.input_size)
    with torch.inference_mode():
        torch.manual_seed(1)
        eager = model(x)
        compiled = torch.compile(model)
        torch.manual_seed(1)
        out = compiled(x)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)
