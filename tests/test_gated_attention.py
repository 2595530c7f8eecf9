"""Gated attention (arXiv 2306.12929, Section 4.2): the reductions of the paper (gate -> 1 is softmax attention,
gate -> 0 an exactly zero head), the gate modules and their initialisation, the clipped softmax inside the gated
layer, and the official module transcribed and matched with copied weights.

The contract (tests/test_contract.py) compares ``sdpa`` against ``reference`` forward and backward (the gate's
gradient included) on every case of ``attnzoo/ops/gated_attention/testing.py`` and runs its error inputs.

Peer: Qualcomm-AI-research/outlier-free-transformers at commit 1e59744972da808a90d9996027bfc274689594b8,
``transformers_language/models/bert_attention.py``: ``logit``, ``AttentionGateType`` and
``BertSelfAttentionWithExtras`` (its gate construction in ``__init__`` and the gating at the end of ``forward``,
transcribed in tests/official_outlier_free.py; relative positions, cross attention, cache and head mask left out,
dropout in eval), with the
``clipped_softmax`` of ``transformers_language/models/softmax.py``.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from official_outlier_free import OfficialSelfAttention, logit, official_clipped_softmax

from attnzoo.layers import GatedAttention, SoftmaxAttention
from attnzoo.layers.gated_attention import HeadGate
from attnzoo.ops import softmax_attention
from attnzoo.ops.clipped_softmax import clipped_softmax_attention
from attnzoo.ops.gated_attention import gated_attention
from attnzoo.ops.softmax.testing import CASES as SOFTMAX_CASES
from attnzoo.testing import dropin_options, qkv_inputs

D = torch.float64
IMPLS = ["sdpa", "reference"]


OFFICIAL = {  # our gate kind -> the official options
    "unconditional": {"attn_gate_type": "unconditional_per_head"},
    "linear": {"attn_gate_type": "conditional_per_token", "attn_gate_linear_all_features": True},
    "per_head_linear": {"attn_gate_type": "conditional_per_token", "attn_gate_init": 0.25},
    "mlp": {"attn_gate_type": "conditional_per_token", "attn_gate_mlp": True},
}


def copy_official_gate(gate: HeadGate, official: OfficialSelfAttention) -> None:
    """The official gate's parameters into our stacked ``(H, ...)`` ones."""
    with torch.no_grad():
        if gate.kind == "unconditional":
            gate.bias.copy_(official.alpha)
        elif gate.kind == "linear":
            gate.weight.copy_(official.alpha.weight)
            gate.bias.copy_(official.alpha.bias)
        elif gate.kind == "per_head_linear":
            gate.weight.copy_(torch.cat([fc.weight for fc in official.alpha]))
            gate.bias.copy_(torch.cat([fc.bias for fc in official.alpha]))
        else:
            gate.hidden_weight.copy_(torch.stack([fc[0].weight.T for fc in official.alpha]))
            gate.hidden_bias.copy_(torch.stack([fc[0].bias for fc in official.alpha]))
            gate.weight.copy_(torch.cat([fc[2].weight for fc in official.alpha]))
            gate.bias.copy_(torch.cat([fc[2].bias for fc in official.alpha]))


def ours_from_official(official: OfficialSelfAttention, kind: str, **options) -> GatedAttention:
    """Our layer with the official weights: qkv = [query; key; value], the gate copied, the output projection
    the identity (the official module has none)."""
    dim = official.all_head_size
    ours = GatedAttention(dim, official.num_attention_heads, is_causal=False, gate=kind, **options).double()
    with torch.no_grad():
        ours.qkv.weight.copy_(torch.cat([official.query.weight, official.key.weight, official.value.weight]))
        ours.qkv.bias.copy_(torch.cat([official.query.bias, official.key.bias, official.value.bias]))
        ours.proj.weight.copy_(torch.eye(dim, dtype=D))
        ours.proj.bias.zero_()
    copy_official_gate(ours.head_gate, official)
    return ours


@pytest.mark.parametrize("clipped", [False, True], ids=["softmax", "clipped"])
@pytest.mark.parametrize("kind", list(OFFICIAL))
def test_layer_equals_the_official_module_with_copied_weights(kind: str, clipped: bool) -> None:
    """Every official gate (the gate parameters perturbed away from their initialisation, so that they matter),
    with the softmax or the clipped softmax ``clipped(-.025:1)``, with and without BERT's additive padding mask:
    our layer on the copied weights gives the same output and input gradient."""
    torch.manual_seed(0)
    softmax_fn = partial(official_clipped_softmax, gamma=-0.025, eta=1.0) if clipped else torch.softmax
    official = OfficialSelfAttention(32, 4, softmax_fn=softmax_fn, **OFFICIAL[kind]).double()
    with torch.no_grad():
        for name, p in official.named_parameters():
            if name.startswith("alpha"):
                p.add_(torch.randn_like(p))
    ours = ours_from_official(official, kind, **({"softmax": "clipped", "gamma": -0.025} if clipped else {}))
    x = torch.randn(2, 24, 32, dtype=D, requires_grad=True)
    padding = torch.zeros(2, 24, dtype=torch.bool)
    padding[1, 15:] = True
    for mask, kpm in ((None, None), (padding[:, None, None, :].to(D) * -10000.0, padding)):
        expected = official(x, mask)
        out = ours(x, key_padding_mask=kpm)
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
        g = torch.randn_like(out)
        torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(expected, x, g)[0],
                                   atol=1e-12, rtol=0)


def test_gate_bias_starts_at_logit_pi_init_as_the_official_per_head_gate() -> None:
    """``gate_init`` = π_init sets the last bias to ``logit(π_init)``, the official ``attn_gate_init`` of the
    per-head gate (``--attn_gate_init 0.25``); every kind starts near π_init on small inputs. ``gate_init=None``:
    the official initialisation elsewhere (the unconditional logit 0, a gate of 0.5)."""
    official = OfficialSelfAttention(32, 4, **OFFICIAL["per_head_linear"])
    for kind in OFFICIAL:
        gate = HeadGate(32, 4, kind, gate_init=0.25)
        torch.testing.assert_close(gate.bias, torch.full((4,), float(logit(0.25))))
        torch.testing.assert_close(torch.sigmoid(gate.bias), torch.full((4,), 0.25))
        assert (gate(torch.zeros(2, 5, 32)) - 0.25).abs().max() < (0 if kind != "mlp" else 0.1) + 1e-6
    torch.testing.assert_close(torch.cat([fc.bias for fc in official.alpha]), torch.full((4,), float(logit(0.25))))
    assert (HeadGate(32, 4, "unconditional", gate_init=None)(torch.randn(2, 5, 32)) == 0.5).all()


# ---- reductions -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", [c for c in SOFTMAX_CASES if not c.get("return_weights")],
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()).replace(" ", ""))
def test_gate_one_is_softmax_attention_gate_zero_an_exact_zero_head(impl: str, case: dict) -> None:
    """On every softmax case: a gate of 1 gives softmax attention (values and gradients), a gate of 0 exactly 0
    with exactly-zero gradients towards q, k, v, and a gate of 0 on one head and 1 on the others changes only
    that head."""
    inputs = qkv_inputs(case, D, "cpu", torch.Generator().manual_seed(0))
    for name in ("query", "key", "value"):
        inputs[name].requires_grad_()
    options = {"is_causal": case.get("is_causal", False), **dropin_options(case)}
    b, h, n = inputs["query"].shape[:3]
    expected = softmax_attention(**inputs, **options, impl="reference")
    ones = torch.ones(b, h, n, dtype=D, requires_grad=True)
    out = gated_attention(**inputs, gate=ones, **options, impl=impl)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    qkv = [inputs[name] for name in ("query", "key", "value")]
    g = torch.randn_like(out)
    for a, e in zip(torch.autograd.grad(out, qkv, g), torch.autograd.grad(expected, qkv, g)):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=0)
    zero = gated_attention(**inputs, gate=torch.zeros(b, h, n, dtype=D), **options, impl=impl)
    assert (zero == 0).all()
    assert all((gr == 0).all() for gr in torch.autograd.grad(zero.sum(), qkv, allow_unused=True, materialize_grads=True))
    one_closed = torch.ones(b, h, n, dtype=D)
    one_closed[:, 0] = 0
    mixed = gated_attention(**inputs, gate=one_closed, **options, impl=impl)
    assert (mixed[:, 0] == 0).all()
    torch.testing.assert_close(mixed[:, 1:], expected[:, 1:], atol=1e-12, rtol=0)


def _softmax_twin(layer: GatedAttention) -> SoftmaxAttention:
    twin = SoftmaxAttention(layer.dim, layer.num_heads, is_causal=layer.is_causal).double()
    twin.load_state_dict({k: v for k, v in layer.state_dict().items() if not k.startswith("head_gate.")})
    return twin


@pytest.mark.parametrize("kind", list(OFFICIAL))
def test_large_gate_bias_is_vanilla_attention_and_very_negative_bias_a_no_op_head(kind: str) -> None:
    """A gate bias -> +inf (here +1000: sigmoid is exactly 1 in float64) makes the layer the softmax layer with
    the same weights; -> -inf (-1000: sigmoid exactly 0) makes every head output exactly 0 (the layer returns
    its output projection's bias)."""
    torch.manual_seed(0)
    layer = GatedAttention(32, 4, gate=kind).double()
    x = torch.randn(2, 20, 32, dtype=D)
    twin = _softmax_twin(layer)
    with torch.no_grad():
        for name, p in layer.head_gate.named_parameters():
            p.copy_(torch.full_like(p, 1000.0) if name == "bias" else p * 1e-3)
    torch.testing.assert_close(layer(x), twin(x), atol=1e-12, rtol=0)
    with torch.no_grad():
        layer.head_gate.bias.fill_(-1000.0)
    assert (layer.head_gate(x) == 0).all()
    torch.testing.assert_close(layer(x), layer.proj.bias.expand(2, 20, 32), atol=0, rtol=0)


def test_clipped_softmax_inside_the_gated_layer() -> None:
    """``softmax="clipped"`` with γ = 0, ζ = 1 is the vanilla gated layer; with γ = -0.025 it is the gate times the
    clipped softmax attention, also through the α parametrisation (γ = -α / T)."""
    torch.manual_seed(0)
    vanilla = GatedAttention(32, 4).double()
    x = torch.randn(2, 40, 32, dtype=D)
    for options, gamma in (({"gamma": 0.0}, 0.0), ({"gamma": -0.025}, -0.025), ({"alpha": 2.0}, -2.0 / 40)):
        clipped = GatedAttention(32, 4, softmax="clipped", **options).double()
        clipped.load_state_dict(vanilla.state_dict())
        if gamma == 0.0:
            torch.testing.assert_close(clipped(x), vanilla(x), atol=1e-12, rtol=0)
        q, k, v = clipped.qkv(x).view(2, 40, 3, 4, 8).permute(2, 0, 3, 1, 4)
        heads = clipped_softmax_attention(q, k, v, True, gamma=gamma) * clipped.head_gate(x)[..., None]
        torch.testing.assert_close(clipped(x), clipped.proj(heads.transpose(1, 2).reshape(2, 40, 32)))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"gate": "mlp", "num_heads": 16}, r"gate='mlp' needs head_dim >= 4 .* head_dim=2"),
    ({"alpha": 12.0}, r"alpha=12.0: expected None with softmax='vanilla'"),
    ({"softmax": "clipped", "gamma": -0.1, "alpha": 12.0}, "expected exactly one of them"),
    ({"softmax": "clipped", "gamma": 1.0, "zeta": 0.5}, r"gamma=1.0, zeta=0.5: expected gamma < zeta"),
    ({"num_heads": 3}, r"dim=32 must be divisible by num_heads=3"),
])
def test_layer_refuses_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GatedAttention(32, **{"num_heads": 4, **kwargs})


def test_gate_modules_shapes_and_parameters() -> None:
    x = torch.randn(2, 7, 32)
    sizes = {"unconditional": 4, "linear": 32 * 4 + 4, "per_head_linear": 32 + 4, "mlp": 32 * 2 + 8 + 8 + 4}
    for kind, size in sizes.items():
        gate = HeadGate(32, 4, kind)
        assert gate(x).shape == (2, 4, 7) and ((gate(x) > 0) & (gate(x) < 1)).all()
        assert sum(p.numel() for p in gate.parameters()) == size, kind


def test_padding_and_packing_reach_the_op() -> None:
    torch.manual_seed(0)
    layer = GatedAttention(16, 2).double()
    x = torch.randn(1, 30, 16, dtype=D)
    packed = layer(x, cu_seqlens=torch.tensor([0, 12, 30]))
    torch.testing.assert_close(packed, torch.cat([layer(x[:, :12]), layer(x[:, 12:])], 1))
    padding = torch.zeros(1, 30, dtype=torch.bool)
    padding[:, 20:] = True
    torch.testing.assert_close(layer(x, key_padding_mask=padding)[:, :20], layer(x[:, :20]))
