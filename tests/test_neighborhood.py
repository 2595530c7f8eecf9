"""Neighborhood attention (paper 2): the mask against NATTEN's formula, limits, dilation, flex, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.layers import NeighborhoodAttention2D
from attnzoo.masks import NeighborhoodPattern, dense_mask
from attnzoo.ops import neighborhood_attention_1d, neighborhood_attention_2d, neighborhood_attention_3d
from attnzoo.ops.neighborhood.tiled import neighborhood_plan


def natten_keys(i: int, length: int, k: int, d: int, causal: bool) -> set[int]:
    """Keys of query i on one axis, written out from NATTEN's definition with plain Python loops."""
    group = [x for x in range(length) if x % d == i % d]
    pos = group.index(i)
    if causal:
        return set(group[max(0, pos - k + 1):pos + 1])
    start = min(max(pos - k // 2, 0), len(group) - k)
    return set(group[start:start + k])


@pytest.mark.parametrize(("shape", "kernel", "dilation", "causal"), [
    ((17,), (5,), (1,), (False,)), ((17,), (5,), (3,), (False,)), ((17,), (3,), (2,), (True,)),
    ((7, 9), (3, 5), (2, 1), (False, True)), ((4, 5, 6), (3, 1, 3), (1, 1, 2), (True, False, False)),
])
def test_mask_equals_natten_definition(shape, kernel, dilation, causal) -> None:
    pattern = NeighborhoodPattern(shape, kernel, dilation, causal)
    n = math.prod(shape)
    mask = dense_mask(pattern.mask_mod(), n, n)
    coords = list(torch.cartesian_prod(*[torch.arange(s) for s in shape]).reshape(n, len(shape)).tolist())
    for qi, qc in enumerate(coords):
        allowed = [natten_keys(c, s, k, d, cz) for c, s, k, d, cz in zip(qc, shape, kernel, dilation, causal)]
        expected = [all(kc[a] in allowed[a] for a in range(len(shape))) for kc in coords]
        assert mask[qi].tolist() == expected
        if not any(causal):
            assert mask[qi].sum() == math.prod(kernel)  # every query sees exactly prod(k) keys


def _qkv(*shape: int) -> list[torch.Tensor]:
    return [torch.randn(*shape, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("impl", ["tiled", "reference"])
def test_kernel_equal_to_length_is_dense_attention(impl: str) -> None:
    q, k, v = _qkv(2, 3, 5, 7, 8)
    out = neighborhood_attention_2d(q, k, v, (5, 7), impl=impl)
    dense = F.scaled_dot_product_attention(q.flatten(2, 3), k.flatten(2, 3), v.flatten(2, 3)).reshape(out.shape)
    torch.testing.assert_close(out, dense, atol=1e-12, rtol=0)
    q, k, v = _qkv(2, 3, 21, 8)
    causal = neighborhood_attention_1d(q, k, v, 21, is_causal=True, impl=impl)
    torch.testing.assert_close(causal, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", ["tiled", "reference"])
def test_kernel_one_returns_values(impl: str) -> None:
    q, k, v = _qkv(1, 2, 4, 5, 3, 6)
    torch.testing.assert_close(neighborhood_attention_3d(q, k, v, 1, dilation=(2, 1, 3), impl=impl), v)


def test_dilation_decomposes_into_strided_subgrids() -> None:
    q, k, v = _qkv(2, 2, 19, 8)
    out = neighborhood_attention_1d(q, k, v, 5, dilation=3, impl="tiled")
    for g in range(3):
        sub = neighborhood_attention_1d(q[:, :, g::3], k[:, :, g::3], v[:, :, g::3], 5, impl="tiled")
        torch.testing.assert_close(out[:, :, g::3], sub, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("shape", "kernel", "dilation", "causal"), [
    ((64,), (7,), (1,), (False,)), ((63,), (13,), (2,), (True,)), ((10, 33), (3, 7), (3, 2), (False, True)),
])
def test_tiles_cover_every_window(shape, kernel, dilation, causal) -> None:
    """Each query's tile row holds exactly its window: the same visible count as the dense mask."""
    pattern = NeighborhoodPattern(shape, kernel, dilation, causal)
    plan, _ = neighborhood_plan(pattern, "cpu")
    n = pattern.num_tokens
    dense_counts = dense_mask(pattern.mask_mod(), n, n).sum(-1)
    tile_counts = plan.visible.sum(-1)
    assert (tile_counts == dense_counts[plan.query_flat]).all()


def test_tiled_memory_is_linear_in_tokens() -> None:
    """Entries held per query by the tile plan do not grow with the grid (O(N * region)); they vary only by
    the padding of the last tile on each axis."""
    per_token = []
    for side in (32, 64, 128):
        plan, _ = neighborhood_plan(NeighborhoodPattern((side, side), (7, 7), (1, 1), (False, False)), "cpu")
        per_token.append(plan.visible.numel() / side**2)
    assert max(per_token) < 1.25 * min(per_token)
    assert max(per_token) < 4 * 49  # a small multiple of the 7x7 window


@pytest.mark.parametrize(("op", "shape", "kernel", "options"), [
    (neighborhood_attention_1d, (1, 2, 40, 16), 7, {"dilation": 2}),
    (neighborhood_attention_2d, (1, 2, 9, 13, 16), (3, 5), {"is_causal": (True, False)}),
    (neighborhood_attention_3d, (1, 2, 4, 5, 6, 8), (3, 1, 3),
     {"dilation": (1, 1, 2), "is_causal": (True, False, False)}),
])
def test_flex_forward_on_cpu_matches_reference(op, shape, kernel, options) -> None:
    """Compiled FlexAttention (forward only on CPU) with the shared mask and the RPB as a score_mod."""
    q, k, v = [torch.randn(*shape) for _ in range(3)]
    kernels = (kernel,) if isinstance(kernel, int) else kernel
    rpb = torch.randn(shape[1], *(2 * kk - 1 for kk in kernels))
    out = op(q, k, v, kernel, rpb=rpb, impl="flex", **options)
    ref = op(q.double(), k.double(), v.double(), kernel, rpb=rpb.double(), impl="reference", **options)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kernel_size": 4}, r"kernel_size=4: every entry must be odd"),
    ({"kernel_size": (3, 4)}, r"must be odd"),
    ({"kernel_size": 11}, r"spatial axis 0 has length 9 < 11\*1"),
    ({"kernel_size": 3, "dilation": (4, 1)}, r"dilation=\(4, 1\).*spatial axis 0 has length 9 < 3\*4"),
    ({"kernel_size": 0}, r"kernel_size=0: every entry must be >= 1"),
    ({"kernel_size": (3, 3, 3)}, r"kernel_size=\(3, 3, 3\): expected an int or a sequence of 2 ints"),
    ({"kernel_size": 3, "dilation": 0}, r"dilation=0: every entry must be >= 1"),
    ({"kernel_size": 3, "is_causal": 1}, r"is_causal=1: expected a bool"),
    ({"kernel_size": 3, "rpb": torch.zeros(2, 5, 5)}, r"rpb has shape \(2, 5, 5\); expected \(2, 5, 5\)|rpb.dtype"),
    ({"kernel_size": 3, "rpb": torch.zeros(2, 3, 3, dtype=torch.float64)}, r"rpb has shape \(2, 3, 3\); expected \(2, 5, 5\)"),
])
def test_bad_arguments(kwargs, match) -> None:
    q, k, v = _qkv(1, 2, 9, 10, 4)
    with pytest.raises((ValueError, TypeError), match=match):
        neighborhood_attention_2d(q, k, v, **kwargs)


def test_layer_implementations_agree_and_learn_the_bias() -> None:
    layer = NeighborhoodAttention2D(dim=16, num_heads=2, kernel_size=(3, 5), dilation=(1, 2)).double()
    x = torch.randn(2, 7, 11, 16, dtype=torch.float64)
    out_tiled = layer(x)
    layer.impl = "reference"
    torch.testing.assert_close(out_tiled, layer(x), atol=1e-12, rtol=0)
    out_tiled.sum().backward()
    assert layer.rpb.grad is not None and layer.rpb.grad.abs().sum() > 0


def test_layer_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match=r"expected 4-D \(B, \*grid, C\)"):
        attnzoo.create("neighborhood_attention_2d")(torch.randn(2, 16, 32))
