"""The causal language model (attnzoo.models) around registry mixers, and a tiny MQAR training run."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from attnzoo.models import CausalLanguageModel, CausalSoftmaxAttention
from attnzoo.tasks import MQARConfig, query_accuracy

VOCAB, DIM, LENGTH = 97, 32, 48

CAUSAL_MIXERS: dict[str, dict[str, Any]] = {
    "softmax": {"num_heads": 4},
    "sliding_window_attention": {"num_heads": 4, "window": 8},
    "lightning_attention": {"num_heads": 4, "block_size": 16},
    "base_conv": {"l_max": LENGTH, "kernel_size": 3},
}


def _model(mixer: str, kwargs: dict[str, Any], **extra: Any) -> CausalLanguageModel:
    torch.manual_seed(0)
    return CausalLanguageModel(VOCAB, DIM, 2, mixer, kwargs, **extra).double().eval()


@pytest.mark.parametrize("positions", [0, LENGTH], ids=["no_positions", "learned_positions"])
@pytest.mark.parametrize("mixer", list(CAUSAL_MIXERS))
def test_changing_a_future_token_leaves_earlier_logits_unchanged(mixer: str, positions: int) -> None:
    model = _model(mixer, CAUSAL_MIXERS[mixer], max_position_embeddings=positions)
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(VOCAB, (2, LENGTH), generator=generator)
    with torch.no_grad():
        logits = model(tokens)
        assert logits.shape == (2, LENGTH, VOCAB)
        for t in (5, 17, LENGTH - 1):
            changed = tokens.clone()
            changed[:, t] = (changed[:, t] + 1) % VOCAB
            new = model(changed)
            torch.testing.assert_close(new[:, :t], logits[:, :t], rtol=0, atol=1e-12)
            assert not torch.allclose(new[:, t], logits[:, t])  # the changed token itself does matter


def test_softmax_mixer_matches_explicit_masked_attention() -> None:
    torch.manual_seed(0)
    layer = CausalSoftmaxAttention(DIM, num_heads=4).double()
    x = torch.randn(2, 10, DIM, dtype=torch.float64)
    q, k, v = layer.qkv(x).view(2, 10, 3, 4, DIM // 4).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / (DIM // 4) ** 0.5
    scores = scores.masked_fill(torch.ones(10, 10, dtype=torch.bool).triu(1), float("-inf"))
    expected = layer.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 10, DIM))
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize(("mixer", "kwargs", "match"), [
    ("halo_attention", {}, "layout"),
    ("window_attention_2d", {}, "layout"),
    ("shifted_sparse_attention", {}, "not causal"),
    ("fourier_karat", {}, "not causal"),
    ("neighborhood_attention_1d", {}, "is_causal"),
    ("kernelized_rpe_attention", {}, "is_causal"),
    ("sliding_window_attention", {"is_causal": False}, "is_causal"),
])
def test_refuses_mixers_that_are_not_causal_sequence_mixers(mixer: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CausalLanguageModel(VOCAB, DIM, 1, mixer, kwargs)


def test_unknown_mixer_and_conflicting_dim_raise() -> None:
    with pytest.raises(KeyError, match="no variant named"):
        CausalLanguageModel(VOCAB, DIM, 1, "no_such_mixer")
    with pytest.raises(ValueError, match="dim"):
        CausalLanguageModel(VOCAB, DIM, 1, "softmax", {"dim": 2 * DIM})


def test_causal_option_turned_on_is_accepted_and_causal() -> None:
    model = _model("neighborhood_attention_1d", {"num_heads": 4, "kernel_size": 5, "is_causal": True})
    tokens = torch.randint(VOCAB, (1, 20), generator=torch.Generator().manual_seed(2))
    changed = tokens.clone()
    changed[0, 12] = (changed[0, 12] + 1) % VOCAB
    with torch.no_grad():
        torch.testing.assert_close(model(changed)[:, :12], model(tokens)[:, :12], rtol=0, atol=1e-12)


def test_weight_tying_and_positional_embedding_switch() -> None:
    tied = CausalLanguageModel(VOCAB, DIM, 1, "softmax", max_position_embeddings=16)
    assert tied.head.weight is tied.token_embedding.weight
    assert tied.position_embedding is not None
    untied = CausalLanguageModel(VOCAB, DIM, 1, "softmax", tie_weights=False, mlp_ratio=0)
    assert untied.head.weight is not untied.token_embedding.weight
    assert untied.position_embedding is None and untied.blocks[0].mlp is None
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tied(torch.zeros(1, 17, dtype=torch.long))


def test_tiny_mqar_run_with_softmax_learns_well_above_chance() -> None:
    """120 steps (about 10-30 s on 2 CPU cores) on a small MQAR setting (vocab 64, L=16, K=2; chance = 1/32 over the values).

    Without a working mixer the logits at a query depend only on the query token and its position, and the
    values are random per example, so accuracy stays at chance. A model that mixes tokens first reaches the
    known MQAR plateau of ~1/K (it predicts one of the K values of the context) and later full recall; a
    CPU test budget reaches the plateau, so the threshold (0.35, about 11x chance) tests that, not full recall.
    """
    torch.manual_seed(0)
    config = MQARConfig(vocab_size=64, seq_len=16, num_kv_pairs=2, num_train_examples=2000, num_test_examples=256)
    train_in, train_lab, test_in, test_lab = config.splits()
    model = CausalLanguageModel(64, 32, 2, "softmax", {"num_heads": 2}, mlp_ratio=0, max_position_embeddings=16)
    with torch.no_grad():
        before = query_accuracy(model.eval()(test_in), test_lab)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(120):
        idx = torch.randint(len(train_in), (32,), generator=generator)
        loss = F.cross_entropy(model(train_in[idx]).flatten(0, 1), train_lab[idx].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = query_accuracy(model.eval()(test_in), test_lab)
    chance = 1 / 32
    assert before < 3 * chance, before
    assert after > 0.35 and after > before + 0.25, (before, after)


def test_logits_at_positions_equal_the_full_logits_there() -> None:
    torch.manual_seed(0)
    model = CausalLanguageModel(32, 16, 2, "softmax", max_position_embeddings=12).double()
    tokens = torch.randint(0, 32, (3, 12))
    at = torch.rand(3, 12) < 0.3
    torch.testing.assert_close(model(tokens, at=at), model(tokens)[at])
    with pytest.raises(ValueError, match="bool mask of the tokens' shape"):
        model(tokens, at=at[:, :5])
    with pytest.raises(ValueError, match="bool mask"):
        model(tokens, at=at.long())


def test_short_conv_stem_is_a_causal_base_conv_in_block_zero_only() -> None:
    torch.manual_seed(0)
    model = CausalLanguageModel(32, 16, 3, "softmax", short_conv=3, max_position_embeddings=10).double()
    kinds = [type(block.mixer).__name__ for block in model.blocks]
    assert kinds[0] == "BaseConv" and model.blocks[0].mixer.kernel.shape == (16, 3)
    assert all(kind != "BaseConv" for kind in kinds[1:])
    tokens = torch.randint(0, 32, (2, 10))
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 32
    torch.testing.assert_close(model(tokens)[:, :6], model(changed)[:, :6])
    for bad in ({"short_conv": -1, "num_layers": 2}, {"short_conv": 3, "num_layers": 1}):
        with pytest.raises(ValueError, match="short_conv"):
            CausalLanguageModel(32, 16, bad["num_layers"], "softmax", short_conv=bad["short_conv"])


def test_seq_len_fills_the_mixer_size_options() -> None:
    model = CausalLanguageModel(32, 16, 1, "base_conv", {"kernel_size": -1}, seq_len=24)
    assert model.blocks[0].mixer.kernel.shape == (16, 24)
