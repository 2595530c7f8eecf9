"""Smoke test of examples/finetune_smollm2_sliding_window.py on a tiny random Llama, 2 steps (the real run needs
SmolLM2 and minutes)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finetune_smollm2_sliding_window.py"


def test_finetune_example_runs_on_a_tiny_llama() -> None:
    spec = importlib.util.spec_from_file_location("finetune_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(config)
    ids = torch.randint(0, 64, (400,), generator=torch.Generator().manual_seed(0))
    result = example.run(model, ids[:300], ids[300:], window=8, steps=2, context=32, batch=2, lr=1e-3)
    assert all(math.isfinite(result[k]) for k in ("ppl_full_attention", "ppl_window_before", "ppl_window_after"))
    assert result["ppl_window_before"] != result["ppl_full_attention"]  # the window is live
    assert model.config._attn_implementation == "sdpa"  # restored
