"""RSQ (arXiv 2503.01820): the catalog's reductions and identities (uniform importance = GPTQ bit for bit,
scale invariance, the weighted-loss identity, zero-importance tokens dropping out, Σ r = h·T), the randomized
Hadamard rotation (H Hᵀ = n I, the fast transform against the dense matrix, whole-model exactness in float64),
and RSQ end to end on a tiny Hugging Face BERT (a copy, rotated and frozen layers, bad input)."""

from __future__ import annotations

import math

import pytest
import torch

from attnzoo.quant import Granularity, QuantLinear, UniformQuantizer, pack, weight_only
from attnzoo.quant.methods import GPTQOptions, HessianAccumulator, calibration_loss, gptq, gptq_quantize
from attnzoo.quant.methods.hadamard import RandomizedHadamard, hadamard_factor, hadamard_matrix
from attnzoo.quant.methods.rsq import attention_concentration, attention_received, rotate, rsq

transformers = pytest.importorskip("transformers")


def tiny_bert(dtype: torch.dtype = torch.float32):
    config = transformers.BertConfig(vocab_size=64, hidden_size=48, num_hidden_layers=1, num_attention_heads=4,
                                     intermediate_size=96, max_position_embeddings=32)
    torch.manual_seed(0)
    return transformers.BertModel(config, add_pooling_layer=False).to(dtype).eval()


def padded_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    return {"input_ids": torch.randint(1, 64, (3, 12), generator=g), "attention_mask": mask}


@pytest.mark.parametrize("n", [1, 2, 12, 20, 48, 64, 96, 384, 576, 1536])
def test_hadamard_matrices_are_hadamard_and_the_fast_transform_is_the_dense_rotation(n: int) -> None:
    h = hadamard_matrix(n)
    assert torch.equal(h @ h.t(), n * torch.eye(n, dtype=torch.float64)) and bool((h.abs() == 1).all())
    rot = RandomizedHadamard(n, seed=n)
    q = rot.matrix()
    torch.testing.assert_close(q @ q.t(), torch.eye(n, dtype=torch.float64), rtol=0, atol=1e-12)
    x = torch.randn(3, 5, n, dtype=torch.float64)
    torch.testing.assert_close(rot(x), x @ q, rtol=0, atol=1e-12)


def test_unsupported_hadamard_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="no Hadamard matrix of order 36"):
        hadamard_factor(36)
    with pytest.raises(ValueError, match="last axis must be 12"):
        RandomizedHadamard(12)(torch.randn(2, 11))


def test_rotated_model_equals_the_original_in_float64() -> None:
    model = tiny_bert(torch.float64)
    batch = padded_batch()
    rotated = rotate(model, seed=3)
    layers = [m for m in rotated.modules() if isinstance(m, QuantLinear)]
    assert len(layers) == 6 and all(m.input_transform is not None for m in layers)
    with torch.no_grad():
        expected, got = model(**batch).last_hidden_state, rotated(**batch).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert not torch.equal(layers[0].weight, model.encoder.layer[0].attention.self.query.weight)


def test_attention_received_sums_to_heads_times_real_tokens() -> None:
    model = tiny_bert()
    batch = padded_batch()
    eager = rotate(model)  # any copy; attentions from an eager copy
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        maps = eager(**batch, output_attentions=True).attentions
    r = attention_received(maps[0], batch["attention_mask"])
    torch.testing.assert_close(r.sum(dim=1), 4.0 * batch["attention_mask"].sum(dim=1).float(), rtol=1e-5, atol=0)
    assert bool((r[batch["attention_mask"] == 0] == 0).all())
    imp = attention_concentration(maps[0], batch["attention_mask"])
    real = imp[batch["attention_mask"] == 1]
    assert real.min().item() == pytest.approx(0.005) and real.max().item() == pytest.approx(1.0)


def weighted_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 30, 16, generator=g, dtype=torch.float64) @ torch.randn(16, 16, generator=g,
                                                                               dtype=torch.float64)
    return x, torch.rand(2, 30, generator=g, dtype=torch.float64) + 0.01


def test_uniform_importance_is_gptq_bit_for_bit() -> None:
    x, _ = weighted_inputs(0)
    plain, ones = HessianAccumulator(16), HessianAccumulator(16)
    plain.add(x.float())
    ones.add(x.float(), torch.ones(2, 30))
    assert torch.equal(plain.hessian, ones.hessian)
    model = tiny_bert()
    batches = [padded_batch(0), padded_batch(1)]
    recipe = weight_only(UniformQuantizer(3, granularity=Granularity.per_row()))
    a = gptq(model, recipe, batches, sequential=False)
    b = rsq(model, recipe, batches, rotate_inputs=False, sequential=False, attentions=lambda m, batch: [
        torch.full((3, 4, 12, 12), 1 / 12.0)])  # every token receives the same attention: uniform importance
    for la, lb in zip(a.modules(), b.modules()):
        if isinstance(la, QuantLinear):
            assert torch.equal(la.weight, lb.weight)


def test_importance_scale_invariance_identity_and_dropped_tokens() -> None:
    x, r = weighted_inputs(1)
    base, four, three = (HessianAccumulator(16, torch.float64) for _ in range(3))
    base.add(x, r)
    four.add(x, 4 * r)
    three.add(x, 3 * r)
    assert torch.equal(base.hessian, four.hessian)
    torch.testing.assert_close(three.hessian, base.hessian, rtol=1e-12, atol=0)
    # Σ_t r̃_t ‖(W − Q) x_t‖² = (n / 2) tr((W − Q) H (W − Q)ᵀ), n = 2 sequences, r̃ = r · T / Σ r per sequence
    g = torch.Generator().manual_seed(2)
    w = torch.randn(8, 16, generator=g, dtype=torch.float64)
    q = gptq_quantize(w, base.hessian, UniformQuantizer(4, granularity=Granularity.per_row())).weight
    normalized = r * (30 / r.sum(dim=1, keepdim=True))
    lhs = (normalized * (((w - q) @ x.transpose(1, 2)) ** 2).sum(dim=1)).sum()
    torch.testing.assert_close(lhs, calibration_loss(w, q, base.hessian) * 2 / 2, rtol=1e-10, atol=0)
    # tokens with weight 0 drop out: the Hessian of the others (same sequence count)
    keep = torch.ones(2, 30, dtype=torch.float64)
    keep[:, 20:] = 0
    dropped, kept = HessianAccumulator(16, torch.float64), HessianAccumulator(16, torch.float64)
    dropped.add(x, keep)
    kept.add(x[:, :20])
    torch.testing.assert_close(dropped.hessian, kept.hessian, rtol=1e-12, atol=1e-12)


def test_rsq_on_a_tiny_bert_is_a_rotated_frozen_copy() -> None:
    model = tiny_bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [padded_batch(0), padded_batch(1)]
    recipe = weight_only(UniformQuantizer(4, symmetric=False, granularity=Granularity.per_group(16)))
    q = rsq(model, recipe, batches, options=GPTQOptions(act_order=True, static_groups=True))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    layers = [m for m in q.modules() if isinstance(m, QuantLinear)]
    assert len(layers) == 6 and all(m.input_transform is not None and m.weight_params is not None for m in layers)
    test = padded_batch(5)
    with torch.no_grad():
        exact, got = model(**test).last_hidden_state, q(**test).last_hidden_state
        assert torch.equal(pack(q)(**test).last_hidden_state, got)
    assert float((got - exact).norm() / exact.norm()) < 0.3
    with pytest.raises(ValueError, match="min_value=2"):
        attention_concentration(torch.ones(1, 1, 2, 2), min_value=2.0)
    with pytest.raises(ValueError, match="mask has shape"):
        attention_received(torch.ones(1, 1, 2, 2), torch.ones(1, 3))
    assert math.isfinite(float(got.sum()))
