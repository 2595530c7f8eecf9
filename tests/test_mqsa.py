"""MQSA (arXiv 2311.01056, zhuty16/MQSA-TED@91c9001): reductions to causal softmax attention, the window mean
against a brute-force loop, reference vs SDPA with padding, gradcheck, the recommender's causality and alpha=1
(SASRec) limit, TED's loss and transition counts, and the synthetic recsys data and metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnzoo.data.recsys import generate_recsys, hit_and_ndcg, leave_one_out, left_padded, target_ranks
from attnzoo.models.recsys import MQSARecommender, distillation_cross_entropy, transition_counts
from attnzoo.ops.mqsa import causal_window_mean, mqsa_attention
from attnzoo.ops.softmax import softmax_attention


def qkv(b: int = 2, h: int = 2, n: int = 11, d: int = 5, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("impl", ["reference", "sdpa"])
@pytest.mark.parametrize(("window", "alpha"), [(1, 0.5), (1, 0.0), (4, 1.0)])
def test_one_query_is_causal_softmax_attention(impl: str, window: int, alpha: float) -> None:
    q, k, v = qkv()
    out = mqsa_attention(q, k, v, window=window, alpha=alpha, impl=impl)
    expected = softmax_attention(q, k, v, is_causal=True, impl="reference")
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), g)
    for a, e in zip(grads, torch.autograd.grad(expected, (q, k, v), g)):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=0)


def test_long_query_alone_is_attention_of_the_window_mean() -> None:
    q, k, v = qkv()
    mean = torch.stack([q[:, :, max(0, t - 2):t + 1].mean(2) for t in range(q.shape[2])], 2)
    torch.testing.assert_close(mqsa_attention(q, k, v, window=3, alpha=0.0),
                               softmax_attention(mean, k, v, is_causal=True), atol=1e-12, rtol=0)


def test_window_mean_matches_a_loop_with_padding() -> None:
    x = torch.randn(2, 1, 9, 3, dtype=torch.float64)
    padding = torch.tensor([[True, True, False, False, True, False, False, False, False], [False] * 8 + [True]])
    out = causal_window_mean(x, 3, padding)
    for b in range(2):
        for t in range(9):
            valid = [j for j in range(max(0, t - 2), t + 1) if not padding[b, j]]
            expected = x[b, :, valid].mean(1) if valid else torch.zeros(1, 3, dtype=torch.float64)
            torch.testing.assert_close(out[b, :, t], expected, atol=1e-14, rtol=0)


def test_sdpa_matches_reference_with_padding_forward_and_backward() -> None:
    q, k, v = qkv(b=3, n=20, seed=1)
    padding = torch.rand(3, 20, generator=torch.Generator().manual_seed(2)) < 0.4
    padding[0, :5] = True  # left padding: the first queries see nothing
    outs = [mqsa_attention(q, k, v, window=4, alpha=0.3, impl=i, key_padding_mask=padding)
            for i in ("reference", "sdpa")]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-12, rtol=0)
    assert (outs[0][padding[:, None, :, None].expand_as(outs[0])] == 0).all()
    g = torch.randn_like(outs[0])
    for a, e in zip(torch.autograd.grad(outs[1], (q, k, v), g), torch.autograd.grad(outs[0], (q, k, v), g)):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=0)


def test_gradcheck_reference_with_padding() -> None:
    q, k, v = qkv(b=1, h=1, n=5, d=2, seed=3)
    padding = torch.tensor([[True, False, False, True, False]])
    assert torch.autograd.gradcheck(
        lambda *t: mqsa_attention(*t, window=2, alpha=0.6, impl="reference", key_padding_mask=padding), (q, k, v))


def test_padded_keys_do_not_matter() -> None:
    q, k, v = qkv(b=1, n=8)
    padding = torch.tensor([[False, True, False, False, True, False, False, False]])
    out = mqsa_attention(q, k, v, key_padding_mask=padding)
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[:, :, padding[0]] = 1e3
    v2[:, :, padding[0]] = -7.0
    torch.testing.assert_close(mqsa_attention(q.detach(), k2, v2, key_padding_mask=padding), out.detach())


def test_recommender_is_causal_and_alpha_one_is_sasrec() -> None:
    torch.manual_seed(0)
    model = MQSARecommender(30, dim=8, max_len=10, alpha=0.5, dropout=0.0).eval()
    items = torch.randint(0, 30, (2, 10))
    items[0, :3] = 30  # left padding
    changed = items.clone()
    changed[:, 6:] = torch.randint(0, 30, (2, 4))
    torch.testing.assert_close(model(items)[:, :6], model(changed)[:, :6])
    assert not torch.allclose(model(items)[:, 6:], model(changed)[:, 6:])
    sasrec = MQSARecommender(30, dim=8, max_len=10, alpha=1.0, dropout=0.0).eval()
    assert sasrec.long is None
    sasrec.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("long.")})
    short = model.short_norm(model._stack(model.short, model.item(items) * 8 ** 0.5 * (items != 30)[..., None]
                                          + model.position(torch.arange(10)) * (items != 30)[..., None],
                                          items == 30))
    torch.testing.assert_close(sasrec(items), short @ model.item.weight[:30].T)


def test_distillation_loss_is_the_teacher_entropy_at_the_teacher_and_larger_elsewhere() -> None:
    teacher = torch.randn(4, 12, dtype=torch.float64)
    p = teacher.softmax(-1)
    entropy = -(p * p.log()).sum(-1).mean()
    torch.testing.assert_close(distillation_cross_entropy(teacher, teacher + 3.0), entropy)  # same softmax
    assert distillation_cross_entropy(teacher, teacher + torch.randn_like(teacher)) > entropy


def test_transition_counts_are_bigram_counts() -> None:
    sequences = [np.array([0, 1, 0, 1, 2]), np.array([2]), np.array([1, 0])]
    expected = torch.zeros(3, 3)
    for s in sequences:
        for a, b in zip(s[:-1], s[1:]):
            expected[a, b] += 1
    torch.testing.assert_close(transition_counts(sequences, 3), expected)


def test_generator_is_deterministic_and_seeded() -> None:
    a, b = generate_recsys(60, 40, 4, seed=3), generate_recsys(60, 40, 4, seed=3)
    assert all((x == y).all() for x, y in zip(a.sequences, b.sequences))
    c = generate_recsys(60, 40, 4, seed=4)
    assert any(len(x) != len(y) or (x != y).any() for x, y in zip(a.sequences, c.sequences))
    assert all(20 <= len(s) <= 50 and s.min() >= 0 and s.max() < 40 for s in a.sequences)


def test_generator_plants_transitions_and_preferences() -> None:
    data = generate_recsys(300, 60, 6, seed=0)
    counts = transition_counts(list(data.sequences), 60)
    # each item has 3 planted successors: they take far more than 3/60 of its next items
    top3 = counts.topk(3, dim=1).values.sum(1) / counts.sum(1).clamp_min(1)
    assert top3.mean() > 0.4
    # users concentrate on few clusters: far fewer distinct clusters than a uniform draw would give
    distinct = np.mean([len(set(data.item_cluster[s])) for s in data.sequences])
    assert distinct < 5.5


def test_leave_one_out_split_and_padding() -> None:
    data = generate_recsys(10, 30, 3, seed=1)
    inputs, targets = leave_one_out(data)
    for s, x, t in zip(data.sequences, inputs, targets):
        assert (np.append(x, t) == s).all()
    padded = left_padded([np.array([4, 5]), np.array([1, 2, 3, 4])], 3, 9)
    assert padded.tolist() == [[9, 4, 5], [2, 3, 4]]


def test_metrics_against_hand_computed_examples() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [1.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.1]])
    targets = torch.tensor([2, 0, 1])
    assert target_ranks(scores, targets).tolist() == [1, 0, 2]  # ties count against the model
    hr, ndcg = hit_and_ndcg(scores, targets, k=2)
    assert hr == pytest.approx(2 / 3)
    assert ndcg == pytest.approx((1 / math.log2(3) + 1) / 3)
    hr, ndcg = hit_and_ndcg(scores, targets, k=10)
    assert hr == 1 and ndcg == pytest.approx((1 / math.log2(3) + 1 + 1 / math.log2(4)) / 3)


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"window": 0}, ValueError, "window=0: expected an int >= 1"),
    ({"alpha": 1.5}, ValueError, r"alpha=1.5: expected a real number in \[0, 1\]"),
    ({"alpha": "0.5"}, TypeError, "alpha='0.5'"),
])
def test_errors_name_the_argument(options: dict, error: type, match: str) -> None:
    q, k, v = qkv()
    with pytest.raises(error, match=match):
        mqsa_attention(q, k, v, **options)
