"""Global-local cross-attention, GLCA (Zhu et al., arXiv 2205.02151, Sec. 3.2, Eq. 3).

``f_GLCA(Q^l, K^g, V^g) = softmax(Q^l K^gᵀ / √d) V^g``: the ``R`` queries whose tokens the class token attends
to most, by the accumulated attention rollout (:func:`attnzoo.ops.dcal.attention_rollout`,
:func:`attnzoo.ops.dcal.select_top_queries`), cross-attend to every key and value. The attention itself is
:func:`attnzoo.ops.softmax_attention` on the selected rows (its ``sdpa`` and ``reference`` implementations and
their declared capabilities), so GLCA adds only the selection and a gather: time O(R · N · D) against SA's
O(N² · D). No official code exists (the catalog found none): verified against the paper's equations, by the
reduction ``R = N`` (the self-attention rows of the selected tokens) and against
:func:`attnzoo.ops.dcal.reference.glca_reference` forward and backward (``tests/test_dcal.py``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.dcal.selection import gather_queries, select_top_queries
from attnzoo.ops.dropin import check_sequence_inputs
from attnzoo.ops.softmax.functional import softmax_attention
from attnzoo.validation import check_flag, check_tensor_like


def glca_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, rollout: torch.Tensor,
                   top_r: int, scale: float | None = None, impl: str = "auto", *, keep_cls: bool = False,
                   return_indices: bool = True) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Global-local cross-attention of ``(B, H, N, D)`` queries, keys ``(B, H, N, D)`` and values
    ``(B, H, N, Dv)`` of the same ``N`` tokens, whose ``(B, N, N)`` ``rollout`` (in the query's dtype) ranks
    them -> ``(out, indices)``: ``out`` ``(B, H, R', Dv)`` for the selected queries, ``indices`` ``(B, R')`` the
    selected tokens (highest class-token response first, ties to the lower index; ``keep_cls=True``: token 0
    first, then ``top_r`` patches, ``R' = top_r + 1``; else ``R' = top_r``, see
    :func:`attnzoo.ops.dcal.select_top_queries`). ``return_indices=False``: ``out`` alone.

    ``scale`` defaults to ``D ** -0.5``; ``impl`` is that of :func:`attnzoo.ops.softmax_attention`
    (``"auto"``, ``"sdpa"``, ``"reference"``). Gradients reach query (the selected rows), key and value; the
    selection has none.

    >>> import torch
    >>> q = k = v = torch.randn(2, 3, 10, 8)
    >>> rollout = torch.softmax(torch.randn(2, 10, 10), -1)
    >>> out, idx = glca_attention(q, k, v, rollout, top_r=3, keep_cls=True)
    >>> out.shape, idx.shape, bool((idx[:, 0] == 0).all())
    (torch.Size([2, 3, 4, 8]), torch.Size([2, 4]), True)
    """
    check_sequence_inputs(query, key, value, enable_gqa=False)
    b, _, n, _ = query.shape
    if key.shape[2] != n:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected the query's {n} tokens: GLCA's local "
                         "queries are a subset of the tokens whose keys and values they attend to")
    check_tensor_like("rollout", rollout, (b, n, n), query)
    check_flag("return_indices", return_indices)
    indices = select_top_queries(rollout, top_r, keep_cls)
    out = softmax_attention(gather_queries(query, indices), key, value, scale=scale, impl=impl)
    return (out, indices) if return_indices else out
