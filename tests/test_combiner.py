"""Combiner (paper 13, arXiv 2107.05768): the limits that reduce to dense attention, the paper's effective-attention
identity (full support, rows summing to 1), the official TF code transcribed (``tests/official_combiner.py``) on
the ops and, with copied weights, on the layers, the layers' segment choice and bad input, and the language-model
mixer path.

Every fast path against the reference (forward and backward, float64 and float32, awkward lengths and head
dims), gradcheck, causality and bad input run in ``tests/test_contract.py`` over the cases of
``attnzoo/ops/combiner/testing.py``.
"""

from __future__ import annotations

import pytest
import torch
from official_combiner import axial_rowmajor, axial_rowmajor_heads, sqrt_fixed_full, sqrt_fixed_full_heads

import attnzoo
from attnzoo.layers import CombinerAttention, CombinerAxialAttention
from attnzoo.models import CausalLanguageModel
from attnzoo.ops import combiner_axial_attention, combiner_fixed_attention, softmax_attention
from attnzoo.ops.combiner.pooling import SUMMARIES
from attnzoo.ops.combiner.segments import sqrt_segment_length

IMPLS = ("segmented", "reference")


def _qkv(batch: int = 2, heads: int = 3, length: int = 24, dim: int = 8) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(length)
    return [torch.randn(batch, heads, length, dim, dtype=torch.float64, generator=generator) for _ in range(3)]


# --- limits: Combiner with one segment, or with segments of one token, is dense attention ---------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("summary", ["identity-max", "identity-mean", "identity-sum", "relu-max"])
def test_fixed_with_one_segment_is_dense(impl: str, causal: bool, summary: str) -> None:
    q, k, v = _qkv()
    out = combiner_fixed_attention(q, k, v, 24, causal, summary, impl=impl)
    torch.testing.assert_close(out, softmax_attention(q, k, v, is_causal=causal, impl="reference"))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("summary", ["identity-max", "identity-mean", "identity-sum"])
def test_fixed_with_one_token_segments_and_identity_pooling_is_dense(impl: str, causal: bool, summary: str) -> None:
    """Each summary is then exactly its token's (key, value): the summaries of the earlier (other) tokens plus the
    token itself directly are every key once, in one softmax."""
    q, k, v = _qkv()
    out = combiner_fixed_attention(q, k, v, 1, causal, summary, impl=impl)
    torch.testing.assert_close(out, softmax_attention(q, k, v, is_causal=causal, impl="reference"))


@pytest.mark.parametrize("impl", IMPLS)
def test_official_noncausal_own_summary_breaks_the_limits(impl: str) -> None:
    """The official non-causal code (``summarize_own_segment=True``) counts the own segment twice, so neither
    extreme is dense attention there: with ``s = 1`` each token's own key gets twice its dense weight."""
    q, k, v = _qkv()
    dense = softmax_attention(q, k, v, impl="reference")
    for segment in (1, 24):
        out = combiner_fixed_attention(q, k, v, segment, False, "identity-max", True, impl=impl)
        assert (out - dense).abs().max() > 1e-3
    # s = 1 explicitly: weights exp(s_ii) counted twice
    scores = q @ k.transpose(-1, -2) / 8 ** 0.5
    doubled = torch.softmax(scores + torch.diag_embed(torch.full(scores.shape[:-1], 2.0, dtype=q.dtype).log()), -1)
    torch.testing.assert_close(combiner_fixed_attention(q, k, v, 1, False, "identity-max", True, impl=impl),
                               doubled @ v)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("segment", "row_summary"), [(24, "none"), (24, "wsum"), (1, "none"), (1, "wsum")])
def test_axial_limits_are_dense(impl: str, causal: bool, segment: int, row_summary: str) -> None:
    """One row: the row is the whole (causal) context. Rows of one token: each row summary is its token's
    value, with its key (``none``) or the row-attention average of one key, the key itself (``wsum``)."""
    q, k, v = _qkv()
    out = combiner_axial_attention(q, k, v, segment, causal, row_summary, impl=impl)
    torch.testing.assert_close(out, softmax_attention(q, k, v, is_causal=causal, impl="reference"))


# --- the paper's effective attention: p(j|i) = sum_r p(Omega_r|i) q_r(j), full support ---------------------------

@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("summary", ["identity-max", "relu-mean"])
def test_fixed_effective_attention_has_full_support_and_gives_the_output(causal: bool, summary: str) -> None:
    """Built from the paper's factorisation written independently (per query, loops over keys and segments):
    ``P_eff[i, j] = a_ij`` for direct keys, ``a_ir · q_r(j)`` for a key in summarised segment ``r``; its rows sum
    to 1, every key a query may see (causal: ``j <= i``) has a positive weight, and ``O = P_eff V``."""
    q, k, v = (t[:1, :1] for t in _qkv(length=12))
    s, n, scale = 3, 12, 8 ** -0.5
    act, pool = summary.split("-")

    def pooled(x: torch.Tensor, r: int) -> torch.Tensor:
        seg = x[r * s:(r + 1) * s]
        seg = torch.relu(seg) if act == "relu" else seg
        return seg.amax(0) if pool == "max" else seg.mean(0)

    qq, kk, vv = q[0, 0], k[0, 0], v[0, 0]
    effective = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        g = i // s
        direct = [j for j in range(g * s, (g + 1) * s) if not causal or j <= i]
        summarised = [r for r in range(n // s) if (r < g if causal else r != g)]
        logits = [qq[i] @ kk[j] * scale for j in direct] + [qq[i] @ pooled(kk, r) * scale for r in summarised]
        weights = torch.softmax(torch.stack(logits), 0)
        for a, j in zip(weights, direct):
            effective[i, j] += a
        for a, r in zip(weights[len(direct):], summarised):
            q_r = torch.softmax(torch.stack([pooled(qq, r) @ kk[j] * scale for j in range(r * s, (r + 1) * s)]), 0)
            effective[i, r * s:(r + 1) * s] += a * q_r
    allowed = torch.ones(n, n, dtype=torch.bool).tril() if causal else torch.ones(n, n, dtype=torch.bool)
    torch.testing.assert_close(effective.sum(-1), torch.ones(n, dtype=torch.float64))
    assert (effective[allowed] > 0).all() and (effective[~allowed] == 0).all()
    for impl in IMPLS:
        out = combiner_fixed_attention(q, k, v, s, causal, summary, impl=impl)
        torch.testing.assert_close(out[0, 0], effective @ vv)


# --- the official TF code, transcribed ---------------------------------------------------------------------------

def _official_layout(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(1, 2)  # (B, H, N, D) -> the official [B, L, H, D]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("summary", SUMMARIES)
def test_fixed_matches_official_sqrt_fixed_full(impl: str, causal: bool, summary: str) -> None:
    """The official non-causal code has no summary mask: ``summarize_own_segment=True`` reproduces it."""
    q, k, v = _qkv(length=30)
    expected = sqrt_fixed_full_heads(*(_official_layout(t) for t in (q * 8 ** -0.5, k, v)), 5, causal, summary)
    out = combiner_fixed_attention(q, k, v, 5, causal, summary, summarize_own_segment=not causal, impl=impl)
    torch.testing.assert_close(_official_layout(out), expected)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("row_summary", ["none", "wsum"])
def test_axial_matches_official_axial_rowmajor(impl: str, causal: bool, row_summary: str) -> None:
    q, k, v = _qkv(length=30)
    rows = [_official_layout(t).unflatten(1, (5, 6)) for t in (q * 8 ** -0.5, k, v)]
    expected = axial_rowmajor_heads(*rows, 6, causal, row_summary).flatten(1, 2)
    out = combiner_axial_attention(q, k, v, 6, causal, row_summary, summarize_own_segment=not causal, impl=impl)
    torch.testing.assert_close(_official_layout(out), expected)


def _copied_weights(layer: torch.nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The layer's parameters in the official layout: q/k/v split off the fused ``qkv`` Linear."""
    dim = layer.dim
    w, b = layer.qkv.weight, layer.qkv.bias
    weights = {name: (w[i * dim:(i + 1) * dim], b[i * dim:(i + 1) * dim]) for i, name in enumerate("qkv")}
    weights["out"] = (layer.proj.weight, layer.proj.bias)
    if hasattr(layer, "summary_proj"):
        weights["post"] = (layer.summary_proj.weight, layer.summary_proj.bias)
        weights["norm"] = (layer.summary_norm.weight, layer.summary_norm.bias)
        weights["key"] = (layer.summary_key.weight, layer.summary_key.bias)
    return weights


def _perturb(layer: torch.nn.Module) -> torch.nn.Module:
    """Random LayerNorm affine parameters too (they start at 1 and 0)."""
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return layer


@pytest.mark.parametrize("causal", [True, False])
def test_fixed_layer_matches_the_official_layer_with_copied_weights(causal: bool) -> None:
    torch.manual_seed(0)
    layer = _perturb(CombinerAttention(16, 2, 4, is_causal=causal, summarize_own_segment=not causal).double())
    x = torch.randn(2, 24, 16, dtype=torch.float64)
    expected = sqrt_fixed_full(x, _copied_weights(layer), 2, 4, causal, "identity-max")
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("row_summary", ["none", "wsum", "proj", "wsum_proj"])
def test_axial_layer_matches_the_official_layer_with_copied_weights(causal: bool, row_summary: str) -> None:
    torch.manual_seed(0)
    layer = _perturb(CombinerAxialAttention(16, 2, 6, is_causal=causal, row_summary=row_summary,
                                            summarize_own_segment=not causal).double())
    x = torch.randn(2, 24, 16, dtype=torch.float64)
    expected = axial_rowmajor(x, _copied_weights(layer), 2, 6, causal, row_summary)
    torch.testing.assert_close(layer(x), expected)


# --- layers: segment choice, bad input, the language-model mixer path -------------------------------------------

@pytest.mark.parametrize(("length", "segment"), [(1, 1), (2, 2), (63, 7), (64, 8), (128, 8), (256, 16), (97, 1),
                                                 (4096, 64), (16384, 128)])
def test_default_segment_is_the_largest_divisor_up_to_sqrt(length: int, segment: int) -> None:
    assert sqrt_segment_length(length) == segment


@pytest.mark.parametrize("layer_cls", [CombinerAttention, CombinerAxialAttention])
def test_layer_picks_the_segment_per_input_and_checks_an_explicit_one(layer_cls: type) -> None:
    layer = layer_cls(16, 2)
    for length in (63, 64, 30):
        assert layer(torch.randn(1, length, 16)).shape == (1, length, 16)
    with pytest.raises(ValueError, match=r"segment_length=8: expected a divisor of the sequence length N=30"):
        layer_cls(16, 2, segment_length=8)(torch.randn(1, 30, 16))
    with pytest.raises(ValueError, match=r"expected 3-D \(B, N, C=16\)"):
        layer(torch.randn(1, 2, 30, 16))


@pytest.mark.parametrize("mixer", ["combiner_fixed_attention", "combiner_axial_attention"])
def test_combiner_mixers_build_causal_language_models(mixer: str) -> None:
    """The MQAR / Austen path: ``attnzoo.create`` defaults, and a causal LM at each MQAR length whose logits at
    ``t`` do not change with later tokens."""
    assert attnzoo.create(mixer).is_causal
    for length in (64, 128, 256):
        model = CausalLanguageModel(50, 16, 2, mixer, {"num_heads": 2}, seq_len=length,
                                    max_position_embeddings=length).double()
        tokens = torch.randint(50, (2, length))
        changed = tokens.clone()
        changed[:, length // 2:] = torch.randint(50, (2, length - length // 2))
        torch.testing.assert_close(model(tokens)[:, :length // 2], model(changed)[:, :length // 2])
