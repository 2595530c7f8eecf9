"""Decoding with a cache (attnzoo.layers.cache, attnzoo.models.generation): token-by-token and chunked decoding give
the full forward's logits for every mixer whose layer declares a cache, greedy / sampled generation, stop tokens,
the caches' byte accounting, and every misuse raising a clear error."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from attnzoo.layers import (
    ClippedSoftmaxAttention,
    GatedAttention,
    LightningAttention,
    LinearAttention,
    LMUMixer,
    ShiftedSparseAttention,
    SlidingWindowAttention,
    SoftmaxAttention,
)
from attnzoo.layers.cache import KVCache, RecurrentStateCache, SlidingWindowKVCache, can_decode
from attnzoo.models import CausalLanguageModel
from attnzoo.models.generation import ModelCache, filter_logits
from attnzoo.registry import TOKENS, NotSupportedError, variants

VOCAB, DIM, LAYERS, LENGTH, BATCH = 31, 16, 2, 13, 2
POSITIONS = 32

DECODABLE = sorted(v.name for v in variants() if v.causal and v.layer_layout == TOKENS and can_decode(v.layer))
"""Every causal (B, N, C) variant whose layer declares the decoding protocol, found in the registry."""

KWARGS: dict[str, dict[str, Any]] = {
    "softmax_attention": {"num_heads": 2},
    "sliding_window_attention": {"num_heads": 2, "window": 4},
    "lightning_attention": {"num_heads": 2, "block_size": 4},
    "linear_attention": {"num_heads": 2, "block_size": 4},
    "lmu_memory": {"memory_size": 6, "theta": 8.0},
}
"""Small options for the known ones (a variant not listed runs with its registry defaults)."""

CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    **{name: (name, KWARGS.get(name, {})) for name in DECODABLE},
    "sliding_window_sinks": ("sliding_window_attention", {"num_heads": 2, "window": 3, "num_sink_tokens": 2}),
    "sliding_window_reference": ("sliding_window_attention", {"num_heads": 2, "window": 5, "impl": "reference"}),
    "linear_softmax_kernel_unnormalized": ("linear_attention", {"num_heads": 2, "feature_map": "softmax_kernel",
                                                                "num_features": 6, "normalize": False,
                                                                "block_size": 4}),
    "linear_recurrent": ("linear_attention", {"num_heads": 2, "impl": "recurrent"}),
    "lightning_reference": ("lightning_attention", {"num_heads": 2, "impl": "reference"}),
    "lmu_chunked_no_batch_norm": ("lmu_memory", {"memory_size": 6, "theta": 8.0, "impl": "chunked",
                                                 "batch_norm": False}),
    "gated_clipped_mlp_gate": ("gated_attention", {"num_heads": 2, "softmax": "clipped", "gamma": -0.1,
                                                   "zeta": 1.1, "gate": "mlp"}),
    "clipped_chunked": ("clipped_softmax_attention", {"num_heads": 2, "gamma": -0.2, "impl": "chunked"}),
}


def _model(mixer: str, kwargs: dict[str, Any], positions: int = POSITIONS, **extra: Any) -> CausalLanguageModel:
    torch.manual_seed(0)
    model = CausalLanguageModel(VOCAB, DIM, LAYERS, mixer, kwargs, mlp_ratio=2.0,
                                max_position_embeddings=positions, **extra).double().eval()
    for block in model.blocks:  # a trained-looking batch norm (LMU) instead of the identity statistics
        norm = getattr(block.mixer, "norm", None)
        if isinstance(norm, torch.nn.BatchNorm1d):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
    return model


def _tokens(batch: int = BATCH, length: int = LENGTH, seed: int = 1) -> torch.Tensor:
    return torch.randint(VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_the_registry_declares_the_expected_decoding_mixers() -> None:
    expected = {"softmax_attention", "sliding_window_attention", "lightning_attention", "linear_attention",
                "lmu_memory", "clipped_softmax_attention", "gated_attention", "grouped_query_attention",
                "diffqkv_attention"}
    assert expected <= set(DECODABLE)
    assert not can_decode(ShiftedSparseAttention)  # a layer without the protocol is not listed


@pytest.mark.parametrize(("config", "positions"), [(config, POSITIONS) for config in CONFIGS] +
                         [("softmax_attention", 0), ("lightning_attention", 0)])
def test_token_by_token_logits_equal_the_full_forward(config: str, positions: int) -> None:
    """Learned positions (the cache offsets them) for every config; none for two (order from the mixer)."""
    model = _model(*CONFIGS[config], positions=positions)
    tokens = _tokens()
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache(BATCH)
        steps = torch.cat([model(tokens[:, t:t + 1], cache=cache) for t in range(LENGTH)], dim=1)
    assert cache.length == LENGTH and all(layer.length == LENGTH for layer in cache.layers)
    torch.testing.assert_close(steps, full, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mixer", DECODABLE)
def test_float32_decoding_is_close_to_the_full_forward(mixer: str) -> None:
    model = _model(mixer, KWARGS.get(mixer, {})).float()
    tokens = _tokens()
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache(BATCH)
        assert cache.dtype == torch.float32
        steps = torch.cat([model(tokens[:, t:t + 1], cache=cache) for t in range(LENGTH)], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_chunked_prefill_then_steps_equal_the_full_forward(config: str) -> None:
    model = _model(*CONFIGS[config])
    tokens = _tokens()
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache(BATCH)
        pieces, start = [], 0
        for size in (5, 3, 1, 1, 3):  # chunks longer than the windows, then single steps, then a chunk again
            pieces.append(model(tokens[:, start:start + size], cache=cache))
            start += size
    assert start == LENGTH
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-12)


@pytest.mark.parametrize("config", [*DECODABLE, "sliding_window_sinks"])
def test_generate_with_a_cache_equals_recomputing_the_prefix(config: str) -> None:
    model = _model(*CONFIGS[config])
    prompt = _tokens(length=6)
    cached, cached_logits = model.generate(prompt, 7, return_logits=True, prefill_chunk_size=4)
    recomputed, recomputed_logits = model.generate(prompt, 7, use_cache=False, return_logits=True)
    assert cached.shape == (BATCH, 13)
    assert torch.equal(cached, recomputed) and torch.equal(cached[:, :6], prompt)
    torch.testing.assert_close(cached_logits, recomputed_logits, rtol=0, atol=1e-12)
    with torch.no_grad():  # each logit row is the full forward's at its position, and greedy takes its argmax
        full = model(cached[:, :-1])[:, 5:]
    torch.testing.assert_close(cached_logits, full, rtol=0, atol=1e-12)
    assert torch.equal(cached[:, 6:], full.argmax(-1))


def test_greedy_generation_is_deterministic_and_sampling_reproducible_with_a_seed() -> None:
    model = _model("softmax", {"num_heads": 2})
    prompt = _tokens(length=4)
    assert torch.equal(model.generate(prompt, 8), model.generate(prompt, 8))

    def sample(seed: int, **options: Any) -> torch.Tensor:
        return model.generate(prompt, 12, do_sample=True, generator=torch.Generator().manual_seed(seed), **options)

    assert torch.equal(sample(3), sample(3))
    assert torch.equal(sample(3, temperature=0.7, top_k=5, top_p=0.9), sample(3, temperature=0.7, top_k=5, top_p=0.9))
    assert not torch.equal(sample(3), sample(4))
    assert torch.equal(sample(3), model.generate(prompt, 12, do_sample=True, use_cache=False,
                                                 generator=torch.Generator().manual_seed(3)))
    greedy = model.generate(prompt, 12)
    assert torch.equal(sample(5, top_k=1), greedy)  # one candidate left: sampling is greedy
    assert torch.equal(sample(5, top_p=1e-9), greedy)  # the nucleus always keeps the most likely token


def test_sampled_tokens_come_from_the_top_k() -> None:
    model = _model("softmax", {"num_heads": 2})
    prompt = _tokens(batch=8, length=3)
    tokens, logits = model.generate(prompt, 20, do_sample=True, top_k=3, temperature=2.0, return_logits=True,
                                    generator=torch.Generator().manual_seed(0))
    allowed = logits.topk(3, dim=-1).indices
    chosen = tokens[:, 3:, None]
    assert (allowed == chosen).any(-1).all()
    assert len({int(r) for r in (allowed == chosen).float().argmax(-1).flatten()}) == 3  # each rank gets drawn


@pytest.mark.parametrize(("temperature", "top_k", "top_p"),
                         [(1.0, None, None), (0.5, None, None), (1.0, 4, None), (1.0, None, 0.8), (1.7, 10, 0.6),
                          (1.0, 1, None), (1.0, None, 1e-6), (0.3, 31, 0.99)])
def test_filter_logits_equals_transformers_warpers(temperature: float, top_k: int | None, top_p: float | None
                                                   ) -> None:
    """HF's TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper (transformers 5.x,
    generation/logits_process.py), in the order generation/utils.py::_get_logits_processor applies them."""
    warpers = pytest.importorskip("transformers.generation.logits_process")
    logits = torch.randn(6, VOCAB, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 3
    logits[0, :4] = logits[0, 4]  # ties
    expected, ids = logits, torch.zeros(6, 1, dtype=torch.long)
    if temperature != 1.0:
        expected = warpers.TemperatureLogitsWarper(temperature)(ids, expected)
    if top_k is not None:
        expected = warpers.TopKLogitsWarper(top_k)(ids, expected)
    if top_p is not None and top_p < 1.0:
        expected = warpers.TopPLogitsWarper(top_p)(ids, expected)
    assert torch.equal(filter_logits(logits, temperature, top_k, top_p), expected)


def test_stop_tokens_stop_each_row_and_pad_it() -> None:
    model = _model("softmax", {"num_heads": 2})
    prompt = _tokens(batch=3, length=4, seed=5)
    free = model.generate(prompt, 10)[:, 4:]
    stop = int(free[0, 2])
    first = [next((i for i, t in enumerate(row.tolist()) if t == stop), None) for row in free]
    out = model.generate(prompt, 10, stop_tokens=[stop, VOCAB - 1] if stop != VOCAB - 1 else stop, pad_token=0)
    expected_steps = 10 if None in first else max(first) + 1
    assert out.shape == (3, 4 + expected_steps)
    for row, end in enumerate(first):
        end = expected_steps if end is None else end + 1
        assert torch.equal(out[row, 4:4 + end], free[row, :end])
        assert (out[row, 4 + end:] == 0).all()
    all_stop = model.generate(prompt, 10, stop_tokens=list(range(VOCAB)))  # every row stops at once
    assert all_stop.shape == (3, 5) and torch.equal(all_stop[:, 4], free[:, 0])


def test_zero_new_tokens_returns_the_prompt() -> None:
    model = _model("softmax", {"num_heads": 2})
    prompt = _tokens()
    tokens, logits = model.generate(prompt, 0, return_logits=True)
    assert torch.equal(tokens, prompt) and logits.shape == (BATCH, 0, VOCAB)


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    model = _model("lightning_attention", {"num_heads": 2})
    assert model.generate(_tokens(), 3, progress=True).shape == (BATCH, LENGTH + 3)
    assert "generate" in capsys.readouterr().err


def test_a_layer_without_a_cache_forward_is_unchanged() -> None:
    for layer in (SoftmaxAttention(DIM, 2), SlidingWindowAttention(DIM, 2, 4), LightningAttention(DIM, 2),
                  LinearAttention(DIM, 2), LMUMixer(DIM).eval()):
        x = torch.randn(2, 7, DIM)
        assert torch.equal(layer(x), layer(x, cache=None))


# -- bytes -----------------------------------------------------------------------------------------------------

def _fill(model: CausalLanguageModel, lengths: list[int]) -> Iterator[tuple[int, ModelCache]]:
    """Feed one cache up to each of ``lengths`` in turn, yielding it at each."""
    cache, seen = model.new_cache(BATCH), 0
    tokens = _tokens(length=max(lengths))
    for length in lengths:
        with torch.no_grad():
            model(tokens[:, seen:length], cache=cache)
        seen = length
        assert cache.nbytes == cache.nbytes_at(length)  # the prediction is what is held
        yield length, cache


def test_kv_cache_bytes_per_token_are_two_heads_times_head_dim() -> None:
    model = _model("softmax", {"num_heads": 2})
    head_dim, itemsize = DIM // 2, 8
    per_token = 2 * 2 * head_dim * itemsize  # 2 (K and V) · H · D · float64 bytes, per layer
    for length, cache in _fill(model, [1, 5, 13]):
        assert cache.bytes_per_token == LAYERS * per_token and cache.state_bytes == 0
        assert cache.nbytes == LAYERS * BATCH * length * per_token
    assert model.new_cache(1, dtype=torch.float32).bytes_per_token == LAYERS * per_token // 2


@pytest.mark.parametrize(("window", "sinks"), [(4, 0), (3, 2), (1, 0), (20, 1)])
def test_sliding_window_cache_bytes_are_capped_at_the_window(window: int, sinks: int) -> None:
    model = _model("sliding_window_attention", {"num_heads": 2, "window": window, "num_sink_tokens": sinks})
    per_token = 2 * 2 * (DIM // 2) * 8
    for length, cache in _fill(model, [2, 3, 9, 10, 13]):
        held = min(length, sinks) + min(max(length - sinks, 0), window - 1)
        assert cache.bytes_per_token == LAYERS * per_token
        assert cache.nbytes == LAYERS * BATCH * held * per_token
        assert all(layer.keys.shape[2] == held for layer in cache.layers)
        assert all(layer.positions.tolist() == [p for p in range(length) if p < sinks or p > length - window]
                   for layer in cache.layers)


@pytest.mark.parametrize(("mixer", "kwargs", "state"), [
    ("lightning_attention", {"num_heads": 2}, 2 * 8 * 8),
    ("linear_attention", {"num_heads": 2}, 2 * 8 * (8 + 1)),
    ("linear_attention", {"num_heads": 2, "feature_map": "softmax_kernel", "num_features": 6, "normalize": False},
     2 * 6 * 8),
    ("lmu_memory", {"memory_size": 6}, 6),
])
def test_recurrent_cache_bytes_are_constant_in_the_length(mixer: str, kwargs: dict[str, Any], state: int) -> None:
    model = _model(mixer, kwargs)
    for length, cache in _fill(model, [1, 4, 13]):
        assert cache.bytes_per_token == 0 and cache.state_bytes == LAYERS * state * 8
        assert cache.nbytes == LAYERS * BATCH * state * 8
        assert all(isinstance(layer, RecurrentStateCache) for layer in cache.layers)
    assert math.prod(cache.layers[0].state.shape) == BATCH * state


# -- bad input -------------------------------------------------------------------------------------------------

def _layers() -> list[torch.nn.Module]:
    return [SoftmaxAttention(DIM, 2), SlidingWindowAttention(DIM, 2, 4), LightningAttention(DIM, 2),
            LinearAttention(DIM, 2), LMUMixer(DIM).eval()]


@pytest.mark.parametrize("index", range(5), ids=["softmax", "window", "lightning", "linear", "lmu"])
def test_a_cache_refuses_another_batch_dtype_device_layer_or_masks(index: int) -> None:
    layer, other = _layers()[index], _layers()[index]
    x = torch.randn(2, 3, DIM)
    with pytest.raises(ValueError, match="batch_size=3"):
        layer(x, cache=layer.new_cache(3))
    with pytest.raises(TypeError, match="dtype=torch.float64"):
        layer(x, cache=layer.new_cache(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="device=meta"):
        layer(x, cache=layer.new_cache(2, device="meta"))
    with pytest.raises(ValueError, match="another layer"):
        layer(x, cache=other.new_cache(2))
    with pytest.raises(ValueError, match="key_padding_mask with a cache"):
        layer(x, key_padding_mask=torch.zeros(2, 3, dtype=torch.bool), cache=layer.new_cache(2))
    with pytest.raises(ValueError, match="max_length=4"):
        cache = layer.new_cache(2, max_length=4)
        layer(x, cache=cache)
        layer(x, cache=cache)
    assert cache.length == 3  # the refused call changed nothing
    with pytest.raises(ValueError, match="at least one new token"):
        layer(x[:, :0], cache=layer.new_cache(2))


def test_a_cache_of_the_wrong_kind_or_for_a_layer_that_cannot_decode_raises() -> None:
    x = torch.randn(1, 4, DIM)
    softmax, lightning = SoftmaxAttention(DIM, 2), LightningAttention(DIM, 2)
    with pytest.raises(TypeError, match="LightningAttention decodes with a RecurrentStateCache"):
        lightning(x, cache=softmax.new_cache(1))
    with pytest.raises(TypeError, match="SoftmaxAttention decodes with a KVCache"):
        softmax(x, cache=lightning.new_cache(1))
    with pytest.raises(TypeError, match="SlidingWindowKVCache"):
        SlidingWindowAttention(DIM, 2, 4)(x, cache=softmax.new_cache(1))
    with pytest.raises(TypeError, match="ShiftedSparseAttention cannot decode"):
        ShiftedSparseAttention(DIM, 2, 4)(x, cache=softmax.new_cache(1))
    for layer in (SoftmaxAttention(DIM, 2, is_causal=False), SlidingWindowAttention(DIM, 2, 5, is_causal=False),
                  LinearAttention(DIM, 2, is_causal=False)):
        with pytest.raises(ValueError, match="is_causal=False cannot decode"):
            layer.new_cache(1)
    for layer in (ClippedSoftmaxAttention(DIM, 2, gamma=None, alpha=4.0),
                  GatedAttention(DIM, 2, softmax="clipped", alpha=4.0)):
        with pytest.raises(ValueError, match=r"alpha=4.0 cannot decode with a cache: its gamma = -alpha / T"):
            layer.new_cache(1)
    lmu = LMUMixer(DIM)
    with pytest.raises(ValueError, match="training mode"):
        lmu(x, cache=lmu.new_cache(1))
    lmu.eval()
    with pytest.raises(ValueError, match="initial_state / output_final_state with a cache"):
        lmu(x, output_final_state=True, cache=lmu.new_cache(1))
    cache = softmax.new_cache(1)
    with pytest.raises(ValueError, match=r"key has shape \(1, 3, 4, 8\)"):
        cache.update(torch.randn(1, 3, 4, 8), torch.randn(1, 3, 4, 8))
    with pytest.raises(TypeError, match="the cache stores torch.float32"):
        cache.update(torch.randn(1, 2, 4, 8, dtype=torch.float64), torch.randn(1, 2, 4, 8, dtype=torch.float64))
    for bad, error in ((0, ValueError), (1.0, TypeError)):
        with pytest.raises(error, match="batch_size"):
            softmax.new_cache(bad)
    with pytest.raises(TypeError, match="dtype=torch.int64"):
        KVCache(softmax, 1, 2, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match="window=0"):
        SlidingWindowKVCache(softmax, 1, 2, 8, window=0)


def test_a_model_cache_refuses_another_model_batch_or_length() -> None:
    model, other = _model("softmax", {"num_heads": 2}), _model("softmax", {"num_heads": 2})
    tokens = _tokens()
    with pytest.raises(ValueError, match="another model"):
        model(tokens, cache=other.new_cache(BATCH))
    with pytest.raises(ValueError, match="batch_size=3"):
        model(tokens, cache=model.new_cache(3))
    with pytest.raises(TypeError, match="expected a ModelCache"):
        model(tokens, cache=model.blocks[0].mixer.new_cache(BATCH))
    with pytest.raises(ValueError, match="max_length=15"):
        cache = model.new_cache(BATCH, max_length=15)
        model(tokens, cache=cache)
        model(tokens[:, :3], cache=cache)
    cache = model.new_cache(BATCH)
    assert cache.max_length == POSITIONS  # the learned positions bound the cache
    with pytest.raises(ValueError, match="max_position_embeddings=32"):
        model.new_cache(BATCH, max_length=40)


def test_generate_refuses_a_mixer_without_a_cache_unless_use_cache_is_false() -> None:
    prompt = _tokens(length=5)
    for mixer, kwargs, extra, name in (
            ("base_conv", {"l_max": 16, "kernel_size": 3}, {}, "BaseConv"),
            ("neighborhood_attention_1d", {"num_heads": 2, "kernel_size": 3, "is_causal": True}, {},
             "NeighborhoodAttention1D"),
            ("softmax", {"num_heads": 2}, {"short_conv": 3}, "BaseConv")):
        model = _model(mixer, kwargs, **extra)
        with pytest.raises(NotSupportedError, match=f"{name} cannot decode with a cache.*use_cache=False"):
            model.generate(prompt, 3)
        out = model.generate(prompt, 3, use_cache=False)
        with torch.no_grad():
            assert torch.equal(out[:, 5:], model(out[:, :-1])[:, 4:].argmax(-1))


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"max_new_tokens": -1}, ValueError, "max_new_tokens=-1"),
    ({"max_new_tokens": 2.0}, TypeError, "max_new_tokens=2.0"),
    ({"stop_tokens": VOCAB}, ValueError, rf"ids \[{VOCAB}\] are outside the vocabulary"),
    ({"stop_tokens": [3, -1]}, ValueError, r"ids \[-1\] are outside"),
    ({"stop_tokens": "3"}, TypeError, "stop_tokens='3'"),
    ({"stop_tokens": 3, "pad_token": VOCAB + 2}, ValueError, "pad_token=33"),
    ({"stop_tokens": 3, "pad_token": [1]}, TypeError, "pad_token=\\[1\\]"),
    ({"pad_token": 0}, ValueError, "pass stop_tokens as well"),
    ({"temperature": 0.5}, ValueError, "temperature=0.5 only apply when sampling"),
    ({"top_k": 3}, ValueError, "top_k=3 only apply when sampling"),
    ({"top_p": 0.9}, ValueError, "top_p=0.9"),
    ({"generator": torch.Generator()}, ValueError, "do_sample=True"),
    ({"do_sample": True, "temperature": 0.0}, ValueError, "temperature=0.0"),
    ({"do_sample": True, "top_k": 0}, ValueError, "top_k=0"),
    ({"do_sample": True, "top_k": VOCAB + 1}, ValueError, f"at most vocab_size={VOCAB}"),
    ({"do_sample": True, "top_p": 0.0}, ValueError, "top_p=0.0"),
    ({"do_sample": True, "top_p": 1.5}, ValueError, "top_p=1.5"),
    ({"do_sample": True, "generator": 3}, TypeError, "expected a torch.Generator"),
    ({"do_sample": 1}, TypeError, "do_sample=1"),
    ({"use_cache": None}, TypeError, "use_cache=None"),
    ({"prefill_chunk_size": 0}, ValueError, "prefill_chunk_size=0"),
    ({"prefill_chunk_size": 2, "use_cache": False}, ValueError, "needs use_cache=True"),
    ({"max_new_tokens": POSITIONS}, ValueError, "max_position_embeddings=32"),
])
def test_generate_bad_options_raise(options: dict[str, Any], error: type[Exception], match: str) -> None:
    model = _model("softmax", {"num_heads": 2})
    options = {"max_new_tokens": 2, **options}
    with pytest.raises(error, match=match):
        model.generate(_tokens(length=5), **options)


@pytest.mark.parametrize(("tokens", "error", "match"), [
    (torch.zeros(2, 3), TypeError, "torch.int64"),
    (torch.zeros(3, dtype=torch.long), ValueError, r"expected \(B, N\)"),
    (torch.zeros(2, 0, dtype=torch.long), ValueError, "N >= 1"),
    (torch.full((1, 3), VOCAB), ValueError, "vocab_size=31"),
    ([[1, 2]], TypeError, "torch.Tensor"),
])
def test_generate_bad_tokens_raise(tokens: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _model("softmax", {"num_heads": 2}).generate(tokens, 2)


def test_generate_fits_the_positions_exactly() -> None:
    model = _model("softmax", {"num_heads": 2})
    prompt = _tokens(length=POSITIONS - 4)
    assert model.generate(prompt, 5).shape == (BATCH, POSITIONS + 1)  # the last token is never fed back
