"""Position / channel attention (PAM, CAM) and the multi-scale self-guided attention of paper 23 (arXiv
1906.02849): the limits and equations the catalog lists, and the official modules (tests/
official_guided_attention.py, sinAshish/Multi-Scale-Attention commit 96d76f2) with copied weights. The
registry-wide contract (tests/test_contract.py) compares the implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from official_comparison import close, randn
from official_guided_attention import (
    CAM_Module,
    DAFGuidedPart,
    PAM_Module,
    guided_state_dict_mapping,
    official_loss_terms,
)

from attnzoo.layers import ChannelSelfAttention, MultiScaleGuidedAttention, PositionSelfAttention
from attnzoo.layers.guided_attention import guided_attention_loss
from attnzoo.ops.dual_attention import channel_self_attention, position_self_attention

IMPLS = ["sdpa", "reference"]


def _weights(c: int, inner: int, seed: int = 1) -> dict[str, torch.Tensor]:
    shapes = {"query_weight": (inner, c), "key_weight": (inner, c), "value_weight": (c, c),
              "query_bias": (inner,), "key_bias": (inner,), "value_bias": (c,)}
    return {name: randn(*shape, seed=seed + i) / (c ** 0.5 if name.endswith("weight") else 1.0)
            for i, (name, shape) in enumerate(shapes.items())}


@pytest.mark.parametrize("impl", IMPLS)
def test_gamma_zero_is_the_identity(impl: str) -> None:
    x = randn(2, 16, 5, 7)
    assert torch.equal(position_self_attention(x, gamma=torch.zeros(1, dtype=x.dtype), impl=impl, **_weights(16, 2)), x)
    assert torch.equal(channel_self_attention(x, torch.zeros(1, dtype=x.dtype), impl=impl), x)


@pytest.mark.parametrize("impl", IMPLS)
def test_position_attention_is_dense_attention_with_scale_one(impl: str) -> None:
    x, w = randn(2, 12, 6, 5), _weights(12, 3)
    gamma = torch.tensor([0.7], dtype=torch.float64)
    tokens = x.flatten(2).transpose(1, 2)
    q, k, v = (F.linear(tokens, w[f"{n}_weight"], w[f"{n}_bias"]) for n in ("query", "key", "value"))
    dense = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    expected = x + gamma * dense.transpose(1, 2).reshape(x.shape)
    close(position_self_attention(x, gamma=gamma, impl=impl, **w), expected)


def test_attention_rows_sum_to_one() -> None:
    """Values of 1 (zero value weights, bias 1): every output is γ · Σ_j S_ij + x = γ + x."""
    x, w = randn(2, 8, 5, 6), _weights(8, 2)
    w["value_weight"] = torch.zeros_like(w["value_weight"])
    w["value_bias"] = torch.ones_like(w["value_bias"])
    gamma = torch.tensor([2.5], dtype=torch.float64)
    for impl in IMPLS:
        close(position_self_attention(x, gamma=gamma, impl=impl, **w), x + 2.5)
    flat = x.flatten(2)
    energy = flat @ flat.transpose(1, 2)
    attention = torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1)
    close(attention.sum(-1), torch.ones(2, 8, dtype=torch.float64))


def test_channel_attention_shift_invariance() -> None:
    """CAM's ``softmax(max − E)`` is ``softmax(−E)`` exactly (the ``sdpa`` path computes the latter)."""
    x = randn(2, 9, 4, 5) * 0.5
    flat = x.flatten(2)
    energy = flat @ flat.transpose(1, 2)
    gamma = torch.tensor([1.3], dtype=torch.float64)
    expected = x + gamma * (torch.softmax(-energy, dim=-1) @ flat).reshape(x.shape)
    for impl in IMPLS:
        close(channel_self_attention(x, gamma, impl=impl), expected)


def test_one_channel_attends_to_itself() -> None:
    x = randn(3, 1, 4, 5)
    close(channel_self_attention(x, torch.tensor([0.5], dtype=torch.float64)), 1.5 * x)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dim", [64, 24])
def test_official_modules_with_copied_weights(impl: str, dim: int) -> None:
    """Our layers with the official ``PAM_Module`` / ``CAM_Module`` state dicts (γ set nonzero): outputs and
    every gradient."""
    torch.manual_seed(0)
    for official, ours in ((PAM_Module(dim), PositionSelfAttention(dim, impl=impl)),
                           (CAM_Module(dim), ChannelSelfAttention(dim, impl=impl))):
        official.double()
        with torch.no_grad():
            official.gamma.fill_(0.8)
        ours.double().load_state_dict(official.state_dict())
        x = (randn(2, dim, 7, 9) * 0.3).requires_grad_()
        expected, out = official(x), ours(x)
        close(out, expected, atol=1e-11)
        cotangent = randn(*out.shape, seed=4)
        names = [name for name, _ in official.named_parameters()]
        got = torch.autograd.grad(out, [x, *(ours.get_parameter(n) for n in names)], cotangent)
        want = torch.autograd.grad(expected, [x, *official.parameters()], cotangent)
        for g, w in zip(got, want, strict=True):
            close(g, w, atol=1e-10)


def test_layer_gamma_starts_at_zero_and_reduction_floors() -> None:
    layer = PositionSelfAttention(60)
    assert layer.query_conv.out_channels == 7 and layer.gamma.detach().item() == 0.0   # official in_dim // 8
    x = torch.randn(2, 60, 5, 5)
    assert torch.equal(layer(x), x)
    with pytest.raises(ValueError, match=r"dim=4 with reduction=8 leaves no query/key channels"):
        PositionSelfAttention(4)


def test_guided_attention_matches_the_official_network() -> None:
    """MultiScaleGuidedAttention with the official DAF_stack's attention modules (γ set nonzero, training-mode
    batch norm in both): the refined maps, codes, reconstructions and the guided loss terms, and gradients."""
    torch.manual_seed(0)
    official = DAFGuidedPart().double()
    with torch.no_grad():
        for module in official.modules():
            if isinstance(module, (PAM_Module, CAM_Module)):
                module.gamma.fill_(0.5)
    ours = MultiScaleGuidedAttention(dim=64, scales=4).double()
    mapping = guided_state_dict_mapping()
    state = official.state_dict()
    translated = {}
    for name in ours.state_dict():
        prefix = next(p for p in mapping if name.startswith(p))
        translated[name] = state[mapping[prefix] + name[len(prefix):]]
    ours.load_state_dict(translated)
    features = [randn(2, 64, 8, 6, seed=s).requires_grad_() for s in range(4)]   # down4, down3, down2, down1
    refined, sem, inp, rec = official(*features)
    out = ours(features)
    for got, want in zip(out.refined, refined, strict=True):
        close(got, want, atol=1e-10)
    # official order: codes per scale (step 1, step 2); inputs and reconstructions down1 .. down4, step 1 then 2
    for s in range(4):
        close(out.codes[0][s].reshape(-1), sem[2 * s])
        close(out.codes[1][s].reshape(-1), sem[2 * s + 1])
        for step in range(2):
            close(out.inputs[step][s], inp[4 * step + 3 - s])
            close(out.reconstructions[step][s], rec[4 * step + 3 - s], atol=1e-10)
    loss, expected_loss = guided_attention_loss(out), official_loss_terms(sem, inp, rec)
    close(loss, expected_loss, atol=1e-10)
    grads = torch.autograd.grad(loss + sum(r.sum() for r in out.refined), features)
    want = torch.autograd.grad(expected_loss + sum(r.sum() for r in refined), features)
    for g, w in zip(grads, want, strict=True):
        close(g, w, atol=1e-9)


def test_guided_attention_input_errors() -> None:
    layer = MultiScaleGuidedAttention(dim=8, scales=2)
    good = torch.randn(1, 8, 8, 8)
    with pytest.raises(ValueError, match=r"expected a sequence of scales=2 tensors .* of length 3"):
        layer([good] * 3)
    with pytest.raises(ValueError, match=r"expected a sequence of scales=2 tensors"):
        layer(torch.cat([good, good], 1))
    with pytest.raises(ValueError, match=r"features\[1\] has shape \(1, 8, 8, 6\); expected features\[0\]'s"):
        layer([good, good[..., :6]])
    with pytest.raises(ValueError, match=r"features have grid 7x8; expected even sizes >= 4"):
        layer([good[:, :, :7]] * 2)
    with pytest.raises(ValueError, match=r"features\[0\] has shape \(1, 6, 8, 8\), 6 channels; expected"):
        layer([good[:, :6], good])
