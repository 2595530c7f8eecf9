"""Sparsifiner (arXiv 2303.13755): keep ratio 1 is dense attention; the connectivity mask (exactly ``top_k`` keys
per predicted row, the class-token row full, ties to the lower key index, blockwise selection equal to a full
stable sort); the masked softmax is the dense one renormalised over the kept keys; no gradient reaches the
predictor through the mask; the official ``Attention`` + ``MaskPredictor`` (tests/official_sparsifiner.py) on
copied weights, forward, mask and reconstruction loss; the in-loop self-distillation; the layer in a ViT; the
blocked path's memory. The registry-wide contract (tests/test_contract.py) compares the implementations."""

from __future__ import annotations

import math

import pytest
import torch
from official_sparsifiner import OfficialAttention, official_attn_recon_loss, official_cfg

import attnzoo
from attnzoo.bench.memory import peak_allocated_bytes
from attnzoo.layers import SoftmaxAttention, SparsifinerAttention
from attnzoo.models import VisionTransformer
from attnzoo.ops import softmax_attention, sparsifiner_attention, sparsifiner_distillation_loss
from attnzoo.ops.sparsifiner.connectivity import block_rows, connectivity_indices
from attnzoo.ops.sparsifiner.reference import connectivity_mask
from attnzoo.ops.topk import _rank_keys, top_k_indices

IMPLS = ["blocked", "reference"]


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-12) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def stable_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The obvious selection: a stable descending sort, the first ``k``, ascending."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k].sort(-1).values


# ---- the deterministic top-k ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 7, 99, 100])
@pytest.mark.parametrize("values", ["continuous", "tied", "constant"])
def test_top_k_is_a_stable_sort_prefix(k: int, values: str) -> None:
    scores = {"continuous": randn(3, 50, 100), "tied": randn(3, 50, 100).round(),
              "constant": torch.zeros(3, 50, 100)}[values]
    expected = stable_top_k(scores, k)
    assert torch.equal(top_k_indices(scores, k), expected)
    # the exact ranking the compiled route uses for every row
    assert torch.equal(_rank_keys(scores, k).topk(k, dim=-1).indices.sort(-1).values, expected)


def test_top_k_ranks_nan_lowest_and_keeps_infinities() -> None:
    scores = torch.tensor([[1.0, float("nan"), float("-inf"), 5.0, float("inf"), float("nan")]])
    assert top_k_indices(scores, 3).tolist() == [[0, 3, 4]]
    assert top_k_indices(scores, 4).tolist() == [[0, 2, 3, 4]]  # -inf above NaN
    assert top_k_indices(scores, 5).tolist() == [[0, 1, 2, 3, 4]]  # then the lower-index NaN


def test_top_k_under_compile_matches_eager() -> None:
    scores = randn(2, 30, 40).round()
    compiled = torch.compile(top_k_indices, fullgraph=True, backend="eager")
    assert torch.equal(compiled(scores, 9), top_k_indices(scores, 9))


# ---- the connectivity mask -----------------------------------------------------------------------------------------

def integer_connectivity(b: int, h: int, rows: int, rank: int, n: int, levels: int, seed: int = 0):
    """Small-integer coefficients and basis: ``coef @ basis`` is exact in any summation order, with ties."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 3, (b, h, rows, rank), generator=g).double(),
            torch.randint(0, levels, (rank, n), generator=g).double())


@pytest.mark.parametrize("levels", [2, 1000])
def test_blockwise_selection_equals_a_full_stable_sort(levels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import attnzoo.ops.sparsifiner.connectivity as connectivity

    monkeypatch.setattr(connectivity, "BLOCK_ELEMENTS", 2 * 3 * 7 * 90)  # 7 rows per block: 13 blocks
    coef, basis = integer_connectivity(2, 3, 89, 4, 90, levels)
    assert block_rows(6, 90, 89) == 7
    for k in (1, 9, 90):
        assert torch.equal(connectivity_indices(coef, basis, k), stable_top_k(coef @ basis, k))


def test_every_predicted_row_keeps_exactly_top_k_keys_and_the_class_row_all() -> None:
    coef, basis = integer_connectivity(2, 2, 29, 3, 30, 2)
    mask = connectivity_mask(connectivity_indices(coef, basis, 8), 30, global_queries=1)
    assert mask[:, :, 0].all()
    assert (mask[:, :, 1:].sum(-1) == 8).all()


# ---- the attention -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("global_queries", [0, 1])
def test_keeping_every_key_is_dense_attention(impl: str, global_queries: int) -> None:
    q, k, v = randn(2, 3, 37, 8, seed=1), randn(2, 3, 37, 8, seed=2), randn(2, 3, 37, 5, seed=3)
    coef, basis = randn(2, 3, 37 - global_queries, 4).softmax(-1), randn(4, 37).abs()
    out = sparsifiner_attention(q, k, v, coef, basis, 37, global_queries=global_queries, impl=impl)
    close(out, softmax_attention(q, k, v, impl="reference"))


def test_keep_rate_one_layer_is_dense_softmax_attention() -> None:
    layer = SparsifinerAttention(24, 3, 20, attn_keep_rate=1.0, class_token=True).double().eval()
    dense = SoftmaxAttention(24, 3, is_causal=False).double()
    dense.load_state_dict({name: p for name, p in layer.state_dict().items() if name.startswith(("qkv", "proj."))})
    x = randn(2, 20, 24)
    close(layer(x), dense(x))


@pytest.mark.parametrize("impl", IMPLS)
def test_masked_softmax_is_the_dense_softmax_renormalised_over_the_kept_keys(impl: str) -> None:
    q, k, v = randn(1, 2, 30, 6, seed=1), randn(1, 2, 30, 6, seed=2), torch.eye(30, dtype=torch.float64)
    coef, basis = randn(1, 2, 29, 5).softmax(-1), randn(5, 30).abs()
    weights = sparsifiner_attention(q, k, v.expand(1, 2, 30, 30), coef, basis, 7, global_queries=1, impl=impl)
    mask = connectivity_mask(connectivity_indices(coef, basis, 7), 30, 1)
    dense = torch.softmax(q @ k.transpose(-1, -2) / 6 ** 0.5, dim=-1)
    close(weights, dense * mask / (dense * mask).sum(-1, keepdim=True))


@pytest.mark.parametrize("impl", IMPLS)
def test_no_gradient_reaches_the_predictor_through_the_mask(impl: str) -> None:
    q, k, v = (randn(1, 2, 12, 4, seed=s).requires_grad_() for s in range(3))
    coef = randn(1, 2, 12, 3).softmax(-1).requires_grad_()
    basis = randn(3, 12).requires_grad_()
    out = sparsifiner_attention(q, k, v, coef, basis, 4, impl=impl)
    grads = torch.autograd.grad(out.sum(), (q, k, v, coef, basis), allow_unused=True)
    assert all(g is not None for g in grads[:3]) and grads[3] is None and grads[4] is None


def test_bad_budget_errors_name_the_value_and_the_length() -> None:
    q = randn(1, 1, 10, 4)
    coef, basis = randn(1, 1, 10, 2), randn(2, 10)
    with pytest.raises(ValueError, match=r"top_k=11: expected at most the number of keys N=10"):
        sparsifiner_attention(q, q, q, coef, basis, 11)
    with pytest.raises(ValueError, match=r"top_k=0: expected an int >= 1"):
        sparsifiner_attention(q, q, q, coef, basis, 0)
    with pytest.raises(ValueError, match=r"attn_keep_rate=1.01: expected a real number in \(0, 1\]"):
        SparsifinerAttention(8, 2, 10, attn_keep_rate=1.01)
    layer = SparsifinerAttention(8, 2, 10)
    assert layer.top_k == 3  # ceil(0.25 * 10), the official budget
    with pytest.raises(ValueError, match=r"expected \(B, N, C\) with N = seq_len = 10"):
        layer(torch.randn(1, 11, 8))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("where", ["key", "value"])
def test_a_nan_key_or_value_reaches_exactly_the_queries_that_selected_it(impl: str, where: str) -> None:
    q, k, v = randn(1, 2, 40, 4, seed=1), randn(1, 2, 40, 4, seed=2), randn(1, 2, 40, 4, seed=3)
    coef, basis = randn(1, 2, 39, 3).softmax(-1), randn(3, 40).abs()
    clean = sparsifiner_attention(q, k, v, coef, basis, 6, global_queries=1, impl=impl)
    poisoned = {"key": k, "value": v}[where].clone()
    poisoned[0, 1, 17, 2] = float("nan")
    inputs = {"key": k, "value": v, where: poisoned}
    out = sparsifiner_attention(q, inputs["key"], inputs["value"], coef, basis, 6, global_queries=1, impl=impl)
    sees = connectivity_mask(connectivity_indices(coef, basis, 6), 40, 1)[0, 1, :, 17]
    assert sees[0] and not sees.all()
    expected = torch.zeros_like(out, dtype=torch.bool)
    expected[0, 1, sees] = True if where == "key" else torch.tensor([False, False, True, False])
    assert torch.equal(out.isnan(), expected)
    close(out[~expected], clean[~expected])


# ---- the official code ---------------------------------------------------------------------------------------------

def copied_layers(keep: float = 0.25, basis_threshold: float = 0.0, coef_top_k: int | None = None,
                  use_attn_recon: bool = False) -> tuple[SparsifinerAttention, OfficialAttention]:
    """Ours (class token) and the official module, the official weights copied into ours; N = 50, K = 6."""
    torch.manual_seed(0)
    cfg = official_cfg(basis_threshold, coef_top_k, use_attn_recon)
    official = OfficialAttention(48, 50, 6, keep, reduce_n_factor=8, reduce_c_factor=2, cfg=cfg).double()
    ours = SparsifinerAttention(48, 6, 50, keep, 8, 2, class_token=True, basis_threshold=basis_threshold,
                                coef_top_k=coef_top_k).double()
    predictor = official.mask_predictor
    ours.load_state_dict({"qkv.weight": official.qkv.weight, "qkv.bias": official.qkv.bias,
                          "proj.weight": official.proj.weight, "proj.bias": official.proj.bias,
                          **{f"{name}.{p}": getattr(getattr(predictor, name), p)
                             for name in ("proj_c_q", "proj_c_k") for p in ("weight", "bias")},
                          "proj_n": predictor.proj_n, "proj_back_n": predictor.proj_back_n})
    return ours, official


@pytest.mark.parametrize("keep", [0.1, 0.25, 0.5, 1.0])
@pytest.mark.parametrize(("basis_threshold", "coef_top_k"), [(0.0, None), (0.005, 4)])
def test_matches_the_official_attention_on_copied_weights(keep: float, basis_threshold: float,
                                                          coef_top_k: int | None) -> None:
    """Eval mode (the official mask path: ``|proj_back_n|`` thresholded, coefficients top-k'd), class token. The
    threshold zeroes few enough basis entries that no row has a tie at its ``top_k``-th key, where
    ``torch.topk``'s choice is unspecified."""
    ours, official = copied_layers(keep, basis_threshold, coef_top_k)
    ours.eval(), official.eval()
    x = randn(3, 50, 48)
    expected = official(x)
    close(ours(x), expected["x"], atol=1e-11)
    q, k, _ = ours.qkv_heads(x)
    indices = connectivity_indices(ours.mask_coefficients(ours.coefficients(q, k)), ours.mask_basis(), ours.top_k)
    assert torch.equal(connectivity_mask(indices, 50, 1), expected["attn_mask"].bool())


def test_training_forward_matches_the_official_sparse_path() -> None:
    """In training mode (``USE_ATTN_RECON`` off: the official layer attends sparsely) the output is the same; the
    in-loop self-distillation only adds to the backward."""
    ours, official = copied_layers(0.25)
    x = randn(2, 50, 48)
    close(ours(x), official(x)["x"], atol=1e-11)


def test_distillation_loss_is_the_official_reconstruction_loss() -> None:
    """The official reconstruction phase (training, ``USE_ATTN_RECON``): ``approx_attn`` from the signed basis,
    summed squared error against a teacher's attention rows 1:, averaged over layers."""
    ours, official = copied_layers(use_attn_recon=True)
    x = randn(2, 50, 48)
    teacher = randn(2, 6, 50, 50, seed=5).softmax(-1)
    expected = official_attn_recon_loss([official(x)["approx_attn"]], [teacher])
    close(ours.distillation_loss(x, teacher), expected, atol=1e-10)
    # without a teacher: the layer's own dense attention (the official unmasked_attn), detached
    close(ours.distillation_loss(x), official_attn_recon_loss([official(x)["approx_attn"]],
                                                              [official(x)["unmasked_attn"].detach()]), atol=1e-10)


def test_distillation_loss_function_checks_its_shapes() -> None:
    coef, basis, attention = randn(1, 2, 9, 3), randn(3, 10), randn(1, 2, 10, 10)
    close(sparsifiner_distillation_loss(coef, basis, attention, global_queries=1, reduction="mean"),
          ((coef @ basis - attention[:, :, 1:]) ** 2).mean())
    with pytest.raises(ValueError, match=r"coef has shape \(1, 2, 9, 3\); expected .* \(1, 2, 10, 3\)"):
        sparsifiner_distillation_loss(coef, basis, attention)
    with pytest.raises(ValueError, match="reduction='max'"):
        sparsifiner_distillation_loss(coef, basis, attention, global_queries=1, reduction="max")


# ---- training the predictor inside any loss ------------------------------------------------------------------------

def test_in_loop_self_distillation_adds_the_weighted_loss_to_the_backward() -> None:
    """Training mode: the predictor's gradients are those of ``distill_weight · distillation_loss(x)``; the other
    parameters get the task loss's plus that term's; eval mode and ``distill_weight=0`` give the predictor none."""
    layer = SparsifinerAttention(16, 2, 12, distill_weight=0.3).double()
    x = randn(2, 12, 16)
    out = layer(x)
    task = (out * randn(*out.shape, seed=4)).sum()
    named = dict(layer.named_parameters())
    grads = dict(zip(named, torch.autograd.grad(task, list(named.values()), allow_unused=True)))
    layer.eval()
    plain = dict(zip(named, torch.autograd.grad((layer(x) * randn(*out.shape, seed=4)).sum(), list(named.values()),
                                                allow_unused=True)))
    distill = dict(zip(named, torch.autograd.grad(0.3 * layer.distillation_loss(x), list(named.values()),
                                                  allow_unused=True)))
    for name in named:
        expected = sum(g for g in (plain[name], distill[name]) if g is not None)
        close(grads[name], expected, atol=1e-10)
    assert plain["proj_n"] is None and plain["proj_c_q.weight"] is None
    assert distill["proj.weight"] is None and distill["proj_n"] is not None


def test_builds_in_the_vit_from_the_registry() -> None:
    model = VisionTransformer(mixer="sparsifiner_attention", dim=32, depth=2)
    assert model.blocks[0].mixer.seq_len == 49 and model.blocks[0].mixer.top_k == 13
    logits = model(torch.randn(2, 1, 28, 28))
    logits.sum().backward()
    assert logits.shape == (2, 10)
    assert attnzoo.create("sparsifiner").top_k == 4


# ---- memory --------------------------------------------------------------------------------------------------------

def test_blocked_path_never_holds_an_n_by_n_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward + backward at N = 2048 with 10% of the keys, blocks of 2^18 scores: the peak of live torch memory
    stays below half of one ``(H, N, N)`` float32 score matrix (the reference holds several)."""
    import attnzoo.ops.sparsifiner.connectivity as connectivity

    monkeypatch.setattr(connectivity, "BLOCK_ELEMENTS", 2**18)
    h, n, d = 2, 2048, 16
    q, k, v = (torch.randn(1, h, n, d, requires_grad=True) for _ in range(3))
    coef, basis = torch.rand(1, h, n, 8).softmax(-1), torch.rand(8, n)
    top_k = math.ceil(0.1 * n)

    def step(impl: str) -> None:
        sparsifiner_attention(q, k, v, coef, basis, top_k, impl=impl).sum().backward()

    scores_bytes = h * n * n * 4
    assert peak_allocated_bytes(lambda: step("blocked")) < scores_bytes / 2
    assert peak_allocated_bytes(lambda: step("reference")) > 2 * scores_bytes
