"""Agent attention layer (arXiv 2312.08874), following the official ``AgentAttention`` of agent_swin.py /
agent_pvt.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.agent.functional import agent_attention
from attnzoo.validation import check_flag, check_int, per_axis


class AgentAttention(ShowsOptions, nn.Module):
    """Agent attention over a fixed-resolution feature map, channels-last ``(B, H, W, C) -> (B, H, W, C)``.

    As the official module (Swin form: keys at full resolution, ``sr_ratio = 1``): ``qkv`` and ``proj`` linear
    maps; ``agent_num = p²`` agents by ``AdaptiveAvgPool2d(p)`` of the queries; agent biases (truncated normal,
    std 0.02) ``B₁ = bilinear(an_bias (heads, M, 7, 7) -> (H, W)) + ah_bias (H) + aw_bias (W)`` over the keys
    and ``B₂`` built the same way from ``na_bias``, ``ha_bias``, ``wa_bias`` over the queries; the op; plus a
    depthwise 3x3 convolution (with bias) of ``V``. ``resolution = (H, W)`` is fixed at construction, as the
    official ``window_size``.
    """

    def __init__(self, dim: int, num_heads: int, resolution: tuple[int, int], agent_num: int = 49,
                 qkv_bias: bool = True, impl: str = "auto") -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        resolution = per_axis(resolution, 2, "resolution")
        check_flag("qkv_bias", qkv_bias)
        pool = round(check_int("agent_num", agent_num) ** 0.5)
        if pool * pool != agent_num:
            raise ValueError(f"agent_num={agent_num}: expected a perfect square (agents pooled to a p x p grid)")
        self.dim, self.num_heads, self.head_dim, self.agent_num = dim, num_heads, head_dim, agent_num
        self.resolution, self.impl = resolution, impl
        height, width = self.resolution
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.dwc = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.an_bias = nn.Parameter(torch.empty(num_heads, agent_num, 7, 7))
        self.na_bias = nn.Parameter(torch.empty(num_heads, agent_num, 7, 7))
        self.ah_bias = nn.Parameter(torch.empty(num_heads, agent_num, height, 1))
        self.aw_bias = nn.Parameter(torch.empty(num_heads, agent_num, 1, width))
        self.ha_bias = nn.Parameter(torch.empty(num_heads, height, 1, agent_num))
        self.wa_bias = nn.Parameter(torch.empty(num_heads, 1, width, agent_num))
        for bias in (self.an_bias, self.na_bias, self.ah_bias, self.aw_bias, self.ha_bias, self.wa_bias):
            nn.init.trunc_normal_(bias, std=0.02)

    def biases(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``B₁`` ``(heads, M, H·W)`` over the keys and ``B₂`` ``(heads, H·W, M)`` over the queries."""
        h, m = self.num_heads, self.agent_num
        agent = F.interpolate(self.an_bias, size=self.resolution, mode="bilinear") + self.ah_bias + self.aw_bias
        query = F.interpolate(self.na_bias, size=self.resolution, mode="bilinear").reshape(h, m, -1).transpose(1, 2)
        return agent.reshape(h, m, -1), query + (self.ha_bias + self.wa_bias).reshape(h, -1, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        if tuple(x.shape[1:3]) != self.resolution:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected 4-D (B, H, W, C) with (H, W) = "
                             f"{self.resolution}")
        height, width = x.shape[1:3]
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, H, W, C) each
        agents = self.pool(q.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)  # (B, M, C)

        agent_bias, query_bias = self.biases()
        q_, k_, v_ = (split_heads(t.flatten(1, 2), self.num_heads) for t in (q, k, v))  # (B, heads, N, d)
        out = agent_attention(q_, k_, v_, split_heads(agents, self.num_heads), autocast_like(agent_bias, q_),
                              autocast_like(query_bias, q_), impl=self.impl)
        out = merge_heads(out).unflatten(1, (height, width))
        return self.proj(out + self.dwc(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
