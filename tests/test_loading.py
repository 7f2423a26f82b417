"""zoo.loading: the strict state-dict check's report and loading into meta-built modules."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.errors import StateDictMismatchError
from zoo.loading import check_state_dict, load_into, parameters_on_meta

_ADVICE = ("\nCheck that the weights belong to this model (and were converted with `zoo convert` if they "
           "come from the original implementation).")


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))


def _good() -> dict[str, torch.Tensor]:
    return {"fc.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2), "steps": torch.tensor(4)}


def _message(state_dict: dict[str, torch.Tensor]) -> str:
    with pytest.raises(StateDictMismatchError) as e:
        check_state_dict(_Small(), state_dict, "w.safetensors")
    return str(e.value)


def test_every_kind_of_mismatch_is_named_with_its_label() -> None:
    sd = _good()
    del sd["fc.bias"]
    sd["fc.weight"] = torch.ones(3, 3)
    sd["steps"] = torch.tensor([True])[0]
    sd["head.weight"] = torch.ones(1)
    assert _message(sd) == (
        "w.safetensors does not fit the model, nothing was loaded:\n"
        "  missing keys: fc.bias\n"
        "  unexpected keys: head.weight\n"
        "  wrong shapes: fc.weight: checkpoint (3, 3) vs model (2, 3)\n"
        "  wrong dtypes: steps: checkpoint torch.bool vs model torch.int64" + _ADVICE)


@pytest.mark.parametrize("count", [9, 10])
def test_a_long_list_is_cut_after_eight_with_the_count(count: int) -> None:
    sd = _good()
    for i in range(count):
        sd[f"extra.{i}"] = torch.ones(1)
    shown = ", ".join(f"extra.{i}" for i in range(8))
    assert _message(sd) == ("w.safetensors does not fit the model, nothing was loaded:\n"
                            f"  unexpected keys: {shown}, ... ({count} in all)" + _ADVICE)


def test_exactly_eight_are_all_shown_without_a_count() -> None:
    sd = _good()
    for i in range(8):
        sd[f"extra.{i}"] = torch.ones(1)
    assert _message(sd).splitlines()[1] == "  unexpected keys: " + ", ".join(f"extra.{i}" for i in range(8))


def test_floating_point_precisions_are_not_a_mismatch_and_are_cast_on_load() -> None:
    sd = _good()
    sd["fc.weight"] = torch.full((2, 3), 0.5, dtype=torch.float16)
    with parameters_on_meta():
        model = _Small()
    load_into(model, sd, "w")
    assert model.fc.weight.dtype == torch.float32
    assert torch.equal(model.fc.weight, torch.full((2, 3), 0.5))
    assert model.steps.item() == 4


def test_integer_for_float_is_a_dtype_mismatch() -> None:
    sd = _good()
    sd["fc.bias"] = torch.zeros(2, dtype=torch.long)
    assert "  wrong dtypes: fc.bias: checkpoint torch.int64 vs model torch.float32" in _message(sd)


def test_a_matching_state_dict_passes_and_fills_every_meta_parameter() -> None:
    with parameters_on_meta():
        model = _Small()
    assert model.fc.weight.device.type == "meta"
    load_into(model, _good(), "w")
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    assert torch.equal(model.fc.weight, torch.ones(2, 3))


def test_tensors_left_on_meta_are_refused() -> None:
    class _Tied(nn.Module):
        """A parameter outside the state dict (a non-persistent buffer stays on meta here)."""

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(1, 1)
            for i in range(10):
                self.register_buffer(f"table{i}", torch.empty(2, device="meta"), persistent=False)

    with parameters_on_meta():
        model = _Tied()
    with pytest.raises(StateDictMismatchError) as e:
        load_into(model, {"fc.weight": torch.ones(1, 1), "fc.bias": torch.ones(1)}, "w")
    assert str(e.value) == f"w: tensors left uninitialized: {[f'table{i}' for i in range(8)]}"


def test_parameters_on_meta_keeps_requires_grad_and_real_buffers_and_nests() -> None:
    with parameters_on_meta():
        with parameters_on_meta():
            inner = nn.Linear(2, 2)
        frozen = nn.Parameter(torch.ones(1), requires_grad=False)
        holder = nn.Module()
        holder.p = frozen
        bn = nn.BatchNorm1d(2)
    after = nn.Linear(1, 1)
    assert inner.weight.device.type == "meta"
    assert holder.p.device.type == "meta" and not holder.p.requires_grad
    assert bn.weight.device.type == "meta" and bn.running_mean.device.type == "cpu"
    assert after.weight.device.type == "cpu"
