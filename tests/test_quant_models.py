"""attnzoo.quant.quantize on whole models: attnzoo's CausalLanguageModel and VisionTransformer, tiny random
Hugging Face LlamaForCausalLM / BertModel / GPT2LMHeadModel (Conv1D), recipes by glob, packing, and the
guarantees: the input model is never modified (also when quantization fails part-way), and bad recipes and
calibration data fail with clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnzoo.models import CausalLanguageModel, VisionTransformer
from attnzoo.quant import (
    ActivationSpec,
    FloatQuantizer,
    Granularity,
    MinMaxObserver,
    PackedLinear,
    QuantLinear,
    Recipe,
    Rule,
    RunningMinMaxObserver,
    TernaryQuantizer,
    UniformQuantizer,
    pack,
    quantizable_layers,
    quantize,
    storage_bytes,
    weight_only,
    weights_and_activations,
)

W8 = UniformQuantizer(8, granularity=Granularity.per_row())
A8 = UniformQuantizer(8, symmetric=False)


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [f"{n}:{type(m).__name__}:{len(m._forward_hooks)}:{len(m._forward_pre_hooks)}"
             for n, m in model.named_modules()])


def assert_unchanged(model: nn.Module, before: tuple[dict[str, torch.Tensor], list[str]]) -> None:
    state, structure = snapshot(model)
    assert structure == before[1]
    assert state.keys() == before[0].keys() and all(torch.equal(state[k], before[0][k]) for k in state)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_w8a8_on_the_causal_lm_keeps_the_tie_and_the_original() -> None:
    torch.manual_seed(0)
    model = CausalLanguageModel(vocab_size=50, dim=32, num_layers=2).eval()
    tokens = torch.randint(0, 50, (4, 24))
    before = snapshot(model)
    recipe = weights_and_activations(W8, A8, RunningMinMaxObserver(), outputs=True)  # the head too (tied)
    q = quantize(model, recipe, calibration=[tokens[:2], tokens[2:]])
    assert_unchanged(model, before)
    assert sum(isinstance(m, QuantLinear) for m in q.modules()) == len(quantizable_layers(model)) == 9
    assert q.head.weight is q.token_embedding.weight  # still tied in the copy; the embedding stays float
    assert torch.equal(q.token_embedding.weight, model.token_embedding.weight)
    with torch.no_grad():
        assert relative_error(q(tokens), model(tokens)) < 0.05
    assert not q.training or model.training


def test_weight_only_int4_groups_and_dynamic_activations_on_the_vit() -> None:
    torch.manual_seed(1)
    model = VisionTransformer(dim=32, depth=2).eval()
    images = torch.rand(3, 1, 28, 28)
    w4 = UniformQuantizer(4, symmetric=False, granularity=Granularity.per_group(16))
    per_token = ActivationSpec(UniformQuantizer(8, granularity=Granularity.per_row()))
    q = quantize(model, Recipe((Rule("blocks.*", weight=w4, input=per_token),), skip=("head",)))
    kinds = {n: type(m).__name__ for n, m in q.named_modules() if n in quantizable_layers(model)}
    assert kinds["head"] == "Linear" and all(v == "QuantLinear" for k, v in kinds.items() if k != "head")
    with torch.no_grad():
        err4 = relative_error(q(images), model(images))
        w2 = quantize(model, weight_only(UniformQuantizer(2, granularity=Granularity.per_row()), skip=["head"]))
        err2 = relative_error(w2(images), model(images))
    assert err4 < 0.2 and err4 < err2


def test_first_matching_rule_wins_and_skip_overrides() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 4))
    ternary, fp4 = TernaryQuantizer(), FloatQuantizer(4, exponent_bits=2)
    q = quantize(model, Recipe((Rule("1", weight=ternary), Rule("*", weight=fp4)), skip=("2",)))
    assert q[0].weight_quantizer == fp4 and q[1].weight_quantizer == ternary and isinstance(q[2], nn.Linear)


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")


def test_hf_llama_w8a8_with_tokenizer_style_batches(transformers) -> None:
    torch.manual_seed(2)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(config).eval()
    before = snapshot(model)
    batches = [{"input_ids": torch.randint(0, 64, (2, 16)), "attention_mask": torch.ones(2, 16, dtype=torch.long)}
               for _ in range(3)]
    q = quantize(model, weights_and_activations(W8, A8, RunningMinMaxObserver(), skip=["lm_head"]), batches)
    assert_unchanged(model, before)
    assert sum(isinstance(m, QuantLinear) for m in q.modules()) == 2 * 7  # q, k, v, o, gate, up, down
    assert isinstance(q.lm_head, nn.Linear)
    ids = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        assert relative_error(q(input_ids=ids).logits, model(input_ids=ids).logits) < 0.05
        packed = pack(q)
        assert torch.equal(packed(input_ids=ids).logits, q(input_ids=ids).logits)
    sizes = storage_bytes(packed)
    linear_params = sum(m.weight.numel() for m in q.modules() if isinstance(m, QuantLinear))
    assert sizes["packed"] == linear_params + sum(
        m.scale.numel() * 4 for m in packed.modules() if isinstance(m, PackedLinear))
    assert sizes["total"] < storage_bytes(model)["total"]


def test_hf_bert_and_gpt2_conv1d(transformers) -> None:
    torch.manual_seed(3)
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=32)).eval()
    ids = torch.randint(0, 64, (2, 12))
    q = quantize(bert, weights_and_activations(W8, A8, MinMaxObserver(), pattern="encoder.*"), [(ids,)])
    with torch.no_grad():
        assert relative_error(q(ids).last_hidden_state, bert(ids).last_hidden_state) < 0.05
    assert isinstance(q.pooler.dense, nn.Linear)  # outside "encoder.*"
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4,
                                                                 n_positions=32)).eval()
    conv1d = [n for n, m in gpt2.named_modules() if type(m).__name__ == "Conv1D"]
    assert len(conv1d) == 8
    q2 = quantize(gpt2, weight_only(UniformQuantizer(8, granularity=Granularity.per_row()), pattern="transformer.*"))
    assert all(isinstance(q2.get_submodule(n), QuantLinear) and q2.get_submodule(n).transposed for n in conv1d)
    with torch.no_grad():
        assert relative_error(q2(ids).logits, gpt2(ids).logits) < 0.05


def test_recipe_patterns_that_match_nothing_list_the_near_matches() -> None:
    model = CausalLanguageModel(vocab_size=20, dim=16, num_layers=2)
    with pytest.raises(ValueError, match=r"recipe pattern 'blocks.\*.mlp.5' matches no quantizable layer .*"
                                         r"near matches: \[.*'blocks.0.mlp.0'"):
        quantize(model, weight_only(W8, pattern="blocks.*.mlp.5"))
    with pytest.raises(ValueError, match=r"'haed' matches no quantizable layer.*near matches: \['head'\]"):
        quantize(model, weight_only(W8, skip=["haed"]))
    with pytest.raises(ValueError, match="'encoder.layer.*' matches no quantizable layer.*names include"):
        quantize(model, weight_only(W8, pattern="encoder.layer.*"))
    with pytest.raises(ValueError, match="rule 'head' quantizes nothing"):
        Rule("head")
    with pytest.raises(TypeError, match="expected a non-empty glob pattern"):
        Rule("", weight=W8)
    with pytest.raises(TypeError, match="skip='head': expected a sequence"):
        Recipe((Rule("*", weight=W8),), skip="head")
    with pytest.raises(TypeError, match="recipe must be an attnzoo.quant Recipe"):
        quantize(model, {"*": W8})


def test_a_failure_part_way_leaves_the_model_as_it_was() -> None:
    """Group size 16 divides the first layers' 32 inputs but not the head's 24: the error names the layer, after
    the earlier layers were already swapped in the copy; the input model is untouched."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 5))
    before = snapshot(model)
    recipe = weight_only(UniformQuantizer(4, granularity=Granularity.per_group(16)))
    with pytest.raises(ValueError, match=r"layer '4': group_size=16 does not divide the last axis of a tensor of "
                                         r"shape \(5, 24\) \(24 entries\): expected a divisor of 24"):
        quantize(model, recipe)
    assert_unchanged(model, before)


def test_bad_calibration_data_fails_clearly_and_leaves_the_model_alone() -> None:
    torch.manual_seed(5)
    model = VisionTransformer(dim=16, depth=1).eval()
    before = snapshot(model)
    recipe = weights_and_activations(W8, A8, RunningMinMaxObserver())
    good = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"calibration batch 1 \(tensor of shape \(2, 3, 28, 28\)\) failed in "
                                         r"the model: ValueError: images has shape"):
        quantize(model, recipe, calibration=[good, good.expand(2, 3, 28, 28)])
    with pytest.raises(TypeError, match=r"one tensor of shape \(2, 1, 28, 28\).*pass \[tensor\]"):
        quantize(model, recipe, calibration=good)
    with pytest.raises(ValueError, match=r"calibration ran no batch through \d+ activation quantizer"):
        quantize(model, recipe, calibration=[])
    assert_unchanged(model, before)
    per_channel = weights_and_activations(W8, UniformQuantizer(8, granularity=Granularity.per_channel(-1)),
                                          MinMaxObserver(Granularity.per_channel(-1)))
    q = quantize(model, per_channel, calibration=[good])
    assert q.blocks[0].mlp[0].input_quantizer.scale.shape == (16,)


def test_outputs_quantize_any_module_and_refuse_a_second_quantizer() -> None:
    model = CausalLanguageModel(vocab_size=20, dim=16, num_layers=2).eval()
    spec = ActivationSpec(A8, RunningMinMaxObserver())
    tokens = torch.randint(0, 20, (2, 8))
    q = quantize(model, Recipe((), outputs=(("blocks.?", spec),)), calibration=[tokens])
    assert q.blocks[0].output_quantizer.params is not None and not hasattr(q.blocks[0].mlp, "output_quantizer")
    with pytest.raises(ValueError, match="already has an output quantizer"):
        quantize(model, Recipe((Rule("head", output=spec),), outputs=(("head", spec),)), calibration=[tokens])
    with pytest.raises(ValueError, match="'block.0' matches no module .*near matches"):
        quantize(model, Recipe((), outputs=(("block.0", spec),)))
