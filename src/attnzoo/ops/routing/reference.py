"""Dense oracle of routing attention (``impl="reference"``): every routed query scored against all ``N`` keys, the
cluster kept by an explicit mask.

For each cluster ``c`` and each of its ``window`` query members ``i``, the scores ``q_i · k_j · scale`` of all
``N`` keys are formed, masked by :func:`attnzoo.ops.routing.masks.visible_keys` (key ``j`` gathered by ``c``,
``j <= i`` when causal, the self rule with shared queries and keys), and softmaxed; a token's output is the mean of
its results over the clusters it belongs to (and sees a key in), zero in none. The selection is the
:class:`~attnzoo.ops.routing.routing.Routing` the fast path uses. Clusters run in chunks of about ``2^24`` scores,
so memory beyond autograd's saved tensors stays bounded; time and (with gradients) memory O(B · H · K · window · N),
``N^2`` per head when ``K · window = N``. Plain autograd, to any order; the scores of all members are refused up
front when larger than the machine's memory (:func:`attnzoo.ops.dense.check_dense_size`).
"""

from __future__ import annotations

import torch

from attnzoo.ops.dense import attend_values, check_dense_size
from attnzoo.ops.routing.masks import visible_keys
from attnzoo.ops.routing.routing import Routing
from attnzoo.ops.routing.scatter import gather_rows, member_rows, scatter_mean

CHUNK_SCORES = 2**24
"""Scores per chunk of clusters (each chunk: the member rows of a few clusters against all keys)."""


def routing_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, routing: Routing, *,
                      is_causal: bool, scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` query and key, ``(B, H, N, Dv)`` value -> ``(B, H, N, Dv)`` (see the module)."""
    b, h, n, _ = query.shape
    clusters, window = routing.query_members.shape[2:]
    check_dense_size("the scores of every routed query against every key", (b, h, clusters * window, n),
                     query.dtype, "impl='gathered'")
    key_member = torch.zeros(b, h, clusters, n, dtype=torch.bool, device=query.device)
    key_member.scatter_(-1, routing.key_members, True)
    positions = torch.arange(n, device=query.device)
    rows = member_rows(routing.query_members, n)
    step = max(1, CHUNK_SCORES // max(1, b * h * window * n))
    outs, seen = [], []
    for start in range(0, clusters, step):
        members = routing.query_members[:, :, start:start + step]  # (B, H, c, W)
        routed = gather_rows(query, rows[:, :, start:start + step])  # (B, H, c, W, D)
        scores = torch.matmul(routed, key.transpose(-1, -2)[:, :, None]) * scale  # (B, H, c, W, N)
        visible = visible_keys(members[..., None], positions, key_member[:, :, start:start + step, None],
                               is_causal=is_causal, shared=routing.shared)
        sees = visible.any(-1, keepdim=True)
        probs = torch.softmax(scores.masked_fill(~visible, float("-inf")).masked_fill(~sees, 0), dim=-1) * sees
        outs.append(attend_values(probs, value[:, :, None], visible))
        seen.append(sees[..., 0])
    return scatter_mean(torch.cat(outs, 2), rows, torch.cat(seen, 2), (b, h, n))
