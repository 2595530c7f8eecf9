"""ConViT's gated positional self-attention (attnzoo.ops.gpsa, attnzoo.layers.gpsa): timm's GPSA with copied
weights, the two limits of the gate, the locality init, the non-locality measure and the bad-input errors.

The registry-wide contract (tests/test_contract.py) already compares the ``sdpa`` path with the reference forward
and backward on the spec's cases; here the reference itself is pinned to the peer and to its limits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from attnzoo.layers.gpsa import GatedPositionalSelfAttention
from attnzoo.models import VisionTransformer
from attnzoo.ops import gpsa_attention, nonlocality, softmax_attention
from attnzoo.ops.gpsa.positions import positional_logits, relative_positions

IMPLS = ("reference", "sdpa")


# ---- peer: timm's GPSA, transcribed -----------------------------------------------------------------------------
# huggingface/pytorch-image-models, timm/models/convit.py at commit aa4b5850c1543fa488abf260f18390eda46cf85d
# (blob c8a1d3fa198523edc37970511d11c616589cf032; the official facebookresearch/convit convit.py GPSA with device /
# dtype arguments). `import timm` fails here (no torchvision), so the module is copied verbatim except: the
# `@register_notrace_module` decorator and the `device` / `dtype` (`dd`) arguments are removed.

class TimmGPSA(nn.Module):
    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            qkv_bias: bool = False,
            attn_drop: float = 0.,
            proj_drop: float = 0.,
            locality_strength: float = 1.,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.dim = dim
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.locality_strength = locality_strength

        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)

        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(3, num_heads)
        self.proj_drop = nn.Dropout(proj_drop)
        self.gating_param = nn.Parameter(torch.ones(self.num_heads))
        self.rel_indices: torch.Tensor = torch.zeros(1, 1, 1, 3)  # silly torchscript hack, won't work with None

    def forward(self, x):
        B, N, C = x.shape
        if self.rel_indices is None or self.rel_indices.shape[1] != N:
            self.rel_indices = self.get_rel_indices(N)
        attn = self.get_attention(x)
        v = self.v(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x

    def get_attention(self, x):
        B, N, C = x.shape
        qk = self.qk(x).reshape(B, N, 2, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k = qk[0], qk[1]
        pos_score = self.rel_indices.expand(B, -1, -1, -1)
        pos_score = self.pos_proj(pos_score).permute(0, 3, 1, 2)
        patch_score = (q @ k.transpose(-2, -1)) * self.scale
        patch_score = patch_score.softmax(dim=-1)
        pos_score = pos_score.softmax(dim=-1)

        gating = self.gating_param.view(1, -1, 1, 1)
        attn = (1. - torch.sigmoid(gating)) * patch_score + torch.sigmoid(gating) * pos_score
        attn /= attn.sum(dim=-1).unsqueeze(-1)
        attn = self.attn_drop(attn)
        return attn

    def get_attention_map(self, x, return_map=False):
        attn_map = self.get_attention(x).mean(0)  # average over batch
        distances = self.rel_indices.squeeze()[:, :, -1] ** .5
        dist = torch.einsum('nm,hnm->h', (distances, attn_map)) / distances.size(0)
        if return_map:
            return dist, attn_map
        else:
            return dist

    def local_init(self):
        self.v.weight.data.copy_(torch.eye(self.dim))
        locality_distance = 1  # max(1,1/locality_strength**.5)

        kernel_size = int(self.num_heads ** .5)
        center = (kernel_size - 1) / 2 if kernel_size % 2 == 0 else kernel_size // 2
        for h1 in range(kernel_size):
            for h2 in range(kernel_size):
                position = h1 + kernel_size * h2
                self.pos_proj.weight.data[position, 2] = -1
                self.pos_proj.weight.data[position, 1] = 2 * (h1 - center) * locality_distance
                self.pos_proj.weight.data[position, 0] = 2 * (h2 - center) * locality_distance
        self.pos_proj.weight.data *= self.locality_strength

    def get_rel_indices(self, num_patches: int) -> torch.Tensor:
        img_size = int(num_patches ** .5)
        rel_indices = torch.zeros(1, num_patches, num_patches, 3)
        ind = (
                torch.arange(img_size, dtype=torch.float32).view(1, -1)
                - torch.arange(img_size, dtype=torch.float32).view(-1, 1)
        )
        indx = ind.repeat(img_size, img_size)
        indy = ind.repeat_interleave(img_size, dim=0).repeat_interleave(img_size, dim=1)
        indd = indx ** 2 + indy ** 2
        rel_indices[:, :, :, 2] = indd.unsqueeze(0)
        rel_indices[:, :, :, 1] = indy.unsqueeze(0)
        rel_indices[:, :, :, 0] = indx.unsqueeze(0)
        device = self.qk.weight.device
        dtype = self.qk.weight.dtype
        return rel_indices.to(device=device, dtype=dtype)

# ---- end of the transcription -------------------------------------------------------------------------------------


def _peer_pair(dim: int = 24, heads: int = 4, qkv_bias: bool = True,
               impl: str = "reference") -> tuple[TimmGPSA, GatedPositionalSelfAttention]:
    """A timm GPSA with random weights everywhere (a nonzero pos_proj bias, gates spread around 0) in float64,
    and ours with the same weights (pos_proj.weight -> pos_weight; its bias has no counterpart)."""
    torch.manual_seed(0)
    peer = TimmGPSA(dim, heads, qkv_bias=qkv_bias).double()
    with torch.no_grad():
        for p in peer.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        peer.pos_proj.weight.mul_(3)
        peer.gating_param.copy_(torch.linspace(-2, 2, heads))
    ours = GatedPositionalSelfAttention(dim, heads, qkv_bias=qkv_bias, impl=impl).double()
    with torch.no_grad():
        for name in ("qk", "v", "proj"):
            getattr(ours, name).load_state_dict(getattr(peer, name).state_dict())
        ours.pos_weight.copy_(peer.pos_proj.weight)
        ours.gating_param.copy_(peer.gating_param)
    assert peer.pos_proj.bias.abs().min() > 0
    return peer, ours


@pytest.mark.parametrize("impl", IMPLS)
def test_matches_timm_gpsa_forward_and_backward(impl: str) -> None:
    peer, ours = _peer_pair(impl=impl)
    x = torch.randn(3, 6, 6, 24, dtype=torch.float64, requires_grad=True)
    expected = peer(x.flatten(1, 2))
    out = ours(x)
    torch.testing.assert_close(out.flatten(1, 2), expected, rtol=0, atol=1e-12)
    cotangent = torch.randn_like(out)
    (out * cotangent).sum().backward()
    ours_grads = {"x": x.grad.clone(), "qk": ours.qk.weight.grad, "v": ours.v.weight.grad,
                  "proj": ours.proj.weight.grad, "pos": ours.pos_weight.grad, "gate": ours.gating_param.grad}
    x.grad = None
    (expected * cotangent.flatten(1, 2)).sum().backward()
    peer_grads = {"x": x.grad, "qk": peer.qk.weight.grad, "v": peer.v.weight.grad, "proj": peer.proj.weight.grad,
                  "pos": peer.pos_proj.weight.grad, "gate": peer.gating_param.grad}
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, peer_grads[name], rtol=0, atol=1e-10, msg=name)
    # the dropped pos_proj bias: a per-head constant of every logit of a row, it cancels in the softmax
    torch.testing.assert_close(peer.pos_proj.bias.grad, torch.zeros_like(peer.pos_proj.bias), rtol=0, atol=1e-12)


def test_nonlocality_and_attention_map_match_timm() -> None:
    peer, ours = _peer_pair()
    x = torch.randn(2, 5, 5, 24, dtype=torch.float64)
    peer(x.flatten(1, 2))  # timm builds rel_indices in forward
    dist, attn_map = peer.get_attention_map(x.flatten(1, 2), return_map=True)
    torch.testing.assert_close(ours.attention_map(x).mean(0), attn_map, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.nonlocality(x), dist, rtol=0, atol=1e-12)


@pytest.mark.parametrize("heads", [1, 4, 9, 16])
@pytest.mark.parametrize("strength", [1.0, 0.5, 3.0])
def test_local_init_matches_timm(heads: int, strength: float) -> None:
    peer = TimmGPSA(16 * heads, heads, locality_strength=strength)
    peer.local_init()
    ours = GatedPositionalSelfAttention(16 * heads, heads, locality_strength=strength)
    torch.testing.assert_close(ours.pos_weight.data, peer.pos_proj.weight.data, rtol=0, atol=0)
    torch.testing.assert_close(ours.v.weight.data, peer.v.weight.data, rtol=0, atol=0)
    assert (ours.gating_param.data == 1).all()


def test_relative_positions_match_timm_on_square_grids() -> None:
    for side in (1, 3, 7):
        expected = TimmGPSA(8, 2).get_rel_indices(side * side)[0]
        torch.testing.assert_close(relative_positions((side, side)), expected, rtol=0, atol=0)


def _qkv(batch: int = 2, heads: int = 3, grid: tuple[int, int] = (4, 5), dim: int = 6) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(batch, heads, *grid, dim, generator=generator, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("impl", IMPLS)
def test_closed_gate_is_softmax_attention(impl: str) -> None:
    """σ(λ) = 0 (λ = -1e4: exactly 0 in float64): the official ``(1 - σ) · patch + σ · pos`` is content alone."""
    q, k, v = _qkv()
    pos_weight = torch.randn(3, 3, dtype=torch.float64)
    gate = torch.full((3,), -1e4, dtype=torch.float64)
    out = gpsa_attention(q, k, v, pos_weight, gate, scale=0.3, impl=impl)
    expected = softmax_attention(q.flatten(2, 3), k.flatten(2, 3), v.flatten(2, 3), scale=0.3, impl="reference")
    torch.testing.assert_close(out.flatten(2, 3), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_open_gate_is_content_free_positional_attention(impl: str) -> None:
    """σ(λ) = 1: ``softmax(v_pos · r) v``, whatever the queries and keys are."""
    q, k, v = _qkv()
    pos_weight = torch.randn(3, 3, dtype=torch.float64)
    gate = torch.full((3,), 1e4, dtype=torch.float64)
    out = gpsa_attention(q, k, v, pos_weight, gate, impl=impl)
    expected = positional_logits(pos_weight, (4, 5)).softmax(-1) @ v.flatten(2, 3)
    torch.testing.assert_close(out.flatten(2, 3), expected, rtol=0, atol=1e-12)
    other = gpsa_attention(torch.randn_like(q), torch.randn_like(k), v, pos_weight, gate, impl=impl)
    torch.testing.assert_close(other, out, rtol=0, atol=1e-12)


def test_the_gate_mixes_linearly_and_rows_sum_to_one() -> None:
    q, k, v = _qkv()
    pos_weight = torch.randn(3, 3, dtype=torch.float64)
    gate = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    out, weights = gpsa_attention(q, k, v, pos_weight, gate, return_weights=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 20, dtype=torch.float64), rtol=0, atol=1e-14)
    content = gpsa_attention(q, k, v, pos_weight, torch.full_like(gate, -1e4))
    position = gpsa_attention(q, k, v, pos_weight, torch.full_like(gate, 1e4))
    sigma = torch.sigmoid(gate).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(out, (1 - sigma) * content + sigma * position, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.flatten(2, 3), weights @ v.flatten(2, 3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_strong_local_init_shifts_each_head_by_its_offset(impl: str) -> None:
    """Locality init with α = 50, position gate open, W_v = I: head ``h1 + 3 h2`` of 9 copies its channel slice
    of x from ``h1 - 1`` rows and ``h2 - 1`` columns away, at every interior pixel (a 6 x 7 grid pins which
    axis is which)."""
    layer = GatedPositionalSelfAttention(18, 9, locality_strength=50.0).double()
    x = torch.randn(2, 6, 7, 18, dtype=torch.float64)
    q, k, v = layer._heads(x)
    torch.testing.assert_close(v, x.unflatten(-1, (9, 2)).movedim(3, 1), rtol=0, atol=0)  # W_v = I
    gate = torch.full((9,), 1e4, dtype=torch.float64)
    out = gpsa_attention(q, k, v, layer.pos_weight, gate, impl=impl)  # (B, 9, 6, 7, 2)
    for h1 in range(3):
        for h2 in range(3):
            head, dr, dc = h1 + 3 * h2, h1 - 1, h2 - 1
            shifted = torch.roll(x[..., 2 * head:2 * head + 2], shifts=(-dr, -dc), dims=(1, 2))
            torch.testing.assert_close(out[:, head, 1:-1, 1:-1], shifted[:, 1:-1, 1:-1], rtol=0, atol=1e-12)


def test_nonlocality_of_the_local_init_is_small_and_grows_as_the_gate_opens() -> None:
    """At the locality init (α = 1) the positional heads attend within about one patch; moving the gate towards
    content (σ(λ) down) makes every head attend further, monotonically, up to content attention's distance."""
    torch.manual_seed(0)
    layer = GatedPositionalSelfAttention(32, 4).double()
    x = torch.randn(2, 8, 8, 32, dtype=torch.float64)
    values = []
    with torch.no_grad():
        for lam in (1e4, 4.0, 1.0, 0.0, -2.0, -1e4):
            layer.gating_param.fill_(lam)
            values.append(layer.nonlocality(x))
    values = torch.stack(values)  # (gates, heads)
    assert (values[0] < 1.5).all(), values[0]  # positional attention at the local init: about one patch
    assert (values[-1] > 4.0).all(), values[-1]  # near-uniform content attention (q, k ~ 0.02) on 8 x 8
    assert (values.diff(dim=0) > 0).all(), values
    # σ(1) ≈ 0.73 of the attention on position at init: nonlocality in between, linear in σ
    sigma = torch.sigmoid(torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(values[2], sigma * values[0] + (1 - sigma) * values[-1], rtol=0, atol=1e-10)


def test_nonlocality_of_known_maps() -> None:
    identity = torch.eye(12, dtype=torch.float64).expand(2, 12, 12)
    torch.testing.assert_close(nonlocality(identity, (3, 4)), torch.zeros(2, dtype=torch.float64))
    right = torch.zeros(1, 2, 2)  # a 1 x 2 grid: each query looks at the other token, one patch away
    right[..., 0, 1] = right[..., 1, 0] = 1
    torch.testing.assert_close(nonlocality(right, (1, 2)), torch.ones(1))
    with pytest.raises(ValueError, match=r"weights has shape \(2, 12, 12\); expected \(..., H, N, N\) with N = 9"):
        nonlocality(identity, (3, 3))


def test_layer_errors() -> None:
    with pytest.raises(ValueError, match=r"num_heads=2: the locality init .* perfect square"):
        GatedPositionalSelfAttention(32, 2)
    layer = GatedPositionalSelfAttention(32, 2, use_local_init=False)  # any head count without the init
    assert layer(torch.randn(1, 3, 4, 32)).shape == (1, 3, 4, 32)
    with pytest.raises(ValueError, match="num_heads=2: the locality init needs a perfect square"):
        layer.local_init()
    with pytest.raises(ValueError, match=r"locality_strength=-0.5: expected a finite real number >= 0.0"):
        GatedPositionalSelfAttention(32, 4).local_init(-0.5)
    with pytest.raises(ValueError, match=r"locality_strength=-1: expected a finite real number >= 0.0"):
        GatedPositionalSelfAttention(32, 4, locality_strength=-1)
    with pytest.raises(ValueError, match=r"input has shape \(2, 49, 32\) \(3-D\); expected 4-D \(B, H, W, C\)"):
        GatedPositionalSelfAttention(32, 4)(torch.randn(2, 49, 32))


def test_mixer_of_the_fashion_mnist_vision_transformer() -> None:
    torch.manual_seed(0)
    model = VisionTransformer(mixer="gpsa_attention", depth=2)  # 28 x 28, patch 4: a 7 x 7 grid, 4 heads
    assert isinstance(model.blocks[0].mixer, GatedPositionalSelfAttention)
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
