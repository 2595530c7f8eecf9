"""DCAL (arXiv 2205.02151): attention rollout, top-R query selection, GLCA, PWCA and the DCAL layers.

No official DCAL code exists (catalog, paper 3), so the ops are checked against the paper's equations and their
reductions; the rollout against the official attention-rollout code of Abnar & Zuidema (arXiv 2005.00928), which
DCAL cites, and against jacobgil/vit-explain's ``rollout`` that DCAL reimplementations reuse (both transcribed
below with repository, file and commit). ``pwca_attention`` also runs the registry-wide contract
(``attnzoo/ops/dcal/testing.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnzoo.layers import (
    DCALBlock,
    DCALEncoder,
    GLCABlock,
    GlobalLocalCrossAttention,
    PairwiseCrossAttention,
    SoftmaxAttention,
)
from attnzoo.ops import attention_rollout, glca_attention, pwca_attention, select_top_queries, softmax_attention
from attnzoo.ops.dcal.reference import glca_reference, pwca_reference
from attnzoo.validation import ArgumentTypeError

F64 = torch.float64


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _attentions(layers: int, b: int, h: int, n: int, seed: int = 0) -> list[torch.Tensor]:
    return [torch.softmax(2 * _randn(b, h, n, n, seed=seed + i), -1) for i in range(layers)]


# ---- attention rollout ------------------------------------------------------------------------------------------

def official_compute_joint_attention(att_mat: np.ndarray, add_residual: bool = True) -> np.ndarray:
    """Transcribed from samiraabnar/attention_flow, ``attention_graph_util.py::compute_joint_attention``
    (commit 8044f5312f4ced18d4cf66ffe28f6c045629b4ed); ``att_mat`` is ``(layers, N, N)``, heads averaged."""
    if add_residual:
        residual_att = np.eye(att_mat.shape[1])[None, ...]
        aug_att_mat = att_mat + residual_att
        aug_att_mat = aug_att_mat / aug_att_mat.sum(axis=-1)[..., None]
    else:
        aug_att_mat = att_mat
    joint_attentions = np.zeros(aug_att_mat.shape)
    layers = joint_attentions.shape[0]
    joint_attentions[0] = aug_att_mat[0]
    for i in np.arange(1, layers):
        joint_attentions[i] = aug_att_mat[i].dot(joint_attentions[i - 1])
    return joint_attentions


def vit_explain_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """Transcribed from jacobgil/vit-explain, ``vit_rollout.py::rollout`` (commit
    15a81d355a5aa6128ea4e71bbd56c28888d0f33b) with ``head_fusion="mean"`` and ``discard_ratio=0`` (nothing
    dropped), for one image ``(1, H, N, N)``; returns its ``result`` before the patch mask is cut out."""
    result = torch.eye(attentions[0].size(-1), dtype=attentions[0].dtype)
    with torch.no_grad():
        for attention in attentions:
            attention_heads_fused = attention.mean(axis=1)
            eye = torch.eye(attention_heads_fused.size(-1), dtype=attention.dtype)
            a = (attention_heads_fused + 1.0 * eye) / 2
            a = a / a.sum(dim=-1)
            result = torch.matmul(a, result)
    return result


def test_rollout_matches_the_official_joint_attention() -> None:
    attentions = _attentions(4, 3, 2, 9)
    ours = attention_rollout(attentions)
    for b in range(3):
        stacked = torch.stack([a[b].mean(0) for a in attentions]).numpy()
        official = official_compute_joint_attention(stacked)
        np.testing.assert_allclose(ours[b].numpy(), official[-1], rtol=0, atol=1e-14)
        # every prefix: the rollout of the first i blocks is the official i-th joint attention
        for i in range(1, 4):
            np.testing.assert_allclose(attention_rollout(attentions[:i])[b].numpy(), official[i - 1], atol=1e-14)


def test_rollout_matches_vit_explain() -> None:
    attentions = _attentions(3, 1, 4, 7, seed=5)
    torch.testing.assert_close(attention_rollout(attentions)[0], vit_explain_rollout(attentions)[0], atol=1e-14,
                               rtol=0)


def test_rollout_is_the_product_of_half_attention_plus_half_identity() -> None:
    """Eq. 2: ``Ŝ_L = S̄_L ··· S̄_1``, ``S̄ = 0.5 S + 0.5 E``, later blocks on the left (the order matters)."""
    attentions = _attentions(3, 2, 3, 6, seed=1)
    bars = [0.5 * a.mean(1) + 0.5 * torch.eye(6, dtype=F64) for a in attentions]
    expected = bars[2] @ bars[1] @ bars[0]
    torch.testing.assert_close(attention_rollout(attentions), expected, atol=1e-15, rtol=0)
    assert not torch.allclose(bars[0] @ bars[1] @ bars[2], expected)  # the test can tell the order
    torch.testing.assert_close(attention_rollout(attentions[:1]), bars[0], atol=1e-15, rtol=0)


def test_rollout_is_row_stochastic_and_renormalises_rows() -> None:
    rollout = attention_rollout(_attentions(5, 2, 2, 11, seed=2))
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 11, dtype=F64), atol=1e-13, rtol=0)
    assert (rollout >= 0).all()
    # rows that do not sum to 1 (attention of a masked head): renormalised as the official code does
    scaled = [a * 3 for a in _attentions(2, 1, 1, 4, seed=3)]
    torch.testing.assert_close(attention_rollout(scaled).sum(-1), torch.ones(1, 4, dtype=F64), atol=1e-14, rtol=0)
    # heads may differ between blocks (the head mean)
    assert attention_rollout([_attentions(1, 2, 3, 5)[0], _attentions(1, 2, 1, 5)[0]]).shape == (2, 5, 5)


@pytest.mark.parametrize(("attentions", "error", "match"), [
    ([], TypeError, r"attentions=list: expected a non-empty list or tuple"),
    (torch.ones(1, 1, 2, 2), TypeError, r"attentions=Tensor: expected a non-empty list"),
    ([np.ones((1, 1, 2, 2))], TypeError, r"attentions\[0\] must be a torch.Tensor, got ndarray"),
    ([torch.ones(1, 2, 2)], ValueError, r"attentions\[0\] has shape \(1, 2, 2\); expected \(B, H >= 1, N, N\)"),
    ([torch.ones(1, 1, 2, 3)], ValueError, r"attentions\[0\] has shape \(1, 1, 2, 3\); expected \(B, H >= 1, N, N\)"),
    ([torch.ones(1, 1, 2, 2), torch.ones(1, 1, 3, 3)], ValueError,
     r"attentions\[1\] has shape \(1, 1, 3, 3\); expected batch 1 and 2 tokens"),
    ([torch.ones(1, 1, 2, 2), torch.ones(2, 1, 2, 2)], ValueError, r"attentions\[1\] has shape \(2, 1, 2, 2\)"),
    ([torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2, dtype=F64)], TypeError,
     r"attentions\[1\] is torch.float64 on cpu; expected attentions\[0\]'s torch.float32"),
    ([torch.ones(1, 1, 2, 2, dtype=torch.long)], TypeError, r"attentions\[0\].dtype=torch.int64"),
    ([torch.ones(1, 1, 2, 2), -torch.ones(1, 1, 2, 2)], ValueError, r"attentions\[1\] has negative entries"),
])
def test_rollout_errors(attentions: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        attention_rollout(attentions)


# ---- top-R selection --------------------------------------------------------------------------------------------

def _tied_rollout(b: int, n: int, seed: int = 0) -> torch.Tensor:
    """A rollout whose class-token row holds small integers, many of them equal (ties)."""
    rollout = torch.rand(b, n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    rollout[:, 0] = torch.randint(0, 4, (b, n), generator=torch.Generator().manual_seed(seed + 1)).to(F64)
    return rollout


def _explicit_top(row: list[float], r: int, offset: int = 0) -> list[int]:
    """The ``r`` highest entries of ``row``, ties to the lower index, by Python's sort."""
    return [j + offset for j in sorted(range(len(row)), key=lambda j: (-row[j], j))[:r]]


@pytest.mark.parametrize("keep_cls", [False, True])
@pytest.mark.parametrize("r", [1, 3, 10])
def test_top_r_is_an_explicit_sort_with_ties_to_the_lower_index(keep_cls: bool, r: int) -> None:
    n = 13
    rollout = _tied_rollout(4, n)
    indices = select_top_queries(rollout, r, keep_cls)
    assert indices.dtype == torch.long and indices.shape == (4, r + keep_cls)
    for b in range(4):
        row = rollout[b, 0].tolist()
        expected = [0, *_explicit_top(row[1:], r, offset=1)] if keep_cls else _explicit_top(row, r)
        assert indices[b].tolist() == expected
        # the same values torch.topk finds (whose order among ties is unspecified)
        scores = rollout[b, 0, 1:] if keep_cls else rollout[b, 0]
        top = torch.topk(scores, r).values
        torch.testing.assert_close(rollout[b, 0, indices[b, int(keep_cls):]], top, atol=0, rtol=0)
    assert torch.equal(select_top_queries(rollout, r, keep_cls), indices)  # deterministic


def test_all_equal_scores_select_the_first_tokens_in_order() -> None:
    rollout = torch.ones(2, 8, 8)
    assert select_top_queries(rollout, 5).tolist() == [[0, 1, 2, 3, 4]] * 2
    assert select_top_queries(rollout, 3, keep_cls=True).tolist() == [[0, 1, 2, 3]] * 2


@pytest.mark.parametrize(("top_r", "keep_cls", "error", "match"), [
    (0, False, ValueError, r"top_r=0: expected an int >= 1"),
    (-2, True, ValueError, r"top_r=-2: expected an int >= 1"),
    (7, False, ValueError, r"top_r=7: expected 1 <= top_r <= 6, at most the N = 6 tokens"),
    (6, True, ValueError, r"top_r=6: expected 1 <= top_r <= 5, at most the N - 1 = 5 patch tokens"),
    (2.0, False, ArgumentTypeError, r"top_r=2.0: expected an int >= 1"),
    (True, False, ArgumentTypeError, r"top_r=True: expected an int >= 1"),
    (2, "yes", ArgumentTypeError, r"keep_cls='yes': expected a bool"),
])
def test_top_r_errors(top_r: object, keep_cls: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        select_top_queries(torch.ones(1, 6, 6), top_r, keep_cls)


@pytest.mark.parametrize(("rollout", "error", "match"), [
    (torch.ones(6, 6), ValueError, r"rollout has shape \(6, 6\); expected \(B, N, N\)"),
    (torch.ones(1, 6, 5), ValueError, r"rollout has shape \(1, 6, 5\); expected \(B, N, N\)"),
    (np.ones((1, 6, 6)), TypeError, r"rollout must be a torch.Tensor, got ndarray"),
])
def test_selection_rollout_errors(rollout: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        select_top_queries(rollout, 2)


# ---- GLCA ------------------------------------------------------------------------------------------------------

GLCA_CASES = [(1, 1, 1, 8, 1, False), (2, 3, 17, 1, 4, True), (2, 2, 197, 60, 20, True), (3, 2, 40, 8, 40, False)]


def _glca_inputs(b: int, h: int, n: int, d: int, seed: int = 0) -> list[torch.Tensor]:
    q, k, v = (_randn(b, h, n, d, seed=seed + i).requires_grad_() for i in range(3))
    rollout = attention_rollout(_attentions(2, b, h, n, seed=seed + 3))
    return [q, k, v, rollout]


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
@pytest.mark.parametrize(("b", "h", "n", "d", "r", "keep_cls"), GLCA_CASES)
def test_glca_matches_its_reference_forward_and_backward(impl: str, b: int, h: int, n: int, d: int, r: int,
                                                         keep_cls: bool) -> None:
    q, k, v, rollout = _glca_inputs(b, h, n, d)
    out, indices = glca_attention(q, k, v, rollout, r, impl=impl, keep_cls=keep_cls)
    assert out.shape == (b, h, r + keep_cls, d) and torch.equal(indices, select_top_queries(rollout, r, keep_cls))
    expected = glca_reference(q, k, v, indices, scale=d ** -0.5)
    cotangent = _randn(*out.shape, seed=9)
    grads = torch.autograd.grad(out, (q, k, v), cotangent)
    expected_grads = torch.autograd.grad(expected, (q, k, v), cotangent)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    for grad, want in zip(grads, expected_grads):
        torch.testing.assert_close(grad, want, atol=1e-12, rtol=0)
    unselected = torch.ones(b, n, dtype=torch.bool).scatter(1, indices, False)
    assert (grads[0].transpose(1, 2)[unselected] == 0).all()  # only the selected queries get gradients


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_glca_gradcheck(impl: str) -> None:
    q, k, v, rollout = _glca_inputs(1, 2, 5, 3, seed=4)

    def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return glca_attention(q, k, v, rollout, 2, impl=impl, keep_cls=True, return_indices=False)

    assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize(("r", "keep_cls"), [(12, False), (11, True)])
def test_glca_with_every_query_is_self_attention_of_those_queries(r: int, keep_cls: bool) -> None:
    """R = N (all queries): the GLCA rows are the self-attention rows of the selected tokens, which are a
    permutation of all tokens."""
    q, k, v, rollout = _glca_inputs(2, 3, 12, 5, seed=7)
    out, indices = glca_attention(q, k, v, rollout, r, keep_cls=keep_cls)
    assert (indices.sort(-1).values == torch.arange(12)).all()
    sa = softmax_attention(q, k, v)
    torch.testing.assert_close(out, sa.gather(2, indices[:, None, :, None].expand(2, 3, 12, 5)), atol=1e-13, rtol=0)


def test_glca_rows_are_the_self_attention_rows_of_the_selected_tokens() -> None:
    q, k, v, rollout = _glca_inputs(2, 2, 30, 8, seed=8)
    out, indices = glca_attention(q, k, v, rollout, 4)
    sa = softmax_attention(q, k, v, impl="reference")
    for b in range(2):
        torch.testing.assert_close(out[b], sa[b][:, indices[b]], atol=1e-13, rtol=0)
    assert torch.equal(glca_attention(q, k, v, rollout, 4, return_indices=False), out)


def _glca_error(change: dict, match: str, error: type = ValueError, **options: object) -> object:
    return pytest.param(change, options, error, match, id=match[:40])


@pytest.mark.parametrize(("change", "options", "error", "match"), [
    _glca_error({"rollout": torch.ones(2, 6, 6, dtype=F64)}, r"rollout has shape \(2, 6, 6\); expected \(2, 7, 7\)"),
    _glca_error({"rollout": torch.ones(2, 7, 8, dtype=F64)}, r"rollout has shape \(2, 7, 8\); expected \(2, 7, 7\)"),
    _glca_error({"rollout": torch.ones(1, 7, 7, dtype=F64)}, r"rollout has shape \(1, 7, 7\); expected \(2, 7, 7\)"),
    _glca_error({"rollout": torch.ones(2, 7, dtype=F64)}, r"rollout has shape \(2, 7\); expected \(2, 7, 7\)"),
    _glca_error({"rollout": torch.ones(2, 7, 7)}, r"rollout.dtype=torch.float32; expected the query's dtype",
                TypeError),
    _glca_error({"rollout": [[1.0]]}, r"rollout must be a torch.Tensor, got list", TypeError),
    _glca_error({"key": _randn(2, 1, 8, 4), "value": _randn(2, 1, 8, 4)},
                r"key has shape \(2, 1, 8, 4\); expected the query's 7 tokens"),
    _glca_error({}, r"top_r=0: expected an int >= 1", top_r=0),
    _glca_error({}, r"top_r=8: expected 1 <= top_r <= 7", top_r=8),
    _glca_error({}, r"top_r=7: expected 1 <= top_r <= 6", top_r=7, keep_cls=True),
    _glca_error({}, r"return_indices='no': expected a bool", ArgumentTypeError, return_indices="no"),
    _glca_error({}, r"scale=0.0: expected a finite real number > 0", scale=0.0),
])
def test_glca_errors(change: dict, options: dict, error: type, match: str) -> None:
    inputs = {"query": _randn(2, 1, 7, 4), "key": _randn(2, 1, 7, 4), "value": _randn(2, 1, 7, 4),
              "rollout": torch.ones(2, 7, 7, dtype=F64), **change}
    with pytest.raises(error, match=match):
        glca_attention(**inputs, **{"top_r": 2, **options})


# ---- PWCA ------------------------------------------------------------------------------------------------------

def test_pwca_of_a_duplicated_pair_is_exactly_self_attention() -> None:
    """[K1; K1] and [V1; V1]: every weight halves and every value appears twice, so PWCA(I1, I1) = SA(I1). The
    reference's two score blocks are then identical: bitwise the same arithmetic as one block."""
    q, k, v = (_randn(2, 3, 20, 8, seed=i) for i in range(3))
    s = q @ k.transpose(-1, -2) * 8 ** -0.5
    e = torch.exp(s - s.amax(-1, keepdim=True))
    assert torch.equal(pwca_reference(q, k, v, k, v, scale=8 ** -0.5), (e @ v) / e.sum(-1, keepdim=True))
    for impl in ("sdpa", "reference"):
        torch.testing.assert_close(pwca_attention(q, k, v, k.clone(), v.clone(), impl=impl),
                                   softmax_attention(q, k, v), atol=1e-14, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_pwca_gradients_of_a_duplicated_pair_are_those_of_self_attention(impl: str) -> None:
    q, k, v = (_randn(1, 2, 9, 4, seed=i).requires_grad_() for i in range(3))
    cotangent = _randn(1, 2, 9, 4, seed=5)
    grads = torch.autograd.grad(pwca_attention(q, k, v, k, v, impl=impl), (q, k, v), cotangent)
    expected = torch.autograd.grad(softmax_attention(q, k, v, impl="reference"), (q, k, v), cotangent)
    for grad, want in zip(grads, expected):
        torch.testing.assert_close(grad, want, atol=1e-13, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_pwca_is_softmax_attention_over_the_concatenated_keys(impl: str) -> None:
    q, k, v = (_randn(2, 2, 15, 6, seed=i) for i in range(3))
    k2, v2 = _randn(2, 2, 23, 6, seed=3), _randn(2, 2, 23, 6, seed=4)
    out = pwca_attention(q, k, v, k2, v2, scale=0.3, impl=impl)
    expected, weights = softmax_attention(q, torch.cat([k, k2], 2), torch.cat([v, v2], 2), scale=0.3,
                                          impl="reference", return_weights=True)
    torch.testing.assert_close(out, expected, atol=1e-13, rtol=0)
    # the distractor takes a share of the mass: the target's own weights no longer sum to 1
    own = weights[..., :15].sum(-1)
    assert (own < 1).all() and (own > 0).all()


def test_pwca_with_a_hidden_distractor_is_self_attention() -> None:
    """Distractor keys whose scores are all far below every own score (the "-inf logits" limit): PWCA equals SA
    up to exp(-gap)."""
    q = _randn(1, 2, 10, 4).abs() + 0.1
    k, v = _randn(1, 2, 10, 4, seed=1), _randn(1, 2, 10, 4, seed=2)
    k2 = -1e3 * torch.ones(1, 2, 6, 4, dtype=F64)  # q · k2 <= -400 for every query
    for impl in ("sdpa", "reference"):
        torch.testing.assert_close(pwca_attention(q, k, v, k2, _randn(1, 2, 6, 4, seed=3), impl=impl),
                                   softmax_attention(q, k, v), atol=1e-14, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_pwca_gradcheck(impl: str) -> None:
    inputs = tuple(_randn(1, 1, n, 3, seed=i).requires_grad_() for i, n in enumerate((4, 4, 4, 3, 3)))
    assert torch.autograd.gradcheck(lambda *t: pwca_attention(*t, impl=impl), inputs)


# ---- layers -----------------------------------------------------------------------------------------------------

def _tokens(*shape: int, seed: int = 0) -> torch.Tensor:
    return _randn(*shape, seed=seed)


def test_shared_mixer_without_distractor_is_softmax_attention() -> None:
    torch.manual_seed(0)
    mixer = PairwiseCrossAttention(16, 4).double()
    softmax = SoftmaxAttention(16, 4, is_causal=False).double()
    softmax.load_state_dict(mixer.state_dict())
    x = _tokens(2, 9, 16)
    torch.testing.assert_close(mixer(x), softmax(x), atol=1e-13, rtol=0)
    out, weights = mixer(x, return_weights=True)
    assert weights.shape == (2, 4, 9, 9)
    torch.testing.assert_close(out, mixer(x), atol=1e-13, rtol=0)


def test_shared_mixer_with_itself_as_distractor_is_self_attention_and_reaches_the_distractor() -> None:
    torch.manual_seed(0)
    mixer = PairwiseCrossAttention(16, 2).double()
    x = _tokens(2, 9, 16)
    torch.testing.assert_close(mixer(x, x.clone()), mixer(x), atol=1e-13, rtol=0)
    distractor = _tokens(2, 5, 16, seed=1).requires_grad_()
    out = mixer(x, distractor)
    assert out.shape == x.shape and not torch.allclose(out, mixer(x))
    (grad,) = torch.autograd.grad(out.sum(), distractor)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize(("distractor", "error", "match"), [
    (torch.zeros(3, 5, 16, dtype=F64), ValueError,
     r"distractor has shape \(3, 5, 16\); expected \(B, N2, C\) = \(2, N2 >= 1, 16\)"),
    (torch.zeros(2, 5, 8, dtype=F64), ValueError, r"distractor has shape \(2, 5, 8\)"),
    (torch.zeros(2, 0, 16, dtype=F64), ValueError, r"distractor has shape \(2, 0, 16\)"),
    (torch.zeros(5, 16, dtype=F64), ValueError, r"distractor has shape \(5, 16\)"),
    (torch.zeros(2, 5, 16), TypeError, r"distractor is torch.float32 on cpu; expected the input's torch.float64"),
    (np.zeros((2, 5, 16)), TypeError, r"distractor must be a torch.Tensor, got ndarray"),
])
def test_shared_mixer_distractor_errors(distractor: object, error: type, match: str) -> None:
    mixer = PairwiseCrossAttention(16, 2).double()
    with pytest.raises(error, match=match):
        mixer(_tokens(2, 9, 16), distractor)


def test_shared_mixer_refuses_a_distractor_in_eval_mode_and_weights_with_one() -> None:
    mixer = PairwiseCrossAttention(16, 2).double()
    x = _tokens(2, 9, 16)
    with pytest.raises(ValueError, match="return_weights=True with a distractor"):
        mixer(x, x, return_weights=True)
    with pytest.raises(ValueError, match="distractor given in eval mode: pair-wise cross-attention is a "
                                         "training-time regulariser"):
        mixer.eval()(x, x)


def _encoder(**options: object) -> DCALEncoder:
    torch.manual_seed(0)
    return DCALEncoder(**{"dim": 16, "depth": 3, "num_heads": 2, "top_r": 3, "mlp_ratio": 2.0, **options}).double()


def test_encoder_refuses_missing_or_unexpected_distractors() -> None:
    encoder, x = _encoder(), _tokens(2, 10, 16)
    with pytest.raises(ValueError, match=r"distractor=None in training mode: DCALEncoder\(pwca=True\)"):
        encoder(x)
    with pytest.raises(ValueError, match="distractor given in eval mode"):
        encoder.eval()(x, x)
    with pytest.raises(ValueError, match=r"distractor given to DCALEncoder\(pwca=False\)"):
        _encoder(pwca=False)(x, x)
    with pytest.raises(ValueError, match=r"distractor has shape \(1, 10, 16\)"):
        _encoder()(x, x[:1])
    with pytest.raises(ValueError, match=r"top_r=3: expected 1 <= top_r <= 2"):
        _encoder()(x[:, :3], x[:, :3])


def test_encoder_branches_in_eval_and_without_pwca() -> None:
    x = _tokens(2, 10, 16)
    out = _encoder().eval()(x)
    assert out.pwca is None and out.sa.shape == (2, 10, 16) and out.rollout.shape == (2, 10, 10)
    assert out.glca.shape == (2, 4, 16) and out.glca_indices.shape == (2, 4) and (out.glca_indices[:, 0] == 0).all()
    trained_without = _encoder(pwca=False)(x)  # training mode, no PWCA branch: same SA and GLCA
    torch.testing.assert_close(trained_without.sa, out.sa, atol=1e-13, rtol=0)
    torch.testing.assert_close(trained_without.glca, out.glca, atol=1e-13, rtol=0)


def test_encoder_pwca_with_itself_as_distractor_is_the_sa_branch() -> None:
    """The duplicate-pair invariant through every shared block: each block's PWCA is its SA."""
    x = _tokens(2, 10, 16)
    out = _encoder()(x, x.clone())
    torch.testing.assert_close(out.pwca, out.sa, atol=1e-12, rtol=0)
    other = _encoder()(x, _tokens(2, 7, 16, seed=3))
    assert not torch.allclose(other.pwca, other.sa)
    torch.testing.assert_close(other.sa, out.sa, atol=0, rtol=0)  # the distractor never reaches SA


def test_encoder_rollout_glca_selection_and_shared_weights() -> None:
    encoder, x = _encoder(keep_cls=False, top_r=10).eval(), _tokens(2, 10, 16)
    out = encoder(x)
    h, weights, inputs = x, [], []
    for block in encoder.blocks:
        inputs.append(h)
        h, w = block(h, return_weights=True)
        weights.append(w)
    torch.testing.assert_close(out.sa, h, atol=0, rtol=0)
    torch.testing.assert_close(out.rollout, attention_rollout(weights), atol=0, rtol=0)
    assert torch.equal(out.glca_indices, select_top_queries(out.rollout, 10))
    # GLCA with the last SA block's weights and every query: the rows of the last SA block's output
    encoder.glca.load_state_dict(encoder.blocks[-1].state_dict())
    glca = encoder(x)
    for b in range(2):
        torch.testing.assert_close(glca.glca[b], out.sa[b, glca.glca_indices[b]], atol=1e-12, rtol=0)
    # PWCA adds no parameters: the model is depth SA blocks and one GLCA block
    count = sum(p.numel() for p in encoder.parameters())
    assert count == 3 * sum(p.numel() for p in encoder.blocks[0].parameters()) + sum(
        p.numel() for p in encoder.glca.parameters())


def test_encoder_trains_every_parameter_through_the_three_branches() -> None:
    encoder, x = _encoder(), _tokens(2, 10, 16)
    out = encoder(x, _tokens(2, 10, 16, seed=4))
    (out.sa[:, 0].sum() + out.glca[:, 0].sum() + out.pwca[:, 0].sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())


def test_glca_block_adds_the_selected_input_tokens() -> None:
    torch.manual_seed(0)
    block = GLCABlock(16, 2, top_r=2, mlp_ratio=0.5).double()
    x, rollout = _tokens(1, 6, 16), attention_rollout(_attentions(1, 1, 2, 6))
    out, indices = block(x, rollout)
    attn, _ = block.attn(block.norm1(x), rollout)
    y = x[:, indices[0]] + attn
    torch.testing.assert_close(out, y + block.mlp(block.norm2(y)), atol=1e-14, rtol=0)
    assert isinstance(block.attn, GlobalLocalCrossAttention) and isinstance(_encoder().blocks[0], DCALBlock)


@pytest.mark.parametrize(("layer", "options", "error", "match"), [
    (DCALEncoder, {"depth": 0}, ValueError, r"depth=0: expected an int >= 1"),
    (DCALEncoder, {"pwca": "yes"}, ArgumentTypeError, r"pwca='yes': expected a bool"),
    (DCALEncoder, {"top_r": 0}, ValueError, r"top_r=0: expected an int >= 1"),
    (DCALEncoder, {"keep_cls": 1}, ArgumentTypeError, r"keep_cls=1: expected a bool"),
    (DCALEncoder, {"mlp_ratio": -1.0}, ValueError, r"mlp_ratio=-1.0: expected a finite real number > 0"),
    (GlobalLocalCrossAttention, {"num_heads": 3}, ValueError, r"dim=16 must be divisible by num_heads=3"),
    (PairwiseCrossAttention, {"scale": -1.0}, ValueError, r"scale=-1.0: expected a finite real number > 0"),
])
def test_layer_constructor_errors(layer: type, options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        layer(**{"dim": 16, **options})
