"""The Block Transformer (arXiv 2406.02657) as a model: the embedder's concatenation, the official per-block token
decoding transcribed and compared on the same weights, causality, cached decoding (token by token, in chunks,
generate) against the full forward, the cache sizes the paper's claim rests on, its errors, and that it learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnzoo.layers import SoftmaxAttention
from attnzoo.models import BlockTransformer, CausalLanguageModel
from attnzoo.models.block_transformer import split_layers, vanilla_counterpart
from attnzoo.models.block_transformer_cache import BlockTransformerCache

VOCAB, DIM = 29, 16
CONFIGS = {
    "L4 R2": {"block_length": 4, "prefix_length": 2},
    "L4 R2 full prefix": {"block_length": 4, "prefix_length": 2, "prefix_attention": "full"},
    "L2 R3": {"block_length": 2, "prefix_length": 3},
    "L1 R1": {"block_length": 1, "prefix_length": 1},
    "L8 R1 token_dim 8": {"block_length": 8, "prefix_length": 1, "token_dim": 8},
}


def _model(positions: int = 48, **options: object) -> BlockTransformer:
    torch.manual_seed(0)
    kwargs = {"block_layers": 2, "token_layers": 2, "num_heads": 2, "mlp_ratio": 2.0, **options}
    return BlockTransformer(VOCAB, DIM, max_position_embeddings=positions, **kwargs).double().eval()


def _tokens(length: int = 23, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_the_block_embedding_is_the_concatenation_of_its_token_embeddings() -> None:
    model = _model()
    blocks = _tokens(12).view(2, 3, 4)
    table = model.embedder.embedding.weight
    expected = torch.cat([table[blocks[..., i]] for i in range(4)], dim=-1)
    assert torch.equal(model.embedder(blocks), expected)


def _official_logits(model: BlockTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The official forward transcribed (``model/block_transformer.py``, ``model/token_decoder/base.py`` with the
    ``prefix`` strategy), one block at a time: the block decoder over the block embeddings (here after the start
    vector), ``expand_block_embeddings`` (the kernel-1 Conv1d, then ``reshape(B, -1, hidden)``), the local
    sequence ``cat([expanded, embed(input_ids[:, 1:])])`` of the block's tokens but the last, a plain causal
    transformer on it (GPT-NeoX's mask; here the same blocks with dense causal softmax attention on copied
    weights), and ``hidden_states[:, R - 1:]``. Returns the logits of tokens ``0 .. N - 1`` of whole blocks."""
    block, prefix = model.block_length, model.prefix_length
    batch, length = tokens.shape
    blocks = tokens.view(batch, length // block, block)
    inputs = torch.cat([model.start.expand(batch, 1, -1), model.embedder(blocks)], dim=1)
    x = inputs + model.block_position(torch.arange(inputs.shape[1]))
    for layer in model.block_decoder:
        x = layer(x)
    contexts = model.block_norm(x)
    logits = []
    for b in range(length // block):
        expanded = F.conv1d(contexts[:, b, :, None], model.expansion.weight[:, :, None], model.expansion.bias)
        expanded = expanded.transpose(1, 2).reshape(batch, -1, model.token_embedding.embedding_dim)
        local = torch.cat([expanded, model.token_embedding(blocks[:, b, :-1])], dim=1) + model.local_position.weight
        for layer in model.token_decoder:
            dense = SoftmaxAttention(local.shape[-1], layer.mixer.num_heads).double()
            dense.load_state_dict(layer.mixer.state_dict())
            residual = local + dense(layer.norm1(local))
            local = residual + layer.mlp(layer.norm2(residual))
        logits.append(model.head(model.norm(local[:, prefix - 1:])))
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("config", ["L4 R2", "L2 R3", "L8 R1 token_dim 8"])
def test_the_logits_equal_the_official_per_block_token_decoding(config: str) -> None:
    model = _model(**CONFIGS[config])
    tokens = _tokens(4 * model.block_length)
    with torch.no_grad():
        official = _official_logits(model, tokens)  # predicts tokens 0 .. N-1
        ours = model(tokens)  # predicts tokens 1 .. N
    torch.testing.assert_close(ours[:, :-1], official[:, 1:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_logits_do_not_depend_on_later_tokens(config: str) -> None:
    model = _model(**CONFIGS[config])
    tokens = _tokens(21)
    with torch.no_grad():
        logits = model(tokens)
        for t in (0, 3, 4, 11, 19):
            changed = tokens.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 5) % VOCAB
            torch.testing.assert_close(model(changed)[:, :t + 1], logits[:, :t + 1], rtol=0, atol=0)
            assert not torch.allclose(model(changed)[:, t + 1:], logits[:, t + 1:])


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("sizes", [[1] * 23, [5, 3, 7, 8], [4, 4, 15], [2, 1, 20], [23]])
def test_cached_decoding_in_pieces_equals_the_full_forward(config: str, sizes: list[int]) -> None:
    model = _model(**CONFIGS[config])
    tokens = _tokens(sum(sizes))
    cache = model.new_cache(2)
    pieces, seen = [], 0
    with torch.no_grad():
        full = model(tokens)
        for size in sizes:
            pieces.append(model(tokens[:, seen:seen + size], cache=cache))
            seen += size
            assert cache.length == seen and cache.nbytes == cache.nbytes_at(seen)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_cached_greedy_generation_equals_uncached_token_by_token(config: str) -> None:
    model = _model(**CONFIGS[config])
    prompt = _tokens(6)
    cached, cached_logits = model.generate(prompt, 17, return_logits=True)
    recomputed, recomputed_logits = model.generate(prompt, 17, use_cache=False, return_logits=True)
    assert cached.shape == (2, 23) and torch.equal(cached[:, :6], prompt)
    assert torch.equal(cached, recomputed)
    torch.testing.assert_close(cached_logits, recomputed_logits, rtol=0, atol=1e-12)
    with torch.no_grad():
        full = model(cached[:, :-1])[:, 5:]
    torch.testing.assert_close(cached_logits, full, rtol=0, atol=1e-12)
    assert torch.equal(cached[:, 6:], full.argmax(-1))
    chunked = model.generate(prompt, 17, prefill_chunk_size=4)
    assert torch.equal(chunked, cached)


def test_sampled_generation_reproduces_with_a_seeded_generator() -> None:
    model = _model()
    prompt = _tokens(5)

    def sample(use_cache: bool) -> torch.Tensor:
        return model.generate(prompt, 11, do_sample=True, top_k=5, generator=torch.Generator().manual_seed(3),
                              use_cache=use_cache)

    assert torch.equal(sample(True), sample(False))


def test_the_caches_hold_one_entry_per_block_and_the_current_block_only() -> None:
    """Block decoder: ``T // L_B + 1`` entries per layer (start + complete blocks); token decoder: fewer than
    ``S = R + L_B - 1`` whatever ``T``; so per layer the cache is ``L_B`` times smaller than a vanilla one."""
    model = _model(positions=200)
    tokens = _tokens(197, batch=1)
    cache = model.new_cache(1)
    with torch.no_grad():
        for t in range(197):
            model(tokens[:, t:t + 1], cache=cache)
            length = t + 1
            assert all(layer.length == length // 4 + 1 for layer in cache.block_layers)
            held = {layer.keys.shape[2] for layer in cache.token_layers}
            assert held == {cache.token_entries(length)} and max(held) < model.local_length == 5
            assert cache.pending.shape == (1, length % 4)
    vanilla = vanilla_counterpart(model).double()
    vanilla_cache = vanilla.new_cache(1)
    per_entry = 2 * DIM * 8  # K and V, float64
    assert cache.nbytes_at(196) == 2 * per_entry * 50 + 2 * per_entry * 2 and vanilla_cache.nbytes_at(196) == (
        4 * per_entry * 196)
    assert cache.bytes_per_token == 2 * per_entry / 4 and vanilla_cache.bytes_per_token == 4 * per_entry
    assert vanilla_cache.nbytes_at(4096) / cache.nbytes_at(4096) > 7.9  # 2 L_B with the layers split evenly


def test_the_vanilla_counterpart_has_about_the_same_parameters() -> None:
    model = _model()
    vanilla = vanilla_counterpart(model)
    assert isinstance(vanilla, CausalLanguageModel) and len(vanilla.blocks) == 4
    ours, theirs = (sum(p.numel() for p in m.parameters()) for m in (model, vanilla))
    assert 1.0 < ours / theirs < 1.1
    assert split_layers(4) == (2, 2) and split_layers(5) == (3, 2)


def test_bad_arguments_and_misuse_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="dim=18 must be divisible by block_length=4"):
        BlockTransformer(VOCAB, 18)
    with pytest.raises(ValueError, match="prefix_attention='bidirectional': expected one of"):
        BlockTransformer(VOCAB, 16, prefix_attention="bidirectional")
    with pytest.raises(ValueError, match="block_length=0: expected an int >= 1"):
        BlockTransformer(VOCAB, 16, block_length=0)
    with pytest.raises(ValueError, match="max_position_embeddings=-1"):
        BlockTransformer(VOCAB, 16, max_position_embeddings=-1)
    model = _model(positions=24)
    with pytest.raises(ValueError, match="sequence length 25 exceeds max_position_embeddings=24"):
        model(_tokens(25))
    with pytest.raises(ValueError, match="max_length=30 exceeds the model's max_position_embeddings=24"):
        model.new_cache(2, max_length=30)
    cache = model.new_cache(2)
    with pytest.raises(ValueError, match="exceed max_length=24"):
        model(_tokens(25), cache=cache)
    with pytest.raises(ValueError, match="batch_size=2"):
        model(_tokens(3, batch=3), cache=cache)
    with pytest.raises(ValueError, match="another model"):
        _model(positions=24)(_tokens(3), cache=cache)
    with pytest.raises(TypeError, match="expected a BlockTransformerCache"):
        model(_tokens(3), cache=vanilla_counterpart(model).new_cache(2))
    with pytest.raises(ValueError, match="at must be a bool mask"):
        model(_tokens(3), at=torch.ones(2, 3))
    with pytest.raises(ValueError, match="feed 30 tokens to the model; its max_position_embeddings=24"):
        model.generate(_tokens(5), 26)
    assert isinstance(cache, BlockTransformerCache) and cache.length == 0


def test_the_at_mask_selects_rows_of_the_full_logits() -> None:
    model = _model()
    tokens = _tokens(13)
    at = torch.rand(2, 13, generator=torch.Generator().manual_seed(0)) < 0.4
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, at=at), model(tokens)[at], rtol=0, atol=1e-14)


def test_it_learns_a_repeated_pattern() -> None:
    """Sequences that repeat a random 6-token pattern: after a short training the loss from the third token of the
    second repeat on falls far below uniform (ln 29 = 3.37), which needs the block decoder (the pattern's blocks
    of 4 do not line up with its period). One thread: the model is tiny, and threads only contend here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = BlockTransformer(VOCAB, 32, block_layers=2, token_layers=1, num_heads=2, max_position_embeddings=24)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)
        for _ in range(300):
            batch = torch.randint(VOCAB, (32, 6), generator=generator).repeat(1, 4)
            loss = F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        batch = torch.randint(VOCAB, (64, 6), generator=generator).repeat(1, 4)
        with torch.no_grad():
            late = F.cross_entropy(model(batch[:, :-1])[:, 12:].flatten(0, 1), batch[:, 13:].flatten())
    finally:
        torch.set_num_threads(threads)
    assert late < 1.0


def test_the_decoding_benchmark_restores_the_cache_and_records_the_cache_sizes() -> None:
    from attnzoo.bench.suites.block_decode import BlockDecodeSpec
    from attnzoo.bench.suites.sparse import sparse_cases

    spec = BlockDecodeSpec(40, 2)
    inputs = spec.make_inputs(torch.Generator().manual_seed(0))
    vanilla, block = spec.cases()
    assert vanilla.baseline and vanilla.backward_skip and block.backward_skip
    for case in (vanilla, block):
        model, cache = case.prepare()
        assert cache.length == 40
        with torch.no_grad():
            first, second = case.forward(inputs, (model, cache)), case.forward(inputs, (model, cache))
            full = model(inputs["tokens"])[:, -1]
        assert cache.length == 40 and torch.equal(first, second)
        torch.testing.assert_close(first[:, -1], full, rtol=0, atol=1e-5)
    shape = spec.workload().shape
    assert shape["kv_cache_ratio"] == shape["vanilla_kv_cache_mb"] / shape["block_kv_cache_mb"] > 5
    assert 1.0 < shape["block_params"] / shape["vanilla_params"] < 1.05
    assert {c.impl for c in sparse_cases("quick")} >= {"vanilla decoder", "block transformer", "blocked"}


def test_the_quality_tasks_train_it_as_an_architecture(tmp_path) -> None:  # noqa: ANN001
    """``block_transformer`` in a task's mixers builds the model from the task's sizes (layers split, width,
    positions), trains and scores through the shared harness, and is a sparse-family row of compare."""
    from attnzoo.compare.jobs import QualitySettings, quality_jobs
    from attnzoo.tasks.austen_lm import AustenLMTask
    from attnzoo.tasks.harness import evaluate_mixers, resolve_mixer_options
    from attnzoo.tasks.mqar_eval import MQARTask
    from attnzoo.train import TrainConfig

    task = MQARTask(vocab_size=64, seq_len=16, num_kv_pairs=2, train_examples=200, test_examples=32, d_model=16,
                    batch_size=8)
    rows = evaluate_mixers(task, ("softmax", "block_transformer"), TrainConfig(steps=3, lr=3e-3, warmup_steps=1,
                                                                               progress=False), tmp_path,
                           progress=False)
    assert [r["mixer"] for r in rows] == ["softmax", "block_transformer"]
    assert 0.0 <= rows[1]["test_accuracy"] <= 1.0 and rows[1]["mixer_kwargs"] == {"num_heads": 1}
    model = task.build_model("block_transformer", {"num_heads": 1, "block_length": 2})
    assert isinstance(model, BlockTransformer) and model.block_length == 2
    assert (len(model.block_decoder), len(model.token_decoder), model.max_sequence_length) == (1, 1, 16)
    austen = AustenLMTask(seq_len=32)
    model = austen.build_model("block_transformer", resolve_mixer_options(austen, ["block_transformer"])[
        "block_transformer"])
    assert (len(model.block_decoder), len(model.token_decoder), model.vocab_size) == (2, 2, 256)
    with pytest.raises(ValueError, match=r"architecture 'block_transformer' .*unexpected options \['window'\]"):
        resolve_mixer_options(task, ["block_transformer"], {"block_transformer": {"window": 3}})
    with pytest.raises(ValueError, match="dim=16 must be divisible by block_length=3"):
        resolve_mixer_options(task, ["block_transformer"], {"block_transformer": {"block_length": 3}})
    jobs = quality_jobs(["sparse"], QualitySettings(tasks=("mqar", "austen")))
    ours = [job for job in jobs if job.mixer == "block_transformer"]
    assert {job.setting for job in ours} == {"mqar L64", "mqar L128", "mqar L256", "austen"}
    assert {job.family for job in ours} == {"sparse"}
