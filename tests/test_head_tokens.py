"""DHVT head-token attention (HI-MHSA, arXiv 2210.05958): the layer against the official ``HI_Attention``
transcribed with copied weights, the reduction to vanilla MHSA, the fusion into the class token only, the op; and
DHVT's dynamic aggregation FFN (DAFF) against the official ``DAFF``, its class-token-only squeeze-excitation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnzoo.layers.dynamic_aggregation_ffn import DynamicAggregationFFN
from attnzoo.layers.head_tokens import HeadTokenAttention
from attnzoo.models import VisionTransformer
from attnzoo.ops.head_tokens import head_token_attention
from attnzoo.ops.softmax import softmax_attention


class OfficialHIAttention(nn.Module):
    """``HI_Attention`` of ArieSeirack/DHVT ``vision_transformer.py`` at commit
    a86fedab5a5848d2e64c0bccb41096258106883b, transcribed (dropout 0; ``trunc_normal_`` of timm replaced by
    torch's, the weights are copied anyway)."""

    def __init__(self, dim, num_heads=8, qkv_bias=False):  # noqa: ANN001, ANN204
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.ht_proj = nn.Linear(dim // self.num_heads, dim, bias=True)
        self.ht_norm = nn.LayerNorm(dim // self.num_heads)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_heads, dim))
        nn.init.trunc_normal_(self.pos_embed, std=.02)

    def forward(self, x):  # noqa: ANN001, ANN201
        B, N, C = x.shape
        head_pos = self.pos_embed.expand(x.shape[0], -1, -1)
        x_ = x.reshape(B, -1, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        x_ = x_.mean(dim=2)
        x_ = self.ht_proj(x_).reshape(B, -1, self.num_heads, C // self.num_heads)
        x_ = self.act(self.ht_norm(x_)).flatten(2)
        x_ = x_ + head_pos
        x = torch.cat([x, x_], dim=1)
        qkv = self.qkv(x).reshape(B, N + self.num_heads, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N + self.num_heads, C)
        x = self.proj(x)
        cls, patch, ht = torch.split(x, [1, N - 1, self.num_heads], dim=1)
        cls = cls + torch.mean(ht, dim=1, keepdim=True)
        x = torch.cat([cls, patch], dim=1)
        return x


def _pair(dim: int, heads: int, qkv_bias: bool, impl: str = "auto") -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    official = OfficialHIAttention(dim, heads, qkv_bias).double()
    with torch.no_grad():  # non-trivial LayerNorm affine and a visible head position embedding
        official.ht_norm.weight.uniform_(0.5, 1.5)
        official.ht_norm.bias.normal_(0, 0.3)
        official.pos_embed.normal_(0, 0.5)
    ours = HeadTokenAttention(dim, heads, qkv_bias=qkv_bias, class_token=True, impl=impl).double()
    ours.load_state_dict(official.state_dict())
    return official, ours


@pytest.mark.parametrize(("dim", "heads", "tokens", "qkv_bias", "impl"),
                         [(32, 4, 17, False, "reference"), (48, 6, 65, True, "sdpa"), (24, 8, 2, True, "auto")])
def test_layer_equals_official_hi_attention(dim, heads, tokens, qkv_bias, impl) -> None:
    """Outputs and the gradients of the input and of every parameter, float64, copied weights (same names)."""
    official, ours = _pair(dim, heads, qkv_bias, impl)
    x = torch.randn(3, tokens, dim, dtype=torch.float64, requires_grad=True)
    expected, actual = official(x), ours(x)
    torch.testing.assert_close(actual, expected, atol=1e-12, rtol=0)
    cotangent = torch.randn_like(expected)
    grads_official = torch.autograd.grad(expected, [x, *official.parameters()], cotangent)
    grads_ours = torch.autograd.grad(actual, [x, *ours.parameters()], cotangent)
    for a, b in zip(grads_ours, grads_official):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


def test_returns_n_tokens_and_fuses_into_the_first_only() -> None:
    """HI-MHSA returns N tokens; the head tokens' projected mean reaches the class token alone: the other rows
    equal the layer with class_token=False (same weights), and the first row differs from it by that mean."""
    _, ours = _pair(32, 4, True)
    plain = HeadTokenAttention(32, 4, qkv_bias=True, class_token=False).double()
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(2, 10, 32, dtype=torch.float64)
    fused, unfused = ours(x), plain(x)
    assert fused.shape == x.shape
    torch.testing.assert_close(fused[:, 1:], unfused[:, 1:], atol=0, rtol=0)
    q, k, v = (t for t in ours.qkv(torch.cat([x, ours.head_tokens(x)], 1)).unflatten(-1, (3, 4, 8))
               .permute(2, 0, 3, 1, 4))
    head_rows = ours.proj(softmax_attention(q, k, v, impl="reference").transpose(1, 2).flatten(2))[:, 10:]
    torch.testing.assert_close(fused[:, :1] - unfused[:, :1], head_rows.mean(1, keepdim=True), atol=1e-12, rtol=0)


def test_head_tokens_with_no_attention_weight_give_vanilla_mhsa() -> None:
    """Head tokens whose keys score -1e9 against every query get zero weight: the tokens' outputs are vanilla
    MHSA (the catalog's "head tokens forced to zero contribution")."""
    q, k, v = torch.randn(3, 2, 3, 20, 8, dtype=torch.float64).unbind(0)
    hq, hv = torch.randn(2, 2, 3, 4, 8, dtype=torch.float64).unbind(0)
    # an extra coordinate: 1 in every query, 0 in the tokens' keys, -1e9 in the head tokens' keys
    qa = torch.cat([q, torch.ones_like(q[..., :1])], -1)
    ka = torch.cat([k, torch.zeros_like(k[..., :1])], -1)
    hk = torch.randn_like(hq)
    hka = torch.cat([hk, torch.full_like(hk[..., :1], -1e9)], -1)
    hqa = torch.cat([hq, torch.ones_like(hq[..., :1])], -1)
    scale = 8 ** -0.5
    for impl in ("reference", "sdpa"):
        out, _ = head_token_attention(qa, ka, v, hqa, hka, hv, scale=scale, impl=impl)
        torch.testing.assert_close(out, softmax_attention(q, k, v, scale=scale, impl="reference"), atol=1e-12, rtol=0)


def test_op_equals_softmax_attention_on_the_concatenation() -> None:
    q, k, v = torch.randn(3, 2, 3, 11, 5, dtype=torch.float64).unbind(0)
    hq, hk, hv = torch.randn(3, 2, 3, 3, 5, dtype=torch.float64).unbind(0)
    full = softmax_attention(torch.cat([q, hq], 2), torch.cat([k, hk], 2), torch.cat([v, hv], 2), impl="reference")
    for impl in ("reference", "sdpa"):
        out, head_out = head_token_attention(q, k, v, hq, hk, hv, impl=impl)
        torch.testing.assert_close(torch.cat([out, head_out], 2), full, atol=1e-12, rtol=0)


def test_head_tokens_pool_each_head_group_over_all_tokens() -> None:
    """The pooled input of head token h is the mean of channels [h·d, (h+1)·d) over all N tokens."""
    layer = HeadTokenAttention(12, 3).double()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    pooled = torch.stack([x[..., h * 4:(h + 1) * 4].mean(1) for h in range(3)], 1)
    expected = nn.functional.gelu(layer.ht_norm(layer.ht_proj(pooled).unflatten(-1, (3, 4)))).flatten(2)
    torch.testing.assert_close(layer.head_tokens(x), expected + layer.pos_embed, atol=1e-14, rtol=0)


def test_layer_errors_and_vit_mixer() -> None:
    with pytest.raises(ValueError, match=r"dim=30 must be divisible by num_heads=4"):
        HeadTokenAttention(30, 4)
    with pytest.raises(ValueError, match=r"input has shape \(2, 5, 16\), 16 channels; expected \(B, N, C=32\)"):
        HeadTokenAttention(32, 4)(torch.randn(2, 5, 16))
    model = VisionTransformer(image_size=8, patch_size=2, dim=32, depth=1, mixer="dhvt_head_token_attention")
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert math.isfinite(model(torch.randn(1, 1, 8, 8)).sum().item())


class OfficialDAFF(nn.Module):
    """``DAFF`` of ArieSeirack/DHVT ``vision_transformer.py`` at commit 0e40e9fe85515c6a5e2479d1b768b5a9e7b35d24,
    transcribed (its unused dropout argument left out)."""

    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU,  # noqa: ANN001, ANN204
                 kernel_size=3):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.conv1 = nn.Conv2d(in_features, hidden_features, kernel_size=1, stride=1, padding=0)
        self.conv2 = nn.Conv2d(hidden_features, hidden_features, kernel_size=kernel_size, stride=1,
                               padding=(kernel_size - 1) // 2, groups=hidden_features)
        self.conv3 = nn.Conv2d(hidden_features, out_features, kernel_size=1, stride=1, padding=0)
        self.act = act_layer()
        self.bn1 = nn.BatchNorm2d(hidden_features)
        self.bn2 = nn.BatchNorm2d(hidden_features)
        self.bn3 = nn.BatchNorm2d(out_features)
        self.squeeze = nn.AdaptiveAvgPool2d((1, 1))
        self.compress = nn.Linear(in_features, in_features // 4)
        self.excitation = nn.Linear(in_features // 4, in_features)

    def forward(self, x):  # noqa: ANN001, ANN201
        B, N, C = x.size()
        cls_token, tokens = torch.split(x, [1, N - 1], dim=1)
        x = tokens.reshape(B, int(math.sqrt(N - 1)), int(math.sqrt(N - 1)), C).permute(0, 3, 1, 2)
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act(x)
        shortcut = x
        x = self.conv2(x)
        x = self.bn2(x)
        x = self.act(x)
        x = shortcut + x
        x = self.conv3(x)
        x = self.bn3(x)
        weight = self.squeeze(x).flatten(1).reshape(B, 1, C)
        weight = self.excitation(self.act(self.compress(weight)))
        cls_token = cls_token * weight
        tokens = x.flatten(2).permute(0, 2, 1)
        out = torch.cat((cls_token, tokens), dim=1)
        return out


@pytest.mark.parametrize(("dim", "ratio", "kernel", "side"), [(16, 4.0, 3, 5), (12, 2.0, 5, 3), (8, 1.5, 1, 1)])
def test_daff_equals_the_official_module_in_training_and_eval(dim: int, ratio: float, kernel: int, side: int) -> None:
    torch.manual_seed(0)
    official = OfficialDAFF(dim, int(dim * ratio), kernel_size=kernel).double()
    with torch.no_grad():  # trained-looking batch norms
        for bn in (official.bn1, official.bn2, official.bn3):
            bn.weight.uniform_(0.5, 1.5), bn.bias.normal_(0, 0.3)
            bn.running_mean.normal_(0, 0.5), bn.running_var.uniform_(0.5, 2.0)
    ours = DynamicAggregationFFN(dim, ratio, kernel).double()
    ours.load_state_dict(official.state_dict())
    for training in (True, False):
        official.train(training), ours.train(training)
        x = torch.randn(3, side * side + 1, dim, dtype=torch.float64, requires_grad=True)
        expected = official(x)
        out = ours(x)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        grads = torch.autograd.grad(expected.square().sum(), [x, *official.parameters()])
        ours_grads = torch.autograd.grad(out.square().sum(), [x, *ours.parameters()])
        for a, b in zip(ours_grads, grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.bn1.running_mean, official.bn1.running_mean, rtol=1e-12, atol=1e-12)


def test_daff_squeeze_excitation_scales_only_the_class_token() -> None:
    torch.manual_seed(0)
    with_cls, without = DynamicAggregationFFN(16).double().eval(), DynamicAggregationFFN(16, class_token=False)
    without.double().eval().load_state_dict(with_cls.state_dict(), strict=False)
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    out = with_cls(x)
    torch.testing.assert_close(out[:, 1:], without(x[:, 1:]), rtol=0, atol=0)  # patch tokens: no SE
    se = with_cls.excitation(nn.functional.gelu(with_cls.compress(out[:, 1:].mean(1, keepdim=True))))
    torch.testing.assert_close(out[:, :1], x[:, :1] * se, rtol=0, atol=0)
    assert not hasattr(without, "compress")


@pytest.mark.parametrize(("kwargs", "tokens", "error", "match"), [
    ({"dim": 16}, 9, ValueError, r"input has 9 tokens: expected N - 1 patch tokens after the class token forming a "
                                 r"non-empty square grid, got 8"),
    ({"dim": 16, "class_token": False}, 10, ValueError, r"expected N patch tokens forming a non-empty square grid"),
    ({"dim": 16}, 1, ValueError, r"got 0"),
    ({"dim": 16, "kernel_size": 2}, None, ValueError, r"kernel_size=2: expected an odd size"),
    ({"dim": 3}, None, ValueError, r"dim=3: the class token's squeeze-excitation has dim // 4 units"),
    ({"dim": 4, "mlp_ratio": 0.1}, None, ValueError, r"mlp_ratio=0.1 gives int\(dim \* mlp_ratio\) = 0 hidden"),
    ({"dim": 16, "class_token": 1}, None, TypeError, r"class_token"),
])
def test_daff_bad_input(kwargs: dict, tokens: int | None, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        layer = DynamicAggregationFFN(**kwargs)
        layer(torch.randn(1, tokens, kwargs["dim"]))
