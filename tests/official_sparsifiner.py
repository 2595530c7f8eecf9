"""lim142857/Sparsifiner at commit 90174dd64ed0293e12c9b7096d0da7bc23e7a6ba, transcribed for tests/test_sparsifiner.py:
``MaskPredictor`` and ``Attention`` of ``src/models/sparsifiner.py`` (token pruning, ``token_mask`` and the
sparsity statistics left out; dropout 0) and the attention-reconstruction term of ``NewLoss`` in ``src/losses.py``.
The ``cfg`` object is the yacs config's ``SPAR`` / ``LOSS`` fields the two modules read (``src/config``)."""

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


def official_cfg(basis_threshold=0.0, coef_top_k=None, use_attn_recon=False):
    spar = SimpleNamespace(BASIS_THRESHOLD=basis_threshold, PRUNE_ATTN_MATRIX_ROW=False,
                           BASIS_COEF=SimpleNamespace(USE_TOPK=coef_top_k is not None, TOPK=coef_top_k or 8,
                                                      THRESHOLD=0.0),
                           ATTN_SCORE=SimpleNamespace(USE_TOPK=True, THRESHOLD=0.0))
    return SimpleNamespace(SPAR=spar, LOSS=SimpleNamespace(USE_ATTN_RECON=use_attn_recon))


class OfficialMaskPredictor(nn.Module):
    def __init__(self, dim, num_heads, num_tokens, attn_keep_rate, reduce_n_factor, reduce_c_factor, cfg):
        super().__init__()
        self.num_tokens, self.num_heads = num_tokens, num_heads
        self.head_dim = dim // num_heads
        self.reduced_c = self.head_dim // reduce_c_factor
        self.reduced_n = int(num_tokens // reduce_n_factor)
        self.scale = num_heads ** -0.5
        self.proj_c_q = nn.Linear(self.head_dim, self.reduced_c)
        self.proj_c_k = nn.Linear(self.head_dim, self.reduced_c)
        self.proj_n = nn.Parameter(torch.randn(num_tokens, self.reduced_n) * 0.02)
        self.proj_back_n = nn.Parameter(torch.randn(num_tokens, self.reduced_n) * 0.02)
        self.basis_threshold = nn.Threshold(cfg.SPAR.BASIS_THRESHOLD, 0.)
        self.attn_budget = math.ceil(attn_keep_rate * num_tokens)
        self.cfg = cfg

    def forward(self, q, k):
        cfg = self.cfg.SPAR
        B, H, N, C = q.shape
        q, k = self.proj_c_q(q), self.proj_c_k(k)
        k = k.permute(0, 1, 3, 2) @ self.proj_n
        if self.training and self.cfg.LOSS.USE_ATTN_RECON:
            basis = self.proj_back_n.permute(1, 0)
        else:
            basis = self.basis_threshold(self.proj_back_n.permute(1, 0).abs())
        cheap_attn = ((q @ k) * self.scale)[..., 1:, :]
        basis_coef = cheap_attn.softmax(dim=-1)
        if not (self.training and self.cfg.LOSS.USE_ATTN_RECON) and cfg.BASIS_COEF.USE_TOPK:
            values, indices = basis_coef.topk(cfg.BASIS_COEF.TOPK, sorted=False)
            basis_coef = torch.zeros_like(basis_coef).scatter_(-1, indices, values)
        approx_attn = basis_coef @ basis
        topk_cont_indices = torch.topk(approx_attn.clone(), self.attn_budget, sorted=False)[1]
        attn_mask = torch.zeros_like(approx_attn).scatter_(-1, topk_cont_indices, True)
        attn_mask = torch.cat([torch.ones(B, H, 1, N, dtype=attn_mask.dtype), attn_mask], dim=2).detach()
        return {"basis_coef": basis_coef, "approx_attn": approx_attn, "attn_mask": attn_mask}


class OfficialAttention(nn.Module):
    def __init__(self, dim, num_tokens, num_heads, attn_keep_rate=0.25, reduce_n_factor=8, reduce_c_factor=2,
                 qkv_bias=True, cfg=None):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.mask_predictor = OfficialMaskPredictor(dim, num_heads, num_tokens, attn_keep_rate, reduce_n_factor,
                                                    reduce_c_factor, cfg)
        self.cfg = cfg

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        out_dict = self.mask_predictor(q, k)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        unmasked_attn = attn.clone().softmax(dim=-1)
        if self.training and self.cfg.LOSS.USE_ATTN_RECON:
            attn = attn.softmax(dim=-1)
        else:
            attn.masked_fill_(~out_dict["attn_mask"].bool(), float("-inf"))
            attn = torch.nan_to_num(attn.softmax(dim=-1))
        x = self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
        return {**out_dict, "x": x, "masked_attn": attn, "unmasked_attn": unmasked_attn}


def official_attn_recon_loss(approx_attn_list, attn_t_list):
    """``NewLoss`` item 4 with ``ATTN_RECON.CRITERION == "MSE"`` (before its weight)."""
    loss = 0.0
    for attn_s, attn_t in zip(approx_attn_list, attn_t_list):
        loss = loss + F.mse_loss(attn_s, attn_t[..., 1:, :], reduction="sum")
    return loss / len(approx_attn_list)
