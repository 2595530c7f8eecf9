"""Sparsifiner attention layer (Wei et al., CVPR 2023, arXiv 2303.13755): ViT multi-head self-attention whose
connectivity is predicted per instance by a low-rank mask predictor, transcribed from the official ``Attention`` and
``MaskPredictor`` (``lim142857/Sparsifiner``, ``src/models/sparsifiner.py``) and compared with them on copied
weights in ``tests/test_sparsifiner.py``.

The predictor, per head (its linear maps shared by every head, as the official ones):

- ``q' = Linear(d_h -> d_h / reduce_c_factor)(q)``, ``k'`` likewise (``proj_c_q``, ``proj_c_k``);
- ``C = softmax(q' (k'ᵀ P_n) · num_heads^{-1/2})`` ``(B, H, N', K)``, ``P_n`` ``(N, K)``, ``K = N // reduce_n_factor``
  (``proj_n``; the scale ``num_heads^{-1/2}``, not ``d^{-1/2}``, is the official code's), over the rows of every
  token but the class token;
- the mask reads ``C P_b`` with ``P_b = |proj_back_nᵀ|``, entries at most ``basis_threshold`` set to 0 (the
  official ``nn.Threshold(BASIS_THRESHOLD, 0)(basis.abs())``), and with ``coef_top_k`` only the ``coef_top_k``
  largest coefficients of each row kept (``BASIS_COEF.USE_TOPK``; the released configuration uses 8 and 0.02).

Each query keeps ``ceil(attn_keep_rate · N)`` keys (:func:`attnzoo.ops.sparsifiner_attention`); the class token
(``class_token=True``, token 0) keeps all. The distillation loss trains the predictor
(:func:`attnzoo.ops.sparsifiner_distillation_loss`, on the signed ``C proj_back_nᵀ`` as the official
reconstruction phase): :meth:`SparsifinerAttention.distillation_loss` against a teacher's attention, or, in training
mode with ``distill_weight > 0``, against the layer's own dense attention inside every backward (see the class).

Not transcribed: token pruning (``token_keep_rate``, a separate mechanism of the paper), the dense attention the
official layer runs while ``LOSS.USE_ATTN_RECON`` is on, and the threshold form of the mask (``ATTN_SCORE``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.sparsifiner.functional import sparsifiner_attention
from attnzoo.ops.sparsifiner.loss import sparsifiner_distillation_loss
from attnzoo.ops.topk import top_k_indices
from attnzoo.validation import check_flag, check_int, check_optional_int, check_real


def check_keep_rate(attn_keep_rate: float) -> float:
    """The share of keys each query keeps, a real number in ``(0, 1]``."""
    rate = check_real("attn_keep_rate", attn_keep_rate)
    if rate > 1:
        raise ValueError(f"attn_keep_rate={attn_keep_rate!r}: expected a real number in (0, 1] (the share of the "
                         "keys each query keeps; 1 is dense attention)")
    return rate


class _AlsoDifferentiate(torch.autograd.Function):
    """The identity on ``out`` whose backward also differentiates the scalar ``loss`` (with gradient 1): an
    auxiliary loss that trains its parameters through whatever loss the output feeds."""

    @staticmethod
    def forward(ctx, out: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.loss_dtype, ctx.loss_device = loss.dtype, loss.device
        return out.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
        return grad, torch.ones((), dtype=ctx.loss_dtype, device=ctx.loss_device)


class SparsifinerAttention(ShowsOptions, nn.Module):
    """Sparsifiner self-attention on ``(B, N, C) -> (B, N, C)``; N must equal ``seq_len`` (the predictor's token
    projections are ``(seq_len, seq_len // reduce_n_factor)``, as the official ``num_tokens``).

    ``qkv`` and ``proj`` linear maps (timm ViT layout), the mask predictor of the module docstring, and
    :func:`attnzoo.ops.sparsifiner_attention` with ``top_k = ceil(attn_keep_rate · seq_len)`` (official default
    0.25; 1 is dense attention). ``class_token``: token 0 is a class token that attends to every key (the official
    ViT's; the library's ViT has none). ``share_inout_proj``: ``proj_back_n`` is ``proj_n``.

    Training the predictor: with ``distill_weight > 0`` and the layer in training mode, each forward also computes
    ``distill_weight · distillation_loss`` of the predictor against the layer's own dense softmax attention
    (detached: the loss moves the predictor, and the q/k maps it reads, towards the attention, not the attention
    towards the predictor) and adds it to whatever is differentiated through the output (the official "attention
    self distillation", ``LOSS.ATTN_SELF_DISTILL``, whose default weight is 0.05). That costs the dense
    ``N x N`` attention per training step; set ``distill_weight=0`` for the memory of the sparse path alone, and
    call :meth:`distillation_loss` with a teacher's attention for the paper's reconstruction phase. In eval mode
    the forward never forms an ``N x N`` matrix. Time O(N² (N / reduce_n_factor + C)).
    """

    def __init__(self, dim: int, num_heads: int, seq_len: int, attn_keep_rate: float = 0.25,
                 reduce_n_factor: int = 8, reduce_c_factor: int = 2, share_inout_proj: bool = False,
                 class_token: bool = False, basis_threshold: float = 0.0, coef_top_k: int | None = None,
                 distill_weight: float = 0.05, qkv_bias: bool = True, impl: str = "auto") -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        check_int("seq_len", seq_len)
        rate = check_keep_rate(attn_keep_rate)
        for name, factor, size, what in (("reduce_n_factor", reduce_n_factor, seq_len, "seq_len"),
                                         ("reduce_c_factor", reduce_c_factor, head_dim, "head_dim")):
            check_int(name, factor)
            if factor > size:
                raise ValueError(f"{name}={factor!r}: expected at most {what}={size} (the predictor reduces "
                                 f"{what} to {what} // {name} >= 1)")
        for name, flag in (("share_inout_proj", share_inout_proj), ("class_token", class_token),
                           ("qkv_bias", qkv_bias)):
            check_flag(name, flag)
        rank = seq_len // reduce_n_factor
        check_optional_int("coef_top_k", coef_top_k)
        if coef_top_k is not None and coef_top_k > rank:
            raise ValueError(f"coef_top_k={coef_top_k!r}: expected at most the number of basis vectors "
                             f"K = seq_len // reduce_n_factor = {rank}")
        self.dim, self.num_heads, self.seq_len, self.impl = dim, num_heads, seq_len, impl
        self.attn_keep_rate, self.top_k = rate, math.ceil(rate * seq_len)
        self.class_token, self.coef_top_k = class_token, coef_top_k
        self.basis_threshold = check_real("basis_threshold", basis_threshold, inclusive=True)
        self.distill_weight = check_real("distill_weight", distill_weight, inclusive=True)
        self.predictor_scale = num_heads ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_c_q = nn.Linear(head_dim, head_dim // reduce_c_factor)
        self.proj_c_k = nn.Linear(head_dim, head_dim // reduce_c_factor)
        self.proj_n = nn.Parameter(nn.init.trunc_normal_(torch.empty(seq_len, rank), std=0.02))
        self.proj_back_n = self.proj_n if share_inout_proj else nn.Parameter(
            nn.init.trunc_normal_(torch.empty(seq_len, rank), std=0.02))

    @property
    def global_queries(self) -> int:
        """Queries that keep every key: the class token, if any."""
        return int(self.class_token)

    def coefficients(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The predictor's basis coefficients ``C`` ``(B, H, N - global_queries, K)`` of ``(B, H, N, d)`` q, k."""
        reduced_k = self.proj_c_k(k).transpose(-1, -2) @ autocast_like(self.proj_n, k)  # (B, H, c, K)
        cheap = (self.proj_c_q(q) @ reduced_k) * self.predictor_scale
        return torch.softmax(cheap[:, :, self.global_queries:], dim=-1)

    def mask_basis(self) -> torch.Tensor:
        """``P_b`` ``(K, N)`` the mask reads: ``|proj_back_nᵀ|`` with entries ``<= basis_threshold`` set to 0."""
        basis = self.proj_back_n.detach().t().abs()
        return basis.masked_fill(basis <= self.basis_threshold, 0)

    def mask_coefficients(self, coef: torch.Tensor) -> torch.Tensor:
        """The coefficients the mask reads: ``coef`` with only its ``coef_top_k`` largest per row kept."""
        coef = coef.detach()
        if self.coef_top_k is None:
            return coef
        kept = top_k_indices(coef, self.coef_top_k)
        return torch.zeros_like(coef).scatter(-1, kept, coef.gather(-1, kept))

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, N, C)`` -> q, k, v ``(B, H, N, d)`` after checking the input."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
        if x.shape[1] != self.seq_len:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected (B, N, C) with N = seq_len = "
                             f"{self.seq_len} (the predictor's token projections are sized for it)")
        return split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)

    def dense_attention(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The dense softmax attention ``(B, H, N, N)`` of ``(B, H, N, d)`` q, k (the unmasked attention)."""
        return torch.softmax((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5, dim=-1)

    def _distillation(self, coef: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        basis = autocast_like(self.proj_back_n, coef).t()
        return sparsifiner_distillation_loss(coef, basis, attention, global_queries=self.global_queries)

    def distillation_loss(self, x: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
        """The predictor's distillation loss on input ``x`` ``(B, N, C)``: the summed squared error between its
        ``C proj_back_nᵀ`` and ``attention`` ``(B, H, N, N)`` (a dense teacher's, the paper's reconstruction
        phase) or, if ``None``, this layer's own dense attention, detached."""
        q, k, _ = self.qkv_heads(x)
        target = self.dense_attention(q, k).detach() if attention is None else attention
        return self._distillation(self.coefficients(q, k), target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_heads(x)
        coef = self.coefficients(q, k)
        out = sparsifiner_attention(q, k, v, self.mask_coefficients(coef), autocast_like(self.mask_basis(), q),
                                    self.top_k, global_queries=self.global_queries, impl=self.impl)
        out = self.proj(merge_heads(out))
        if self.training and self.distill_weight > 0 and torch.is_grad_enabled():
            loss = self._distillation(coef, self.dense_attention(q, k).detach())
            out = _AlsoDifferentiate.apply(out, self.distill_weight * loss)
        return out
