"""Dual cross-attention learning, DCAL (Zhu et al., CVPR 2022, arXiv 2205.02151): a ViT encoder with three
branches: self-attention (SA), global-local cross-attention (GLCA, Sec. 3.2) and pair-wise cross-attention
(PWCA, Sec. 3.3).

- :class:`PairwiseCrossAttention` is the token mixer SA and PWCA share (the paper: "the PWCA branch shares weights
  with the SA branch"): ``forward(x)`` is multi-head self-attention, ``forward(x, distractor)`` projects the
  distractor's tokens with the same ``qkv`` and runs :func:`attnzoo.ops.pwca_attention` (training only).
- :class:`GlobalLocalCrossAttention`: its own ``qkv`` / ``proj`` (GLCA "does not share weights with SA"); the
  queries of the tokens :func:`attnzoo.ops.dcal.select_top_queries` picks from the rollout attend to every token
  (:func:`attnzoo.ops.glca_attention`).
- :class:`DCALBlock` and :class:`GLCABlock`: pre-norm ViT blocks (LayerNorm, attention, residual, LayerNorm, MLP,
  residual) around them; the GLCA block's residual adds the selected input tokens.
- :class:`DCALEncoder`: ``depth`` (the paper's L = T = 12) shared SA/PWCA blocks and M = 1 GLCA block.

Placement of the GLCA block (not fixed by the paper's text; no official code exists): parallel to the last SA
block, on that block's input, with the rollout ``Ŝ_L`` of all ``L`` SA blocks (Eq. 2 pairs the queries ``Q_i``
of block ``i`` with ``Ŝ_i``, which includes block ``i``). The distractor's tokens at each block are its own SA
embeddings there (it runs the shared SA blocks), as for ``I_1``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.dcal.functional import pwca_attention
from attnzoo.ops.dcal.glca import glca_attention
from attnzoo.ops.dcal.rollout import attention_rollout
from attnzoo.ops.dcal.selection import check_top_r, gather_queries
from attnzoo.ops.softmax.functional import softmax_attention
from attnzoo.validation import check_flag, check_int, check_real, check_scale


def check_distractor_tokens(x: torch.Tensor, distractor: torch.Tensor) -> None:
    """``distractor`` ``(B, N2, C)``: the distractor images' tokens, with ``x``'s batch, channels, dtype and
    device (any ``N2 >= 1``)."""
    if not isinstance(distractor, torch.Tensor):
        raise TypeError(f"distractor must be a torch.Tensor, got {type(distractor).__name__}")
    b, _, c = x.shape
    if distractor.dim() != 3 or distractor.shape[0] != b or distractor.shape[2] != c or distractor.shape[1] == 0:
        raise ValueError(f"distractor has shape {tuple(distractor.shape)}; expected (B, N2, C) = ({b}, N2 >= 1, "
                         f"{c}), one distractor image per input image, the input's channels")
    if distractor.dtype != x.dtype or distractor.device != x.device:
        raise TypeError(f"distractor is {distractor.dtype} on {distractor.device}; expected the input's "
                        f"{x.dtype} on {x.device}")


def _mlp(dim: int, mlp_ratio: float) -> nn.Sequential:
    hidden = int(dim * check_real("mlp_ratio", mlp_ratio))
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class PairwiseCrossAttention(ShowsOptions, nn.Module):
    """Multi-head self-attention on ``(B, N, C)`` that becomes pair-wise cross-attention (PWCA, arXiv 2205.02151
    Eq. 4) when given a distractor: fused ``qkv`` projection, attention, output projection; the same weights in
    both modes, as DCAL's SA and PWCA branches share theirs.

    ``forward(x)``: ``softmax(Q Kᵀ · scale) V`` (``return_weights=True`` also returns the ``(B, H, N, N)``
    probabilities, for the rollout). ``forward(x, distractor)`` (training mode only; PWCA is removed at
    inference): the distractor's ``(B, N2, C)`` tokens are projected by the same ``qkv`` and the queries of ``x``
    attend to ``[K_x; K_d]`` / ``[V_x; V_d]`` under one softmax. Time O(N (N + N2) C).
    """

    def __init__(self, dim: int, num_heads: int = 1, qkv_bias: bool = True, scale: float | None = None,
                 impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads = dim, num_heads
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, distractor: torch.Tensor | None = None,
                return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)`` (and the attention probabilities with ``return_weights``);
        ``distractor`` ``(B, N2, C)``: PWCA against it (training mode only, no weights)."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        check_flag("return_weights", return_weights)
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        if distractor is None:
            result = softmax_attention(q, k, v, scale=self.scale, impl=self.impl, return_weights=return_weights)
            out, weights = result if return_weights else (result, None)
            out = self.proj(merge_heads(out))
            return (out, weights) if return_weights else out
        check_distractor_tokens(x, distractor)
        if not self.training:
            raise ValueError("distractor given in eval mode: pair-wise cross-attention is a training-time "
                             "regulariser, removed at inference (arXiv 2205.02151 Sec. 3.3); call without it")
        if return_weights:
            raise ValueError("return_weights=True with a distractor: the attention weights (for the rollout) are "
                             "those of the self-attention branch; call without the distractor")
        _, k2, v2 = split_heads(self.qkv(distractor), 3 * self.num_heads).chunk(3, dim=1)
        return self.proj(merge_heads(pwca_attention(q, k, v, k2, v2, scale=self.scale, impl=self.impl)))


class GlobalLocalCrossAttention(ShowsOptions, nn.Module):
    """Global-local cross-attention (GLCA, arXiv 2205.02151 Eq. 3) on ``(B, N, C)``: its own fused ``qkv`` and
    output projection; the queries of the tokens ranked highest by the class token's row of a ``(B, N, N)``
    rollout (``top_r`` of them, after token 0 with ``keep_cls``) attend to all ``N`` keys and values.
    ``forward(x, rollout)`` -> ``((B, R', C), (B, R') indices)``. Time O(R N C)."""

    def __init__(self, dim: int, num_heads: int = 1, top_r: int = 1, keep_cls: bool = True, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        check_int("top_r", top_r)
        check_flag("keep_cls", keep_cls)
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads, self.top_r, self.keep_cls = dim, num_heads, top_r, keep_cls
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rollout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        out, indices = glca_attention(q, k, v, rollout.to(q.dtype), self.top_r, self.scale, self.impl,
                                      keep_cls=self.keep_cls)
        return self.proj(merge_heads(out)), indices


class DCALBlock(ShowsOptions, nn.Module):
    """A pre-norm ViT block whose attention is :class:`PairwiseCrossAttention`: ``x + attn(norm1(x))``, then
    ``+ mlp(norm2(·))``. ``forward(x, distractor)`` (training only): the PWCA block, the distractor's block input
    normalised by the same ``norm1``; weights shared with the SA block ``forward(x)``."""

    def __init__(self, dim: int, num_heads: int = 1, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.attn = PairwiseCrossAttention(dim, num_heads, qkv_bias, scale, impl)
        self.norm1, self.norm2, self.mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), _mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, distractor: torch.Tensor | None = None,
                return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(B, N, C) -> (B, N, C)``, and the SA probabilities ``(B, H, N, N)`` with ``return_weights``."""
        d = None if distractor is None else self.norm1(distractor)
        result = self.attn(self.norm1(x), d, return_weights=return_weights)
        out, weights = result if return_weights else (result, None)
        x = x + out
        x = x + self.mlp(self.norm2(x))
        return (x, weights) if return_weights else x


class GLCABlock(ShowsOptions, nn.Module):
    """A pre-norm ViT block around :class:`GlobalLocalCrossAttention`: ``y = x[idx] + glca(norm1(x), rollout)``,
    then ``y + mlp(norm2(y))``; ``forward(x, rollout)`` -> ``((B, R', C), (B, R') indices)``."""

    def __init__(self, dim: int, num_heads: int = 1, top_r: int = 1, keep_cls: bool = True, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.attn = GlobalLocalCrossAttention(dim, num_heads, top_r, keep_cls, qkv_bias, scale, impl)
        self.norm1, self.norm2, self.mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), _mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, rollout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, indices = self.attn(self.norm1(x), rollout)
        y = gather_queries(x[:, None], indices)[:, 0] + out
        return y + self.mlp(self.norm2(y)), indices


class DCALOutput(NamedTuple):
    """The branches of :class:`DCALEncoder`: ``sa`` ``(B, N, C)``, ``glca`` ``(B, R', C)`` with the selected
    token ``glca_indices`` ``(B, R')``, ``pwca`` ``(B, N, C)`` (``None`` without a distractor) and the
    ``rollout`` ``(B, N, N)`` of the SA blocks."""

    sa: torch.Tensor
    glca: torch.Tensor
    glca_indices: torch.Tensor
    pwca: torch.Tensor | None
    rollout: torch.Tensor


class DCALEncoder(ShowsOptions, nn.Module):
    """DCAL's training architecture (arXiv 2205.02151 Sec. 4.1): ``depth`` :class:`DCALBlock` s shared by the SA
    and PWCA branches and one :class:`GLCABlock` with its own weights, on ``(B, N, C)`` tokens (token 0 the class
    token).

    ``forward(x, distractor=None)`` -> :class:`DCALOutput`. SA: ``x`` through the blocks, recording each block's
    attention; their rollout ranks the tokens for the GLCA block, which runs on the last SA block's input. PWCA
    (``pwca=True``, training mode): required ``distractor`` ``(B, N2, C)`` (e.g. ``x[torch.randperm(B)]``), run
    through the same SA blocks; at each block the target's queries attend to its own and the distractor's keys.
    In eval mode a distractor is refused (PWCA is removed at inference) and the output's ``pwca`` is ``None``.
    The SA blocks run the dense reference (the rollout needs their probabilities): O(depth · N² C) time and
    O(N²) memory per block.
    """

    def __init__(self, dim: int, depth: int = 12, num_heads: int = 1, top_r: int = 1, keep_cls: bool = True,
                 pwca: bool = True, mlp_ratio: float = 4.0, qkv_bias: bool = True, scale: float | None = None,
                 impl: str = "auto") -> None:
        super().__init__()
        check_int("depth", depth)
        check_flag("pwca", pwca)
        self.pwca = pwca
        self.blocks = nn.ModuleList(DCALBlock(dim, num_heads, mlp_ratio, qkv_bias, scale, impl)
                                    for _ in range(depth))
        self.glca = GLCABlock(dim, num_heads, top_r, keep_cls, mlp_ratio, qkv_bias, scale, impl)

    def forward(self, x: torch.Tensor, distractor: torch.Tensor | None = None) -> DCALOutput:
        if distractor is not None and not self.training:
            raise ValueError("distractor given in eval mode: pair-wise cross-attention is a training-time "
                             "regulariser, removed at inference (arXiv 2205.02151 Sec. 3.3); call without it")
        if distractor is not None and not self.pwca:
            raise ValueError("distractor given to DCALEncoder(pwca=False), which has no PWCA branch; call "
                             "without it or build with pwca=True")
        if distractor is None and self.pwca and self.training:
            raise ValueError("distractor=None in training mode: DCALEncoder(pwca=True) trains the PWCA branch "
                             "against a distractor (B, N2, C), e.g. x[torch.randperm(B)]; pass one, call .eval() "
                             "for inference, or build with pwca=False")
        check_layer_input(self, x, rank=3, dim=self.blocks[0].attn.dim,
                          layout=f"(B, N, C={self.blocks[0].attn.dim})")
        check_top_r(self.glca.attn.top_r, x.shape[1], self.glca.attn.keep_cls)
        h, inputs, weights = x, [], []
        for block in self.blocks:
            inputs.append(h)
            h, w = block(h, return_weights=True)
            weights.append(w.detach())
        rollout = attention_rollout(weights)
        glca, indices = self.glca(inputs[-1], rollout)
        pwca = None
        if distractor is not None:
            check_distractor_tokens(x, distractor)
            y, d = x, distractor
            for block in self.blocks:
                y, d = block(y, distractor=d), block(d)
            pwca = y
        return DCALOutput(h, glca, indices, pwca, rollout)
