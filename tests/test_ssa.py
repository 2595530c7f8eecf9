"""Stochastically subsampled attention, SSA (paper 48, arXiv 2306.01705): the sampler's structure and its exact
inclusion probabilities (a statistical test), the dropout-like unbiasedness that the importance weights give (a
statistical test: what is unbiased, and what is not), the dense limit, the layer's training and inference modes,
bad input, and the language-model mixer path.

Every fast path against the reference (forward and backward, float64 and float32, awkward lengths and segments),
gradcheck, causality and the op's bad input run in ``tests/test_contract.py`` over the cases of
``attnzoo/ops/ssa/testing.py``.

The statistical tests draw ``T`` samples from a fixed seed; each compares a Monte-Carlo mean with its expectation
in units of its standard error (``z = (mean - expected) / (sd / sqrt(T))``, the exact Bernoulli ``sd`` for
inclusion frequencies, the sample ``sd`` otherwise) and fails if any ``|z|`` exceeds the two-sided Bonferroni
bound for all the entries tested at a family-wise level of 1e-3: a bound derived from the standard error, not
tuned to the data.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

import attnzoo
from attnzoo.layers import SoftmaxAttention, StochasticSubsampledAttention
from attnzoo.models import CausalLanguageModel
from attnzoo.ops import softmax_attention, ssa_sample, stochastic_subsampled_attention
from attnzoo.ops.ssa.reference import subsample_mask
from attnzoo.ops.ssa.sampling import expected_keys, ssa_plan

IMPLS = ("gathered", "reference")
FAMILY_LEVEL = 1e-3


def z_bound(tests: int) -> float:
    """The two-sided Bonferroni bound on ``|z|`` for ``tests`` comparisons at :data:`FAMILY_LEVEL`."""
    return NormalDist().inv_cdf(1 - FAMILY_LEVEL / (2 * tests))


def _qkv(length: int, batch: int = 2, heads: int = 2, dim: int = 8, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, dim, dtype=torch.float64, generator=generator) for _ in range(3)]


def _membership(sample, length: int, causal: bool) -> torch.Tensor:
    """``(N, N)`` bool: key ``j`` is attended by query ``i`` (in its row, and ``j <= i`` when causal)."""
    mask, _ = subsample_mask(sample.key_index, sample.segment_size, length)
    return mask & torch.ones(length, length, dtype=torch.bool).tril() if causal else mask


def _inclusion(sample, length: int) -> torch.Tensor:
    """``(N, N)`` inclusion probability of each (query, key) pair in the sample's rows (1 elsewhere)."""
    _, bias = subsample_mask(sample.key_index, sample.segment_size, length, -sample.inclusion.log())
    return torch.exp(-bias)


# --- the dense limit ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("length", "segment"), [(37, 8), (40, 40), (24, 1)])
def test_keeping_every_key_is_dense_attention(impl: str, causal: bool, length: int, segment: int) -> None:
    q, k, v = _qkv(length)
    sample = ssa_sample(length, segment, 1.0, causal, local_segments=0, generator=torch.Generator().manual_seed(1))
    for weighted in (False, True):
        out = stochastic_subsampled_attention(q, k, v, sample, causal, weighted, impl=impl)
        torch.testing.assert_close(out, softmax_attention(q, k, v, is_causal=causal, impl="reference"))


# --- the sampler ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("length", "segment", "ratio", "local"), [(100, 8, 4.0, 1), (64, 16, 2.0, 0), (45, 4, 8.0, 2)])
def test_each_sample_keeps_its_local_window_once_and_no_later_segment(causal: bool, length: int, segment: int,
                                                                      ratio: float, local: int) -> None:
    generator = torch.Generator().manual_seed(0)
    expected = expected_keys(length, segment, ratio, causal, local)
    _, _, keep, _ = ssa_plan(length, segment, ratio, causal, local, 1.0)
    fractional = ((keep > 0) & (keep < 1)).sum(1)  # slots used with a probability below 1
    for _ in range(20):
        sample = ssa_sample(length, segment, ratio, causal, local, generator=generator)
        for b, row in enumerate(sample.key_index):
            keys = row[row >= 0]
            assert len(set(keys.tolist())) == len(keys)  # no key twice
            blocks = keys // segment
            window = set(range(max(0, b - local) * segment, min(length, (b + 1 + (0 if causal else local)) * segment)))
            assert window <= set(keys.tolist())  # the local window whole
            assert not causal or (blocks <= b).all()  # nothing from a later segment
            assert abs(len(keys) - expected[b]) <= fractional[b]  # the size, up to the rounding of fractional slots
    assert (expected <= torch.tensor([min(length, (b + 1) * segment) if causal else length
                                      for b in range(len(expected))])).all()


def _stated_inclusion(length: int, segment: int, ratio: float, causal: bool, local: int,
                      locality: float) -> torch.Tensor:
    """``(segments, N)``: the plan's inclusion probability ``pi_bj`` of every key for every query segment (0 for
    keys it never samples)."""
    block, _, keep, inclusion = ssa_plan(length, segment, ratio, causal, local, locality)
    per_block = torch.zeros(block.shape[0], block.max() + 1, dtype=torch.float64)
    # every slot of (b, c) holds x_bc / |c|; padding slots (keep 0) give 0, which the max leaves out
    per_block.scatter_reduce_(1, block, torch.where(keep > 0, inclusion, 0.0), "amax")
    return per_block[:, torch.arange(length) // segment]


@pytest.mark.parametrize("causal", [True, False])
def test_inclusion_frequencies_match_the_stated_probabilities(causal: bool) -> None:
    """Over ``T`` draws, how often query segment ``b`` sampled key ``j`` against the stated ``pi_bj`` (each
    frequency a mean of ``T`` independent Bernoulli(pi) draws, sd ``sqrt(pi (1 - pi))``): the sampler's
    probabilities are exact, every key outside the local window has ``0 < pi < 1``, and causal rows never sample a
    later segment."""
    length, segment, trials = 48, 4, 4000
    pi = _stated_inclusion(length, segment, 3.0, causal, 1, 1.0)
    generator = torch.Generator().manual_seed(2024)
    count = torch.zeros_like(pi)
    for _ in range(trials):
        sample = ssa_sample(length, segment, 3.0, causal, 1, 1.0, generator=generator)
        count += _membership(sample, length, False)[::segment]
    earlier = torch.arange(length)[None, :] // segment <= torch.arange(pi.shape[0])[:, None]
    assert ((pi > 0) == (earlier if causal else torch.ones_like(earlier))).all()
    assert (count[pi == 0] == 0).all() and (count[pi == 1] == trials).all()
    random = (pi > 0) & (pi < 1)
    assert random.sum() > 100  # enough far keys to test
    z = (count[random] / trials - pi[random]) / (pi[random] * (1 - pi[random]) / trials).sqrt()
    assert z.abs().max() < z_bound(int(random.sum())), z.abs().max()


# --- unbiasedness: what the importance weights make unbiased, and what stays biased --------------------------------

def _dense_terms(q: torch.Tensor, k: torch.Tensor, causal: bool) -> torch.Tensor:
    """``e^(s_ij - m_i)`` for the ``(1, 1, N, D)`` inputs, ``m_i`` the dense row max (a constant per query), 0 for
    a causal row's later keys: ``(N, N)``."""
    length = q.shape[2]
    scores = (q @ k.transpose(-1, -2))[0, 0] / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(), float("-inf"))
    return torch.exp(scores - scores.amax(-1, keepdim=True))


@pytest.mark.parametrize("causal", [True, False])
def test_importance_weighted_ssa_numerator_and_denominator_are_unbiased(causal: bool) -> None:
    """Dropout-like unbiasedness, stated precisely. With the Horvitz-Thompson weights 1/pi (the op's
    ``importance_weighting=True``), the subsampled softmax's denominator ``D̂_i = sum_{j in S_i} e^(s_ij - m_i) /
    pi_ij`` and numerator ``N̂_i = sum_{j in S_i} e^(s_ij - m_i) v_j / pi_ij`` are unbiased for the dense ``D_i =
    sum_j e^(s_ij - m_i)`` and ``N_i = sum_j e^(s_ij - m_i) v_j`` over the masks, as inverted dropout's ``m / p``
    leaves a layer's pre-activation unbiased: ``E[1{j in S_i} / pi_ij] = 1``. The op's output is exactly their
    ratio ``N̂_i / D̂_i`` (checked on the first 20 draws), which is a self-normalised estimate of the dense output,
    not an unbiased one (next test)."""
    length, trials = 40, 3000
    q, k, v = _qkv(length, batch=1, heads=1, dim=4, seed=5)
    terms = _dense_terms(q, k, causal)
    generator = torch.Generator().manual_seed(7)
    weights = []  # per draw, (N, N): e^(s - m) / pi on the sampled pairs, 0 elsewhere
    for trial in range(trials):
        sample = ssa_sample(length, 4, 4.0, causal, local_segments=0, locality=1.0, generator=generator)
        weights.append(terms * _membership(sample, length, False) / _inclusion(sample, length))
        for impl in IMPLS if trial < 20 else ():  # the op is the ratio
            out = stochastic_subsampled_attention(q, k, v, sample, causal, importance_weighting=True, impl=impl)
            torch.testing.assert_close(out[0, 0], (weights[-1] @ v[0, 0]) / weights[-1].sum(-1, keepdim=True))
    weights = torch.stack(weights)  # (T, N, N)
    estimates = torch.cat([weights.sum(-1), (weights @ v[0, 0]).flatten(1)], dim=1)  # (T, N + N·D): D̂, N̂
    expected = torch.cat([terms.sum(-1), (terms @ v[0, 0]).flatten()])
    sd = estimates.std(0)
    random = sd > 1e-12  # entries with a random part (a causal row of the first segment is all local)
    torch.testing.assert_close(estimates[0, ~random], expected[~random])
    z = (estimates.mean(0)[random] - expected[random]) / (sd[random] / math.sqrt(trials))
    assert random.sum() > 100
    assert z.abs().max() < z_bound(int(random.sum())), z.abs().max()


def test_plain_locally_biased_ssa_output_is_biased_towards_the_local_keys() -> None:
    """What is not unbiased: SSA's output itself. Without the weights the subsampled softmax over a locally biased
    sample over-weights the nearby keys, so its mean over masks is not the dense output: with the same bound, some
    entries of ``E[O] - O_dense`` are far outside the standard error (the bias is systematic, not noise)."""
    length, trials = 40, 1000
    q, k, v = _qkv(length, batch=1, heads=1, dim=4, seed=5)
    generator = torch.Generator().manual_seed(8)
    outs = torch.stack([stochastic_subsampled_attention(
        q, k, v, ssa_sample(length, 4, 4.0, False, local_segments=0, locality=2.0, generator=generator))
        for _ in range(trials)]).flatten(1)
    z = (outs.mean(0) - softmax_attention(q, k, v).flatten()) / (outs.std(0) / math.sqrt(trials))
    assert z.abs().max() > 3 * z_bound(outs.shape[1])


# --- the layer ------------------------------------------------------------------------------------------------

def _twin_dense(layer: StochasticSubsampledAttention) -> SoftmaxAttention:
    dense = SoftmaxAttention(layer.dim, layer.num_heads, is_causal=layer.is_causal).double()
    dense.load_state_dict(layer.state_dict())
    return dense


@pytest.mark.parametrize("causal", [True, False])
def test_layer_is_dense_attention_in_eval_mode_and_subsampled_in_training(causal: bool) -> None:
    torch.manual_seed(0)
    layer = StochasticSubsampledAttention(16, 2, segment_size=8, subsample_ratio=4.0, is_causal=causal).double()
    x = torch.randn(2, 96, 16, dtype=torch.float64)
    dense = _twin_dense(layer)(x)
    torch.testing.assert_close(layer.eval()(x), dense, rtol=0, atol=0)  # the same computation: exact
    layer.train()
    first, second = layer(x), layer(x)
    assert (first - second).abs().max() > 1e-3  # a new subsample every call
    assert (first - dense).abs().max() > 1e-3
    torch.manual_seed(3)
    sample = layer.sample(96)
    torch.manual_seed(3)
    torch.testing.assert_close(layer(x), layer(x, sample=sample))  # the training draw is layer.sample's
    layer.eval()  # a given sample in eval mode: one member of the paper's self-ensemble
    q, k, v = (t.transpose(1, 2) for t in layer.qkv(x).view(2, 96, 3, 2, 8).unbind(2))
    expected = stochastic_subsampled_attention(q, k, v, sample, causal, impl="reference")
    torch.testing.assert_close(layer(x, sample=sample), layer.proj(expected.transpose(1, 2).reshape(2, 96, 16)))


def test_layer_keeps_every_key_with_ratio_one_and_refuses_bad_samples() -> None:
    layer = StochasticSubsampledAttention(16, 2, segment_size=8, subsample_ratio=1.0, local_segments=0).double()
    x = torch.randn(1, 40, 16, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _twin_dense(layer)(x))
    with pytest.raises(TypeError, match="sample must be None or an SSASample"):
        layer(x, sample=torch.zeros(5, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"sample.key_index has shape \(2, \d+\); expected"):
        layer(x, sample=ssa_sample(16, 8))
    assert layer.sample(5).segment_size == 5  # a sequence shorter than a segment is one segment


def test_ssa_builds_a_causal_language_model_for_every_mqar_length() -> None:
    """The MQAR / Austen path: ``attnzoo.create`` defaults; in training (the same draw twice) and at inference the
    logits at ``t`` do not change with later tokens."""
    assert attnzoo.create("stochastic_subsampled_attention").is_causal
    for length in (64, 128, 256):
        model = CausalLanguageModel(50, 16, 2, "stochastic_subsampled_attention", {"num_heads": 2}, seq_len=length,
                                    max_position_embeddings=length).double()
        tokens = torch.randint(50, (2, length))
        changed = tokens.clone()
        changed[:, length // 2:] = torch.randint(50, (2, length - length // 2))
        for mode in (model.train, model.eval):
            mode()
            torch.manual_seed(length)
            before = model(tokens)
            torch.manual_seed(length)
            torch.testing.assert_close(before[:, :length // 2], model(changed)[:, :length // 2])
