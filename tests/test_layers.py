"""zoo.layers.vit_head: the token pooling and global_pool checks the ViT-style families share."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from zoo.layers.vit_head import TOKEN_POOLS, check_global_pool, pool_tokens


def _tokens(batch: int = 2, n: int = 5, dim: int = 3) -> torch.Tensor:
    # token i of sample b is filled with 10 * b + i: every pooled value is predictable
    values = 10.0 * torch.arange(batch)[:, None] + torch.arange(n)[None, :]
    return values[:, :, None].expand(batch, n, dim).clone()


@pytest.mark.parametrize("num_prefix_tokens", [0, 1, 2])
def test_pool_tokens_modes(num_prefix_tokens) -> None:
    x = _tokens()
    torch.testing.assert_close(pool_tokens(x, "token", num_prefix_tokens), x[:, 0])
    tail = torch.arange(num_prefix_tokens, 5, dtype=torch.float32).mean()
    expected = (10.0 * torch.arange(2) + tail)[:, None].expand(2, 3)
    torch.testing.assert_close(pool_tokens(x, "avg", num_prefix_tokens), expected)
    assert pool_tokens(x, "", num_prefix_tokens) is x


def test_pool_tokens_refuses_other_pools() -> None:
    with pytest.raises(ValueError, match=r"global_pool must be '', 'token' or 'avg', got 'max'"):
        pool_tokens(_tokens(), "max")


def test_check_global_pool() -> None:
    for pool in TOKEN_POOLS:
        assert check_global_pool(pool) == pool
    with pytest.raises(ValueError, match=r"must be '', 'token' or 'avg', got 'avgmax'"):
        check_global_pool("avgmax")
    # a family's own subset, listed in its order
    assert check_global_pool("", allowed=("token", "")) == ""
    with pytest.raises(ValueError, match=r"^global_pool must be 'token' or '', got 'avg'$"):
        check_global_pool("avg", allowed=("token", ""))
    assert check_global_pool("avg", class_token=False) == "avg"
    with pytest.raises(ValueError, match="needs a class token"):
        check_global_pool("token", class_token=False)


@pytest.mark.parametrize("name, overrides", [
    ("kat_tiny_patch16_224", {"depth": 1, "global_pool": "avg"}),
    ("karat_vit_tiny_g3b", {"depth": 1, "global_pool": "avg", "class_token": False}),
])
def test_vit_families_head(name, overrides) -> None:
    model = zoo.create(name, **overrides).eval()
    prefix = model.num_prefix_tokens
    keys = set(model.state_dict())
    assert {"head.weight", "head.bias"} <= keys  # timm's flat layout, unchanged
    if name.startswith("kat"):
        assert {"fc_norm.weight", "fc_norm.bias"} <= keys
    x = torch.randn(2, prefix + 4, model.embed_dim)
    with torch.no_grad():
        pooled = model.forward_head(x, pre_logits=True)
        torch.testing.assert_close(pooled, model.fc_norm(x[:, prefix:].mean(dim=1)))
        torch.testing.assert_close(model.forward_head(x), model.head(pooled))

        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
        torch.testing.assert_close(model.forward_head(x), pooled)
        model.reset_classifier(0, "")
        assert model.global_pool == "" and model.forward_head(x).shape == x.shape
        model.reset_classifier(7, "avg")
        assert model.get_classifier().out_features == 7 and model.num_classes == 7
        assert model.forward_head(x).shape == (2, 7)
    with pytest.raises(ValueError, match=r"global_pool must be '', 'token' or 'avg', got 'max'"):
        model.reset_classifier(7, "max")
    if prefix:
        model.reset_classifier(7, "token")
        torch.testing.assert_close(model.forward_head(x, pre_logits=True), model.fc_norm(x[:, 0]))
    else:
        with pytest.raises(ValueError, match="needs a class token"):
            model.reset_classifier(7, "token")
    assert model.global_pool in TOKEN_POOLS


def test_ofq_distilled_head() -> None:
    model = zoo.create("ofq_deit_tiny_w4a4", depth=1).eval()
    x = torch.randn(2, 6, model.embed_dim)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(x, pre_logits=True), (x[:, 0] + x[:, 1]) / 2)
        torch.testing.assert_close(model.forward_head(x),
                                   (model.head(x[:, 0]) + model.head_dist(x[:, 1])) / 2)
        model.reset_classifier(0)
        assert isinstance(model.head, nn.Identity) and isinstance(model.head_dist, nn.Identity)
        model.reset_classifier(0, "")
        assert torch.equal(model.forward_head(x), x)
    with pytest.raises(ValueError, match=r"^global_pool must be 'token' or '', got 'avg'$"):
        model.reset_classifier(3, "avg")
    assert model.global_pool == ""
