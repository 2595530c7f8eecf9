"""The drop-in features of neighborhood attention (on the grid flattened row-major) and of kernelized attention
with RPE, pinned against definitions that do not use them: grouped KV heads == the KV heads repeated; NA key
padding == a boolean ``attn_mask`` hiding the same pairs; kernelized key padding == the call on the unpadded
tokens only (non-causal, zero RPE: a query's output then depends only on the set of keys); NA dropout == the
returned weights dropped out with the same seed; refused features named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnzoo.masks import dense_mask
from attnzoo.ops.kernelized import kernelized_rpe_attention
from attnzoo.ops.neighborhood import (
    neighborhood_attention_1d,
    neighborhood_attention_2d,
)
from attnzoo.ops.neighborhood.functional import neighborhood_pattern
from attnzoo.registry import NotSupportedError

NA_CASES = [
    pytest.param(neighborhood_attention_1d, (17,), {"kernel_size": 5, "dilation": 2}, id="1d"),
    pytest.param(neighborhood_attention_2d, (6, 7), {"kernel_size": (3, 5), "is_causal": (True, False)}, id="2d"),
]


def _grid(b: int, h: int, grid: tuple[int, ...], d: int = 4) -> torch.Tensor:
    return torch.randn(b, h, *grid, d, dtype=torch.float64)


def _rpb(h: int, options: dict) -> torch.Tensor:
    k = options["kernel_size"]
    kernels = k if isinstance(k, tuple) else (k,)
    return torch.randn(h, *(2 * kk - 1 for kk in kernels), dtype=torch.float64)


@pytest.mark.parametrize(("op", "grid", "options"), NA_CASES)
@pytest.mark.parametrize("impl", ["reference", "tiled"])
def test_neighborhood_gqa_equals_repeated_heads(op, grid, options, impl) -> None:
    q, k, v = _grid(2, 6, grid), _grid(2, 2, grid), _grid(2, 2, grid)
    rpb = _rpb(6, options)
    out = op(q, k, v, rpb=rpb, impl=impl, enable_gqa=True, **options)
    expected = op(q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1), rpb=rpb, impl="reference", **options)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("op", "grid", "options"), NA_CASES)
def test_neighborhood_key_padding_equals_boolean_mask(op, grid, options) -> None:
    b, h, n = 3, 2, torch.Size(grid).numel()
    q, k, v = _grid(b, h, grid), _grid(b, h, grid), _grid(b, h, grid)
    rpb = _rpb(h, options)
    padding = torch.rand(b, n) < 0.4
    padding[0] = True  # every key padded: zeros, not NaN
    out, weights = op(q, k, v, rpb=rpb, impl="reference", key_padding_mask=padding, return_weights=True,
                      **options)
    mask = ~padding[:, None, None, :].expand(b, 1, n, n)
    expected, expected_weights = op(q, k, v, rpb=rpb, impl="reference", attn_mask=mask, return_weights=True,
                                    **options)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=1e-12, rtol=0)
    assert out[0].abs().max() == 0 and torch.isfinite(out).all()
    assert (weights[padding[:, None, None, :].expand_as(weights)] == 0).all()


@pytest.mark.parametrize(("op", "grid", "options"), NA_CASES)
def test_neighborhood_weights_live_on_the_neighborhood_and_sum_to_one(op, grid, options) -> None:
    q, k, v = _grid(2, 2, grid), _grid(2, 2, grid), _grid(2, 2, grid)
    out, weights = op(q, k, v, impl="reference", return_weights=True, **options)
    torch.testing.assert_close(out, op(q, k, v, impl="tiled", **options), atol=1e-12, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=torch.float64))
    pattern = neighborhood_pattern(grid, options["kernel_size"], options.get("dilation", 1),
                                   options.get("is_causal", False))
    n = pattern.num_tokens
    assert weights.shape == (2, 2, n, n)
    assert torch.equal(weights > 0, dense_mask(pattern.mask_mod(), n, n).expand_as(weights))


@pytest.mark.parametrize(("op", "grid", "options"), NA_CASES)
def test_neighborhood_dropout_drops_the_returned_weights(op, grid, options) -> None:
    q, k, v = _grid(1, 2, grid), _grid(1, 2, grid), _grid(1, 2, grid)
    _, weights = op(q, k, v, impl="reference", return_weights=True, **options)
    torch.manual_seed(0)
    out = op(q, k, v, impl="reference", dropout_p=0.5, **options)
    torch.manual_seed(0)
    expected = torch.matmul(F.dropout(weights, 0.5), v.flatten(2, -2)).reshape(out.shape)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_neighborhood_refuses_what_it_does_not_run() -> None:
    q = _grid(1, 2, (9,))
    with pytest.raises(ValueError, match=r"key has shape \(1, 2, 12, 4\).*the query's grid"):
        neighborhood_attention_1d(q, _grid(1, 2, (12,)), _grid(1, 2, (12,)), 3)
    with pytest.raises(ValueError, match="key_padding_mask has shape"):
        neighborhood_attention_2d(_grid(1, 2, (3, 4)), _grid(1, 2, (3, 4)), _grid(1, 2, (3, 4)), 3,
                                  key_padding_mask=torch.zeros(1, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="enable_gqa=True"):
        neighborhood_attention_1d(q, _grid(1, 1, (9,)), _grid(1, 1, (9,)), 3)
    with pytest.raises(NotSupportedError, match="a key_padding_mask"):
        neighborhood_attention_1d(q, q, q, 3, impl="tiled", key_padding_mask=torch.zeros(1, 9, dtype=torch.bool))
    with pytest.raises(NotSupportedError, match="packed variable-length"):
        neighborhood_attention_1d(q, q, q, 3, cu_seqlens=torch.tensor([0, 4, 9]))


def _seq(b: int, h: int, n: int, d: int = 4) -> torch.Tensor:
    return torch.randn(b, h, n, d, dtype=torch.float64)


@pytest.mark.parametrize("impl", ["reference", "fft"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_kernelized_gqa_equals_repeated_heads(impl, is_causal) -> None:
    q, k, v = _seq(2, 4, 19), _seq(2, 2, 19), _seq(2, 2, 19)
    rpe, w = torch.randn(4, 37, dtype=torch.float64) * 0.3, torch.randn(4, 6, dtype=torch.float64)
    out = kernelized_rpe_attention(q, k, v, rpe, projection=w, is_causal=is_causal, block_size=4, impl=impl,
                                   enable_gqa=True)
    expected = kernelized_rpe_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), rpe, projection=w,
                                        is_causal=is_causal, impl="reference")
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("impl", ["reference", "fft"])
@pytest.mark.parametrize("feature_map", ["softmax_kernel", "elu"])
def test_kernelized_key_padding_equals_the_unpadded_tokens(impl, feature_map) -> None:
    b, h, n = 3, 2, 21
    q, k, v = _seq(b, h, n), _seq(b, h, n), _seq(b, h, n)
    w = torch.randn(4, 6, dtype=torch.float64) if feature_map == "softmax_kernel" else None
    padding = torch.rand(b, n) < 0.4
    padding[:, 0] = False
    k = torch.where(padding[:, None, :, None], float("inf"), k)  # padding leaks nothing, not even non-finite
    out = kernelized_rpe_attention(q, k, v, torch.zeros(h, 2 * n - 1, dtype=torch.float64), feature_map=feature_map,
                                   projection=w, impl=impl, key_padding_mask=padding)
    assert torch.isfinite(out).all()
    for i in range(b):
        keep = ~padding[i]
        m = int(keep.sum())
        alone = kernelized_rpe_attention(q[i:i + 1][:, :, keep], k[i:i + 1][:, :, keep], v[i:i + 1][:, :, keep],
                                         torch.zeros(h, 2 * m - 1, dtype=torch.float64), feature_map=feature_map,
                                         projection=w, impl="reference")
        torch.testing.assert_close(out[i:i + 1][:, :, keep], alone, atol=1e-10, rtol=0)


@pytest.mark.parametrize("impl", ["reference", "fft"])
def test_kernelized_causal_query_with_only_padded_keys_outputs_zeros(impl) -> None:
    q, k, v = _seq(1, 2, 12), _seq(1, 2, 12), _seq(1, 2, 12)
    padding = torch.zeros(1, 12, dtype=torch.bool)
    padding[0, :3] = True
    out = kernelized_rpe_attention(q, k, v, is_causal=True, block_size=2, impl=impl, key_padding_mask=padding)
    assert torch.isfinite(out).all() and out[:, :, :3].abs().max() == 0 and out[:, :, 3:].abs().min() > 0


def test_kernelized_refuses_what_it_does_not_run() -> None:
    q = _seq(1, 2, 6)
    with pytest.raises(ValueError, match="no cross-attention"):
        kernelized_rpe_attention(q, _seq(1, 2, 8), _seq(1, 2, 8))
    with pytest.raises(NotSupportedError, match="an attn_mask"):
        kernelized_rpe_attention(q, q, q, attn_mask=torch.ones(6, 6, dtype=torch.bool))
    with pytest.raises(NotSupportedError, match="return_weights=True"):
        kernelized_rpe_attention(q, q, q, return_weights=True)
    with pytest.raises(ValueError, match="key_padding_mask has shape"):
        kernelized_rpe_attention(q, q, q, key_padding_mask=torch.zeros(1, 5, dtype=torch.bool))


@pytest.mark.parametrize(("variant", "shape"), [("neighborhood_attention_1d", (2, 12, 16)),
                                                ("neighborhood_attention_2d", (2, 4, 5, 16)),
                                                ("kernelized_rpe_attention", (2, 12, 16))])
def test_layers_pass_key_padding(variant: str, shape: tuple[int, ...]) -> None:
    """The NA and kernelized layers take ``key_padding_mask`` over their flattened tokens: no padding is the
    plain call, padding one token changes the output (it is not ignored)."""
    import math

    import attnzoo

    options = {"kernel_size": 3} if variant.startswith("neighborhood") else {"max_len": 16}
    layer = attnzoo.create(variant, dim=16, num_heads=2, **options).double()
    x = torch.randn(shape, dtype=torch.float64)
    none = torch.zeros(shape[0], math.prod(shape[1:-1]), dtype=torch.bool)
    torch.testing.assert_close(layer(x, key_padding_mask=none), layer(x), atol=1e-12, rtol=0)
    padded = none.clone()
    padded[:, 1] = True
    assert not torch.allclose(layer(x, key_padding_mask=padded), layer(x))
