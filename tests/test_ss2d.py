"""SS2D's own invariants (the registry-wide contract runs the rest): the official code transcribed and compared in
float64, cross-scan / cross-merge identities, the Δ -> 0 limit, causality of each direction along its own order,
the chunked scan on lengths around its chunk boundaries, and the layer joining the ViT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.layers.ss2d import SS2D
from attnzoo.ops.ss2d import cross_merge, cross_scan, selective_scan_2d
from attnzoo.ops.ss2d.chunked import chunk_size

# ---- transcriptions of the official code (reference data for the comparisons below) -------------------------------

def official_cross_scan(x: torch.Tensor) -> torch.Tensor:
    """VMamba ``csms6s.py`` ``CrossScan.forward`` (channels first, ``(B, C, H, W)`` -> ``(B, 4, C, L)``)."""
    b, c, h, w = x.shape
    xs = x.new_empty((b, 4, c, h * w))
    xs[:, 0] = x.flatten(2, 3)
    xs[:, 1] = x.transpose(dim0=2, dim1=3).flatten(2, 3)
    xs[:, 2:4] = torch.flip(xs[:, 0:2], dims=[-1])
    return xs


def official_cross_merge(ys: torch.Tensor) -> torch.Tensor:
    """VMamba ``csms6s.py`` ``CrossMerge.forward`` (``(B, 4, D, H, W)`` -> ``(B, D, L)``)."""
    b, k, d, h, w = ys.shape
    ys = ys.view(b, k, d, -1)
    ys = ys[:, 0:2] + ys[:, 2:4].flip(dims=[-1]).view(b, 2, d, -1)
    return ys[:, 0] + ys[:, 1].view(b, -1, w, h).transpose(dim0=2, dim1=3).contiguous().view(b, d, -1)


def official_selective_scan_ref(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):  # noqa: ANN001, ANN201
    """state-spaces/mamba ``selective_scan_ref`` for real ``A`` and grouped ``B``, ``C`` ``(B, G, N, L)``."""
    delta = delta + delta_bias[..., None] if delta_bias is not None else delta
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    B = B.repeat_interleave(dim // B.shape[1], dim=1)
    C = C.repeat_interleave(dim // C.shape[1], dim=1)
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    for i in range(u.shape[2]):
        x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
        ys.append(torch.einsum("bdn,bdn->bd", x, C[:, :, :, i]))
    y = torch.stack(ys, dim=2)
    return y if D is None else y + u * D[:, None]


def official_ss2d_forward(layer: SS2D, x: torch.Tensor) -> torch.Tensor:
    """Mamba YOLO ``SS2D.forward`` + ``cross_selective_scan`` (``out_norm_shape="v0"``), channels first, with
    the layer's parameters (its linear maps are the official 1x1 convolutions)."""
    act = F.gelu if layer.act == "gelu" else F.silu
    x = x.permute(0, 3, 1, 2)
    x = F.conv2d(x, layer.in_proj.weight[:, :, None, None], layer.in_proj.bias)
    x, z = x.chunk(2, dim=1)
    z1 = act(z)
    x = act(layer.conv2d(x))
    b, d, h, w = x.shape
    k, _, r = layer.dt_projs_weight.shape
    n, length = layer.d_state, h * w
    xs = official_cross_scan(x)
    x_dbl = torch.einsum("b k d l, k c d -> b k c l", xs, layer.x_proj_weight)
    dts, bs, cs = torch.split(x_dbl, [r, n, n], dim=2)
    dts = torch.einsum("b k r l, k d r -> b k d l", dts, layer.dt_projs_weight)
    ys = official_selective_scan_ref(xs.reshape(b, -1, length), dts.reshape(b, -1, length),
                                     -torch.exp(layer.A_logs.reshape(k * d, n)), bs, cs, layer.Ds.reshape(-1),
                                     layer.dt_projs_bias.reshape(-1), delta_softplus=True).view(b, k, -1, h, w)
    y = official_cross_merge(ys).transpose(1, 2)
    y = layer.out_norm(y).view(b, h, w, -1).permute(0, 3, 1, 2)
    y = y * z1
    out = F.conv2d(y, layer.out_proj.weight[:, :, None, None], layer.out_proj.bias)
    return out.permute(0, 2, 3, 1)


# ---- comparisons with the official code ---------------------------------------------------------------------------

@pytest.mark.parametrize("grid", [(1, 1), (3, 5), (6, 4)])
def test_cross_scan_and_merge_equal_the_official_functions(grid: tuple[int, int]) -> None:
    x = torch.randn(2, *grid, 3, dtype=torch.float64)
    torch.testing.assert_close(cross_scan(x), official_cross_scan(x.permute(0, 3, 1, 2)).transpose(2, 3))
    ys = torch.randn(2, 4, grid[0] * grid[1], 3, dtype=torch.float64)
    official = official_cross_merge(ys.transpose(2, 3).reshape(2, 4, 3, *grid))
    torch.testing.assert_close(cross_merge(ys, *grid), official.transpose(1, 2).reshape(2, *grid, 3))


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_op_equals_the_official_scan_of_each_direction(impl: str) -> None:
    torch.manual_seed(0)
    b, h, w, e, n = 2, 4, 5, 3, 2
    x = torch.randn(b, h, w, e, dtype=torch.float64)
    delta, bs, cs = (torch.randn(b, 4, h, w, s, dtype=torch.float64) for s in (e, n, n))
    A, D, bias = -torch.rand(4, e, n, dtype=torch.float64), torch.randn(4, e, dtype=torch.float64), \
        torch.randn(4, e, dtype=torch.float64)
    ours = selective_scan_2d(x, delta, A, bs, cs, D, bias, impl=impl)

    def scanned(t: torch.Tensor) -> torch.Tensor:  # (B, 4, H, W, S) -> official (B, 4, S, L), direction k's order
        return torch.stack([official_cross_scan(t[:, k].permute(0, 3, 1, 2))[:, k] for k in range(4)], dim=1)

    xs = official_cross_scan(x.permute(0, 3, 1, 2))
    ys = official_selective_scan_ref(xs.reshape(b, 4 * e, h * w), scanned(delta).reshape(b, 4 * e, h * w),
                                     A.reshape(4 * e, n), scanned(bs), scanned(cs), D.reshape(-1), bias.reshape(-1),
                                     delta_softplus=True)
    official = official_cross_merge(ys.view(b, 4, e, h, w)).transpose(1, 2).reshape(b, h, w, e)
    torch.testing.assert_close(ours, official, rtol=0, atol=1e-12)


def test_layer_equals_the_official_ss2d_forward() -> None:
    torch.manual_seed(0)
    layer = SS2D(dim=8, d_state=4).double()
    x = torch.randn(2, 5, 6, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x), official_ss2d_forward(layer, x), rtol=0, atol=1e-12)


# ---- the catalog's identities ---------------------------------------------------------------------------------------

def test_cross_scan_and_merge_are_adjoint_and_merge_of_scan_is_four_times_the_input() -> None:
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    y = torch.randn(2, 4, 15, 4, dtype=torch.float64)
    torch.testing.assert_close((cross_scan(x) * y).sum(), (x * cross_merge(y, 5, 3)).sum())
    torch.testing.assert_close(cross_merge(cross_scan(x), 5, 3), 4 * x)


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_zero_step_leaves_only_the_skip(impl: str) -> None:
    """Δ = 0 (no softplus, no bias): the state stays zero and ``y = Σ_k D_k ⊙ x``."""
    x = torch.randn(2, 4, 6, 3, dtype=torch.float64)
    zeros = torch.zeros(2, 4, 4, 6, 3, dtype=torch.float64)
    bs = torch.randn(2, 4, 4, 6, 2, dtype=torch.float64)
    D = torch.randn(4, 3, dtype=torch.float64)
    y = selective_scan_2d(x, zeros, -torch.rand(4, 3, 2, dtype=torch.float64), bs, bs, D, delta_softplus=False,
                          impl=impl)
    torch.testing.assert_close(y, x * D.sum(0))


@pytest.mark.parametrize("impl", ["reference", "chunked"])
@pytest.mark.parametrize("direction", range(4))
def test_each_direction_is_causal_along_its_own_order(impl: str, direction: int) -> None:
    """With ``B = C = 0`` outside one direction (and no skip), pixel ``p`` depends only on pixels at or before it
    in that direction's scan order: exact-zero gradients from the rest."""
    h, w, e, n = 3, 4, 2, 2
    x = torch.randn(1, h, w, e, dtype=torch.float64, requires_grad=True)
    delta = torch.randn(1, 4, h, w, e, dtype=torch.float64)
    keep = torch.zeros(1, 4, 1, 1, 1, dtype=torch.float64)
    keep[:, direction] = 1
    bs, cs = (torch.randn(1, 4, h, w, n, dtype=torch.float64) * keep for _ in range(2))
    y = selective_scan_2d(x, delta, -torch.rand(4, e, n, dtype=torch.float64), bs, cs, impl=impl)
    order = cross_scan(torch.arange(h * w).view(1, h, w, 1))[0, direction, :, 0].tolist()
    rank = {pixel: position for position, pixel in enumerate(order)}
    for pixel in range(h * w):
        (grad,) = torch.autograd.grad(y.flatten(1, 2)[0, pixel].sum(), x, retain_graph=True)
        grad = grad.flatten(1, 2)[0].abs().sum(-1)
        later = [q for q in range(h * w) if rank[q] > rank[pixel]]
        assert torch.all(grad[later] == 0), (pixel, later)
        assert grad[pixel] != 0


@pytest.mark.parametrize("length", [1, 2, 3, 15, 16, 17, 33, 100])
def test_chunked_equals_reference_around_chunk_boundaries(length: int) -> None:
    torch.manual_seed(length)
    x = torch.randn(1, 1, length, 2, dtype=torch.float64, requires_grad=True)
    delta, bs, cs = (torch.randn(1, 4, 1, length, s, dtype=torch.float64) for s in (2, 3, 3))
    A = -torch.rand(4, 2, 3, dtype=torch.float64)
    outs = [selective_scan_2d(x, delta, A, bs, cs, impl=impl) for impl in ("reference", "chunked")]
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-12)
    grads = [torch.autograd.grad(o.square().sum(), x)[0] for o in outs]
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=1e-12)


def test_chunk_sizes() -> None:
    assert [chunk_size(n) for n in (1, 2, 49, 64, 65, 500)] == [1, 2, 8, 8, 16, 32]


def test_ss2d_joins_the_vision_transformer_as_a_spatial_mixer() -> None:
    from attnzoo.models.mixers import usable_mixers
    from attnzoo.registry import IMAGE, TOKENS

    assert "selective_scan_2d" in usable_mixers([TOKENS, IMAGE], causal=False)
    layer = attnzoo.create("selective_scan_2d", dim=16, d_state=1, act="silu")
    x = torch.randn(2, 7, 7, 16, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
