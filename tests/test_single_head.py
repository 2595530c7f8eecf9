"""SHViT's single-head attention (attnzoo.ops.single_head, attnzoo.layers.single_head): timm's SHSA with copied
weights in train and eval mode, the untouched channels, the full-fraction limit (one-head attention), the
paper's partial dims, errors, and the layer as a ViT mixer.

The registry-wide contract (tests/test_contract.py) compares the op's ``sdpa`` path with the reference.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from attnzoo.layers import SoftmaxAttention
from attnzoo.layers.single_head import PAPER_PARTIAL_RATIO, SingleHeadAttention
from attnzoo.models import VisionTransformer
from attnzoo.ops import single_head_attention

# ---- peer: timm's SHSA, transcribed -------------------------------------------------------------------------------
# huggingface/pytorch-image-models at commit aa4b5850c1543fa488abf260f18390eda46cf85d: `Conv2dNorm` and `SHSA` from
# timm/models/shvit.py (blob 9e97499c7a4af0f404879ae1b2f71dc38248e57b; the same module as the official
# ysj9909/SHViT model/shvit.py `Conv2d_BN` / `SHSA` at 6a729ccf18e0b941714b529638bd3d9bacebcef0), `GroupNorm1` from
# timm/layers/norm.py. `import timm` fails here (no torchvision), so they are copied verbatim except: the `device` /
# `dtype` (`dd`) arguments, `Conv2dNorm.fuse` and GroupNorm1's fast-norm branch (off by default) are removed.

class GroupNorm1(nn.GroupNorm):
    """ Group Normalization with 1 group.
    Input: tensor in shape [B, C, *]
    """

    def __init__(self, num_channels: int, **kwargs):
        super().__init__(1, num_channels, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class Conv2dNorm(nn.Sequential):
    def __init__(
            self,
            in_channels: int,
            out_channels: int,
            kernel_size: int = 1,
            stride: int = 1,
            padding: int = 0,
            bn_weight_init: int = 1,
            **kwargs,
    ):
        super().__init__()
        self.add_module('c', nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=False, **kwargs))
        self.add_module('bn', nn.BatchNorm2d(out_channels))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)


class SHSA(nn.Module):
    """Single-Head Self-Attention"""
    def __init__(
            self,
            dim: int,
            qk_dim: int,
            pdim: int,
            norm_layer=GroupNorm1,
            act_layer=nn.ReLU,
    ):
        super().__init__()
        self.scale = qk_dim ** -0.5
        self.qk_dim = qk_dim
        self.dim = dim
        self.pdim = pdim

        self.pre_norm = norm_layer(pdim)

        self.qkv = Conv2dNorm(pdim, qk_dim * 2 + pdim)
        self.proj = nn.Sequential(act_layer(), Conv2dNorm(dim, dim, bn_weight_init=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        x1, x2 = torch.split(x, [self.pdim, self.dim - self.pdim], dim = 1)
        x1 = self.pre_norm(x1)
        qkv = self.qkv(x1)
        q, k, v = torch.split(qkv, [self.qk_dim, self.qk_dim, self.pdim], dim=1)
        q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)

        attn = (q.transpose(-2, -1) @ k) * self.scale
        attn = attn.softmax(dim=-1)
        x1 = (v @ attn.transpose(-2, -1)).reshape(B, self.pdim, H, W)
        x = self.proj(torch.cat([x1, x2], dim = 1))
        return x

# ---- end of the transcription -------------------------------------------------------------------------------------


def _randomised(module: nn.Module) -> None:
    """Random weights, biases and BatchNorm running statistics (positive variances)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "bn.weight" in name or "norm.weight" in name else 0.0))
        for name, b in module.named_buffers():
            if "running_mean" in name:
                b.copy_(torch.randn_like(b) * 0.1)
            elif "running_var" in name:
                b.copy_(torch.rand_like(b) + 0.5)


def test_official_init_outputs_zeros_like_timm() -> None:
    layer = SingleHeadAttention(48)  # the official bn_weight_init=0 of the output Conv2d_BN
    assert layer.partial_dim == 10 and (layer.proj[1].bn.weight == 0).all()
    assert (layer(torch.randn(2, 4, 4, 48)) == 0).all()


@pytest.mark.parametrize("impl", ["reference", "sdpa"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_matches_timm_shsa_with_copied_weights(impl: str, train: bool) -> None:
    torch.manual_seed(0)
    dim, qk_dim = 40, 16
    ours = SingleHeadAttention(dim, partial_ratio=0.25, qk_dim=qk_dim, impl=impl).double()
    peer = SHSA(dim, qk_dim, ours.partial_dim).double()
    _randomised(peer)
    assert ours.state_dict().keys() == peer.state_dict().keys()
    ours.load_state_dict(peer.state_dict())
    ours.train(train), peer.train(train)
    x = torch.randn(3, 5, 6, dim, dtype=torch.float64, requires_grad=True)  # (B, H, W, C), a 5 x 6 grid
    expected = peer(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    out = ours(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    cotangent = torch.randn_like(out)
    grads = torch.autograd.grad((out * cotangent).sum(), [x, *ours.parameters()])
    expected_grads = torch.autograd.grad((expected * cotangent).sum(), [x, *peer.parameters()])
    for (name, _), grad, want in zip([("x", x), *ours.named_parameters()], grads, expected_grads):
        torch.testing.assert_close(grad, want, rtol=0, atol=1e-10, msg=name)
    if train:  # both updated their BatchNorm statistics alike
        for (name, buffer), want in zip(ours.named_buffers(), peer.buffers()):
            torch.testing.assert_close(buffer, want, rtol=0, atol=1e-12, msg=name)


def _projection_input(layer: SingleHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """What the output projection sees, ``cat(x1_attended, x2)`` channels first ``(B, C, H, W)``."""
    seen = []
    handle = layer.proj.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    layer(x)
    handle.remove()
    return seen[0]


def test_untouched_channels_reach_only_the_projection() -> None:
    torch.manual_seed(0)
    layer = SingleHeadAttention(32, partial_ratio=0.25, proj_norm_init=1.0).double()
    x = torch.randn(2, 4, 5, 32, dtype=torch.float64, requires_grad=True)
    mixed = _projection_input(layer, x)
    p = layer.partial_dim
    assert p == 8
    torch.testing.assert_close(mixed[:, p:], x.permute(0, 3, 1, 2)[:, p:], rtol=0, atol=0)
    (grad,) = torch.autograd.grad(mixed[:, :p].square().sum(), x)
    assert (grad[..., p:] == 0).all() and (grad[..., :p] != 0).any()


@pytest.mark.parametrize("impl", ["reference", "sdpa"])
def test_full_channel_fraction_is_one_head_attention(impl: str) -> None:
    """``partial_ratio=1``, ``qk_dim=dim``, BatchNorm as the identity (eval, mean 0, var 1, eps 0): what the
    projection sees is one-head softmax attention (:class:`attnzoo.layers.SoftmaxAttention`, ``num_heads=1``,
    the same q / k / v weights, an identity output projection) of the GroupNorm-ed input."""
    torch.manual_seed(0)
    dim = 12
    layer = SingleHeadAttention(dim, partial_ratio=1.0, qk_dim=dim, impl=impl).double().eval()
    bn = layer.qkv.bn
    with torch.no_grad():
        bn.eps = 0.0
        bn.running_mean.zero_(), bn.running_var.fill_(1.0), bn.weight.fill_(1.0), bn.bias.zero_()
    mha = SoftmaxAttention(dim, num_heads=1, is_causal=False, qkv_bias=False).double()
    with torch.no_grad():
        mha.qkv.weight.copy_(layer.qkv.c.weight[:, :, 0, 0])
        mha.proj.weight.copy_(torch.eye(dim)), mha.proj.bias.zero_()
    x = torch.randn(2, 3, 4, dim, dtype=torch.float64)
    normed = layer.pre_norm(x.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)  # (B, N, C)
    expected = mha(normed)
    got = _projection_input(layer, x).flatten(2).transpose(1, 2)
    assert layer.partial_dim == dim
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_op_is_sdpa_with_the_query_key_width_scale() -> None:
    """SHViT's attention: scale ``1 / √16 = 1/4`` from the q/k width, values of another width."""
    generator = torch.Generator().manual_seed(0)
    q, k = (torch.randn(2, 1, 30, 16, generator=generator, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 1, 30, 7, generator=generator, dtype=torch.float64)
    expected = F.scaled_dot_product_attention(q, k, v, scale=0.25)
    for impl in ("reference", "sdpa", "auto"):
        torch.testing.assert_close(single_head_attention(q, k, v, impl=impl), expected, rtol=0, atol=1e-12)


def test_paper_partial_ratio_gives_the_official_s4_partial_dims() -> None:
    """SHViT-S4: embed_dim (224, 336, 448), partial_dim (48, 72, 96) (official model/build.py)."""
    dims = [SingleHeadAttention(d).partial_dim for d in (224, 336, 448)]
    assert dims == [48, 72, 96]
    assert abs(PAPER_PARTIAL_RATIO - 1 / 4.67) < 1e-15


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"partial_ratio=1.01: expected a fraction of the channels in \(0, 1\]"):
        SingleHeadAttention(32, partial_ratio=1.01)
    with pytest.raises(ValueError, match=r"partial_ratio=0: expected a finite real number > 0.0"):
        SingleHeadAttention(32, partial_ratio=0)
    with pytest.raises(ValueError, match=r"round\(4 · 0.1\) = 0 channels of dim=4"):
        SingleHeadAttention(4, partial_ratio=0.1)
    q = torch.randn(2, 3, 10, 16)
    with pytest.raises(ValueError, match=r"query has shape \(2, 3, 10, 16\), 3 heads; expected one head"):
        single_head_attention(q, q, q)
    with pytest.raises(ValueError, match=r"input has shape \(2, 64, 32\) \(3-D\); expected 4-D \(B, H, W, C\)"):
        SingleHeadAttention(32)(torch.randn(2, 64, 32))


def test_mixer_of_the_fashion_mnist_vision_transformer() -> None:
    torch.manual_seed(0)
    model = VisionTransformer(mixer="shvit_single_head_attention", depth=2)  # 7 x 7 grid, dim 64 -> 14 attended
    assert isinstance(model.blocks[0].mixer, SingleHeadAttention) and model.blocks[0].mixer.partial_dim == 14
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
