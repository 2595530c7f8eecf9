"""GC ViT global query attention (paper 59): local queries give window attention, the op against an explicit
per-window loop, identical windows, the layer against timm's ``WindowAttentionGlobal`` with copied weights, and
the global query generator against the official ``GlobalQueryGen`` (NVlabs/GCVit, transcribed)."""

from __future__ import annotations

import pytest
import torch
from timm_source import load_timm, to_2tuple
from torch import nn

from attnzoo.layers import GlobalQueryAttention, GlobalQueryGenerator
from attnzoo.layers.global_query import global_query_levels
from attnzoo.ops import global_query_attention, window_attention_2d
from attnzoo.ops.native import unavailable_reason
from attnzoo.registry import get_variant

IMPLS = [pytest.param("native", marks=pytest.mark.skipif(unavailable_reason() is not None,
                                                       reason=str(unavailable_reason()))), "windowed", "reference"]


def _tensors(*shapes: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("grid", "window"), [((12, 12), 4), ((6, 10), (3, 5)), ((7, 7), 7)])
def test_local_queries_give_window_attention(impl: str, grid: tuple[int, int], window) -> None:  # noqa: ANN001
    """The limit of the issue: the global queries replaced by each window's own (local) queries is the
    unshifted window attention of :mod:`attnzoo.ops.window`, bias table included."""
    w = to_2tuple(window)
    q, k, v, rpb = _tensors((2, 3, *grid, 8), (2, 3, *grid, 8), (2, 3, *grid, 5), (3, 2 * w[0] - 1, 2 * w[1] - 1))
    expected = window_attention_2d(q, k, v, window, 0, rpb=rpb, impl="reference")
    torch.testing.assert_close(global_query_attention(q, k, v, window, rpb=rpb, impl=impl), expected,
                               atol=1e-12, rtol=0)


def _per_window_loop(q_global, k, v, window, rpb, scale):  # noqa: ANN001, ANN202
    """GC ViT's Eq. 4-6 window by window: ``softmax(q_g k_wᵀ · scale + B) v_w`` with the bias of every in-window
    pair ``B[h, key - query]``."""
    wx, wy = window
    out = torch.empty(*k.shape[:-1], v.shape[-1], dtype=k.dtype)
    pos = torch.stack(torch.meshgrid(torch.arange(wx), torch.arange(wy), indexing="ij"), -1).reshape(-1, 2)
    offset = pos[None, :, :] - pos[:, None, :]  # (query, key, 2): key - query
    bias = rpb[:, offset[..., 0] + wx - 1, offset[..., 1] + wy - 1]  # (H, w², w²)
    for x in range(0, k.shape[2], wx):
        for y in range(0, k.shape[3], wy):
            kw, vw = k[:, :, x:x + wx, y:y + wy].flatten(2, 3), v[:, :, x:x + wx, y:y + wy].flatten(2, 3)
            probs = torch.softmax(q_global.flatten(2, 3) @ kw.transpose(-1, -2) * scale + bias, dim=-1)
            out[:, :, x:x + wx, y:y + wy] = (probs @ vw).unflatten(2, (wx, wy))
    return out


@pytest.mark.parametrize("impl", IMPLS)
def test_matches_a_per_window_loop(impl: str) -> None:
    q, k, v, rpb = _tensors((2, 2, 3, 4, 6), (2, 2, 9, 8, 6), (2, 2, 9, 8, 7), (2, 5, 7))
    expected = _per_window_loop(q, k, v, (3, 4), rpb, 0.3)
    torch.testing.assert_close(global_query_attention(q, k, v, (3, 4), rpb=rpb, scale=0.3, impl=impl), expected,
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_identical_windows_give_identical_outputs(impl: str) -> None:
    """With the same keys and values in every window, the shared global queries give every window the same
    output (local queries would not)."""
    q, k, v = _tensors((1, 2, 4, 4, 5), (1, 2, 4, 4, 5), (1, 2, 4, 4, 5))
    out = global_query_attention(q, k.repeat(1, 1, 3, 2, 1), v.repeat(1, 1, 3, 2, 1), 4, impl=impl)
    torch.testing.assert_close(out, out[:, :, :4, :4].repeat(1, 1, 3, 2, 1), atol=1e-12, rtol=0)


# ---- official global query generator (NVlabs/GCVit models/gc_vit.py at 8e1941f, transcribed) ------------------------

class OfficialSE(nn.Module):
    def __init__(self, inp, oup, expansion=0.25):  # noqa: ANN001, ANN204
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(oup, int(inp * expansion), bias=False),
            nn.GELU(),
            nn.Linear(int(inp * expansion), oup, bias=False),
            nn.Sigmoid()
        )

    def forward(self, x):  # noqa: ANN001, ANN201
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y


class OfficialFeatExtract(nn.Module):
    def __init__(self, dim, keep_dim=False):  # noqa: ANN001, ANN204
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1,
                      groups=dim, bias=False),
            nn.GELU(),
            OfficialSE(dim, dim),
            nn.Conv2d(dim, dim, 1, 1, 0, bias=False),
        )
        if not keep_dim:
            self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.keep_dim = keep_dim

    def forward(self, x):  # noqa: ANN001, ANN201
        x = x.contiguous()
        x = x + self.conv(x)
        if not self.keep_dim:
            x = self.pool(x)
        return x


class OfficialGlobalQueryGen(nn.Module):
    def __init__(self, dim, input_resolution, image_resolution, window_size, num_heads):  # noqa: ANN001, ANN204
        super().__init__()
        if input_resolution == image_resolution//4:
            self.to_q_global = nn.Sequential(
                OfficialFeatExtract(dim, keep_dim=False),
                OfficialFeatExtract(dim, keep_dim=False),
                OfficialFeatExtract(dim, keep_dim=False),
            )
        elif input_resolution == image_resolution//8:
            self.to_q_global = nn.Sequential(
                OfficialFeatExtract(dim, keep_dim=False),
                OfficialFeatExtract(dim, keep_dim=False),
            )
        elif input_resolution == image_resolution//16:
            if window_size == input_resolution:
                self.to_q_global = nn.Sequential(
                    OfficialFeatExtract(dim, keep_dim=True)
                )
            else:
                self.to_q_global = nn.Sequential(
                    OfficialFeatExtract(dim, keep_dim=True)
                )
        elif input_resolution == image_resolution//32:
            self.to_q_global = nn.Sequential(
                OfficialFeatExtract(dim, keep_dim=True)
            )
        self.resolution = input_resolution
        self.num_heads = num_heads
        self.N = window_size * window_size
        self.dim_head = torch.div(dim, self.num_heads, rounding_mode='floor')

    def forward(self, x):  # noqa: ANN001, ANN201
        x = self.to_q_global(x).permute(0, 2, 3, 1)  # _to_channel_last
        B = x.shape[0]  # noqa: N806
        x = x.reshape(B, 1, self.N, self.num_heads, self.dim_head).permute(0, 1, 3, 2, 4)
        return x


def _copy_generator(ours: GlobalQueryGenerator, official: nn.Sequential) -> None:
    """The official blocks' weights into ours, block for block (conv 3x3, SE's two linears, conv 1x1)."""
    assert len(ours.blocks) == len(official)
    for mine, theirs in zip(ours.blocks, official):
        with torch.no_grad():
            for i in (0, 3):
                mine.conv[i].weight.copy_(theirs.conv[i].weight)
            for i in (0, 2):
                mine.conv[2].fc[i].weight.copy_(theirs.conv[2].fc[i].weight)


# GC ViT's four stages at 224 x 224: input resolutions 56, 28, 14, 7 with windows 7, 7, 14, 7
STAGES = [(56, 7, 3), (28, 7, 2), (14, 14, 0), (7, 7, 0)]


@pytest.mark.parametrize(("resolution", "window", "levels"), STAGES)
def test_generator_matches_the_official_global_query_gen(resolution: int, window: int, levels: int) -> None:
    """Copied weights, dim 32 (SE width 8): the same global queries, one window of tokens at every stage."""
    assert global_query_levels((resolution,) * 2, (window,) * 2) == levels
    torch.manual_seed(0)
    official = OfficialGlobalQueryGen(32, resolution, 224, window, num_heads=4).double()
    ours = GlobalQueryGenerator(32, levels).double()
    _copy_generator(ours, official.to_q_global)
    x = _tensors((2, 32, resolution, resolution))[0]
    out = ours(x)
    assert out.shape == (2, 32, window, window)
    # official (B, 1, heads, N, d); ours split into heads the same way: channel c = head * d + i
    expected = official(x)[:, 0].permute(0, 2, 1, 3).reshape(2, window, window, 32)
    torch.testing.assert_close(out.permute(0, 2, 3, 1), expected, atol=1e-12, rtol=0)


def test_generator_at_14_with_window_7_pools_once_as_timm() -> None:
    """The official ``GlobalQueryGen`` keeps the resolution at ``image // 16`` whatever the window (both branches
    are ``keep_dim=True``; its configs only pair 14 with window 14); timm's ``FeatureBlock`` (``levels =
    log2(14 / 7) = 1``) and this generator pool once."""
    assert global_query_levels((14, 14), (7, 7)) == 1
    assert GlobalQueryGenerator(16, 1)(torch.randn(1, 16, 14, 14)).shape == (1, 16, 7, 7)


# ---- timm's WindowAttentionGlobal (timm 1.0.31 timm/models/gcvit.py, loaded from the installed source) -------------

def _timm_gcvit() -> dict:
    grid = load_timm("layers/grid.py", ["ndgrid"])
    rel = load_timm("layers/pos_embed_rel.py", ["gen_relative_position_index", "RelPosBias"],
                    {"ndgrid": grid["ndgrid"], "to_2tuple": to_2tuple, "trunc_normal_": nn.init.trunc_normal_})
    return load_timm("models/gcvit.py", ["WindowAttentionGlobal", "window_partition", "window_reverse"],
                     {"RelPosBias": rel["RelPosBias"], "to_2tuple": to_2tuple, "_assert": torch._assert})


def _load_table(rpb: torch.Tensor, table: torch.Tensor) -> None:
    """timm's Swin-indexed ``((2w-1)², heads)`` table (``query - key``) into ours (``key - query``)."""
    with torch.no_grad():
        rpb.copy_(table.T.reshape(rpb.shape).flip(1, 2))


def _timm_windows(peer: nn.Module, namespace: dict, x: torch.Tensor, window: tuple[int, int],
                  q_global: torch.Tensor | None) -> torch.Tensor:
    """``GlobalContextVitBlock._window_attn`` of timm: partition, attention, reverse."""
    b, h, w, c = x.shape
    windows = namespace["window_partition"](x, window).view(-1, window[0] * window[1], c)
    return namespace["window_reverse"](peer(windows, q_global), window, (h, w))


@pytest.mark.parametrize("impl", IMPLS)
def test_global_block_matches_timm_window_attention_global(impl: str) -> None:
    """Copied weights (kv, proj, the bias table), the same global queries (our generator's, in timm's
    ``(B, wh, ww, C)``): outputs and gradients of a 2-image batch of 14 x 14 maps with 7 x 7 windows."""
    namespace = _timm_gcvit()
    peer = namespace["WindowAttentionGlobal"](32, num_heads=4, window_size=7, use_global=True).double()
    layer = GlobalQueryAttention(32, 4, (14, 14), 7, local_block=False, impl=impl).double()
    with torch.no_grad():
        layer.kv.weight.copy_(peer.qkv.weight)
        layer.kv.bias.copy_(peer.qkv.bias)
        layer.proj.weight.copy_(peer.proj.weight)
        layer.proj.bias.copy_(peer.proj.bias)
    _load_table(layer.rpb, peer.rel_pos.relative_position_bias_table)
    x = _tensors((2, 14, 14, 32))[0].requires_grad_()
    q_global = layer.global_queries(x)
    assert q_global.shape == (2, 7, 7, 32)
    theirs = _timm_windows(peer, namespace, x, (7, 7), q_global)
    ours = layer(x)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    cotangent = _tensors(ours.shape, seed=1)[0]
    ours_grads = torch.autograd.grad(ours, [x, layer.kv.weight, layer.rpb], cotangent)
    theirs_grads = torch.autograd.grad(theirs, [x, peer.qkv.weight, peer.rel_pos.relative_position_bias_table],
                                       cotangent)
    torch.testing.assert_close(ours_grads[0], theirs_grads[0], atol=1e-11, rtol=0)
    torch.testing.assert_close(ours_grads[1], theirs_grads[1], atol=1e-11, rtol=0)
    torch.testing.assert_close(ours_grads[2], theirs_grads[2].T.reshape(4, 13, 13).flip(1, 2), atol=1e-11, rtol=0)


def test_local_block_matches_timm_window_attention_without_global_queries() -> None:
    """timm's ``WindowAttentionGlobal(use_global=False)`` is GC ViT's local block: our pair's local half."""
    namespace = _timm_gcvit()
    peer = namespace["WindowAttentionGlobal"](16, num_heads=2, window_size=(4, 6), use_global=False).double()
    layer = GlobalQueryAttention(16, 2, (8, 12), (4, 6)).double()
    with torch.no_grad():
        layer.local.qkv.weight.copy_(peer.qkv.weight)
        layer.local.qkv.bias.copy_(peer.qkv.bias)
        layer.local.proj.weight.copy_(peer.proj.weight)
        layer.local.proj.bias.copy_(peer.proj.bias)
    _load_table(layer.local.rpb, peer.rel_pos.relative_position_bias_table)
    x = _tensors((2, 8, 12, 16))[0]
    local = _timm_windows(peer, namespace, x, (4, 6), None)
    torch.testing.assert_close(layer.local(x), local, atol=1e-12, rtol=0)
    expected = local + layer.global_attention(layer.norm(x + local), layer.global_queries(x))
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=0)


def test_default_window_and_model_fit() -> None:
    assert GlobalQueryAttention(16, 2, (8, 12)).window_size == (4, 6)
    assert GlobalQueryAttention(16, 2, (7, 7)).window_size == (7, 7)
    fit = get_variant("global_query_attention").fit_options
    assert fit((7, 7), 5) == {"window_size": (7, 7)}
    assert fit((14, 14), 10) == {"window_size": (7, 7)}
    assert fit((56, 56), 7) == {"window_size": (7, 7)}
    assert fit((12, 20), 4) == {"window_size": (3, 5)}


def test_bad_input_names_the_argument() -> None:
    k = torch.randn(1, 2, 8, 8, 4)
    with pytest.raises(ValueError, match=r"key has shape \(1, 3, 8, 8, 4\); expected \(B, H, X, Y, D\) = "
                                         r"\(1, 2, X, Y, 4\)"):
        global_query_attention(k[:, :, :4, :4], torch.randn(1, 3, 8, 8, 4), torch.randn(1, 3, 8, 8, 4), 4)
    with pytest.raises(ValueError, match=r"value has shape \(1, 2, 8, 4, 4\); expected \(1, 2, 8, 8\)"):
        global_query_attention(k[:, :, :4, :4], k, k[:, :, :, :4], 4)
    with pytest.raises(ValueError, match=r"input has shape \(1, 8, 12, 16\); expected 4-D \(B, H, W, C\) with "
                                         r"\(H, W\) = \(8, 8\)"):
        GlobalQueryAttention(16, 2, (8, 8))(torch.randn(1, 8, 12, 16))
    with pytest.raises(ValueError, match=r"levels=-1: expected an int >= 0"):
        GlobalQueryGenerator(16, -1)
