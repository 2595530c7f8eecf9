"""Qualcomm-AI-research/outlier-free-transformers at commit 1e59744972da808a90d9996027bfc274689594b8, transcribed
once for the clipped-softmax and gated-attention tests: ``clipped_softmax`` of
``transformers_language/models/softmax.py`` and, of ``transformers_language/models/bert_attention.py``, ``logit``
and ``BertSelfAttentionWithExtras`` (its gate construction in ``__init__``, the ``alpha`` / ``max_seq_length``
clipped-softmax option, and the gating at the end of ``forward``; relative positions, cross attention, cache and
head mask left out, dropout in eval)."""

import math
from functools import partial

import numpy as np
import torch
from torch import nn


def logit(p, eps=1e-16):
    p = np.clip(p, eps, 1 - eps)
    return -np.log(1 / p - 1)


def official_clipped_softmax(data, dim=1, eta=1.1, gamma=-0.1, **kw):
    sm_out = torch.nn.functional.softmax(data, dim=dim, **kw)
    stretched_out = sm_out * (eta - gamma) + gamma
    return torch.clip(stretched_out, 0, 1)


class OfficialSelfAttention(nn.Module):
    """``BertSelfAttentionWithExtras`` as an encoder self-attention: separate q/k/v ``nn.Linear``, scores /
    sqrt(d_head), + the additive ``attention_mask``, ``self.softmax_fn`` (``alpha`` with ``max_seq_length`` gives
    the clipped softmax with ``gamma = -alpha / max_seq_length, eta = 1``), probabilities @ v, then the gate of
    ``attn_gate_type`` ``unconditional_per_head`` or ``conditional_per_token`` (``attn_gate_linear_all_features``,
    ``attn_gate_mlp``, ``attn_gate_init``; ``None``: no gate), heads merged."""

    def __init__(self, hidden_size, num_heads, softmax_fn=torch.nn.functional.softmax, alpha=None, max_seq_length=None,
                 attn_gate_type=None, attn_gate_init=None, attn_gate_mlp=False, attn_gate_linear_all_features=False):
        super().__init__()
        self.num_attention_heads = num_heads
        self.attention_head_size = int(hidden_size / num_heads)
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(hidden_size, self.all_head_size)
        self.key = nn.Linear(hidden_size, self.all_head_size)
        self.value = nn.Linear(hidden_size, self.all_head_size)
        if alpha is not None:
            assert max_seq_length is not None
            gamma = -alpha / max_seq_length
            self.softmax_fn = partial(official_clipped_softmax, gamma=gamma, eta=1.0)
        else:
            self.softmax_fn = softmax_fn
        self.attn_gate_type = attn_gate_type
        self.attn_gate_linear_all_features = attn_gate_linear_all_features
        self.gate_fn = torch.sigmoid
        self.gate_scaling_factor = 1.0
        if self.attn_gate_type == "unconditional_per_head":
            init_alpha = torch.zeros(size=(self.num_attention_heads,))
            self.alpha = nn.Parameter(init_alpha, requires_grad=True)
        elif self.attn_gate_type == "conditional_per_token":
            if self.attn_gate_linear_all_features:
                self.alpha = nn.Linear(self.all_head_size, self.num_attention_heads, bias=True)
            else:  # separate predictors for each head
                module_list = []
                for _ in range(self.num_attention_heads):
                    if attn_gate_mlp:
                        fc = nn.Sequential(
                            nn.Linear(self.attention_head_size, self.attention_head_size // 4, bias=True),
                            nn.ReLU(),
                            nn.Linear(self.attention_head_size // 4, 1, bias=True),
                        )
                    else:
                        fc = nn.Linear(self.attention_head_size, 1, bias=True)
                        if attn_gate_init is not None:
                            init_bias = logit(attn_gate_init)
                            torch.nn.init.constant_(fc.bias, init_bias)
                    module_list.append(fc)
                self.alpha = nn.ModuleList(module_list)

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        x = x.view(new_x_shape)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask=None):
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        if attention_mask is not None:
            attention_scores = attention_scores + attention_mask
        attention_probs = self.softmax_fn(attention_scores, dim=-1)
        context_layer = torch.matmul(attention_probs, value_layer)
        # *** Gating ***
        if self.attn_gate_type == "unconditional_per_head":
            gate = self.gate_fn(self.alpha)  # (H,)
            context_layer *= gate.view(-1, 1, 1)  # (B, H, T, d_head)
        elif self.attn_gate_type == "conditional_per_token":
            x = hidden_states  # (B, T, d_model)
            if self.attn_gate_linear_all_features:  # assume per_token
                alpha = self.alpha(x)  # (B, T, H)
                gate = self.gate_fn(alpha)
                gate = gate.permute(0, 2, 1).contiguous()  # (B, H, T)
                gate = gate.unsqueeze(3)  # (B, H, T, 1)
            else:
                x = self.transpose_for_scores(x)  # (B, H, T, d_head)
                alpha = []
                for head_idx in range(self.num_attention_heads):
                    x_head = x[:, head_idx, ...]  # (B, T, d_head)
                    fc_head = self.alpha[head_idx]
                    alpha_head = fc_head(x_head)  # (B, T, 1)
                    alpha.append(alpha_head)
                alpha = torch.stack(alpha, dim=1)  # (B, H, *, 1)
                gate = self.gate_fn(alpha)
            context_layer *= gate * self.gate_scaling_factor
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        new_context_layer_shape = context_layer.size()[:-2] + (self.all_head_size,)
        return context_layer.view(new_context_layer_shape)
