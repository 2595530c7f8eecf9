"""The drop-in features of sequence ops (attnzoo.ops.dropin) checked against definitions written out another way:
grouped KV heads are repeated heads, a decode step is the last rows of the full computation, packed sequences are
separate calls, key padding is a boolean mask, a boolean mask is an additive -inf mask, the weights are the
probabilities the output is made of, dropout drops those probabilities. These pin the oracle that the contract
then compares every implementation against."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnzoo.ops import sliding_window_attention
from attnzoo.registry import NotSupportedError


def _t(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


def swa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> torch.Tensor:  # noqa: ANN003
    return sliding_window_attention(q, k, v, **{"window": 5, "impl": "reference", **kwargs})


@pytest.mark.parametrize("impl", ["reference", "tiled"])
def test_grouped_kv_heads_are_repeated_heads(impl: str) -> None:
    q, k, v = _t(2, 6, 30, 8), _t(2, 2, 30, 8), _t(2, 2, 30, 8)
    repeated = [t.repeat_interleave(3, dim=1) for t in (k, v)]
    torch.testing.assert_close(swa(q, k, v, enable_gqa=True, impl=impl), swa(q, *repeated), atol=1e-12, rtol=0)


def test_grouped_kv_heads_need_enable_gqa() -> None:
    q, k = _t(1, 4, 10, 8), _t(1, 2, 10, 8)
    with pytest.raises(ValueError, match="enable_gqa=True"):
        swa(q, k, k)
    with pytest.raises(ValueError, match="a multiple of the key's"):
        swa(_t(1, 3, 10, 8), k, k, enable_gqa=True)


@pytest.mark.parametrize(("causal", "window", "sinks"), [(True, 6, 0), (True, 3, 2), (False, 7, 1)])
def test_queries_are_the_last_positions_of_the_keys(causal: bool, window: int, sinks: int) -> None:
    """A decode step (one query) and a prefill chunk equal the last rows of the whole sequence's output."""
    q, k, v = _t(2, 2, 25, 8), _t(2, 2, 25, 8), _t(2, 2, 25, 8)
    options = {"window": window, "is_causal": causal, "num_sink_tokens": sinks}
    full = swa(q, k, v, **options)
    for last in (1, 7):
        torch.testing.assert_close(swa(q[:, :, -last:], k, v, **options), full[:, :, -last:], atol=1e-12, rtol=0)


def test_packed_sequences_are_separate_calls() -> None:
    lengths = (4, 1, 9, 6)
    q, k, v = _t(1, 2, 20, 8), _t(1, 2, 20, 8), _t(1, 2, 20, 8)
    cu = torch.tensor([0, *lengths]).cumsum(0)
    packed = swa(q, k, v, window=3, num_sink_tokens=1, cu_seqlens=cu)
    pieces = [swa(*(t[:, :, a:b] for t in (q, k, v)), window=3, num_sink_tokens=1) for a, b in zip(cu, cu[1:])]
    torch.testing.assert_close(packed, torch.cat(pieces, dim=2), atol=1e-12, rtol=0)


def test_key_padding_is_a_boolean_mask_and_a_mask_is_an_additive_minus_infinity() -> None:
    q, k, v = _t(2, 3, 12, 8), _t(2, 3, 12, 8), _t(2, 3, 12, 8)
    padding = torch.rand(2, 12) < 0.3
    keep = (~padding)[:, None, None, :].expand(2, 3, 12, 12).contiguous()
    by_padding = swa(q, k, v, key_padding_mask=padding)
    torch.testing.assert_close(by_padding, swa(q, k, v, attn_mask=keep), atol=1e-12, rtol=0)
    additive = torch.zeros(2, 3, 12, 12, dtype=torch.float64).masked_fill(~keep, float("-inf"))
    torch.testing.assert_close(by_padding, swa(q, k, v, attn_mask=additive), atol=1e-12, rtol=0)


def test_a_query_that_sees_no_key_outputs_zeros_with_zero_gradients() -> None:
    q, k, v = (_t(1, 1, 6, 4).requires_grad_() for _ in range(3))
    padding = torch.tensor([[True, True, False, False, False, False]])
    out = swa(q, k, v, window=2, key_padding_mask=padding)  # queries 0 and 1 see only padded keys
    assert (out[:, :, :2] == 0).all() and torch.isfinite(out).all()
    grads = torch.autograd.grad(out[:, :, :2].sum(), (q, k, v))
    assert all(torch.isfinite(g).all() and (g == 0).all() for g in grads)


def test_weights_are_the_probabilities_of_the_output() -> None:
    q, k, v = _t(2, 4, 15, 8), _t(2, 2, 15, 8), _t(2, 2, 15, 8)
    out, weights = swa(q, k, v, enable_gqa=True, return_weights=True)
    torch.testing.assert_close(weights @ v.repeat_interleave(2, dim=1), out, atol=1e-12, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 15, dtype=torch.float64))
    assert (weights.triu(1) == 0).all() and (weights.tril(-5) == 0).all()  # causal window of 5


def test_dropout_drops_the_probabilities() -> None:
    q, k, v = _t(1, 2, 10, 8), _t(1, 2, 10, 8), _t(1, 2, 10, 8)
    _, weights = swa(q, k, v, return_weights=True)
    torch.manual_seed(7)
    dropped = swa(q, k, v, dropout_p=0.3)
    torch.manual_seed(7)
    torch.testing.assert_close(dropped, F.dropout(weights, 0.3) @ v, atol=1e-12, rtol=0)
    assert not torch.allclose(dropped, swa(q, k, v))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"attn_mask": torch.ones(3, 12, 12, dtype=torch.bool)}, ValueError, r"attn_mask has shape \(3, 12, 12\)"),
    ({"attn_mask": torch.ones(12, 12, dtype=torch.int64)}, TypeError, "attn_mask.dtype=torch.int64"),
    ({"key_padding_mask": torch.zeros(2, 11, dtype=torch.bool)}, ValueError, "key_padding_mask has shape"),
    ({"key_padding_mask": torch.zeros(2, 12)}, ValueError, "key_padding_mask has shape/dtype"),
    ({"cu_seqlens": torch.tensor([0, 12])}, ValueError, "cu_seqlens needs the packed layout: batch 1"),
    ({"dropout_p": 1.0}, ValueError, r"dropout_p=1.0: expected 0 <= dropout_p < 1"),
    ({"dropout_p": "0.1"}, TypeError, "dropout_p='0.1'"),
    ({"return_weights": 1}, TypeError, "return_weights=1"),
    ({"enable_gqa": "yes"}, TypeError, "enable_gqa='yes'"),
])
def test_bad_drop_in_options_name_the_argument(kwargs: dict, error: type, match: str) -> None:
    q = _t(2, 3, 12, 8)
    with pytest.raises(error, match=match):
        swa(q, q, q, **kwargs)


@pytest.mark.parametrize("cu", [torch.tensor([0, 5, 5, 12]), torch.tensor([1, 12]), torch.tensor([0, 11]),
                                torch.tensor([[0, 12]]), torch.tensor([0.0, 12.0])])
def test_bad_cu_seqlens_are_refused(cu: torch.Tensor) -> None:
    q = _t(1, 2, 12, 8)
    with pytest.raises(ValueError, match="cu_seqlens"):
        swa(q, q, q, cu_seqlens=cu)


def test_the_tiled_kernel_refuses_what_it_does_not_declare() -> None:
    q = _t(1, 2, 12, 8)
    with pytest.raises(NotSupportedError, match="tiled: a key_padding_mask is not supported"):
        swa(q, q, q, key_padding_mask=torch.zeros(1, 12, dtype=torch.bool), impl="tiled")
    # auto passes the tiled kernel over for a call with padding and runs the reference
    out = sliding_window_attention(q, q, q, 5, key_padding_mask=torch.zeros(1, 12, dtype=torch.bool))
    torch.testing.assert_close(out, swa(q, q, q), atol=1e-12, rtol=0)


@pytest.mark.parametrize("variant", ["sliding_window_attention", "softmax_attention"])
def test_sequence_layers_take_key_padding_and_packed_sequences(variant: str) -> None:
    """The layer passes key_padding_mask / cu_seqlens to its op: packed sequences equal separate calls, and a
    padded key changes only what the queries that see it compute; S²-Attn takes padding but refuses packing."""
    import attnzoo

    options = {"window": 4} if variant == "sliding_window_attention" else {"is_causal": True}
    layer = attnzoo.create(variant, dim=16, num_heads=2, **options).double()
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    packed = layer(x, cu_seqlens=torch.tensor([0, 5, 12]))
    torch.testing.assert_close(packed, torch.cat([layer(x[:, :5]), layer(x[:, 5:])], dim=1), atol=1e-12, rtol=0)
    padding = torch.zeros(1, 12, dtype=torch.bool)
    padding[0, 10] = True
    padded = layer(x, key_padding_mask=padding)
    torch.testing.assert_close(padded[:, :10], layer(x)[:, :10], atol=1e-12, rtol=0)
    assert not torch.allclose(padded[:, 10:], layer(x)[:, 10:])
    grouped = attnzoo.create("shifted_sparse_attention", dim=16, num_heads=2, group_size=4)
    assert grouped(torch.randn(1, 12, 16), key_padding_mask=padding).shape == (1, 12, 16)
    with pytest.raises(NotSupportedError, match=r"packed variable-length sequences \(cu_seqlens\) is not supported"):
        grouped(torch.randn(1, 12, 16), cu_seqlens=torch.tensor([0, 5, 12]))
