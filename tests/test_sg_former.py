"""SG-Former (arXiv 2308.12216): hybrid-scale attention and self-guided attention, their own invariants.

The registry-wide contract (tests/test_contract.py) already compares every implementation with the reference.
Here: the limits that are known attention (one window = PVT spatial-reduction attention, reduction 1 = window
attention, every pixel its own key = dense attention, a uniform map = attention over average-pooled raster runs),
the significance map's definition, the deterministic tie-breaking, the official key counts, and the official
``Attention`` module (tests/official_sg_former.py) with copied weights against both layers.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from official_sg_former import Attention

import attnzoo
from attnzoo.layers import HybridScaleAttention, SelfGuidedAttention
from attnzoo.models import VisionTransformer
from attnzoo.ops import dense_attention, hybrid_scale_attention, self_guided_attention, window_attention_2d
from attnzoo.ops.self_guided.functional import reallocation
from attnzoo.ops.self_guided.gathered import merge_levels, significance_order
from attnzoo.ops.self_guided.plan import split_sizes, tie_break_position
from attnzoo.ops.self_guided.reference import pooling_matrices, significance_ranks

HYBRID_IMPLS = ("windowed", "reference")
GUIDED_IMPLS = ("gathered", "reference")


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


def _tokens(t: torch.Tensor) -> torch.Tensor:
    """``(B, H, X, Y, D)`` -> ``(B, H, X·Y, D)``."""
    return t.flatten(2, 3)


# ---- hybrid-scale attention ------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", HYBRID_IMPLS)
def test_one_window_is_spatial_reduction_attention(impl: str) -> None:
    """``window_size=None`` (the official global branch): every query attends to every reduced key (PVT SRA)."""
    q, k, v = _randn(2, 3, 12, 8, 5), _randn(2, 3, 4, 2, 5), _randn(2, 3, 4, 2, 6)
    out = hybrid_scale_attention(q, k, v, reduction=(3, 4), impl=impl)
    expected = dense_attention(_tokens(q), _tokens(k), _tokens(v)).unflatten(2, (12, 8))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", HYBRID_IMPLS)
def test_reduction_one_is_window_attention(impl: str) -> None:
    """``reduction=1`` (the official local branch): non-overlapping window attention, Swin without shift."""
    q, k, v = _randn(2, 2, 14, 21, 4), _randn(2, 2, 14, 21, 4), _randn(2, 2, 14, 21, 4)
    out = hybrid_scale_attention(q, k, v, reduction=1, window_size=7, impl=impl)
    torch.testing.assert_close(out, window_attention_2d(q, k, v, 7), rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", HYBRID_IMPLS)
def test_significance_is_the_mean_attention_each_key_receives(impl: str) -> None:
    """Non-negative; over each key window it sums to 1 (a mean of probability rows); each pixel carries its
    reduced cell's value (nearest upsampling); the explicit mean of the probabilities."""
    q, k, v = _randn(2, 3, 12, 8, 5), _randn(2, 3, 6, 4, 5), _randn(2, 3, 6, 4, 5)
    out, significance = hybrid_scale_attention(q, k, v, reduction=2, window_size=(3, 2), return_significance=True,
                                               impl=impl)
    torch.testing.assert_close(out, hybrid_scale_attention(q, k, v, 2, (3, 2), impl=impl), rtol=0, atol=1e-12)
    assert (significance >= 0).all()
    cells = significance[:, ::2, ::2]  # (B, 6, 4): one pixel per reduced cell
    torch.testing.assert_close(significance, cells.repeat_interleave(2, 1).repeat_interleave(2, 2), rtol=0, atol=0)
    window_sums = cells.unflatten(1, (2, 3)).unflatten(3, (2, 2)).sum((2, 4))
    torch.testing.assert_close(window_sums, torch.ones_like(window_sums), rtol=0, atol=1e-12)
    # explicitly: query window (6 x 4 pixels) w sees key window w; mean over heads and its 24 queries
    scores = torch.einsum("bhxyd,bhuvd->bhxyuv", q, k) * 5 ** -0.5
    same = ((torch.arange(12)[:, None, None, None] // 6 == torch.arange(6)[None, None, :, None] // 3)
            & (torch.arange(8)[None, :, None, None] // 4 == torch.arange(4)[None, None, None, :] // 2))
    probs = scores.masked_fill(~same, float("-inf")).flatten(-2).softmax(-1).unflatten(-1, (6, 4))
    torch.testing.assert_close(cells, probs.mean(1).sum((1, 2)) / 24, rtol=0, atol=1e-12)


def test_hybrid_errors_name_the_option() -> None:
    q = _randn(1, 2, 8, 8, 4)
    with pytest.raises(ValueError, match=r"reduction=3: expected a divisor of the query grid \(X, Y\) = \(8, 8\)"):
        hybrid_scale_attention(q, q, q, reduction=3)
    with pytest.raises(ValueError, match=r"window_size=3: expected a divisor of the reduced key grid \(4, 4\)"):
        hybrid_scale_attention(q, _randn(1, 2, 4, 4, 4), _randn(1, 2, 4, 4, 4), reduction=2, window_size=3)
    with pytest.raises(ValueError, match=r"value has shape \(1, 2, 8, 8, 4\); expected \(1, 2, 4, 4\)"):
        hybrid_scale_attention(q, _randn(1, 2, 4, 4, 4), q, reduction=2)


# ---- self-guided attention -------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", GUIDED_IMPLS)
@pytest.mark.parametrize("levels", [1, 3])
def test_every_pixel_its_own_key_is_dense_attention(impl: str, levels: int) -> None:
    """Every region at full resolution (rates 1, weight 1, no bias): the keys are the pixels, permuted, and
    attention does not depend on the keys' order: dense attention, whatever the map and tie breaks."""
    q, k, v = _randn(2, 4, 7, 9, 5), _randn(2, 4, 7, 9, 5), _randn(2, 4, 7, 9, 3)
    significance = torch.randint(0, 4, (2, 7, 9)).double()
    sizes = (63,) if levels == 1 else (20, 23, 20)
    out = self_guided_attention(q, k, v, significance, sizes, (1,) * levels, torch.ones(levels, dtype=torch.float64),
                                tie_breaks=("row", "column"), impl=impl)
    expected = dense_attention(_tokens(q), _tokens(k), _tokens(v)).unflatten(2, (7, 9))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def _raster_pooled(t: torch.Tensor, sizes: tuple[int, ...], rates: tuple[int, ...]) -> torch.Tensor:
    """``(B, H, N, D)`` tokens in raster order -> each group's consecutive runs of ``rate`` averaged."""
    parts, start = [], 0
    for size, rate in zip(sizes, rates):
        segment = t[:, :, start:start + size].transpose(-1, -2).flatten(0, 1)  # (B·H, D, size)
        parts.append(F.avg_pool1d(segment, rate).unflatten(0, t.shape[:2]).transpose(-1, -2))
        start += size
    return torch.cat(parts, 2)


@pytest.mark.parametrize("impl", GUIDED_IMPLS)
def test_uniform_significance_is_attention_over_pooled_raster_runs(impl: str) -> None:
    """A uniform map orders every pixel by position: with averaging weights ``1/rate`` the keys are average-pooled
    runs of the row-major raster (first head group) and of the column-major raster (second): plain pooled-KV
    attention, e.g. a single level of rate ``Y`` pools each row (rate ``X`` of the column order each column)."""
    q, k, v = _randn(2, 4, 8, 6, 5), _randn(2, 4, 8, 6, 5), _randn(2, 4, 8, 6, 5)
    sizes, rates = (12, 24, 12), (4, 2, 1)
    weights = torch.cat([torch.full((r,), 1 / r, dtype=torch.float64) for r in rates])
    out = self_guided_attention(q, k, v, torch.zeros(2, 8, 6), sizes, rates, weights, tie_breaks=("row", "column"),
                                impl=impl)
    rows = [_raster_pooled(_tokens(t[:, :2]), sizes, rates) for t in (k, v)]
    columns = [_raster_pooled(_tokens(t[:, 2:].transpose(2, 3)), sizes, rates) for t in (k, v)]
    expected = torch.cat([dense_attention(_tokens(q[:, :2]), *rows), dense_attention(_tokens(q[:, 2:]), *columns)], 1)
    torch.testing.assert_close(out, expected.unflatten(2, (8, 6)), rtol=0, atol=1e-12)
    # one level of rate Y = 6 (X = 8): rows pooled (row heads), columns pooled (column heads)
    out = self_guided_attention(q, k, v, torch.ones(2, 8, 6), (48,), (6,), torch.full((6,), 1 / 6,
                                dtype=torch.float64), tie_breaks=("row",), impl=impl)
    expected = dense_attention(_tokens(q), k.mean(3), v.mean(3)).unflatten(2, (8, 6))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    out = self_guided_attention(q, k, v, torch.ones(2, 8, 6), (48,), (8,), torch.full((8,), 1 / 8,
                                dtype=torch.float64), tie_breaks=("column",), impl=impl)
    expected = dense_attention(_tokens(q), k.mean(2), v.mean(2)).unflatten(2, (8, 6))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_ties_are_broken_by_position_in_each_order() -> None:
    """The fast path's stable sort and the reference's pairwise ranks give the same order, which is Python's
    ``sorted`` by (value, position in the order), NaN last."""
    significance = torch.tensor([[[2.0, 1, 2, float("nan")], [1, 0, 2, 1], [float("nan"), 2, 0, 1]]])
    values = significance.flatten().tolist()
    for order in ("row", "column"):
        position = tie_break_position(order, (3, 4), "cpu")
        key = [(v != v, 0.0 if v != v else v, int(p)) for v, p in zip(values, position)]
        expected = sorted(range(12), key=key.__getitem__)
        assert significance_order(significance, order)[0].tolist() == expected
        ranks = significance_ranks(significance.flatten(1), position)[0]
        assert torch.argsort(ranks).tolist() == expected
    # the column order of a map is the row order of its transpose, read back in row-major indices
    column = significance_order(significance, "column")[0]
    transposed = significance_order(significance.transpose(1, 2), "row")[0]
    assert column.tolist() == [(i % 3) * 4 + i // 3 for i in transposed.tolist()]


@pytest.mark.parametrize("impl", GUIDED_IMPLS)
def test_only_the_order_of_the_map_matters(impl: str) -> None:
    """A monotone transform of the map changes nothing; without ties both tie-break orders agree (the official
    two rankings differ only among equal significances); with ties they differ."""
    q, k, v = _randn(1, 2, 6, 5, 4), _randn(1, 2, 6, 5, 4), _randn(1, 2, 6, 5, 4)
    weights = _randn(7)
    distinct = torch.randperm(30).double().reshape(1, 6, 5)

    def run(significance: torch.Tensor, tie_breaks: tuple[str, ...]) -> torch.Tensor:
        return self_guided_attention(q, k, v, significance, (9, 12, 9), (3, 1, 3), weights, tie_breaks=tie_breaks,
                                     impl=impl)

    base = run(distinct, ("row", "column"))
    torch.testing.assert_close(run(distinct.exp() * 3 - 1, ("row", "column")), base, rtol=0, atol=0)
    torch.testing.assert_close(run(distinct.long(), ("row", "column")), base, rtol=0, atol=0)
    torch.testing.assert_close(run(distinct, ("column", "row")), base, rtol=0, atol=0)
    tied = torch.zeros(1, 6, 5)
    assert not torch.allclose(run(tied, ("row", "column")), run(tied, ("column", "row")))


def test_merging_with_average_weights_is_average_pooling_of_the_sorted_groups() -> None:
    """The catalog's check: merge weights ``1/rate`` make each key the mean of ``rate`` consecutive pixels in
    significance order, in the reference's pooling matrix and in the fast path's merge."""
    significance = torch.randperm(24).double().reshape(1, 4, 6)
    v = _tokens(_randn(1, 1, 4, 6, 3))
    order = sorted(range(24), key=significance.flatten().tolist().__getitem__)
    in_order = v[:, :, order]
    expected = torch.cat([in_order[:, :, :12].unflatten(2, (2, 6)).mean(3),
                          in_order[:, :, 12:].unflatten(2, (6, 2)).mean(3)], 2)  # 2 + 6 keys
    plan = reallocation((4, 6), (12, 12), (6, 2), ("row",), 1)
    weights = torch.cat([torch.full((6,), 1 / 6, dtype=torch.float64), torch.full((2,), 1 / 2, dtype=torch.float64)])
    ranks = significance_ranks(significance.flatten(1), tie_break_position("row", (4, 6), "cpu"))
    pooling, levels = pooling_matrices(ranks, weights, plan)
    torch.testing.assert_close(torch.matmul(pooling[:, None], v), expected, rtol=0, atol=1e-15)
    assert levels.tolist() == [[1, 0]] * 2 + [[0, 1]] * 6
    merged = merge_levels(v[:, :, significance_order(significance, "row")[0]], weights, None, plan)
    torch.testing.assert_close(merged, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("grid", "split", "rates", "keys"), [
    ((56, 56), (1, 2, 1), (196, 56, 28), 60),  # sr 8: 4 + 28 + 28
    ((28, 28), (1, 2, 1), (49, 14, 7), 60),  # sr 4
    ((14, 14), (1, 1), (2, 1), 147),  # sr 2: 49 + 98
])
def test_official_key_counts(grid: tuple[int, int], split: tuple[int, ...], rates: tuple[int, ...],
                             keys: int) -> None:
    sizes = split_sizes(grid[0] * grid[1], split)
    assert reallocation(grid, sizes, rates, ("row", "column"), 2).num_keys == keys


def test_guided_errors_name_the_option() -> None:
    q = _randn(1, 2, 4, 4, 3)
    sig = torch.rand(1, 4, 4)
    with pytest.raises(ValueError, match=r"rates=\(3, 1\): expected each rate to divide its group's size; group 0 "
                                         r"has 8 pixels"):
        self_guided_attention(q, q, q, sig, (8, 8), (3, 1), _randn(4))
    with pytest.raises(ValueError, match=r"significance has shape \(1, 4, 5\); expected \(B, X, Y\) = \(1, 4, 4\)"):
        self_guided_attention(q, q, q, torch.rand(1, 4, 5), (16,), (1,), _randn(1))
    with pytest.raises(ValueError, match=r"tie_breaks=\('row', 'column', 'row'\): expected a number of head groups"):
        self_guided_attention(q, q, q, sig, (16,), (1,), _randn(1), tie_breaks=("row", "column", "row"))


# ---- the official module, with copied weights ------------------------------------------------------------------

def _official(mask: bool, dim: int, heads: int, sr_ratio: int, stable: bool = False) -> Attention:
    torch.manual_seed(0)
    module = Attention(dim, mask, num_heads=heads, qkv_bias=True, sr_ratio=sr_ratio, stable=stable).double()
    with torch.no_grad():  # the official init leaves biases 0 and merges ~0.02: make every parameter count
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return module


def _channels_last(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return x.unflatten(1, grid)


@pytest.mark.parametrize(("grid", "heads", "sr_ratio"), [((56, 56), 2, 8), ((28, 28), 4, 4), ((14, 14), 4, 2)])
def test_hybrid_scale_layer_is_the_official_module(grid: tuple[int, int], heads: int, sr_ratio: int) -> None:
    """Official ``Attention(mask=False)`` with its weights loaded (strict): the same output and the same map
    (``mask_1`` row-major, ``mask_2`` column-major), and the same input gradient."""
    official = _official(False, 32, heads, sr_ratio)
    layer = HybridScaleAttention(32, heads, sr_ratio=sr_ratio, window_size=7).double()
    layer.load_state_dict(official.state_dict())
    x = _randn(2, grid[0] * grid[1], 32).requires_grad_()
    expected, (mask_1, mask_2) = official(x, *grid, None)
    out, significance = layer(_channels_last(x, grid), return_significance=True)
    torch.testing.assert_close(out, _channels_last(expected, grid), rtol=0, atol=1e-12)
    torch.testing.assert_close(significance.flatten(1), mask_1, rtol=0, atol=1e-15)
    torch.testing.assert_close(significance.transpose(1, 2).flatten(1), mask_2, rtol=0, atol=1e-15)
    grad = torch.autograd.grad(out.square().sum(), x)[0]
    torch.testing.assert_close(grad, torch.autograd.grad(expected.square().sum(), x)[0], rtol=0, atol=1e-10)


OFFICIAL_LEVELS = {8: ((1, 2, 1), (196, 56, 28)), 4: ((1, 2, 1), (49, 14, 7)), 2: ((1, 1), (2, 1))}


@pytest.mark.parametrize("impl", GUIDED_IMPLS)
@pytest.mark.parametrize(("grid", "heads", "sr_ratio"), [((56, 56), 2, 8), ((28, 28), 4, 4), ((14, 14), 4, 2)])
def test_self_guided_layer_is_the_official_module(grid: tuple[int, int], heads: int, sr_ratio: int,
                                                  impl: str) -> None:
    """The official pair: the hybrid block's map fed to the official ``Attention(mask=True)``, weights loaded
    (strict) into :class:`SelfGuidedAttention` with the official split and rates: the same output and input and
    merge-weight gradients (the map has no ties, where the official unstable sort is well defined)."""
    split, rates = OFFICIAL_LEVELS[sr_ratio]
    official_hybrid, official = _official(False, 32, heads, sr_ratio), _official(True, 32, heads, sr_ratio)
    hybrid = HybridScaleAttention(32, heads, sr_ratio=sr_ratio).double()
    hybrid.load_state_dict(official_hybrid.state_dict())
    layer = SelfGuidedAttention(32, heads, rates=rates, split=split, impl=impl).double()
    layer.load_state_dict(official.state_dict())
    x = _randn(2, grid[0] * grid[1], 32).requires_grad_()
    _, mask = official_hybrid(x, *grid, None)
    _, significance = hybrid(_channels_last(x, grid), return_significance=True)
    assert significance.flatten(1).unique(dim=1).shape[1] == grid[0] * grid[1]  # no ties
    expected, _ = official(x, *grid, mask)
    out = layer(_channels_last(x, grid), significance)
    torch.testing.assert_close(out, _channels_last(expected, grid), rtol=0, atol=1e-12)
    grads = torch.autograd.grad(out.square().sum(), (x, layer.f1.weight, layer.f2.bias))
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, official.f1.weight, official.f2.bias))
    for grad, want in zip(grads, expected_grads):
        torch.testing.assert_close(grad, want, rtol=0, atol=1e-9)


def test_ties_follow_the_official_code_with_stable_sorts() -> None:
    """A map full of ties (four values): the official module with stable sorts gives our output; with its own
    ``torch.sort`` (order among equals unspecified) it need not."""
    official = _official(True, 32, 4, 4, stable=True)
    layer = SelfGuidedAttention(32, 4, rates=(49, 14, 7), split=(1, 2, 1)).double()
    layer.load_state_dict(official.state_dict())
    x = _randn(2, 28 * 28, 32)
    significance = torch.randint(0, 4, (2, 28, 28)).double()
    expected, _ = official(x, 28, 28, [significance.flatten(1), significance.transpose(1, 2).flatten(1)])
    for impl in GUIDED_IMPLS:
        layer.impl = impl
        torch.testing.assert_close(layer(_channels_last(x, (28, 28)), significance), _channels_last(expected, (28, 28)),
                                   rtol=0, atol=1e-12)


# ---- the layers on their own -------------------------------------------------------------------------------------

def test_standalone_self_guided_layer_uses_its_own_map() -> None:
    """Without a map, the layer's own (the official rule on its own queries and keys: first half of the heads
    against keys average-pooled sr x sr, second half in windows), which the explicit construction gives."""
    torch.manual_seed(0)
    layer = SelfGuidedAttention(16, 4, sr_ratio=2, window_size=4).double()
    x = _randn(2, 8, 8, 16)
    q, key, _ = layer.projections(x)
    pooled = F.avg_pool2d(key[:, :2].movedim(-1, 2).flatten(0, 1), 2).unflatten(0, (2, 2)).movedim(2, -1)
    _, wide = hybrid_scale_attention(q[:, :2], pooled, pooled, 2, return_significance=True, impl="reference")
    _, local = hybrid_scale_attention(q[:, 2:], key[:, 2:], key[:, 2:], 1, 4, return_significance=True,
                                      impl="reference")
    torch.testing.assert_close(layer.own_significance(q, key), wide + local, rtol=0, atol=1e-14)
    torch.testing.assert_close(layer(x), layer(x, wide + local), rtol=0, atol=0)


def test_layer_errors_for_grids_that_do_not_fit() -> None:
    x = torch.randn(1, 10, 10, 32)
    with pytest.raises(ValueError, match=r"sr_ratio=\(4, 4\): expected a divisor of the input grid \(H, W\) = "
                                         r"\(10, 10\)"):
        HybridScaleAttention(32, 4, sr_ratio=4, window_size=5)(x)
    with pytest.raises(ValueError, match=r"window_size=\(7, 7\): expected a divisor of the input grid"):
        HybridScaleAttention(32, 4, sr_ratio=2)(x)
    with pytest.raises(ValueError, match=r"rates=\(4, 2, 1\): the input grid \(H, W\) = \(10, 10\) has 100 pixels, "
                                         r"split \(1, 2, 1\) gives groups of \(25, 50, 25\)"):
        SelfGuidedAttention(32, 4)(x, torch.rand(1, 10, 10))
    with pytest.raises(ValueError, match=r"significance has shape \(1, 8, 8\); expected \(B, X, Y\) = \(1, 8, 10\)"):
        SelfGuidedAttention(32, 4, rates=(5, 2, 1))(torch.randn(1, 8, 10, 32), torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match=r"window_size=\(7, 7\): expected a divisor"):
        SelfGuidedAttention(32, 4, rates=(5, 2, 1), window_size=7)(torch.randn(1, 8, 10, 32))
    with pytest.raises(ValueError, match="num_heads=3: expected an even number"):
        SelfGuidedAttention(30, 3)


@pytest.mark.parametrize("mixer", ["hybrid_scale_attention", "self_guided_attention"])
def test_the_fashion_mnist_grid_fits(mixer: str) -> None:
    """The ViT of the Fashion-MNIST evaluation (7 x 7 tokens) with the options ``fit_options`` gives there."""
    from attnzoo.tasks.fashion_mnist import FashionMNISTTask

    options = FashionMNISTTask().mixer_options(mixer)
    assert options["window_size"] == 7 and options["sr_ratio"] == 1
    model = VisionTransformer(mixer=mixer, mixer_kwargs=options, depth=2)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert attnzoo.get_variant(mixer).fit_options((56, 56), 7) == {"window_size": 7, "sr_ratio": 8, **(
        {"rates": (4, 2, 1)} if mixer == "self_guided_attention" else {})}
