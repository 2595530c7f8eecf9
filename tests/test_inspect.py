"""attnzoo.inspect: capturing attention maps without changing the model, Hugging Face attentions, rollout and
flow properties, heat-map plots."""

from __future__ import annotations

import pytest
import torch

import attnzoo
from attnzoo.inspect import (
    attention_flow,
    attention_map_support,
    attention_rollout,
    capture_attention,
    hf_attentions,
    layer_attentions,
    raw_attention_flow,
    token_heat,
)
from attnzoo.inspect.flow import layered_capacities, max_flow, residual_attention
from attnzoo.models.mixers import option_if_taken
from attnzoo.models.vision_transformer import VisionTransformer
from attnzoo.ops.neighborhood.functional import neighborhood_attention_2d


def _vit(mixer: str, mixer_kwargs: dict | None = None) -> VisionTransformer:
    torch.manual_seed(0)
    options = {**option_if_taken(mixer, "num_heads", 2), **(mixer_kwargs or {})}
    return VisionTransformer(mixer=mixer, depth=2, dim=32, mixer_kwargs=options)


# ---- capture ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mixer", ["softmax", "neighborhood_attention_2d", "sliding_window_attention",
                                   "selective_scan_2d"])
def test_capture_leaves_outputs_gradients_and_random_state_bit_identical(mixer: str) -> None:
    """In training mode with attention dropout: the same outputs, gradients and later random draws."""
    options = {"dropout": 0.2} if mixer == "softmax" else {}
    model = _vit(mixer, mixer_kwargs=options).train()
    images = torch.randn(3, 28, 28)

    def step() -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(1)
        out = model(images)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()], torch.rand(4)

    plain = step()
    with capture_attention(model) as captured:
        seen = step()
    assert torch.equal(plain[0], seen[0]) and torch.equal(plain[2], seen[2])
    assert all(torch.equal(a, b) for a, b in zip(plain[1], seen[1]))
    assert bool(captured.maps) == (mixer != "selective_scan_2d")


def test_captured_softmax_weights_equal_the_explicit_softmax() -> None:
    model = _vit("softmax").eval().double()
    images = torch.randn(2, 28, 28, dtype=torch.float64)
    with capture_attention(model) as captured, torch.no_grad():
        model(images)
    layer = model.blocks[0].mixer
    tokens = {}
    layer.register_forward_pre_hook(lambda m, args: tokens.setdefault("x", args[0]))
    with torch.no_grad():
        model(images)
        q, k, _ = layer.qkv(tokens["x"]).view(2, 49, 3, 2, 16).permute(2, 0, 3, 1, 4)
        expected = torch.softmax(q @ k.transpose(-1, -2) * 16 ** -0.5, dim=-1)
    first = captured.by_module()["blocks.0.mixer"][0]
    assert first.variant == "softmax_attention" and first.grid == (49,) and first.covers_grid
    torch.testing.assert_close(first.weights, expected, rtol=0, atol=1e-12)
    assert len(captured.maps) == 2


def test_captured_neighborhood_weights_equal_the_reference_op_and_rows_sum_to_one() -> None:
    model = _vit("neighborhood_attention_2d", mixer_kwargs={"kernel_size": 3}).eval().double()
    images = torch.randn(2, 28, 28, dtype=torch.float64)
    layer = model.blocks[1].mixer
    tokens = {}
    layer.register_forward_pre_hook(lambda m, args: tokens.setdefault("x", args[0]))
    with capture_attention(model) as captured, torch.no_grad():
        model(images)
    with torch.no_grad():
        q, k, v = layer.qkv(tokens["x"]).view(2, 7, 7, 3, 2, 16).permute(3, 0, 4, 1, 2, 5)
        _, expected = neighborhood_attention_2d(q, k, v, 3, rpb=layer.rpb, impl="reference", return_weights=True)
    found = captured.by_module()["blocks.1.mixer"][0]
    assert found.grid == (7, 7)
    torch.testing.assert_close(found.weights, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(found.weights.sum(-1), torch.ones(2, 2, 49, dtype=torch.float64))
    assert int((found.weights[0, 0, 24] > 0).sum()) == 9  # the centre token sees its 3x3 neighbourhood only


def test_hooks_and_swapped_ops_are_removed_after_an_exception() -> None:
    import attnzoo.layers.softmax as softmax_layer_module

    original = softmax_layer_module.softmax_attention
    model = _vit("softmax")
    head = model.head
    model.head = torch.nn.Identity()

    def fail(*_: object) -> None:
        raise RuntimeError("boom")

    model.norm.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        with capture_attention(model):
            model(torch.randn(1, 28, 28))
    assert all(not block.mixer._forward_hooks for block in model.blocks)
    assert softmax_layer_module.softmax_attention is original
    model.head = head


def test_modules_that_are_not_attention_layers_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\['head'\] are not registered attention layers.*blocks.0.mixer"):
        with capture_attention(_vit("softmax"), modules=["head"]):
            pass
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        with capture_attention("vit"):
            pass


def test_mixers_without_maps_say_why() -> None:
    assert attention_map_support("softmax_attention") is None
    assert attention_map_support("neighborhood_attention_2d") is None
    assert "linear / recurrent" in attention_map_support("selective_scan_2d")
    assert "does not return weights" in attention_map_support("linear_attention")
    assert "CNN attention module" in attention_map_support("eca")
    with capture_attention(_vit("selective_scan_2d", mixer_kwargs={"d_state": 1})) as captured:
        pass
    assert sorted(captured.without_maps) == ["blocks.0.mixer", "blocks.1.mixer"]


def test_capture_works_on_a_bare_layer() -> None:
    layer = attnzoo.create("sliding_window_attention", dim=16, num_heads=2, window=3)
    with capture_attention(layer) as captured:
        layer(torch.randn(2, 10, 16))
    (found,) = captured.maps
    assert found.module == "" and found.weights.shape == (2, 2, 10, 10)
    assert torch.all(found.weights.triu(1) == 0)  # causal by default


# ---- rollout and flow ------------------------------------------------------------------------------------------------

def _random_attentions(layers: int, n: int, heads: int = 2, batch: int = 2, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.softmax(3 * torch.randn(batch, heads, n, n, generator=generator, dtype=torch.float64), -1)
            for _ in range(layers)]


def test_rollout_and_flow_of_identity_attention_are_the_identity() -> None:
    eye = torch.eye(6, dtype=torch.float64).expand(2, 3, 6, 6)
    torch.testing.assert_close(attention_rollout([eye] * 3), torch.eye(6, dtype=torch.float64).expand(2, 6, 6))
    torch.testing.assert_close(attention_flow([eye] * 3), torch.eye(6, dtype=torch.float64).expand(2, 6, 6))


def test_rollout_is_at_most_the_raw_flow_which_is_at_most_one() -> None:
    attentions = _random_attentions(3, 5)
    rollout, flow = attention_rollout(attentions), raw_attention_flow(attentions)
    assert torch.all(rollout <= flow + 1e-12) and torch.all(flow <= 1 + 1e-12)
    normalised = attention_flow(attentions)
    torch.testing.assert_close(normalised.sum(-1), torch.ones(2, 5, dtype=torch.float64))


def test_flow_of_one_layer_is_the_rollout() -> None:
    attentions = _random_attentions(1, 6)
    torch.testing.assert_close(attention_flow(attentions), attention_rollout(attentions))
    torch.testing.assert_close(raw_attention_flow(attentions), residual_attention(attentions)[0])


def test_flow_equals_networkx_edmonds_karp_on_the_official_graph() -> None:
    """The official compute_flows: networkx maximum_flow_value (Edmonds-Karp) on get_adjmat's graph."""
    nx = pytest.importorskip("networkx")
    attentions = _random_attentions(3, 4, batch=1, seed=3)
    capacity = layered_capacities(residual_attention(attentions)[:, 0])
    graph = nx.DiGraph()
    for u, row in enumerate(capacity):
        for v, c in enumerate(row):
            if c > 0:
                graph.add_edge(u, v, capacity=c)
    flow = raw_attention_flow(attentions)[0]
    for i in range(4):
        for j in range(4):
            expected = nx.maximum_flow_value(graph, 12 + i, j, flow_func=nx.algorithms.flow.edmonds_karp)
            assert abs(flow[i, j].item() - expected) < 1e-12


def test_max_flow_of_the_textbook_network() -> None:
    """CLRS Fig. 26.1: maximum flow 23."""
    edges = {(0, 1): 16, (0, 2): 13, (1, 3): 12, (2, 1): 4, (2, 4): 14, (3, 2): 9, (3, 5): 20, (4, 3): 7, (4, 5): 4}
    capacity = [[0.0] * 6 for _ in range(6)]
    for (u, v), c in edges.items():
        capacity[u][v] = float(c)
    assert max_flow(capacity, 0, 5) == 23


def test_flow_refuses_large_graphs_and_bad_attentions() -> None:
    with pytest.raises(ValueError, match="graph of 150 nodes; expected at most max_nodes=100"):
        attention_flow(_random_attentions(2, 50, batch=1), max_nodes=100)
    with pytest.raises(ValueError, match="negative entries"):
        attention_flow([-torch.ones(1, 1, 3, 3)])


def test_layer_attentions_feed_rollout_and_token_heat_draws_the_grid() -> None:
    model = _vit("softmax").eval()
    with capture_attention(model) as captured, torch.no_grad():
        model(torch.randn(2, 28, 28))
    heat = token_heat(attention_rollout(layer_attentions(captured)), (7, 7))
    assert heat.shape == (2, 7, 7)
    torch.testing.assert_close(heat.sum((1, 2)), torch.ones(2))
    with pytest.raises(ValueError, match=r"grid=\(6, 6\) has 36 tokens; the rollout has 49"):
        token_heat(attention_rollout(layer_attentions(captured)), (6, 6))
    with pytest.raises(ValueError, match="no captured map covers"):
        layer_attentions([])


# ---- Hugging Face --------------------------------------------------------------------------------------------------

def _tiny_bert(implementation: str):  # noqa: ANN202
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16)
    config._attn_implementation = implementation
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def test_hf_attentions_are_row_stochastic_and_feed_rollout() -> None:
    model = _tiny_bert("eager")
    ids = torch.randint(0, 50, (2, 7))
    attentions = hf_attentions(model, input_ids=ids)
    assert len(attentions) == 2 and attentions[0].shape == (2, 2, 7, 7)
    torch.testing.assert_close(attentions[1].sum(-1), torch.ones(2, 2, 7))
    assert attention_rollout(list(attentions)).shape == (2, 7, 7)


def test_hf_attentions_refuse_a_model_without_probabilities() -> None:
    with pytest.raises(ValueError, match="attention implementation is 'sdpa'; expected 'eager'"):
        hf_attentions(_tiny_bert("sdpa"), input_ids=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="transformers PreTrainedModel"):
        hf_attentions(torch.nn.Linear(2, 2))


# ---- plots -----------------------------------------------------------------------------------------------------------

def test_plots_write_images(tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("matplotlib")
    from attnzoo.inspect.plots import image_grid, pyplot, token_matrix, token_strip

    path = image_grid(torch.rand(28, 28), {"a": torch.rand(7, 7), "b": "no attention map: a linear mixer"},
                      tmp_path / "grid.png", title="t")
    assert path.stat().st_size > 0
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2)
    token_matrix(left, torch.softmax(torch.randn(3, 3), -1), ["a", "b", "c"])
    token_strip(right, ["a", "b", "c"], torch.rand(3))
    with pytest.raises(ValueError, match=r"expected \(len\(queries\), len\(keys\)\) = \(2, 2\)"):
        token_matrix(left, torch.rand(3, 3), ["a", "b"])
    plt.close(fig)

