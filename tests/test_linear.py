"""Linear family (paper 54 lightning attention; feature-map linear attention): the three forms agree, the state
carries across split sequences, the limits (no decay = cumulative-sum linear attention, many random features =
softmax attention), the slopes, the layers, bad input. The registry-wide contract (tests/test_contract.py) adds
fast path vs reference forward and backward, gradcheck, causality and the property tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.bench import Settings, run_cases
from attnzoo.bench.suites.linear import DecodeSpec, LightningSpec, linear_cases
from attnzoo.layers import LightningAttention, LinearAttention
from attnzoo.ops import alibi_slopes, lightning_attention, linear_attention, tnl_slopes
from attnzoo.ops.lightning.chunked import decayed_block_prefix
from attnzoo.ops.linear import random_projection
from attnzoo.registry import CallFacts, select_implementation

FORMS = ("chunked", "recurrent", "reference")


def _qkv(b: int, h: int, n: int, d: int, e: int | None = None, dtype: torch.dtype = torch.float64,
         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(b, h, n, d), (b, h, n, d), (b, h, n, e or d)]
    return tuple(torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes)


def _rel_rms(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected).square().mean().sqrt() / expected.square().mean().sqrt()).item()


LIGHTNING_SHAPES = [  # (batch, heads, length, head_dim, value_dim, block_size, decay, initial_state)
    (2, 3, 37, 5, 4, 8, True, True),
    (1, 2, 64, 8, 8, 64, True, False),
    (1, 2, 65, 8, 3, 64, False, True),
    (3, 1, 10, 4, 6, 3, True, True),
    (1, 4, 300, 8, 8, 17, True, True),
    (1, 1, 1, 3, 2, 5, True, True),
]


@pytest.mark.parametrize("shape", LIGHTNING_SHAPES, ids=str)
def test_lightning_forms_agree_with_final_state(shape) -> None:
    b, h, n, d, e, block, with_decay, with_state = shape
    q, k, v = _qkv(b, h, n, d, e)
    decay = torch.linspace(0.01, 1.5, h, dtype=torch.float64) if with_decay else None
    state = torch.randn(b, h, d, e, dtype=torch.float64) if with_state else None
    results = {impl: lightning_attention(q, k, v, decay, state, output_final_state=True, block_size=block, impl=impl)
               for impl in FORMS}
    ref_out, ref_final = results["reference"]
    assert ref_out.shape == (b, h, n, e) and ref_final.shape == (b, h, d, e)
    for impl in ("chunked", "recurrent"):
        out, final = results[impl]
        torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-10 * ref_out.abs().max().item())
        torch.testing.assert_close(final, ref_final, rtol=0, atol=1e-10 * ref_final.abs().max().item())


@pytest.mark.parametrize("shape", LIGHTNING_SHAPES, ids=str)
def test_chunked_gradients_of_output_and_final_state_match_the_reference(shape) -> None:
    """With fixed slopes (as in the TNL block), gradients of the output and of the final state w.r.t. query,
    key, value and initial state equal those through the dense oracle (the contract checks the output only)."""
    b, h, n, d, e, block, with_decay, with_state = shape
    inputs = [t.requires_grad_() for t in _qkv(b, h, n, d, e)]
    if with_state:
        inputs.append(torch.randn(b, h, d, e, dtype=torch.float64, requires_grad=True))
    decay = torch.linspace(0.01, 1.5, h, dtype=torch.float64) if with_decay else None
    g = torch.Generator().manual_seed(1)
    d_out, d_final = torch.randn(b, h, n, e, generator=g, dtype=torch.float64), torch.randn(b, h, d, e, generator=g,
                                                                                           dtype=torch.float64)
    grads = {}
    for impl in ("chunked", "reference"):
        out, final = lightning_attention(*inputs[:3], decay, inputs[3] if with_state else None, True, block,
                                         impl=impl)
        grads[impl] = torch.autograd.grad((out * d_out).sum() + (final * d_final).sum(), inputs)
    for got, expected in zip(grads["chunked"], grads["reference"]):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-10 * expected.abs().max().item())


def test_chunked_gradcheck_through_output_and_final_state() -> None:
    q, k, v = (t.requires_grad_() for t in _qkv(1, 2, 5, 2, 3))
    state = torch.randn(1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    decay = torch.tensor([0.2, 0.9], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda *x: lightning_attention(*x[:3], decay, x[3], True, 2, impl="chunked"), (q, k, v, state))


@pytest.mark.parametrize(("split", "block"), [(1, 4), (16, 16), (17, 16), (40, 7), (63, 64)])
@pytest.mark.parametrize("impl", ["chunked", "recurrent"])
def test_lightning_state_carried_across_a_split_equals_one_pass(split: int, block: int, impl: str) -> None:
    q, k, v = _qkv(2, 3, 64, 6, 5)
    decay = alibi_slopes(3)
    state = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    whole, whole_final = lightning_attention(q, k, v, decay, state, True, block, impl=impl)
    first, carried = lightning_attention(q[:, :, :split], k[:, :, :split], v[:, :, :split], decay, state, True,
                                         block, impl=impl)
    second, final = lightning_attention(q[:, :, split:], k[:, :, split:], v[:, :, split:], decay, carried, True,
                                        block, impl=impl)
    torch.testing.assert_close(torch.cat([first, second], dim=2), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(final, whole_final, rtol=1e-12, atol=1e-12)


def test_decoding_token_by_token_after_a_chunked_prefill_equals_one_pass() -> None:
    q, k, v = _qkv(1, 2, 50, 8)
    decay = tnl_slopes(2, 1, 4).double()
    whole = lightning_attention(q, k, v, decay, block_size=16)
    out, state = lightning_attention(q[:, :, :40], k[:, :, :40], v[:, :, :40], decay, output_final_state=True,
                                     block_size=16)
    steps = [out]
    for t in range(40, 50):
        step, state = lightning_attention(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], decay, state,
                                          output_final_state=True, impl="recurrent")
        steps.append(step)
    torch.testing.assert_close(torch.cat(steps, dim=2), whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", FORMS)
def test_no_decay_is_cumulative_sum_linear_attention(impl: str) -> None:
    q, k, v = _qkv(2, 2, 45, 4, 3)
    states = torch.cumsum(k[..., :, None] * v[..., None, :], dim=2)  # (B, H, N, D, E): Σ_{j<=t} k_j v_jᵀ
    expected = torch.einsum("bhnd,bhnde->bhne", q, states)
    for decay in (None, torch.zeros(2, dtype=torch.float64)):
        out = lightning_attention(q, k, v, decay, block_size=8, impl=impl)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_decay_matches_the_geometric_definition() -> None:
    q, k, v = _qkv(1, 2, 9, 3)
    decay = torch.tensor([0.3, 1.1], dtype=torch.float64)
    expected = torch.zeros(1, 2, 9, 3, dtype=torch.float64)
    for h in range(2):
        for t in range(9):
            for j in range(t + 1):
                weight = torch.exp(-decay[h] * (t - j)) * (q[0, h, t] @ k[0, h, j])
                expected[0, h, t] += weight * v[0, h, j]
    for impl in FORMS:
        torch.testing.assert_close(lightning_attention(q, k, v, decay, block_size=4, impl=impl), expected)


@pytest.mark.parametrize("blocks", [1, 2, 3, 5, 16, 17, 100])
def test_block_prefix_equals_the_sequential_recurrence(blocks: int) -> None:
    x = torch.randn(2, 3, blocks, 7, dtype=torch.float64)
    decay, step = torch.tensor([0.0, 0.05, 2.0], dtype=torch.float64), 3
    beta = torch.exp(-decay * step)[:, None]
    expected, carry = [], torch.zeros(2, 3, 7, dtype=torch.float64)
    for c in range(blocks):
        carry = beta * carry + x[:, :, c]
        expected.append(carry)
    torch.testing.assert_close(decayed_block_prefix(x, decay, step), torch.stack(expected, dim=2))


def test_float32_forms_agree_with_float64_oracle_at_a_long_length() -> None:
    """Relative RMS error under 1e-5 at 4096 tokens (2 heads, head dim 16, TNL layer-0 slopes; no decay on a
    third head would make the unnormalised output grow like sqrt(N) but is covered by the second call)."""
    q, k, v = _qkv(1, 2, 4096, 16)
    q, k = q * 16**-0.25, k * 16**-0.25
    for decay in (tnl_slopes(2, 0, 12).double(), None):
        expected = lightning_attention(q, k, v, decay, impl="reference")
        for impl in ("chunked", "recurrent"):
            out = lightning_attention(q.float(), k.float(), v.float(), None if decay is None else decay.float(),
                                      impl=impl)
            assert _rel_rms(out, expected) < 1e-5, impl


def test_alibi_slopes() -> None:
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)], dtype=torch.float64))
    # not a power of two: the 4-head slopes, then every other slope of the 8-head ones
    expected = [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    torch.testing.assert_close(alibi_slopes(6), torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(tnl_slopes(8, 0, 12), alibi_slopes(8) * (1 + 1e-5))
    torch.testing.assert_close(tnl_slopes(8, 11, 12), alibi_slopes(8) * 1e-5)
    torch.testing.assert_close(tnl_slopes(4, 0, 1), alibi_slopes(4))
    with pytest.raises(ValueError, match="layer_idx=12"):
        tnl_slopes(8, 12, 12)
    with pytest.raises(ValueError, match="num_heads=0"):
        alibi_slopes(0)


def test_lightning_bad_input_names_the_argument() -> None:
    q, k, v = _qkv(2, 3, 10, 4)
    decay = alibi_slopes(3)
    with pytest.raises(ValueError, match=r"decay has shape \(4,\); expected \(3,\)"):
        lightning_attention(q, k, v, alibi_slopes(4))
    with pytest.raises(TypeError, match="decay.dtype=torch.float32"):
        lightning_attention(q, k, v, decay.float())
    with pytest.raises(ValueError, match="expected slopes >= 0"):
        lightning_attention(q, k, v, -decay)
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match=f"block_size={bad!r}"):
            lightning_attention(q, k, v, decay, block_size=bad)
    with pytest.raises(ValueError, match=r"initial_state has shape \(2, 3, 4, 5\); expected \(2, 3, 4, 4\)"):
        lightning_attention(q, k, v, decay, torch.zeros(2, 3, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="impl='flash'"):
        lightning_attention(q, k, v, decay, impl="flash")


LINEAR_SETTINGS = [  # (feature_map, is_causal, normalize, block_size, initial_state)
    ("elu", True, True, 8, True),
    ("elu", False, True, 8, True),
    ("relu", True, False, 5, False),
    ("identity", True, False, 64, True),
    ("identity", False, False, 64, False),
    ("softmax_kernel", True, True, 7, True),
    ("softmax_kernel", False, False, 7, True),
]


@pytest.mark.parametrize("setting", LINEAR_SETTINGS, ids=str)
def test_linear_forms_agree_with_final_state(setting) -> None:
    feature_map, causal, normalize, block, with_state = setting
    q, k, v = _qkv(2, 2, 30, 6, 4)
    features = 9 if feature_map == "softmax_kernel" else 6
    state = torch.rand(2, 2, features, 4 + normalize, dtype=torch.float64) if with_state else None
    options = {"feature_map": feature_map, "is_causal": causal, "normalize": normalize, "initial_state": state,
               "output_final_state": True, "block_size": block, "num_features": features if features == 9 else None}
    ref_out, ref_final = linear_attention(q, k, v, **options, impl="reference")
    assert ref_out.shape == (2, 2, 30, 4) and ref_final.shape == (2, 2, features, 4 + normalize)
    for impl in ("chunked", "recurrent"):
        out, final = linear_attention(q, k, v, **options, impl=impl)
        torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(final, ref_final, rtol=1e-10, atol=1e-10)


def test_normalised_linear_attention_definition_and_split() -> None:
    q, k, v = _qkv(1, 2, 20, 4, 3)
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    scores = (fq @ fk.transpose(-1, -2)).tril()
    expected = scores @ v / (scores.sum(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(linear_attention(q, k, v), expected)
    first, state = linear_attention(q[:, :, :7], k[:, :, :7], v[:, :, :7], output_final_state=True)
    second = linear_attention(q[:, :, 7:], k[:, :, 7:], v[:, :, 7:], initial_state=state)
    torch.testing.assert_close(torch.cat([first, second], dim=2), expected)


def test_softmax_kernel_features_approach_softmax_attention() -> None:
    q, k, v = _qkv(1, 1, 12, 4, seed=3)
    q, k = q * 0.5, k * 0.5
    exact = F.scaled_dot_product_attention(q, k, v)
    errors = [(linear_attention(q, k, v, "softmax_kernel", is_causal=False, num_features=m, seed=1) - exact)
              .abs().max().item() for m in (16, 65536)]
    assert errors[1] < 0.03 < errors[0]


def test_projection_given_or_drawn_from_seed_is_deterministic() -> None:
    q, k, v = _qkv(1, 2, 10, 4)
    drawn = linear_attention(q, k, v, "softmax_kernel", num_features=7, seed=5)
    given = linear_attention(q, k, v, "softmax_kernel", projection=random_projection(4, 7, 5, torch.float64))
    assert torch.equal(drawn, given)
    assert not torch.equal(drawn, linear_attention(q, k, v, "softmax_kernel", num_features=7, seed=6))


def test_linear_bad_input_names_the_argument() -> None:
    q, k, v = _qkv(2, 3, 10, 4)
    with pytest.raises(ValueError, match="feature_map='gelu'"):
        linear_attention(q, k, v, "gelu")
    with pytest.raises(ValueError, match=r"projection has shape \(5, 8\); expected \(head_dim=4"):
        linear_attention(q, k, v, "softmax_kernel", projection=torch.zeros(5, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="projection is only used by feature_map='softmax_kernel'"):
        linear_attention(q, k, v, "elu", projection=torch.zeros(4, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_features=0"):
        linear_attention(q, k, v, "softmax_kernel", num_features=0)
    with pytest.raises(ValueError, match=r"initial_state has shape \(2, 3, 4, 4\); expected \(2, 3, 4, 5\)"):
        linear_attention(q, k, v, initial_state=torch.zeros(2, 3, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="block_size=0"):
        linear_attention(q, k, v, block_size=0)


def test_lightning_layer_is_the_tnl_block_and_causal() -> None:
    torch.manual_seed(0)
    layer = LightningAttention(dim=16, num_heads=4, layer_idx=2, num_layers=6, block_size=5).double()
    torch.testing.assert_close(layer.slopes.double(), tnl_slopes(4, 2, 6), rtol=1e-6, atol=0)
    x = torch.randn(2, 23, 16, dtype=torch.float64)
    out = layer(x)
    x2 = x.clone()
    x2[:, 15:] += 1.0
    torch.testing.assert_close(layer(x2)[:, :15], out[:, :15], rtol=0, atol=0)
    assert not torch.allclose(layer(x2)[:, 15:], out[:, 15:])
    reference = LightningAttention(dim=16, num_heads=4, layer_idx=2, num_layers=6, impl="reference").double()
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(reference(x), out)


@pytest.mark.parametrize("feature_map", ["elu", "softmax_kernel"])
def test_linear_layer_causal_and_non_causal(feature_map: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 12, 8)
    causal = LinearAttention(8, 2, feature_map=feature_map)
    out = causal(x)
    x2 = x.clone()
    x2[:, 8:] = 0
    torch.testing.assert_close(causal(x2)[:, :8], out[:, :8])
    bidirectional = LinearAttention(8, 2, feature_map=feature_map, is_causal=False)
    bidirectional.load_state_dict(causal.state_dict())
    assert not torch.allclose(bidirectional(x2)[:, :8], out[:, :8])
    with pytest.raises(ValueError, match=r"expected \(B, N, C=8\)"):
        causal(x[..., :4])


def test_benchmark_suite_runs_on_small_shapes() -> None:
    """The linear suite's cases run through the benchmark runner (tiny shapes, no timing asserted): every
    implementation is ok or says why it is skipped, and ours agrees with its reference."""
    cases = [*LightningSpec(96, heads=2, head_dim=8).cases(), *DecodeSpec(40, heads=2, head_dim=8).cases()]
    run = run_cases(cases, Settings(min_repeats=1, max_repeats=1, target_s=0.0, cold_compile=False), progress=False)
    for row in run["rows"]:
        assert row["status"] == "ok" or (row["status"] == "skipped" and "fla" in row["reason"]), row
        if row["status"] == "ok":
            assert row["max_abs_error"] < 1e-4, row
    assert {c.impl for c in linear_cases("quick")} >= {"dense-sdpa", "chunked", "recurrent"}


@pytest.mark.parametrize("name", ["lightning_attention", "linear_attention"])
def test_auto_decodes_with_the_recurrent_form_and_trains_with_the_chunked_one(name: str) -> None:
    """Below 16 new tokens (a decoding step) ``auto`` takes the recurrent form, from 16 on the chunked one
    (the crossover measured in ``ops/lightning/registration.py``); asking by name still runs either."""
    for length, chosen in ((1, "recurrent"), (15, "recurrent"), (16, "chunked"), (500, "chunked")):
        q = torch.randn(1, 2, length, 8)
        text = attnzoo.explain(name, CallFacts.of([q], causal=True, length=length))
        assert f"{chosen}: CHOSEN" in text, text
    q = torch.randn(1, 2, 1, 8)
    assert select_implementation(name, "chunked", CallFacts.of([q], causal=True, length=1)).name == "chunked"
