"""DaViT channel group attention (paper 11): Eq. 3 of the paper as printed, its invariants, the layer against
timm's ``ChannelAttention`` with copied weights, and the dual (window + channel) pair against timm's DaViT
window attention followed by its channel attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm_source import load_timm, to_2tuple

from attnzoo.layers import ChannelGroupAttention, WindowAttention2D
from attnzoo.ops import channel_group_attention

IMPLS = ["gemm", "reference"]


def _tensors(*shapes: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


def _paper_equation(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Eq. 3 of arXiv 2204.03645 group by group: ``A(Q_i, K_i, V_i) = softmax(Q_iᵀ K_i / sqrt(C_g)) V_iᵀ``
    ``(C_g x N)``, transposed back to ``N x C_g``; every score a sum over the N positions, written as loops."""
    out = torch.empty_like(v)
    batch, groups, n, channels = q.shape
    for b in range(batch):
        for g in range(groups):
            scores = torch.empty(channels, channels, dtype=q.dtype)
            for i in range(channels):
                for j in range(channels):
                    scores[i, j] = sum(q[b, g, p, i] * k[b, g, p, j] for p in range(n)) * scale
            out[b, g] = (torch.softmax(scores, dim=-1) @ v[b, g].T).T
    return out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("n", "channels"), [(1, 4), (7, 3), (20, 6)])
def test_matches_the_papers_equation(impl: str, n: int, channels: int) -> None:
    q, k, v = _tensors(*[(2, 3, n, channels)] * 3)
    expected = _paper_equation(q, k, v, channels ** -0.5)
    torch.testing.assert_close(channel_group_attention(q, k, v, impl=impl), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_position_permutation_permutes_the_output(impl: str) -> None:
    """The C_g x C_g scores sum over all positions: shuffling the positions (the same way in q, k, v) leaves
    them unchanged and shuffles the output rows."""
    q, k, v = _tensors(*[(2, 2, 30, 5)] * 3)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    out = channel_group_attention(q, k, v, impl=impl)
    torch.testing.assert_close(channel_group_attention(q[:, :, perm], k[:, :, perm], v[:, :, perm], impl=impl),
                               out[:, :, perm], atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_one_channel_per_group_returns_the_value_and_rows_are_stochastic(impl: str) -> None:
    q, k, v = _tensors((2, 4, 25, 1), (2, 4, 25, 1), (2, 4, 25, 1))
    torch.testing.assert_close(channel_group_attention(q, k, v, impl=impl), v, atol=1e-12, rtol=0)
    q, k = _tensors((2, 4, 25, 6), (2, 4, 25, 6))
    ones = torch.ones(2, 4, 25, 6, dtype=torch.float64)
    torch.testing.assert_close(channel_group_attention(q, k, ones, impl=impl), ones, atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_dynamic_scale_is_timms_channel_attention_v2(impl: str) -> None:
    """timm's ``ChannelAttentionV2`` (``dynamic_scale=True``, DaViT for Florence-2) scales by ``N^{-1/2}`` and
    takes q, k, v in the paper's roles: the op with ``scale=N ** -0.5``."""
    peer = load_timm("models/davit.py", ["ChannelAttentionV2"])["ChannelAttentionV2"](24, num_heads=4).double()
    x = _tensors((2, 35, 24))[0]
    q, k, v = peer.qkv(x).reshape(2, 35, 3, 4, 6).permute(2, 0, 3, 1, 4)
    out = channel_group_attention(q, k, v, scale=35 ** -0.5, impl=impl).transpose(1, 2).reshape(2, 35, 24)
    torch.testing.assert_close(peer.proj(out), peer(x), atol=1e-12, rtol=0)


def _timm_davit(dim: int, heads: int, window: int | None = None) -> dict:
    namespace = load_timm("models/davit.py", ["ChannelAttention", "WindowAttention", "window_partition",
                                              "window_reverse"], {"use_fused_attn": lambda: False,
                                                                  "to_2tuple": to_2tuple})
    peers = {"channel": namespace["ChannelAttention"](dim, num_heads=heads, qkv_bias=True).double()}
    if window is not None:
        peers["window"] = namespace["WindowAttention"](dim, to_2tuple(window), heads, qkv_bias=True).double()
        peers["partition"], peers["reverse"] = namespace["window_partition"], namespace["window_reverse"]
    return peers


def _copy_linear(target: torch.nn.Linear, source: torch.nn.Linear) -> None:
    with torch.no_grad():
        target.weight.copy_(source.weight)
        target.bias.copy_(source.bias)


@pytest.mark.parametrize("impl", IMPLS)
def test_layer_matches_timm_channel_attention_with_copied_weights(impl: str) -> None:
    """timm 1.0.31 ``timm/models/davit.py`` ``ChannelAttention`` (from the official dingmyu/davit), on the
    flattened map: outputs and every gradient."""
    peer = _timm_davit(24, 3)["channel"]
    layer = ChannelGroupAttention(24, 3, impl=impl).double()
    _copy_linear(layer.qkv, peer.qkv)
    _copy_linear(layer.proj, peer.proj)
    x = _tensors((2, 5, 7, 24))[0].requires_grad_()
    ours, theirs = layer(x), peer(x.flatten(1, 2)).unflatten(1, (5, 7))
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    cotangent = _tensors(ours.shape, seed=1)[0]
    grads = torch.autograd.grad(ours, [x, layer.qkv.weight, layer.proj.bias], cotangent)
    peer_grads = torch.autograd.grad(theirs, [x, peer.qkv.weight, peer.proj.bias], cotangent)
    for ours_grad, theirs_grad in zip(grads, peer_grads):
        torch.testing.assert_close(ours_grad, theirs_grad, atol=1e-11, rtol=0)


def test_dual_pair_is_timms_window_attention_then_channel_attention() -> None:
    """``window_size``: ``s = window(x)``, ``out = s + channel(LayerNorm(x + s))``, the window half being DaViT's
    ``SpatialBlock`` attention (pad to the window, ``window_partition``, timm's ``WindowAttention``,
    ``window_reverse``, crop) on a 10 x 9 map with window 4."""
    peers = _timm_davit(16, 2, window=4)
    layer = ChannelGroupAttention(16, 2, window_size=4).double()
    _copy_linear(layer.qkv, peers["channel"].qkv)
    _copy_linear(layer.proj, peers["channel"].proj)
    _copy_linear(layer.spatial.qkv, peers["window"].qkv)
    _copy_linear(layer.spatial.proj, peers["window"].proj)
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.uniform_(-0.5, 0.5)
    x = _tensors((2, 10, 9, 16))[0]
    padded = F.pad(x, (0, 0, 0, 3, 0, 2))  # 12 x 12
    windows = peers["partition"](padded, (4, 4)).view(-1, 16, 16)
    spatial = peers["reverse"](peers["window"](windows).view(-1, 4, 4, 16), (4, 4), 12, 12)[:, :10, :9]
    mixed = layer.norm(x + spatial).flatten(1, 2)
    expected = spatial + peers["channel"](mixed).unflatten(1, (10, 9))
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(layer.spatial(x), spatial, atol=1e-12, rtol=0)


def test_channel_only_and_dual_layers_differ_only_by_the_pair() -> None:
    torch.manual_seed(0)
    dual = ChannelGroupAttention(16, 4, window_size=(2, 3)).double()
    x = _tensors((1, 4, 6, 16))[0]
    spatial = dual.spatial(x)
    torch.testing.assert_close(dual(x), spatial + dual.channel_attention(dual.norm(x + spatial)))
    assert isinstance(dual.spatial, WindowAttention2D) and dual.spatial.rpb is None
    assert ChannelGroupAttention(16, 4).spatial is None


def test_bad_input_names_the_argument() -> None:
    q = torch.randn(1, 2, 10, 4)
    with pytest.raises(ValueError, match=r"value has shape \(1, 2, 10, 3\); expected the key's shape"):
        channel_group_attention(q, q, q[..., :3])
    with pytest.raises(ValueError, match=r"key has shape \(1, 2, 9, 4\); expected the query's shape"):
        channel_group_attention(q, q[:, :, :9], q[:, :, :9])
    with pytest.raises(ValueError, match="dim=30 must be divisible by num_heads=4"):
        ChannelGroupAttention(30, 4)
    with pytest.raises(ValueError, match=r"input has shape \(1, 5, 5, 8\), 8 channels; expected"):
        ChannelGroupAttention(16, 4)(torch.randn(1, 5, 5, 8))
