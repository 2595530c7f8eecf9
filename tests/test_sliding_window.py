"""The 1-D sliding-window family (paper 57): masks against independent definitions, limits, the official
S²-Attn code path, tile coverage and memory, FlexAttention on CPU, bad input, layers.

Every fast path against the reference (forward and backward, float64 and float32, lengths 1 / 63 / 500,
head dims 8 / 60) and ``gradcheck`` on tiny cases run for these variants in ``tests/test_contract.py``
over the cases registered in ``attnzoo/ops/sliding_window/testing.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.layers import ShiftedSparseAttention, SinkFocusedAttention, SlidingWindowAttention
from attnzoo.masks import dense_mask
from attnzoo.ops import shifted_sparse_attention, sink_focused_attention, sliding_window_attention
from attnzoo.ops.sliding_window.grouped import grouped_visibility
from attnzoo.ops.sliding_window.patterns import ShiftedSparsePattern, SinkFocusedPattern, SlidingWindowPattern
from attnzoo.ops.sliding_window.tiled import sliding_window_plan

def _qkv(*shape: int, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    return [torch.randn(*shape, dtype=dtype) for _ in range(3)]


# --- masks against definitions written independently ----------------------------------------------------------

@pytest.mark.parametrize(("length", "window", "causal", "sinks"), [
    (17, 5, True, 0), (17, 5, True, 3), (17, 7, False, 0), (17, 7, False, 2), (9, 30, True, 4), (6, 1, True, 6),
])
def test_sliding_window_mask_equals_definition(length, window, causal, sinks) -> None:
    pattern = SlidingWindowPattern(length, window, causal, sinks)
    expected = [[(j <= i and (i - window < j or j < sinks)) if causal else (abs(i - j) <= window // 2 or j < sinks)
                 for j in range(length)] for i in range(length)]
    assert dense_mask(pattern.mask_mod(), length, length).tolist() == expected


def official_s2_mask(length: int, group_size: int, heads: int) -> torch.Tensor:
    """``(H, N, N)``: LongLoRA's ``shift`` applied to position labels, then causal attention in each group."""
    mask = torch.zeros(heads, length, length, dtype=torch.bool)
    for h in range(heads):
        labels = torch.arange(length)
        if h >= heads // 2:
            labels = labels.roll(-(group_size // 2))
        for group in labels.reshape(-1, group_size).tolist():
            for a, query in enumerate(group):
                for key in group[:a + 1]:
                    mask[h, query, key] = True
    return mask


@pytest.mark.parametrize(("length", "group_size", "heads"),
                         [(16, 4, 2), (24, 6, 3), (12, 12, 4), (8, 2, 1), (15, 5, 2)])
def test_shifted_sparse_mask_equals_official_shift(length, group_size, heads) -> None:
    pattern = ShiftedSparsePattern(length, group_size, heads)
    mask = dense_mask(pattern.mask_mod(), length, length, heads=heads)
    assert torch.equal(mask, official_s2_mask(length, group_size, heads))


def sf_mask(length: int, group_size: int, heads: int, sinks: int) -> torch.Tensor:
    """``(H, N, N)`` from the paper's description: explicit group ranges, causal, plus causal sink columns."""
    mask = torch.zeros(heads, length, length, dtype=torch.bool)
    half = group_size // 2
    for h in range(heads):
        if h < heads // 2:
            bounds = list(range(0, length + 1, group_size))
        else:
            bounds = [0, *range(half, length, group_size), length]
        for start, end in zip(bounds, bounds[1:]):
            block = torch.ones(end - start, end - start, dtype=torch.bool).tril()
            mask[h, start:end, start:end] = block
        mask[h, :, :sinks] |= torch.ones(length, sinks, dtype=torch.bool).tril()
    return mask


@pytest.mark.parametrize(("length", "group_size", "heads", "sinks"),
                         [(16, 4, 2, 0), (24, 6, 3, 4), (21, 7, 4, 2), (8, 8, 2, 3), (5, 1, 2, 5)])
def test_sink_focused_mask_equals_explicit_mask(length, group_size, heads, sinks) -> None:
    pattern = SinkFocusedPattern(length, group_size, heads, sinks)
    mask = dense_mask(pattern.mask_mod(), length, length, heads=heads)
    assert torch.equal(mask, sf_mask(length, group_size, heads, sinks))
    shifted_groups = mask[heads // 2:]
    # no wrap-around: nothing at or after position G//2 sees the head tokens outside the sinks, and vice versa
    assert not shifted_groups[:, group_size // 2:, sinks:group_size // 2].any()


# --- limits ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["tiled", "reference"])
@pytest.mark.parametrize(("length", "window"), [(63, 63), (63, 200), (130, 131)])
def test_causal_window_covering_the_sequence_is_causal_attention(impl, length, window) -> None:
    q, k, v = _qkv(2, 3, length, 8)
    out = sliding_window_attention(q, k, v, window, impl=impl)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", ["tiled", "reference"])
@pytest.mark.parametrize(("length", "window"), [(63, 125), (40, 301)])
def test_bidirectional_window_covering_the_sequence_is_full_attention(impl, length, window) -> None:
    q, k, v = _qkv(2, 3, length, 8)
    out = sliding_window_attention(q, k, v, window, is_causal=False, impl=impl)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", ["tiled", "reference"])
def test_window_one_without_sinks_returns_values(impl) -> None:
    q, k, v = _qkv(2, 2, 37, 5)
    torch.testing.assert_close(sliding_window_attention(q, k, v, 1, impl=impl), v)
    torch.testing.assert_close(sliding_window_attention(q, k, v, 1, is_causal=False, impl=impl), v)


@pytest.mark.parametrize("impl", ["grouped", "reference"])
def test_shifted_sparse_with_one_group(impl) -> None:
    """G = N: causal attention for the unshifted heads; for the shifted heads causal attention on the sequence
    rolled by -G/2, rolled back (the wrap-around the official code keeps)."""
    q, k, v = _qkv(2, 4, 64, 8)
    out = shifted_sparse_attention(q, k, v, 64, impl=impl)
    torch.testing.assert_close(out[:, :2], F.scaled_dot_product_attention(q[:, :2], k[:, :2], v[:, :2], is_causal=True),
                               atol=1e-12, rtol=0)
    rolled = [x[:, 2:].roll(-32, dims=2) for x in (q, k, v)]
    shifted = F.scaled_dot_product_attention(*rolled, is_causal=True).roll(32, dims=2)
    torch.testing.assert_close(out[:, 2:], shifted, atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", ["grouped", "reference"])
def test_shifted_sparse_unshifted_half_is_block_diagonal_causal(impl) -> None:
    q, k, v = _qkv(2, 4, 60, 8)
    out = shifted_sparse_attention(q, k, v, 12, impl=impl)
    blocks = [x[:, :2].reshape(2, 2, 5, 12, 8) for x in (q, k, v)]
    expected = F.scaled_dot_product_attention(*blocks, is_causal=True).reshape(2, 2, 60, 8)
    torch.testing.assert_close(out[:, :2], expected, atol=1e-12, rtol=0)


def official_forward_noflashattn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, group_size: int) -> torch.Tensor:
    """LongLoRA's ``forward_noflashattn`` attention core, transcribed on ``(B, H, N, D)`` tensors."""
    bsz, heads, length, dim = q.shape

    def shift(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[:, heads // 2:] = x[:, heads // 2:].roll(-group_size // 2, dims=2)
        return x.transpose(1, 2).reshape(bsz * (length // group_size), group_size, heads, dim).transpose(1, 2)

    q, k, v = shift(q), shift(k), shift(v)
    weights = q @ k.transpose(2, 3) / math.sqrt(dim)
    causal = torch.full((group_size, group_size), float("-inf"), dtype=q.dtype).triu(1)
    out = torch.softmax(weights + causal, dim=-1) @ v
    out = out.transpose(1, 2).reshape(bsz, length, heads, dim)
    out[:, :, heads // 2:] = out[:, :, heads // 2:].roll(group_size // 2, dims=1)
    return out.transpose(1, 2)


@pytest.mark.parametrize("impl", ["grouped", "reference"])
@pytest.mark.parametrize(("length", "group_size", "heads"), [(64, 16, 4), (48, 12, 3), (20, 2, 1)])
def test_shifted_sparse_equals_official_code(impl, length, group_size, heads) -> None:
    q, k, v = _qkv(2, heads, length, 8)
    out = shifted_sparse_attention(q, k, v, group_size, impl=impl)
    torch.testing.assert_close(out, official_forward_noflashattn(q, k, v, group_size), atol=1e-12, rtol=0)


def test_shifted_sparse_is_not_causal_but_sink_focused_is() -> None:
    """The S²-Attn wrap-around group lets the shifted heads' first G/2 tokens see the last ones; SF-Attn cuts it."""
    q, k, v = _qkv(1, 2, 16, 4)
    v.requires_grad_(True)
    for op, leaks in ((shifted_sparse_attention, True), (sink_focused_attention, False)):
        (grad,) = torch.autograd.grad(op(q, k, v, 8)[:, 1, 0].sum(), [v])
        assert bool(grad[:, 1, 1:].abs().sum() > 0) == leaks


# --- fast-path structure ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", [SlidingWindowPattern(300, 37, True, 4), SlidingWindowPattern(301, 21, False, 3),
                                     SlidingWindowPattern(50, 80, True, 2)])
def test_tiles_hold_every_window_once(pattern) -> None:
    """Each tile query sees exactly its dense row's keys: tile columns plus sink columns, no sink counted twice."""
    plan, sinks = sliding_window_plan(pattern, "cpu")
    dense_counts = dense_mask(pattern.mask_mod(), pattern.length, pattern.length).sum(-1)
    assert (plan.visible.sum(-1) + sinks.sum(-1) == dense_counts[plan.query_flat]).all()


def test_grouped_masks_hold_every_row_once() -> None:
    pattern = SinkFocusedPattern(48, 8, 3, 4)
    visible = grouped_visibility(pattern, "cpu")
    dense_counts = dense_mask(pattern.mask_mod(), 48, 48, heads=3).sum(-1)
    positions = (torch.arange(48) + (torch.arange(3)[:, None] >= 1) * 4) % 48
    assert (visible.sum(-1).reshape(3, 48) == dense_counts.gather(1, positions)).all()


def test_fast_path_memory_is_linear_in_tokens() -> None:
    """Tiles keep the same (queries, keys) size as N grows, so the plan and the group masks are O(N * window)."""
    for n in (1024, 2048, 4096):
        plan, sinks = sliding_window_plan(SlidingWindowPattern(n, 64, True, 4), "cpu")
        tiles, tile, region = plan.visible.shape
        assert (tile, region, sinks.shape[-1]) == (33, 96, 4) and tiles == math.ceil(n / tile)
        assert grouped_visibility(SinkFocusedPattern(n, 64, 2, 4), "cpu").shape == (2, n // 64, 64, 64 + 4)


# --- FlexAttention (forward only on CPU) -------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "shape", "options"), [
    (sliding_window_attention, (1, 2, 63, 16), {"window": 7, "is_causal": False, "num_sink_tokens": 2}),
    (shifted_sparse_attention, (1, 3, 64, 16), {"group_size": 16}),
    (sink_focused_attention, (1, 2, 63, 16), {"group_size": 21, "num_sink_tokens": 4}),
])
def test_flex_forward_on_cpu_matches_reference(op, shape, options) -> None:
    q, k, v = _qkv(*shape, dtype=torch.float32)
    out = op(q, k, v, **options, impl="flex")
    ref = op(q.double(), k.double(), v.double(), **options, impl="reference")
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)


# --- bad input -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "kwargs", "error", "match"), [
    (sliding_window_attention, {"window": 0}, ValueError, r"window=0: every entry must be >= 1"),
    (sliding_window_attention, {"window": 4, "is_causal": False}, ValueError,
     r"window=4: must be odd when is_causal=False"),
    (sliding_window_attention, {"window": 3, "is_causal": 1}, TypeError, r"is_causal=1: expected a bool"),
    (sliding_window_attention, {"window": 3, "num_sink_tokens": 13}, ValueError,
     r"num_sink_tokens=13: expected at most the sequence length N=12"),
    (sliding_window_attention, {"window": 3, "num_sink_tokens": -1}, ValueError,
     r"num_sink_tokens=-1: every entry must be >= 0"),
    (sliding_window_attention, {"window": 2.5}, ValueError, r"window=2.5: expected an int"),
    (shifted_sparse_attention, {"group_size": 5}, ValueError,
     r"group_size=5: expected a divisor of the sequence length N=12"),
    (shifted_sparse_attention, {"group_size": 0}, ValueError, r"group_size=0: every entry must be >= 1"),
    (sink_focused_attention, {"group_size": 8}, ValueError,
     r"group_size=8: expected a divisor of the sequence length N=12"),
    (sink_focused_attention, {"group_size": 4, "num_sink_tokens": 20}, ValueError,
     r"num_sink_tokens=20: expected at most the sequence length N=12"),
])
def test_bad_arguments(op, kwargs, error, match) -> None:
    q, k, v = _qkv(1, 2, 12, 4)
    with pytest.raises(error, match=match):
        op(q, k, v, **kwargs)


LONGER_KEYS = r"key has shape \(1, 2, 8, 4\); expected at least the query's 12 tokens"


@pytest.mark.parametrize(("op", "options"), [(sliding_window_attention, {"window": 3}),
                                             (shifted_sparse_attention, {"group_size": 4}),
                                             (sink_focused_attention, {"group_size": 4})])
def test_mismatched_shapes(op, options) -> None:
    """Keys may be longer than the queries (a decode step; the grouped ops then refuse it by capability), never
    shorter: refused by name."""
    q, k, v = _qkv(1, 2, 12, 4)
    with pytest.raises(ValueError, match=LONGER_KEYS):
        op(q, k[:, :, :8], v, **options)
    with pytest.raises(ValueError, match=r"value has shape \(1, 2, 11, 4\); expected \(1, 2, 12\)"):
        op(q, k, v[:, :, :11], **options)
    with pytest.raises(ValueError, match=r"query has shape \(2, 12, 4\) \(3-D\); expected 4-D \(B, H, N, D\)"):
        op(q[0], k[0], v[0], **options)


# --- layers ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("layer", "fast"), [
    (SlidingWindowAttention(dim=24, num_heads=3, window=9, num_sink_tokens=2), "tiled"),
    (SlidingWindowAttention(dim=24, num_heads=3, window=9, is_causal=False), "tiled"),
    (ShiftedSparseAttention(dim=24, num_heads=4, group_size=10), "grouped"),
    (SinkFocusedAttention(dim=24, num_heads=2, group_size=10), "grouped"),
])
def test_layer_implementations_agree(layer, fast) -> None:
    layer = layer.double()
    x = torch.randn(2, 40, 24, dtype=torch.float64)
    layer.impl = fast
    out = layer(x)
    assert out.shape == x.shape
    layer.impl = "reference"
    torch.testing.assert_close(out, layer(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize(("build", "match"), [
    (lambda: SlidingWindowAttention(dim=24, num_heads=5, window=3), r"dim=24 must be divisible by num_heads=5"),
    (lambda: SlidingWindowAttention(dim=24, num_heads=3, window=4, is_causal=False), r"window=4: must be odd"),
    (lambda: ShiftedSparseAttention(dim=24, num_heads=3, group_size=0), r"group_size=0: every entry must be >= 1"),
    (lambda: SinkFocusedAttention(dim=24, num_heads=3, group_size=4, num_sink_tokens=-2),
     r"num_sink_tokens=-2: every entry must be >= 0"),
])
def test_layer_rejects_bad_configuration(build, match) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_layer_rejects_wrong_rank_and_length() -> None:
    layer = attnzoo.create("shifted_sparse_attention")
    with pytest.raises(ValueError, match=r"expected 3-D \(B, N, C\)"):
        layer(torch.randn(2, 4, 16, 32))
    with pytest.raises(ValueError, match=r"group_size=16: expected a divisor of the sequence length N=40"):
        layer(torch.randn(2, 40, 32))
