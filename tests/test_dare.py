"""DARE (arXiv 2410.02604, thuml/DARE@c72e087): tied tables are standard target attention, reference vs SDPA,
top-k search against brute-force sorting, padding gets zero weight, gradient routing between the two tables,
the layer's and the recommender's decoupling, errors."""

from __future__ import annotations

import pytest
import torch

from attnzoo.layers.dare import DAREAttention
from attnzoo.models.recsys import DARERecommender
from attnzoo.ops.dare import dare_attention, top_k_visible
from attnzoo.ops.softmax import softmax_attention


def tensors(b: int = 2, m: int = 3, n: int = 9, da: int = 4, dr: int = 6, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
            for shape in ((b, m, da), (b, n, da), (b, n, dr))]


@pytest.mark.parametrize("impl", ["reference", "sdpa"])
def test_tied_tables_are_standard_target_attention(impl: str) -> None:
    g = torch.Generator().manual_seed(1)
    table = torch.randn(20, 5, generator=g, dtype=torch.float64, requires_grad=True)
    targets, history = torch.tensor([[3], [7]]), torch.randint(0, 20, (2, 8), generator=g)
    out = dare_attention(table[targets], table[history], table[history], impl=impl)
    expected = softmax_attention(table[targets][:, None], table[history][:, None], table[history][:, None])[:, 0]
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    grad, = torch.autograd.grad(out.sum(), table)
    expected_grad, = torch.autograd.grad(expected.sum(), table)
    torch.testing.assert_close(grad, expected_grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("top_k", [None, 1, 4, 30])
def test_sdpa_matches_reference_with_padding_and_top_k(top_k: int | None) -> None:
    t, ha, hr = tensors(b=3, n=12, seed=2)
    padding = torch.rand(3, 12, generator=torch.Generator().manual_seed(3)) < 0.4
    padding[1] = True  # a history that is all padding -> zeros
    outs = [dare_attention(t, ha, hr, top_k, impl=i, key_padding_mask=padding) for i in ("reference", "sdpa")]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-12, rtol=0)
    assert (outs[0][1] == 0).all()
    g = torch.randn_like(outs[0])
    for a, e in zip(torch.autograd.grad(outs[1], (t, ha, hr), g), torch.autograd.grad(outs[0], (t, ha, hr), g)):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=0)


def test_gradcheck_reference_and_sdpa_with_top_k() -> None:
    t, ha, hr = tensors(b=1, m=2, n=5, da=2, dr=2, seed=4)
    for impl in ("reference", "sdpa"):
        assert torch.autograd.gradcheck(lambda *x, impl=impl: dare_attention(*x, 3, impl=impl), (t, ha, hr))


def test_top_k_selection_equals_brute_force_sorting() -> None:
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(2, 3, 10, generator=g)
    scores[0, 0, 2] = scores[0, 0, 7]  # a tie: the earlier position wins
    visible = torch.rand(2, 3, 10, generator=g) < 0.8
    chosen = top_k_visible(scores, visible, 4)
    for b in range(2):
        for m in range(3):
            keys = sorted((j for j in range(10) if visible[b, m, j]), key=lambda j: (-scores[b, m, j].item(), j))[:4]
            assert chosen[b, m].nonzero().flatten().tolist() == sorted(keys)


def test_padded_and_unselected_history_get_zero_weight() -> None:
    t, ha, hr = (x.detach() for x in tensors(b=1, m=1, n=8))
    padding = torch.tensor([[False, True, False, False, True, False, False, False]])
    out = dare_attention(t, ha, hr, 3, key_padding_mask=padding)
    scores = (t @ ha.transpose(1, 2))[0, 0].masked_fill(padding[0], float("-inf"))
    kept = scores.topk(3).indices
    other = torch.ones(8, dtype=torch.bool)
    other[kept] = False
    hr2, ha2 = hr.clone(), ha.clone()
    hr2[0, other] = 100.0
    ha2[0, padding[0]] = 50.0  # padded keys scoring highest are still never chosen
    torch.testing.assert_close(dare_attention(t, ha2, hr2, 3, key_padding_mask=padding), out)


def test_gradient_routing_between_the_tables() -> None:
    """The representation table gets gradient only through the aggregation, the attention table only through the
    weights: with all scores equal (a zero target) the attention embeddings of the history get none."""
    t, ha, hr = tensors(b=1, m=1, n=6)
    zero_target = torch.zeros_like(t, requires_grad=True)
    out = dare_attention(zero_target, ha, hr)
    g_ha, g_hr = torch.autograd.grad(out.square().sum(), (ha, hr))
    assert (g_ha == 0).all() and (g_hr != 0).any()
    torch.testing.assert_close(out, hr.mean(1, keepdim=True))  # uniform attention
    out = dare_attention(t, ha, hr)
    g_ha, = torch.autograd.grad(out.sum(), ha)
    assert (g_ha != 0).any()


def test_layer_decoupled_and_tied() -> None:
    torch.manual_seed(0)
    tied = DAREAttention(8, decoupled=False)
    assert tied.attention is None
    x = torch.randn(2, 5, 8)
    r = tied.representation(x)
    expected = tied.proj(softmax_attention(r[:, None], r[:, None], r[:, None])[:, 0])
    torch.testing.assert_close(tied(x), expected, atol=1e-6, rtol=0)
    decoupled = DAREAttention(8, attention_dim=3)
    assert decoupled.attention.out_features == 3 and decoupled(x).shape == x.shape


def test_recommender_tables() -> None:
    clusters = torch.arange(30) % 3
    shared = DARERecommender(30, clusters, item_dim=8, category_dim=4, decoupled=False)
    dare = DARERecommender(30, clusters, item_dim=8, category_dim=4, attention_dim=6, decoupled=True)
    assert not hasattr(shared, "att_item") and dare.att_item.embedding_dim == 2
    history, targets = torch.randint(0, 31, (4, 7)), torch.randint(0, 30, (4, 5))
    assert shared(history, targets).shape == dare(history, targets).shape == (4, 5)
    dare(history, targets).sum().backward()
    assert dare.att_item.weight.grad.abs().sum() > 0 and dare.repr_item.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="attention_dim=4: expected more than category_dim=4"):
        DARERecommender(30, clusters, category_dim=4, attention_dim=4)


@pytest.mark.parametrize(("change", "error", "match"), [
    (lambda t, ha, hr: (t, ha[..., :1], hr), ValueError, "history_attention has shape"),
    (lambda t, ha, hr: (t, ha, hr[:, :2]), ValueError, "history_representation has shape"),
    (lambda t, ha, hr: (t[:, 0], ha, hr), ValueError, "target has shape"),
    (lambda t, ha, hr: (t.float(), ha, hr), TypeError, "dtypes differ"),
])
def test_errors_name_the_argument(change, error: type, match: str) -> None:  # noqa: ANN001
    with pytest.raises(error, match=match):
        dare_attention(*change(*tensors()))
    with pytest.raises(ValueError, match="top_k=0: expected an int >= 1"):
        dare_attention(*tensors(), top_k=0)
