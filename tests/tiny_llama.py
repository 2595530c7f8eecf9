"""A tiny random Llama (2 layers, width 64, 4 query and 2 KV heads), float64, for the KV-cache tests."""

from __future__ import annotations

import torch
import transformers


def tiny_llama(vocab: int, max_positions: int) -> transformers.LlamaForCausalLM:
    """Seeded (0), in eval mode; token 0 is BOS, EOS and padding."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=max_positions, bos_token_id=0, eos_token_id=0,
                                      pad_token_id=0)
    return transformers.LlamaForCausalLM(config).double().eval()
