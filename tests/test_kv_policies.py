"""attnzoo.kv: every policy's per-layer step (prefill compression, decode eviction) equals the readable reference
on awkward shapes and chunkings, grouped K/V included; a budget covering the sequence is full attention for every
policy (ZipVL through tau = 1); the cache never exceeds its budget; ZipVL's p is n at tau = 1 and monotone in tau,
its normalised scores are equal when every visible (query, key) pair carries the same weight, and its
mixed-precision rows stay within half a grid step; bad arguments and models that cannot be hooked are refused."""

from __future__ import annotations

import math

import pytest
import torch

from attnzoo.kv import (H2O, KVPolicy, LayerState, SlidingWindow, StreamingLLM, ZipVL, adaptive_count, apply_policy,
                        reference_policy_attention)
from attnzoo.kv.attnzoo_model import causal_probabilities
from attnzoo.kv.quantization import packed_bytes, quantize_rows, row_step
from attnzoo.models import CausalLanguageModel
from attnzoo.registry import NotSupportedError

POLICIES = {
    "window": lambda: SlidingWindow(budget=9),
    "window-ratio": lambda: SlidingWindow(keep_ratio=0.4),
    "streaming": lambda: StreamingLLM(budget=9, num_sinks=3),
    "streaming-ratio": lambda: StreamingLLM(keep_ratio=0.5, num_sinks=4),
    "h2o": lambda: H2O(budget=9),
    "h2o-normalised-no-recent": lambda: H2O(keep_ratio=0.5, recent_fraction=0.0, normalize=True),
    "h2o-all-recent": lambda: H2O(budget=6, recent_fraction=1.0),
    "zipvl-evict": lambda: ZipVL(tau=0.8),
    "zipvl-evict-every-4": lambda: ZipVL(tau=0.7, interval=4),
    "zipvl-mixed": lambda: ZipVL(tau=0.8, high_bits=8, low_bits=3, interval=5),
    "zipvl-mixed-fp-important": lambda: ZipVL(tau=0.9, low_bits=2),
}


def run_state(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, policy: KVPolicy,
              calls: list[int]) -> tuple[torch.Tensor, LayerState, list[int]]:
    """The fast path as a layer runs it: each call attends to the held keys plus its own under the bottom-right
    causal mask, then :meth:`LayerState.step`; returns the outputs, the state and the tokens held after each call."""
    state, held_k, held_v, outs, sizes, start = LayerState(policy), k[:, :, :0], v[:, :, :0], [], [], 0
    for length in calls:
        keys = torch.cat([held_k, k[:, :, start:start + length]], dim=2)
        values = torch.cat([held_v, v[:, :, start:start + length]], dim=2)
        probs = causal_probabilities(q[:, :, start:start + length], keys, None)
        outs.append(probs @ values.repeat_interleave(q.shape[1] // k.shape[1], dim=1))
        held_k, held_v = state.step(keys, values, probs)
        sizes.append(held_k.shape[2])
        start += length
    return torch.cat(outs, dim=2), state, sizes


def qkv(batch: int, heads: int, kv_heads: int, n: int, dim: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, heads, n, dim, generator=g, dtype=torch.float64),
            torch.randn(batch, kv_heads, n, dim, generator=g, dtype=torch.float64),
            torch.randn(batch, kv_heads, n, dim + 3, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize(("heads", "kv_heads", "calls"),
                         [(4, 2, [13] + [1] * 8), (2, 2, [1] * 7), (3, 1, [20, 5, 1, 7])],
                         ids=["gqa-prefill-decode", "token-by-token", "mqa-chunks"])
def test_step_equals_the_reference(name: str, heads: int, kv_heads: int, calls: list[int]) -> None:
    q, k, v = qkv(2, heads, kv_heads, sum(calls), 6, seed=len(calls))
    policy = POLICIES[name]()
    if isinstance(policy, StreamingLLM) and calls[0] * (policy.keep_ratio or 1) < policy.num_sinks:
        pytest.skip("a keep_ratio of a 1-token prompt is below num_sinks (refused, tested below)")
    out, state, _ = run_state(q, k, v, policy, calls)
    expected, held = reference_policy_attention(q, k, v, policy, calls)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    assert state.positions.tolist() == held


@pytest.mark.parametrize("name", POLICIES)
def test_budget_covering_the_sequence_is_full_attention(name: str) -> None:
    policy = POLICIES[name]()
    covering = {SlidingWindow: lambda p: SlidingWindow(budget=40), StreamingLLM: lambda p: StreamingLLM(budget=40),
                H2O: lambda p: H2O(budget=40, recent_fraction=p.recent_fraction, normalize=p.normalize),
                ZipVL: lambda p: ZipVL(tau=1.0, interval=p.interval)}[type(policy)](policy)
    q, k, v = qkv(2, 4, 2, 30, 5, seed=3)
    out, state, sizes = run_state(q, k, v, covering, [20] + [1] * 10)
    dense = causal_probabilities(q, k, None) @ v.repeat_interleave(2, dim=1)
    torch.testing.assert_close(out, dense, atol=1e-12, rtol=0)
    assert sizes[-1] == 30


@pytest.fixture(scope="module")
def model() -> CausalLanguageModel:
    torch.manual_seed(0)
    return CausalLanguageModel(61, 24, 2, mixer="softmax", mixer_kwargs={"num_heads": 3},
                               max_position_embeddings=48).double().eval()


def decode(model: CausalLanguageModel, ids: torch.Tensor, prompt: int) -> tuple[torch.Tensor, list[list[int]], list]:
    """Prefill ``prompt`` tokens then one token per step; the logits, the held sizes per layer after each call and
    the caches."""
    cache = model.new_cache(ids.shape[0])
    logits, sizes = [model(ids[:, :prompt], cache=cache)], [[c.keys.shape[2] for c in cache.layers]]
    for t in range(prompt, ids.shape[1]):
        logits.append(model(ids[:, t:t + 1], cache=cache))
        sizes.append([c.keys.shape[2] for c in cache.layers])
    return torch.cat(logits, dim=1), sizes, cache.layers


@pytest.mark.parametrize("name", POLICIES)
def test_model_never_exceeds_the_budget_and_prefill_is_exact(model: CausalLanguageModel, name: str) -> None:
    ids = torch.randint(0, 61, (2, 40), generator=torch.Generator().manual_seed(4))
    policy = POLICIES[name]()
    with torch.no_grad(), apply_policy(model, policy):
        logits, sizes, caches = decode(model, ids, 24)
    full = model(ids)
    torch.testing.assert_close(logits[:, :24], full[:, :24], atol=1e-12, rtol=0)  # compression follows the call
    if isinstance(policy, ZipVL):  # no fixed budget: p of the prompt, plus what each later selection kept
        kept = [c.state.selected for c in caches]
        if policy.evicts:
            assert all(s <= ks[0] + 16 for s, ks in zip(sizes[-1], kept)) and all(ks[0] < 24 for ks in kept)
        else:
            assert sizes[-1] == [40, 40]
    else:
        budgets = [c.capacity for c in caches]
        assert all(s <= b for step in sizes for s, b in zip(step, budgets))
    assert (logits[:, 24:] - full[:, 24:]).abs().max() > 1e-6  # eviction (or quantisation) changes later logits


def test_model_with_a_covering_budget_generates_as_full_attention(model: CausalLanguageModel) -> None:
    ids = torch.randint(0, 61, (2, 10), generator=torch.Generator().manual_seed(5))
    expected = model.generate(ids, 12)
    for policy in (H2O(budget=22), StreamingLLM(budget=22), SlidingWindow(budget=22), ZipVL(tau=1.0)):
        with apply_policy(model, policy):
            assert torch.equal(model.generate(ids, 12), expected)
        with apply_policy(model, SlidingWindow(budget=3)):
            assert not torch.equal(model.generate(ids, 12), expected)


def test_adaptive_count_is_n_at_tau_one_and_monotone() -> None:
    mass = torch.rand(3, 50, generator=torch.Generator().manual_seed(6), dtype=torch.float64) ** 4
    assert adaptive_count(mass, 1.0) == 50
    counts = [adaptive_count(mass, tau) for tau in torch.linspace(0.05, 1.0, 40).tolist()]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    one_hot = torch.zeros(1, 10, dtype=torch.float64).index_fill(1, torch.tensor([7]), 1.0)
    assert adaptive_count(one_hot, 0.99) == 1 and adaptive_count(one_hot, 1.0) == 1  # zero-mass tokens can go
    q, k, v = qkv(1, 2, 2, 16, 4, seed=7)
    assert run_state(q, k, v, ZipVL(tau=1.0), [16])[1].selected == [16]


def test_normalised_scores_are_equal_under_constant_causal_attention() -> None:
    """Every visible (query, key) pair with the same weight: raw accumulated attention falls with the position
    (later keys are seen by fewer queries), ZipVL's normalised score is the same for every key. (Row-normalised
    uniform attention, 1 / (i + 1), is not such a case: its normalised scores still favour early keys.)"""
    n, state = 12, LayerState(H2O(budget=12, normalize=True))  # holds every token
    causal = torch.ones(n, n, dtype=torch.float64).tril()
    keys = torch.zeros(1, 1, n, 2, dtype=torch.float64)
    state.step(keys, keys, 0.3 * causal.expand(1, 2, n, n))
    raw = state.mass[0, 0]
    assert torch.all(raw[1:] < raw[:-1])
    normalised = ZipVL(tau=0.5).scores(state.positions, state.mass, state.seen)[0, 0]
    torch.testing.assert_close(normalised, torch.full((n,), 0.3, dtype=torch.float64), atol=1e-15, rtol=0)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_mixed_precision_rows_stay_within_half_a_step(bits: int) -> None:
    x = torch.randn(2, 3, 17, 60, generator=torch.Generator().manual_seed(bits), dtype=torch.float64) * 3 + 1
    widths = torch.randint(0, 2, (2, 3, 17), generator=torch.Generator().manual_seed(0)) * bits
    out = quantize_rows(x, widths)
    quantised = widths > 0
    assert torch.equal(out[~quantised], x[~quantised])
    error = (out - x).abs().amax(dim=-1)[quantised]
    bound = row_step(x, bits)[quantised] / 2
    assert torch.all(error <= bound * (1 + 1e-9))
    assert torch.all(error > 0)
    levels = max(len(row.unique()) for row in out[quantised])
    assert levels <= 2 ** bits
    assert packed_bytes(widths, 60, 8) == int(quantised.sum()) * (math.ceil(bits * 60 / 8) + 16) \
        + int((~quantised).sum()) * 60 * 8


def test_mixed_precision_cache_accounts_its_bytes(model: CausalLanguageModel) -> None:
    ids = torch.randint(0, 61, (1, 30), generator=torch.Generator().manual_seed(8))
    with torch.no_grad(), apply_policy(model, ZipVL(tau=0.8, high_bits=8, low_bits=2)):
        _, _, caches = decode(model, ids, 30)
    for cache in caches:
        bits = cache.state.bits
        important = int((bits == 8).sum())
        assert important == cache.state.selected[0] * cache.num_heads
        per_row = {8: 8 + 16, 2: 2 + 16}  # 8 channels: bits bytes, plus scale and zero point in float64
        assert cache.packed_nbytes == 2 * sum(per_row[int(b)] for b in bits.flatten())
        assert cache.packed_nbytes < cache.nbytes


@pytest.mark.parametrize(("build", "message"), [
    (lambda: StreamingLLM(budget=3, num_sinks=4), "budget=3 is below num_sinks=4"),
    (lambda: SlidingWindow(keep_ratio=0.0), r"keep_ratio=0.0: expected a real number in \(0, 1\]"),
    (lambda: SlidingWindow(keep_ratio=1.5), r"keep_ratio=1.5"),
    (lambda: H2O(keep_ratio=float("nan")), "keep_ratio=nan"),
    (lambda: H2O(budget=4, keep_ratio=0.5), "exactly one of budget"),
    (lambda: H2O(), "exactly one of budget"),
    (lambda: H2O(budget=0), "budget=0"),
    (lambda: H2O(budget=4, recent_fraction=1.5), "recent_fraction=1.5"),
    (lambda: ZipVL(tau=0.0), r"tau=0.0: expected a real number in \(0, 1\]"),
    (lambda: ZipVL(tau=1.01), "tau=1.01"),
    (lambda: ZipVL(tau=0.9, budget=4), "pass tau only"),
    (lambda: ZipVL(tau=0.9, high_bits=8), "give low_bits too"),
    (lambda: ZipVL(tau=0.9, high_bits=3, low_bits=4), "low_bits=4 > high_bits=3"),
    (lambda: ZipVL(tau=0.9, low_bits=1), "low_bits=1"),
])
def test_bad_policy_arguments_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_a_ratio_below_the_sinks_is_refused_at_the_prompt(model: CausalLanguageModel) -> None:
    with apply_policy(model, StreamingLLM(keep_ratio=0.25, num_sinks=4)), \
            pytest.raises(ValueError, match="keeps 2 tokens, below num_sinks=4"):
        model(torch.zeros(1, 8, dtype=torch.long), cache=model.new_cache(1))


def test_models_it_cannot_hook_are_refused_and_hooks_never_stay(model: CausalLanguageModel) -> None:
    linear = CausalLanguageModel(11, 16, 1, mixer="linear_attention")
    with pytest.raises(NotSupportedError, match="mixer LinearAttention attends otherwise"), \
            apply_policy(linear, H2O(budget=4)):
        pass
    with pytest.raises(NotSupportedError, match="no blocks"), apply_policy(torch.nn.Linear(2, 2), H2O(budget=4)):
        pass
    with pytest.raises(TypeError, match="expected a KVPolicy"), apply_policy(model, "h2o"):
        pass
    with pytest.raises(RuntimeError, match="boom"), apply_policy(model, H2O(budget=4)):
        assert "attend" in vars(model.blocks[0].mixer)
        raise RuntimeError("boom")
    assert all(not {"attend", "new_cache", "_kv_caches"} & set(vars(b.mixer)) for b in model.blocks)
    ids = torch.randint(0, 61, (1, 12), generator=torch.Generator().manual_seed(9))
    assert torch.equal(model.generate(ids, 5), model.generate(ids, 5, use_cache=False))
