"""Pointer attention (arXiv 1506.03134) in query chunks: the projections ``e W1`` and ``d W2`` are computed once
(autograd GEMMs), and the ``(B, Nq, Nk, A)`` tanh tensor is never held whole: a custom ``autograd.Function``
evaluates it ``chunk`` queries at a time in the forward and recomputes it per chunk in the backward, so memory
is O(B · chunk · Nk · A) in both (plus the ``(B, Nq, Nk)`` output, saved for the softmax backward).

Backward, per chunk with ``t = tanh(q_i + k_j)`` recomputed and ``g_u`` the score gradient
(``p ⊙ (g - Σ_j g p)`` for probabilities, ``g`` with the disallowed positions zeroed for logits)::

    dv  += Σ_{b,i,j} g_u[b,i,j] · t[b,i,j,:]
    dq_i = Σ_j g_u[b,i,j] · (1 - t²) ⊙ v        dk_j += Σ_i g_u[b,i,j] · (1 - t²) ⊙ v

First-order only (gradients of gradients raise :class:`attnzoo.NotSupportedError`; the reference has them).

Measured (``OMP_NUM_THREADS=1 attnzoo bench --op pointer_attention --backward --no-cache``, the spec's benchmark
case: batch 128, 50 decoder steps x 50 inputs, width 256, masked; float32, one thread, AMD EPYC with AVX-512
shared with other jobs): forward 575 ms / 32.5 MB peak against the reference's 1.09 s / 638 MB; forward +
backward 1.46 s / 52 MB against 2.11 s / 939 MB. The time is the tanh of 82M elements; the memory is what
chunking buys.
"""

from __future__ import annotations

import torch

from attnzoo.validation import first_order_only

CHUNK_ELEMENTS = 2**18
"""Elements of the tanh tensor held at once (``B · chunk · Nk · A``; 2 MiB in float64); at least one query."""


def chunk_size(batch: int, keys: int, attn_dim: int, budget: int = CHUNK_ELEMENTS) -> int:
    """Queries per chunk so that ``batch · chunk · keys · attn_dim <= budget`` (at least 1)."""
    return max(1, budget // max(1, batch * keys * attn_dim))


class _PointerScores(torch.autograd.Function):
    """Projected queries ``(B, Nq, A)``, keys ``(B, Nk, A)`` and ``v`` ``(A,)`` -> ``(B, Nq, Nk)`` probabilities or
    masked scores (see the module)."""

    @staticmethod
    def forward(ctx, queries: torch.Tensor, keys: torch.Tensor, v: torch.Tensor,  # noqa: ANN001
                mask: torch.Tensor | None, return_logits: bool, chunk: int) -> torch.Tensor:
        b, nq, _ = queries.shape
        scores = queries.new_empty(b, nq, keys.shape[1])
        for start in range(0, nq, chunk):
            hidden = torch.tanh(queries[:, start:start + chunk, None, :] + keys[:, None, :, :])
            scores[:, start:start + chunk] = hidden @ v
        if mask is not None:
            scores.masked_fill_(~mask, float("-inf"))
        out = scores if return_logits else torch.softmax(scores, dim=-1)
        ctx.return_logits, ctx.chunk = return_logits, chunk
        ctx.save_for_backward(queries, keys, v, mask, None if return_logits else out)
        return out

    @staticmethod
    @first_order_only("pointer_attention(impl='chunked')")
    def backward(ctx, grad: torch.Tensor) -> tuple:  # noqa: ANN001
        queries, keys, v, mask, probs = ctx.saved_tensors
        if ctx.return_logits:
            grad_scores = grad if mask is None else grad.masked_fill(~mask, 0)
        else:
            grad_scores = probs * (grad - (grad * probs).sum(-1, keepdim=True))
        grad_queries = torch.empty_like(queries)
        grad_keys = torch.zeros_like(keys)
        grad_v = torch.zeros_like(v)
        for start in range(0, queries.shape[1], ctx.chunk):
            hidden = torch.tanh(queries[:, start:start + ctx.chunk, None, :] + keys[:, None, :, :])
            g = grad_scores[:, start:start + ctx.chunk]                       # (B, c, Nk)
            grad_v += torch.einsum("bqk,bqka->a", g, hidden)
            grad_pre = (1 - hidden * hidden).mul_(g[..., None]).mul_(v)         # (B, c, Nk, A)
            grad_queries[:, start:start + ctx.chunk] = grad_pre.sum(2)
            grad_keys += grad_pre.sum(1)
        return grad_queries, grad_keys, grad_v, None, None, None


def pointer_chunked(decoder: torch.Tensor, encoder: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
                    v: torch.Tensor, *, mask: torch.Tensor | None, return_logits: bool,
                    chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``(B, Nq, Dd)`` decoder states against ``(B, Nk, De)`` encoder states, the tanh tensor in query chunks of
    :func:`chunk_size` (``chunk_elements`` elements at most, at least one query)."""
    keys, queries = encoder @ w1, decoder @ w2
    chunk = chunk_size(decoder.shape[0], encoder.shape[1], w1.shape[1], chunk_elements)
    return _PointerScores.apply(queries, keys, v, mask, return_logits, chunk)
