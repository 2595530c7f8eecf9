"""Full softmax attention (attnzoo.ops.softmax): the sdpa path's mask folding, zeros for queries that see nothing,
dropout, the registry alias "softmax" and the layer. The contract (tests/test_contract.py) compares sdpa against
the reference on every case of the spec."""

from __future__ import annotations

import pytest
import torch

import attnzoo
from attnzoo.layers import SoftmaxAttention
from attnzoo.models import mixer_factory
from attnzoo.ops import softmax_attention
from attnzoo.ops.dropin import DropIn
from attnzoo.ops.softmax.sdpa import combined_mask
from attnzoo.registry import CallFacts, NotSupportedError

D = torch.float64


def qkv(b: int = 2, hq: int = 4, hkv: int = 4, nq: int = 6, nk: int = 6, d: int = 8, grad: bool = False):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, h, n, d, generator=g, dtype=D).requires_grad_(grad)
            for h, n in ((hq, nq), (hkv, nk), (hkv, nk))]


def explicit(q, k, v, visible):
    """Dense attention over ``visible`` pairs, written out, zeros where a query sees nothing."""
    scores = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).masked_fill(~visible, float("-inf"))
    probs = torch.nan_to_num(scores.softmax(-1), nan=0.0)
    return probs @ v


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_causal_is_bottom_right_aligned(impl: str) -> None:
    q, k, v = qkv(nq=3, nk=8)
    visible = torch.arange(5, 8)[:, None] >= torch.arange(8)[None, :]  # query i sits at position 8 - 3 + i
    torch.testing.assert_close(softmax_attention(q, k, v, is_causal=True, impl=impl), explicit(q, k, v, visible))
    decode = softmax_attention(q[:, :, -1:], k, v, is_causal=True, impl=impl)  # one query sees its whole cache
    torch.testing.assert_close(decode, softmax_attention(q[:, :, -1:], k, v, impl=impl))


def test_sdpa_keeps_its_own_causal_flag_only_where_it_agrees() -> None:
    q, k, _ = qkv()
    assert combined_mask(q, k, True, DropIn())[:2] == (None, True)  # Nq == Nk: SDPA's flash causal path
    q1, k1, _ = qkv(nq=1, nk=9)
    assert combined_mask(q1, k1, True, DropIn(cross=True))[:2] == (None, False)  # a decode step: no mask at all
    q3, k3, _ = qkv(nq=3, nk=9)
    mask, flag, _ = combined_mask(q3, k3, True, DropIn(cross=True))
    assert flag is False and mask.dtype == torch.bool and mask.shape[-2:] == (3, 9)


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_queries_that_see_nothing_give_zeros_and_finite_gradients(impl: str) -> None:
    q, k, v = qkv(grad=True)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1] = True  # every key of the second sequence is padding
    mask = torch.zeros(6, 6, dtype=D)
    mask[2] = float("-inf")  # query 2 of every sequence: an additive mask hiding every key
    out = softmax_attention(q, k, v, is_causal=True, key_padding_mask=padding, attn_mask=mask, impl=impl)
    assert (out[1] == 0).all() and (out[:, :, 2] == 0).all() and out[0, :, 3].abs().sum() > 0
    out.square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert (q.grad[1] == 0).all() and (k.grad[1] == 0).all()


def test_weights_need_the_reference_and_auto_picks_sdpa_otherwise() -> None:
    q, k, v = qkv()
    with pytest.raises(NotSupportedError, match="return_weights=True is not supported"):
        softmax_attention(q, k, v, return_weights=True, impl="sdpa")
    out, weights = softmax_attention(q, k, v, return_weights=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 6, dtype=D))
    torch.testing.assert_close(out, softmax_attention(q, k, v, impl="sdpa"))
    assert "sdpa: CHOSEN" in attnzoo.explain("softmax_attention", CallFacts.of([q], features=["gqa", "attn_mask"]))


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_dropout_is_applied_and_unbiased(impl: str) -> None:
    q, k, v = qkv(b=1, hq=1, hkv=1, nq=4, nk=4)
    exact = softmax_attention(q, k, v, impl=impl)
    torch.manual_seed(0)
    runs = torch.stack([softmax_attention(q, k, v, dropout_p=0.5, impl=impl) for _ in range(4000)])
    assert (runs[0] - exact).abs().max() > 1e-3
    torch.testing.assert_close(runs.mean(0), exact, atol=0.1, rtol=0)


def test_varlen_is_block_diagonal() -> None:
    q, k, v = qkv(b=1, nq=10, nk=10)
    cu = torch.tensor([0, 4, 10])
    out = softmax_attention(q, k, v, is_causal=True, cu_seqlens=cu, impl="sdpa")
    torch.testing.assert_close(out[:, :, :4], softmax_attention(q[:, :, :4], k[:, :, :4], v[:, :, :4], is_causal=True))
    torch.testing.assert_close(out[:, :, 4:], softmax_attention(q[:, :, 4:], k[:, :, 4:], v[:, :, 4:], is_causal=True))


def test_alias_softmax_builds_the_registered_layer_and_the_mixer_uses_it() -> None:
    assert attnzoo.registry.get_variant("softmax").name == "softmax_attention"
    assert attnzoo.variants(family="full")[0].name == "softmax_attention"
    layer = attnzoo.create("softmax", dim=16, num_heads=2).double()
    assert type(layer) is SoftmaxAttention and layer.is_causal
    built = mixer_factory("softmax", 16, {"num_heads": 2})()
    assert type(built) is SoftmaxAttention and built.num_heads == 2
    x = torch.randn(2, 7, 16, dtype=D)
    q, k, v = layer.qkv(x).view(2, 7, 3, 2, 8).permute(2, 0, 3, 1, 4)
    visible = torch.ones(7, 7, dtype=torch.bool).tril()
    expected = layer.proj(explicit(q, k, v, visible).transpose(1, 2).reshape(2, 7, 16))
    torch.testing.assert_close(layer(x), expected)
    with pytest.raises(ValueError, match="already registered"):
        attnzoo.registry.register(attnzoo.registry.get_variant("softmax"))
