"""DLGSANet's SparseGSA (arXiv 2301.02031): the official ``SparseAttention`` and Restormer's MDTA
(tests/official_dlgsanet.py) with their ``state_dict`` loaded into the layer; top_k = D with softmax is dense
softmax attention over the channels; ReLU keeps exactly the positive similarities, unnormalised; top_k keeps at
most top_k per query channel, ties to the lower channel; pixel-permutation equivariance; the layer in the ViT. The
registry-wide contract (tests/test_contract.py) compares the implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from official_comparison import assert_layer_matches_official, close, randn
from official_dlgsanet import OfficialSparseAttention

from attnzoo.layers import SparseGlobalAttention
from attnzoo.models import VisionTransformer
from attnzoo.ops import softmax_attention, sparse_global_attention

IMPLS = ["gram", "reference"]


def attention_matrix(q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor, impl: str, **options) -> torch.Tensor:
    """The ``(B, H, D, D)`` weights the op applies: with the value the ``N x D`` identity (``N >= D`` pixels),
    ``O_{n,i} = A_{i,n}`` for ``n < D``."""
    n, d = q.shape[-2:]
    eye = torch.eye(n, d, dtype=q.dtype).expand(*q.shape[:2], n, d)
    return sparse_global_attention(q, k, eye, temperature, impl=impl, **options)[..., :d, :].transpose(-1, -2)


@pytest.mark.parametrize("activation", ["relu", "softmax"])
@pytest.mark.parametrize(("dim", "heads", "grid"), [(48, 6, (12, 10)), (16, 2, (5, 7)), (8, 8, (1, 1))])
def test_layer_loads_the_official_state_dict(activation: str, dim: int, heads: int, grid: tuple[int, int]) -> None:
    """``relu``: the official ``SparseAttention``; ``softmax``: Restormer's ``Attention`` (MDTA). Temperatures
    are perturbed from their initial ones, so that they matter."""
    torch.manual_seed(0)
    official = OfficialSparseAttention(dim, heads, activation=activation, tlc_flag=False).double()
    with torch.no_grad():
        official.temperature.copy_(randn(heads, 1, 1, seed=7).abs() + 0.5)
    ours = SparseGlobalAttention(dim, heads, activation=activation).double()
    ours.load_state_dict(official.state_dict())  # the official parameter names, strict
    assert_layer_matches_official(official, ours, randn(2, dim, *grid).requires_grad_())


@pytest.mark.parametrize(("grid", "tile"), [((20, 30), 12), ((13, 9), 5), ((7, 7), 48), ((48, 10), 48)])
def test_tiled_evaluation_is_the_official_tlc(grid: tuple[int, int], tile: int) -> None:
    """Eval mode with ``tlc_kernel``: the official ``grids`` / attention per tile / ``grids_inverse`` (batch 1,
    as the official code asserts), and each sample of a batch as on its own; training mode does not tile."""
    torch.manual_seed(0)
    official = OfficialSparseAttention(16, 2, tlc_kernel=tile).double().eval()
    ours = SparseGlobalAttention(16, 2, tlc_kernel=tile).double().eval()
    ours.load_state_dict(official.state_dict())
    x = randn(3, 16, *grid)
    out = ours(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    for n in range(3):
        close(out[n:n + 1], official(x[n:n + 1]))
    official.train(), ours.train()
    close(ours(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), official(x))


@pytest.mark.parametrize("impl", IMPLS)
def test_all_similarities_with_softmax_is_dense_attention_over_the_channels(impl: str) -> None:
    """``top_k = D`` and softmax: softmax attention whose tokens are the ``D`` channels, their features the
    normalised columns over the ``N`` pixels, scale ``τ``."""
    q, k, v = randn(2, 3, 40, 6, seed=1), randn(2, 3, 40, 6, seed=2), randn(2, 3, 40, 6, seed=3)
    temperature = torch.tensor([0.5, 1.0, 2.5], dtype=torch.float64)
    out = sparse_global_attention(q, k, v, temperature, top_k=6, activation="softmax", impl=impl)
    qt, kt = (F.normalize(t, dim=2).transpose(-1, -2) for t in (q, k))  # (B, H, D, N): channels as tokens
    vt = v.transpose(-1, -2)
    for h in range(3):
        expected = softmax_attention(qt[:, h:h + 1], kt[:, h:h + 1], vt[:, h:h + 1], scale=temperature[h].item(),
                                     impl="reference")
        close(out[:, h:h + 1], expected.transpose(-1, -2))


@pytest.mark.parametrize("impl", IMPLS)
def test_relu_keeps_exactly_the_positive_similarities_unnormalised(impl: str) -> None:
    q, k = randn(2, 2, 8, 8, seed=1), randn(2, 2, 8, 8, seed=2)
    temperature = torch.tensor([1.5, 0.5], dtype=torch.float64)
    weights = attention_matrix(q, k, temperature, impl)
    similarity = F.normalize(q, dim=2).transpose(-1, -2) @ F.normalize(k, dim=2) * temperature[:, None, None]
    assert (weights >= 0).all() and torch.equal(weights == 0, similarity <= 0)
    close(weights, similarity.clamp_min(0))
    assert not torch.allclose(weights.sum(-1), torch.ones(2, 2, 8, dtype=torch.float64))  # rows do not sum to 1


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("activation", ["relu", "softmax"])
def test_top_k_keeps_at_most_top_k_similarities_per_query_channel(impl: str, activation: str) -> None:
    q, k = randn(1, 2, 10, 10, seed=1), randn(1, 2, 10, 10, seed=2)
    temperature = torch.ones(2, dtype=torch.float64)
    weights = attention_matrix(q, k, temperature, impl, top_k=3, activation=activation)
    similarity = F.normalize(q, dim=2).transpose(-1, -2) @ F.normalize(k, dim=2)
    kept = similarity >= similarity.topk(3, dim=-1).values[..., -1:]
    assert ((weights != 0) <= kept).all() and ((weights != 0).sum(-1) <= 3).all()
    if activation == "softmax":
        close(weights, torch.softmax(similarity.masked_fill(~kept, float("-inf")), dim=-1))
    else:
        close(weights, similarity.clamp_min(0) * kept)


@pytest.mark.parametrize("impl", IMPLS)
def test_tied_similarities_go_to_the_lower_channel(impl: str) -> None:
    """Key channels 1, 3 and 4 are the same column: equal similarities; top_k = 2 keeps channel 1 and then 3."""
    q = randn(1, 1, 12, 5, seed=1)
    k = randn(1, 1, 12, 5, seed=2)
    k[..., 3] = k[..., 1]
    k[..., 4] = k[..., 1]
    q[..., 0] = k[..., 1]  # query channel 0 is most similar to the three tied key channels
    weights = attention_matrix(q, k, torch.ones(1, dtype=torch.float64), impl, top_k=2, activation="softmax")
    assert weights[0, 0, 0].nonzero().flatten().tolist() == [1, 3]


@pytest.mark.parametrize("impl", IMPLS)
def test_pixel_permutations_commute_with_the_op(impl: str) -> None:
    q, k, v = randn(2, 2, 30, 4, seed=1), randn(2, 2, 30, 4, seed=2), randn(2, 2, 30, 4, seed=3)
    temperature = torch.tensor([1.0, 2.0], dtype=torch.float64)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(5))
    out = sparse_global_attention(q, k, v, temperature, top_k=2, impl=impl)
    permuted = sparse_global_attention(q[:, :, perm], k[:, :, perm], v[:, :, perm], temperature, top_k=2, impl=impl)
    close(permuted, out[:, :, perm])


def test_builds_in_the_vit_from_the_registry() -> None:
    model = VisionTransformer(mixer="sparsegsa", dim=32, depth=2, mixer_kwargs={"top_k": 2})
    logits = model(torch.randn(2, 1, 28, 28))
    logits.sum().backward()
    assert logits.shape == (2, 10) and model.blocks[0].mixer.top_k == 2
