"""Clipped softmax attention (arXiv 2306.12929, Section 4.1): the reductions and invariants of the paper, the
chunked fast path's chunking and memory, the layer's α parametrisation, and the official code transcribed.

The contract (tests/test_contract.py) compares ``chunked`` against ``reference`` forward and backward on every case
of ``attnzoo/ops/clipped_softmax/testing.py``; here, what it cannot: γ = 0, ζ = 1 against the softmax op (every
drop-in feature), exact zeros (entries, whole rows) with exact-zero gradients, exact ones, chunk sizes, what the
backward keeps, and the peer.

Peer: Qualcomm-AI-research/outlier-free-transformers at commit 1e59744972da808a90d9996027bfc274689594b8,
``transformers_language/models/softmax.py`` (``clipped_softmax``, transcribed verbatim in tests/official_outlier_free.py) and
``transformers_language/models/bert_attention.py`` (``BertSelfAttentionWithExtras.forward``: the path of an
encoder self-attention without relative positions, head mask or cache, transcribed there with its ``alpha`` /
``max_seq_length`` parametrisation).
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from official_outlier_free import OfficialSelfAttention, official_clipped_softmax

import attnzoo
from attnzoo.layers import ClippedSoftmaxAttention
from attnzoo.models import CausalLanguageModel, VisionTransformer
from attnzoo.ops import softmax_attention
from attnzoo.ops.clipped_softmax import clipped_softmax, clipped_softmax_attention, gamma_from_alpha
from attnzoo.ops.clipped_softmax.chunked import clipped_softmax_chunked
from attnzoo.ops.dropin import check_dropin
from attnzoo.ops.softmax.testing import CASES as SOFTMAX_CASES
from attnzoo.testing import case_features, dropin_options, qkv_inputs

D = torch.float64
IMPLS = ["chunked", "reference"]


def ours_from_official(official: OfficialSelfAttention, **options) -> ClippedSoftmaxAttention:
    """Our layer with the official module's weights: the fused qkv is [query; key; value], the output
    projection the identity (the official module has none; BERT's BertSelfOutput follows it)."""
    dim = official.all_head_size
    ours = ClippedSoftmaxAttention(dim, official.num_attention_heads, is_causal=False, **options).double()
    with torch.no_grad():
        ours.qkv.weight.copy_(torch.cat([official.query.weight, official.key.weight, official.value.weight]))
        ours.qkv.bias.copy_(torch.cat([official.query.bias, official.key.bias, official.value.bias]))
        ours.proj.weight.copy_(torch.eye(dim, dtype=D))
        ours.proj.bias.zero_()
    return ours


@pytest.mark.parametrize(("gamma", "zeta"), [(-0.025, 1.0), (-0.1, 1.1), (0.0, 1.003), (-0.3, 1.0)])
def test_clipped_softmax_equals_the_official_function(gamma: float, zeta: float) -> None:
    x = torch.randn(3, 4, 7, 9, dtype=D) * 3
    torch.testing.assert_close(clipped_softmax(x, gamma, zeta), official_clipped_softmax(x, -1, zeta, gamma),
                               atol=0, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("options", "official_options"), [
    ({"gamma": -0.025}, {"softmax_fn": partial(official_clipped_softmax, gamma=-0.025, eta=1.0)}),
    ({"gamma": -0.1, "zeta": 1.1}, {"softmax_fn": partial(official_clipped_softmax, gamma=-0.1, eta=1.1)}),
    ({"gamma": None, "alpha": 12.0}, {"softmax_fn": None, "alpha": 12.0, "max_seq_length": 40}),
])
def test_layer_equals_the_official_module_with_copied_weights(impl: str, options: dict,
                                                              official_options: dict) -> None:
    """The official BERT self-attention with its clipped softmax (``clipped(-.025:1)``, a stretched one, and
    ``--alpha 12`` on inputs padded to ``max_seq_length`` = 40 tokens) and our layer with its weights agree, with
    padding (BERT's additive -10000 mask against our key padding) and without, forward and backward."""
    torch.manual_seed(0)
    official = OfficialSelfAttention(32, 4, **official_options).double()
    ours = ours_from_official(official, impl=impl, **options)
    x = torch.randn(3, 40, 32, dtype=D, requires_grad=True)
    padding = torch.zeros(3, 40, dtype=torch.bool)
    padding[1, 25:] = padding[2, 5:] = True
    additive = (padding[:, None, None, :].to(D)) * -10000.0  # BertModel's extended attention mask
    for mask, kpm in ((None, None), (additive, padding)):
        expected = official(x, mask)
        out = ours(x, key_padding_mask=kpm)
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
        g = torch.randn_like(out)
        torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(expected, x, g)[0],
                                   atol=1e-12, rtol=0)


# ---- reductions and invariants --------------------------------------------------------------------------------------

def _case_inputs(case: dict, requires_grad: bool = True) -> dict[str, torch.Tensor]:
    inputs = qkv_inputs(case, D, "cpu", torch.Generator().manual_seed(3))
    return {n: t.requires_grad_(requires_grad and t.is_floating_point()) for n, t in inputs.items()}


def _grads(out: torch.Tensor, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    floats = [t for t in inputs.values() if t.is_floating_point()]
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=D)
    return [torch.zeros_like(t) if g is None else g
            for t, g in zip(floats, torch.autograd.grad(out, floats, cotangent, allow_unused=True))]


def _declared(impl: str) -> frozenset[str]:
    return attnzoo.get_variant("clipped_softmax_attention").implementations[impl].capabilities.features


@pytest.mark.parametrize(("impl", "case"), [pytest.param(impl, case, id=f"{impl}-{i}") for impl in IMPLS
                                            for i, case in enumerate(SOFTMAX_CASES)
                                            if case_features(case) <= _declared(impl)])
def test_gamma_0_zeta_1_is_softmax_attention(impl: str, case: dict) -> None:
    """γ = 0, ζ = 1 reproduces softmax attention (its dense reference) on every softmax case an implementation
    declares, forward and backward: masks of each shape, padding, grouped KV heads, longer keys (both), packed
    sequences and weights (the reference)."""
    inputs = _case_inputs(case)
    options = {"is_causal": case.get("is_causal", False), **dropin_options(case)}
    ours = clipped_softmax_attention(**inputs, **options, gamma=0.0, zeta=1.0, impl=impl)
    expected = softmax_attention(**inputs, **options, impl="reference")
    ours, expected = (r if isinstance(r, tuple) else (r,) for r in (ours, expected))
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    torch.testing.assert_close(_grads(ours[0], inputs), _grads(expected[0], inputs), atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_small_probabilities_are_exact_zeros_and_large_ones_exact_ones_with_zero_gradient(impl: str) -> None:
    """Weights lie in [0, 1]; an entry whose softmax is below ``-γ / (ζ - γ)`` is exactly 0, one above
    ``(1 - γ) / (ζ - γ)`` exactly 1, and neither passes a gradient to its score; the others are
    ``(ζ - γ) p + γ``."""
    gamma, zeta = -0.05, 1.2
    q = (torch.randn(2, 3, 20, 8, dtype=D) * 2).requires_grad_()
    k, v = torch.randn(2, 3, 20, 8, dtype=D), torch.randn(2, 3, 20, 8, dtype=D)
    scores = (q @ k.transpose(-1, -2) / 8 ** 0.5).detach().requires_grad_()
    probs = scores.softmax(-1)
    _, weights = clipped_softmax_attention(q, k, v, gamma=gamma, zeta=zeta, impl="reference", return_weights=True)
    low, high = probs < -gamma / (zeta - gamma), probs > (1 - gamma) / (zeta - gamma)
    assert low.any() and high.any() and (~low & ~high).any()
    assert ((weights >= 0) & (weights <= 1)).all()
    assert (weights[low] == 0).all() and (weights[high] == 1).all()
    torch.testing.assert_close(weights[~low & ~high], ((zeta - gamma) * probs + gamma)[~low & ~high])
    # through the op: the gradient of the output reaches the scores only through the unclipped entries
    out = clipped_softmax_attention(q, k, v, gamma=gamma, zeta=zeta, impl=impl)
    g = torch.randn_like(out)
    (dq,) = torch.autograd.grad(out, q, g)
    clipped = clipped_softmax(scores, gamma, zeta)
    (dscores,) = torch.autograd.grad(clipped @ v, scores, g)
    torch.testing.assert_close(dq, dscores @ k / 8 ** 0.5)
    dweights = g @ v.transpose(-1, -2)
    inside = ~low & ~high
    manual = probs * (dweights * inside * (zeta - gamma) - (dweights * inside * (zeta - gamma) * probs).sum(-1, True))
    torch.testing.assert_close(dscores, manual)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_head_can_do_nothing_whole_rows_are_exactly_zero(impl: str) -> None:
    """With γ < 0 a query whose attention is spread over many keys (below ``-γ / (ζ - γ)`` each) gets an output
    of exactly 0 and exactly-zero gradients: the "no-op" head of the paper, reached with finite logits. A plain
    softmax never gives an exact zero there."""
    n = 64
    q = torch.randn(1, 2, n, 8, dtype=D)
    q[:, 0] = 0  # head 0: every score 0, so every probability is 1/64
    q.requires_grad_()
    k = torch.randn(1, 2, n, 8, dtype=D, requires_grad=True)
    v = torch.randn(1, 2, n, 8, dtype=D, requires_grad=True)
    out = clipped_softmax_attention(q, k, v, gamma=-0.1, impl=impl)  # threshold 0.1 / 1.1 > 1 / 64
    assert (out[:, 0] == 0).all() and (out[:, 1] != 0).any()
    assert (softmax_attention(q, k, v)[:, 0] != 0).all()
    out[:, 0].sum().backward()
    assert (q.grad == 0).all() and (k.grad == 0).all() and (v.grad == 0).all()


@pytest.mark.parametrize("chunk", [1, 5, 64, 200])
@pytest.mark.parametrize("case", [
    {"batch": 2, "heads": 2, "grid": (37,), "head_dim": 4, "is_causal": True, "attn_mask": "float",
     "attn_mask_shape": "plain"},
    {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (23,), "kv_length": 41, "head_dim": 4, "is_causal": True,
     "key_padding": True, "attn_mask": "float", "attn_mask_shape": "batch"},
    {"batch": 1, "heads": 2, "grid": (30,), "head_dim": 4, "attn_mask": "bool"},
], ids=["causal-plain-additive", "gqa-cross-padding-batch-additive", "bool"])
def test_chunk_size_does_not_change_the_result(chunk: int, case: dict) -> None:
    """Every chunk size (one query, a chunk boundary inside, one chunk for all) gives the reference's output and
    gradients, the additive mask's gradient included (summed over the dims it broadcasts)."""
    inputs = _case_inputs(case)
    options = {"is_causal": case.get("is_causal", False), **dropin_options(case)}
    expected = clipped_softmax_attention(**inputs, **options, gamma=-0.1, zeta=1.1, impl="reference")
    dropin = check_dropin(inputs["query"], inputs["key"], inputs["value"], attn_mask=inputs.get("attn_mask"),
                          key_padding_mask=inputs.get("key_padding_mask"), cu_seqlens=None,
                          enable_gqa=options.get("enable_gqa", False), dropout_p=0.0, return_weights=False)
    out = clipped_softmax_chunked(inputs["query"], inputs["key"], inputs["value"], is_causal=options["is_causal"],
                                  scale=0.5, gamma=-0.1, zeta=1.1, dropin=dropin, query_chunk=chunk)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(_grads(out, inputs), _grads(expected, inputs), atol=1e-12, rtol=0)


def _saved_sizes(fn) -> list[int]:
    """The sizes of every tensor autograd saves for the backward while ``fn()`` runs."""
    sizes: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sizes


def test_chunked_backward_keeps_no_score_sized_tensor() -> None:
    """What the chunked path keeps for its backward: the inputs and one log-sum-exp per query, nothing of
    ``Nq x Nk`` size; the reference's autograd keeps several ``(B, H, Nq, Nk)`` tensors."""
    b, h, n, d = 1, 2, 512, 8
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    chunked = _saved_sizes(lambda: clipped_softmax_attention(q, k, v, is_causal=True, impl="chunked"))
    assert sorted(chunked) == [b * h * n] + [b * h * n * d] * 3
    reference = _saved_sizes(lambda: clipped_softmax_attention(q, k, v, is_causal=True, impl="reference"))
    assert sum(size >= b * h * n * n for size in reference) >= 3


def test_auto_picks_chunked_and_the_reference_for_what_only_it_runs() -> None:
    q = torch.randn(1, 2, 10, 4)
    text = attnzoo.explain("clipped_softmax_attention", attnzoo.CallFacts.of([q]))
    assert "chunked: CHOSEN" in text
    facts = attnzoo.CallFacts.of([q], features=["varlen", "dropout", "weights"])
    assert "reference: CHOSEN" in attnzoo.explain("clipped_softmax_attention", facts)


# ---- the layer ------------------------------------------------------------------------------------------------------

def test_alpha_gives_gamma_minus_alpha_over_the_sequence_length() -> None:
    torch.manual_seed(0)
    layer = ClippedSoftmaxAttention(16, 2, gamma=None, alpha=12.0).double()
    x = torch.randn(2, 48, 16, dtype=D)
    q, k, v = layer.qkv(x).view(2, 48, 3, 2, 8).permute(2, 0, 3, 1, 4)
    expected = clipped_softmax_attention(q, k, v, True, gamma=-12.0 / 48, zeta=1.0)
    torch.testing.assert_close(layer(x), layer.proj(expected.transpose(1, 2).reshape(2, 48, 16)))
    assert gamma_from_alpha(12, 48) == -0.25


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"gamma": -0.1, "alpha": 12.0}, "expected exactly one of them"),
    ({"gamma": None}, "expected exactly one of them"),
    ({"gamma": None, "alpha": float("inf")}, r"alpha=inf: expected a finite real number >= 0"),
    ({"gamma": 0.5, "zeta": 0.4}, r"gamma=0.5, zeta=0.4: expected gamma < zeta"),
    ({"num_heads": 5}, r"dim=32 must be divisible by num_heads=5"),
])
def test_layer_refuses_bad_stretch_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClippedSoftmaxAttention(32, **{"num_heads": 4, **kwargs})


def test_padding_and_packing_reach_the_op() -> None:
    torch.manual_seed(0)
    layer = ClippedSoftmaxAttention(16, 2, gamma=-0.1).double()
    x = torch.randn(1, 30, 16, dtype=D)
    packed = layer(x, cu_seqlens=torch.tensor([0, 12, 30]))
    torch.testing.assert_close(packed, torch.cat([layer(x[:, :12]), layer(x[:, 12:])], 1))
    padding = torch.zeros(1, 30, dtype=torch.bool)
    padding[:, 20:] = True
    torch.testing.assert_close(layer(x, key_padding_mask=padding)[:, :20], layer(x[:, :20]))


@pytest.mark.parametrize("mixer", ["clipped_softmax_attention", "gated_attention"])
def test_mixer_of_the_language_model_and_the_vision_transformer(mixer: str) -> None:
    """Both variants of the paper are mixers of every model: a causal LM (outputs at t read tokens <= t) and a
    ViT (built non-causal)."""
    torch.manual_seed(0)
    lm = CausalLanguageModel(vocab_size=20, dim=16, num_layers=2, mixer=mixer, mixer_kwargs={"num_heads": 2})
    tokens = torch.randint(0, 20, (2, 12))
    logits = lm(tokens)
    changed = tokens.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 20
    torch.testing.assert_close(lm(changed)[:, :8], logits[:, :8])
    logits.sum().backward()
    vit = VisionTransformer(image_size=8, patch_size=2, dim=16, depth=2, mixer=mixer,
                            mixer_kwargs={"num_heads": 2, "is_causal": False})
    assert vit.blocks[0].mixer.is_causal is False
    assert vit(torch.randn(2, 1, 8, 8)).shape == (2, 10)
