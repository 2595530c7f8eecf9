"""attnzoo.integrations.timm on a hand-built module with the structure of timm 1.0's ``Attention`` (timm itself
cannot be imported here: it needs torchvision, which does not import beside torch 2.13.0+cpu)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.integrations.timm import is_timm_attention, swap_attention
from attnzoo.registry import NotSupportedError


class TimmLikeAttention(nn.Module):
    """timm.layers.Attention (1.0.x), transcribed: qkv, q/k norms, fused SDPA, norm, proj."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale, self.fused_attn = self.head_dim ** -0.5, True
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop, self.norm = nn.Dropout(attn_drop), nn.Identity()
        self.proj, self.proj_drop = nn.Linear(dim, dim), nn.Dropout(0.0)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.attn_drop.p if self.training else 0.0)
        return self.proj_drop(self.proj(self.norm(x.transpose(1, 2).reshape(b, n, c))))


def vit_like() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(TimmLikeAttention(32, 4), nn.GELU(), TimmLikeAttention(32, 4, qk_norm=True)).eval()


def test_softmax_swap_reproduces_the_blocks_and_restore_undoes_it() -> None:
    model, x = vit_like(), torch.randn(2, 17, 32)
    assert all(is_timm_attention(model[i]) for i in (0, 2)) and not is_timm_attention(model[1])
    expected = model(x)
    mask = torch.rand(2, 1, 17, 17) > 0.2
    mask[..., 0] = True
    masked = model[0](x, attn_mask=mask)
    with swap_attention(model, "softmax_attention"):
        torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(model[0](x, attn_mask=mask), masked, atol=1e-6, rtol=0)
    assert "forward" not in model[0].__dict__
    assert torch.equal(model(x), expected)


def test_sliding_window_covering_every_token_is_full_attention() -> None:
    model, x = vit_like(), torch.randn(2, 17, 32)
    expected = model(x)
    with swap_attention(model, "sliding_window_attention", window=33):
        torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=0)
    with swap_attention(model, "sliding_window_attention", window=5):
        assert (model(x) - expected).abs().max() > 1e-3


def test_refusals() -> None:
    with pytest.raises(NotSupportedError, match="no module with the structure of timm's Attention"):
        swap_attention(nn.Linear(3, 3))
    with pytest.raises(NotSupportedError, match="neighborhood_attention_2d is not a"):
        swap_attention(vit_like(), "neighborhood_attention_2d")
