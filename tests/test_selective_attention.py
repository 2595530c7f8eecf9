"""SDANet's selective dense attention (arXiv 2108.07020, paper 47): the official module (decompiled from the
released bytecode, tests/official_sdanet.py) with copied weights, in both gathering directions and without
refinement, and the catalog's invariants (level weights sum to 1, identical levels come back unchanged, a
zero-initialised refinement is the identity). The registry-wide contract (tests/test_contract.py) compares the
implementations."""

from __future__ import annotations

import pytest
import torch
from official_comparison import close, randn
from official_sdanet import ContextBlock as OfficialContextBlock
from official_sdanet import official_state_dict_mapping, selective_attention

from attnzoo.layers import ContextBlock, SelectiveDenseAttention
from attnzoo.ops.selective_attention import selective_dense_attention

IMPLS = ["batched", "reference"]


def load_official(ours: SelectiveDenseAttention, official: selective_attention) -> None:
    mapping, state = official_state_dict_mapping(), official.state_dict()
    translated = {}
    for name in ours.state_dict():
        prefix = next(p for p in mapping if name.startswith(p))
        translated[name] = state[mapping[prefix] + name[len(prefix):]]
    ours.load_state_dict(translated)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("target", "refine"), [(0, True), (1, True), (0, False)])
def test_official_module_with_copied_weights(impl: str, target: int, refine: bool) -> None:
    torch.manual_seed(0)
    official = selective_attention(target, 32, with_refine=refine).double()
    if refine:
        with torch.no_grad():   # the zero-initialised last convolution would hide the refinement
            official.refine.channel_add_conv[-1].weight.normal_()
            official.refine.channel_add_conv[-1].bias.normal_()
    ours = SelectiveDenseAttention(32, target=target, refine=refine, impl=impl).double()
    load_official(ours, official)
    levels = [randn(2, 32, 10, 12).requires_grad_(), randn(2, 32, 5, 7, seed=1).requires_grad_()]
    expected, out = official(levels), ours(levels)
    close(out, expected, atol=1e-11)
    cotangent = randn(*out.shape, seed=3)
    names = [n for n, _ in official.named_parameters()]
    mapping = {v: k for k, v in official_state_dict_mapping().items()}
    ours_names = [next(mapping[p] + n[len(p):] for p in mapping if n.startswith(p)) for n in names]
    # without refinement the official module returns the spatial term alone: the channel branch gets no gradient
    got = torch.autograd.grad(out, [*levels, *(ours.get_parameter(n) for n in ours_names)], cotangent,
                              allow_unused=True)
    want = torch.autograd.grad(expected, [*levels, *official.parameters()], cotangent, allow_unused=True)
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None)
        if g is not None:
            close(g, w, atol=1e-10)


def test_context_block_matches_mmcv() -> None:
    torch.manual_seed(0)
    official = OfficialContextBlock(48, 1 / 16).double()
    ours = ContextBlock(48).double()
    ours.load_state_dict(official.state_dict())
    x = randn(2, 48, 5, 6)
    close(ours(x), official(x))
    fresh = ContextBlock(48).double()
    assert torch.equal(fresh(x), x)   # the last convolution starts at zero


@pytest.mark.parametrize("impl", IMPLS)
def test_identical_levels_come_back(impl: str) -> None:
    """Each attention sums to 1 over the levels: identical levels give 2 F (channel + spatial), F per branch."""
    level = randn(2, 6, 5, 7)
    ones, zeros = torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    args = (torch.cat([level] * 3, dim=1), randn(4, 6), ones, zeros, zeros, ones, randn(3, 6, 4), randn(3, 2, 3, 3))
    close(selective_dense_attention(*args, randn(3, 6), impl=impl), 2 * level)
    for branches in ("channel", "spatial"):
        close(selective_dense_attention(*args, branches=branches, impl=impl), level)


def test_layer_input_errors() -> None:
    layer = SelectiveDenseAttention(16, num_levels=2)
    with pytest.raises(ValueError, match=r"expected a sequence of num_levels=2 tensors .* of length 3"):
        layer([torch.randn(2, 16, 4, 4)] * 3)
    with pytest.raises(ValueError, match=r"levels\[1\] has shape \(2, 8, 4, 4\), 8 channels"):
        layer([torch.randn(2, 16, 4, 4), torch.randn(2, 8, 4, 4)])
    with pytest.raises(ValueError, match=r"target=2: expected a level index below num_levels=2"):
        SelectiveDenseAttention(16, target=2)
    with pytest.raises(ValueError, match=r"kernel_size=4: expected an odd int >= 1"):
        SelectiveDenseAttention(16, kernel_size=4)
