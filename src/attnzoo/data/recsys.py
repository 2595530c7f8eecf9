"""A seeded synthetic sequential-recommendation set with planted long- and short-range structure, the
leave-one-out split and full-ranking HR@K / NDCG@K (the protocol of ``zhuty16/MQSA-TED`` ``evaluate.py``).

Generator (:func:`generate_recsys`): ``num_items`` items fall into ``num_clusters`` latent clusters (categories).
Each user has a long-range preference, a Dirichlet draw over clusters concentrated on a few of them. Each item
has ``successors`` fixed next items (drawn from clusters that a sparse cluster transition matrix favours). A
sequence starts at an item of a preferred cluster; each next item is, with probability ``p_transition``, one of
the current item's successors (short-range transitions: what TED's bigram teacher and a last-item query see),
otherwise a popular item of a cluster drawn from the user's preference (long-range taste: what a query over
several items sees). Item popularity inside a cluster is Zipf-like.

Split (:func:`leave_one_out`): the last item of each sequence is its test target, the rest its input; models
train on next-item prediction inside the inputs only. Metrics (:func:`hit_and_ndcg`): every item is a candidate
(full ranking, no sampled negatives, the history not excluded since items may repeat); the target's rank is the
number of candidates scored higher plus the other candidates scored equal (ties count against the model);
``HR@K = mean(rank < K)``, ``NDCG@K = mean(1 / log2(rank + 2))`` over hits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from attnzoo.validation import check_int, check_real


@dataclass(frozen=True)
class RecsysData:
    """Generated sequences (item ids in ``[0, num_items)``), each item's cluster, and the generator's seed."""

    sequences: tuple[np.ndarray, ...]
    item_cluster: np.ndarray
    num_items: int
    num_clusters: int
    seed: int


def generate_recsys(num_users: int = 2000, num_items: int = 400, num_clusters: int = 20, min_length: int = 20,
                    max_length: int = 50, successors: int = 3, p_transition: float = 0.5,
                    preference_concentration: float = 0.1, seed: int = 0) -> RecsysData:
    """Sequences of ``num_users`` users (see the module); the same arguments give the same data."""
    for name, value in (("num_users", num_users), ("num_items", num_items), ("num_clusters", num_clusters),
                        ("successors", successors)):
        check_int(name, value)
    check_int("min_length", min_length, 2)
    check_int("max_length", max_length, min_length)
    check_real("preference_concentration", preference_concentration)
    if not (isinstance(p_transition, float | int) and not isinstance(p_transition, bool) and 0 <= p_transition <= 1):
        raise ValueError(f"p_transition={p_transition!r}: expected a real number in [0, 1]")
    if num_clusters > num_items:
        raise ValueError(f"num_clusters={num_clusters}: expected at most num_items={num_items}")
    rng = np.random.default_rng(seed)
    item_cluster = rng.permutation(np.arange(num_items) % num_clusters)
    members = [np.flatnonzero(item_cluster == c) for c in range(num_clusters)]
    popularity = [1.0 / np.arange(1, len(m) + 1) ** 1.0 for m in members]
    popularity = [p / p.sum() for p in popularity]
    cluster_next = rng.dirichlet(np.full(num_clusters, 0.2), size=num_clusters)
    successor_table = np.stack([
        rng.choice(members[rng.choice(num_clusters, p=cluster_next[item_cluster[i]])], size=successors)
        for i in range(num_items)])

    def popular_item(cluster: int) -> int:
        return int(rng.choice(members[cluster], p=popularity[cluster]))

    sequences = []
    for _ in range(num_users):
        preference = rng.dirichlet(np.full(num_clusters, preference_concentration))
        length = int(rng.integers(min_length, max_length + 1))
        items = [popular_item(int(rng.choice(num_clusters, p=preference)))]
        for _ in range(length - 1):
            if rng.random() < p_transition:
                items.append(int(rng.choice(successor_table[items[-1]])))
            else:
                items.append(popular_item(int(rng.choice(num_clusters, p=preference))))
        sequences.append(np.asarray(items, dtype=np.int64))
    return RecsysData(tuple(sequences), item_cluster, num_items, num_clusters, seed)


def leave_one_out(data: RecsysData) -> tuple[list[np.ndarray], np.ndarray]:
    """``(inputs, targets)``: each sequence without its last item, and that last item."""
    return [s[:-1] for s in data.sequences], np.asarray([s[-1] for s in data.sequences], dtype=np.int64)


def left_padded(sequences: list[np.ndarray], max_len: int, pad: int) -> torch.Tensor:
    """``(len(sequences), max_len)`` int64: the last ``max_len`` items of each sequence, left-padded with ``pad``
    (the layout of the official ``get_train_data`` / ``get_test_data``)."""
    out = torch.full((len(sequences), max_len), pad, dtype=torch.long)
    for row, seq in enumerate(sequences):
        tail = seq[-max_len:]
        if len(tail):
            out[row, max_len - len(tail):] = torch.as_tensor(tail)
    return out


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` 0-based rank of each target among all ``(B, num_items)`` candidate scores: higher scores plus the
    other equal ones (ties count against the model)."""
    target_scores = scores.gather(1, targets[:, None])
    return (scores > target_scores).sum(1) + (scores == target_scores).sum(1) - 1


def hit_and_ndcg(scores: torch.Tensor, targets: torch.Tensor, k: int = 10) -> tuple[float, float]:
    """``(HR@k, NDCG@k)`` of full-ranking ``scores`` ``(B, num_items)`` for the ``targets`` ``(B,)``."""
    check_int("k", k)
    ranks = target_ranks(scores, targets).tolist()
    hits = [r for r in ranks if r < k]
    return len(hits) / len(ranks), sum(1 / math.log2(r + 2) for r in hits) / len(ranks)
