"""Small sequential recommenders around :func:`attnzoo.ops.mqsa_attention` and :func:`attnzoo.ops.dare_attention`.

- :class:`MQSARecommender`: MQSA-TED as the official TF1 code builds it (``zhuty16/MQSA-TED`` ``MQSA_TED.py``,
  commit 91c9001): item embeddings (``E·√d`` plus learned positions, padding zeroed), a short-query SASRec
  stack (``Q = W LN(x)``) and a long-query stack (``Q = W LN(mean of the last L items)``), each block with
  ``K = W x``, ``V = W x``, causal attention with padded keys masked and padded queries zeroed, residual to the
  normalised query input, LN, ReLU FFN with residual; item logits ``alpha · h_short Eᵀ + (1 - alpha) · h_long Eᵀ``
  (``alpha = 1`` is SASRec and builds no long stack). Each block's attention is this library's ``mqsa_attention``
  with ``window=1, alpha=1`` on queries already formed from the window mean, as the official block forms them.
  :func:`ted_loss` is TED: a bigram teacher distilled into the item embeddings.
- :class:`DARERecommender`: a DIN/TWIN-style target-attention CTR model (``thuml/DARE`` ``model/din_pytorch.py``):
  each item is ``[item embedding, category embedding]``; ``decoupled=True`` (DARE) keeps separate attention and
  representation tables, ``decoupled=False`` (TWIN) one table; ``dare_attention`` over the history (optional
  top-k search), features ``[e_repr(target), agg, e_repr(target) ⊙ agg]`` -> MLP -> logit, trained with binary
  cross-entropy against sampled negatives. Without the official auxiliary loss, time embeddings and short-sequence
  splits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.ops.dare.functional import dare_attention
from attnzoo.ops.mqsa.functional import mqsa_attention
from attnzoo.ops.mqsa.window import causal_window_mean
from attnzoo.validation import check_int


class _MQSABlock(nn.Module):
    """One official block (see the module); ``window > 1`` makes it a long-query block."""

    def __init__(self, dim: int, num_heads: int, window: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.query_norm, self.out_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, seq: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        heads = lambda t: t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # noqa: E731
        query_input = seq
        if self.window > 1:
            query_input = causal_window_mean(seq[:, None], self.window, padding)[:, 0]
        query_input = self.query_norm(query_input)
        out = mqsa_attention(heads(self.q(query_input)), heads(self.k(seq)), heads(self.v(seq)), window=1,
                             alpha=1.0, key_padding_mask=padding)
        out = self.out_norm(out.transpose(1, 2).flatten(2) + query_input)
        return (out + self.ffn(out)) * (~padding)[..., None]


class MQSARecommender(nn.Module):
    """MQSA(-TED) next-item model over ``num_items`` items; inputs ``(B, N)`` left-padded with ``num_items``."""

    def __init__(self, num_items: int, dim: int = 64, max_len: int = 50, num_blocks: int = 1, num_heads: int = 1,
                 window: int = 3, alpha: float = 0.5, dropout: float = 0.2) -> None:
        super().__init__()
        self.num_items, self.dim, self.alpha = check_int("num_items", num_items), dim, alpha
        self.item = nn.Embedding(num_items + 1, dim, padding_idx=num_items)
        self.position = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout)
        self.short = nn.ModuleList(_MQSABlock(dim, num_heads, 1, dropout) for _ in range(num_blocks))
        self.long = nn.ModuleList(_MQSABlock(dim, num_heads, window, dropout) for _ in range(num_blocks)) \
            if alpha < 1 else None
        self.short_norm, self.long_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def _stack(self, blocks: nn.ModuleList, seq: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            seq = block(seq, padding)
        return seq

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` item ids -> ``(B, N, num_items)`` next-item logits at every position (causal)."""
        padding = items == self.num_items
        positions = torch.arange(items.shape[1], device=items.device)
        seq = self.drop(self.item(items) * self.dim ** 0.5 + self.position(positions)) * (~padding)[..., None]
        table = self.item.weight[:self.num_items]
        logits = self.short_norm(self._stack(self.short, seq, padding)) @ table.T
        if self.long is None:
            return logits
        long = self.long_norm(self._stack(self.long, seq, padding)) @ table.T
        return self.alpha * logits + (1 - self.alpha) * long


def transition_counts(sequences: list, num_items: int) -> torch.Tensor:
    """``(num_items, num_items)``: how often item ``j`` directly follows item ``i`` (the official
    ``get_seq_matrix_sparse`` with ``time_span=1``)."""
    counts = torch.zeros(num_items, num_items)
    for seq in sequences:
        seq = torch.as_tensor(seq)
        if len(seq) > 1:
            counts.index_put_((seq[:-1], seq[1:]), torch.ones(len(seq) - 1), accumulate=True)
    return counts


def distillation_cross_entropy(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """``-mean_i sum_j softmax(teacher_i)_j log(softmax(student_i)_j + 1e-24)`` (the official ``loss_kd``)."""
    return -(teacher_logits.softmax(-1) * torch.log(student_logits.softmax(-1) + 1e-24)).sum(-1).mean()


def ted_loss(model: MQSARecommender, items: torch.Tensor, counts: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """TED: for the non-padding ``items``, teacher ``softmax(tail_i / max(tail_i) / tau)`` from the transition
    counts, student ``softmax((E_i √d) Eᵀ / tau)``, their cross-entropy (official ``loss_kd``, dropout left out)."""
    heads = items[items != model.num_items]
    tail = counts[heads]
    teacher = tail / (tail.max(1, keepdim=True).values + 1e-24) / tau
    table = model.item.weight[:model.num_items]
    student = (table[heads] * model.dim ** 0.5) @ table.T / tau
    return distillation_cross_entropy(teacher, student)


class DARERecommender(nn.Module):
    """Target-attention CTR model with decoupled (DARE) or shared (TWIN) embeddings; see the module."""

    def __init__(self, num_items: int, item_cluster: torch.Tensor, item_dim: int = 32, category_dim: int = 16,
                 attention_dim: int | None = None, decoupled: bool = True, top_k: int | None = None,
                 hidden: int = 64) -> None:
        super().__init__()
        self.num_items, self.decoupled, self.top_k = check_int("num_items", num_items), decoupled, top_k
        self.register_buffer("item_cluster", torch.cat([torch.as_tensor(item_cluster), torch.zeros(1).long()]))
        num_categories = int(self.item_cluster.max()) + 1
        repr_dim = item_dim + category_dim
        self.repr_item = nn.Embedding(num_items + 1, item_dim, padding_idx=num_items)
        self.repr_category = nn.Embedding(num_categories, category_dim)
        if decoupled:
            att_item = (attention_dim or repr_dim) - category_dim
            if att_item < 1:
                raise ValueError(f"attention_dim={attention_dim!r}: expected more than category_dim={category_dim}")
            self.att_item = nn.Embedding(num_items + 1, att_item, padding_idx=num_items)
            self.att_category = nn.Embedding(num_categories, category_dim)
        elif attention_dim not in (None, repr_dim):
            raise ValueError(f"attention_dim={attention_dim!r}: expected None with decoupled=False (one table)")
        self.mlp = nn.Sequential(nn.Linear(3 * repr_dim, hidden), nn.PReLU(), nn.Linear(hidden, 1))

    def _embed(self, items: torch.Tensor, attention: bool) -> torch.Tensor:
        if attention and self.decoupled:
            return torch.cat([self.att_item(items), self.att_category(self.item_cluster[items])], -1)
        return torch.cat([self.repr_item(items), self.repr_category(self.item_cluster[items])], -1)

    def forward(self, history: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``history`` ``(B, N)`` (padding = ``num_items``), ``targets`` ``(B, M)`` -> ``(B, M)`` click logits."""
        padding = history == self.num_items
        agg = dare_attention(self._embed(targets, True), self._embed(history, True), self._embed(history, False),
                             self.top_k, key_padding_mask=padding)
        target_repr = self._embed(targets, False)
        return self.mlp(torch.cat([target_repr, agg, target_repr * agg], -1))[..., 0]


def sampled_bce(model: DARERecommender, history: torch.Tensor, positives: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
    """Binary cross-entropy of each true next item (label 1) and one uniformly sampled item (label 0)."""
    negatives = torch.randint(0, model.num_items, positives.shape, generator=generator)
    logits = model(history, torch.stack([positives, negatives], 1))
    return F.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 0.0]).expand_as(logits))
