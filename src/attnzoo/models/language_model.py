"""A small causal language model whose token mixer is any causal ``(B, N, C)`` layer of the registry.

The layout follows zoology's ``LanguageModel`` (``zoology/model.py``): token embedding plus an optional
learned positional embedding, pre-norm blocks (``x + mixer(norm(x))`` then ``x + mlp(norm(x))``), a final
norm and a language-model head tied to the token embedding by default. Zoology's MQAR attention runs use a
learned positional embedding of length ``L`` and its convolutional/recurrent runs none: ``max_position_embeddings``
chooses (``0`` = no positional embedding, the mixer must then carry order itself, as convolutions and decays do).
Zoology's Figure 2 runs drop the MLP (``state_mixer = Identity``): ``mlp_ratio=0`` does the same.
``short_conv=k`` makes the first block's mixer zoology's short gated convolution (``BaseConv`` with a
``k``-tap filter), the "Hybrid" stem of zoology's Based configurations: it binds each token to its
predecessors, so the mixers after it only have to do the recall (MQAR then trains in hundreds of steps
instead of tens of thousands).

Decoding: :meth:`CausalLanguageModel.new_cache` makes a :class:`~attnzoo.models.generation.ModelCache` (one cache
per block, :mod:`attnzoo.layers.cache`), ``forward(tokens, cache=cache)`` reads the next tokens after it (the
position embedding offset by what the cache holds), and :meth:`CausalLanguageModel.generate` runs prefill and
token-by-token decoding (:func:`attnzoo.models.generation.generate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from attnzoo.models.block import Block
from attnzoo.models.generation import ModelCache, generate, new_model_cache
from attnzoo.models.mixers import SEQUENCE_LAYOUT, SOFTMAX, mixer_factory

__all__ = ["SOFTMAX", "Block", "CausalLanguageModel", "mixer_factory"]


class CausalLanguageModel(nn.Module):
    """Token embedding (+ optional learned positions) -> ``num_layers`` pre-norm blocks -> norm -> LM head.

    Args:
        vocab_size: number of tokens.
        dim: model width.
        num_layers: number of blocks.
        mixer: ``"softmax"`` (dense causal attention baseline) or a causal ``(B, N, C)`` registry variant
            (built by :func:`~attnzoo.models.mixers.mixer_factory`).
        mixer_kwargs: keyword arguments of the mixer layer (``dim`` is the model's).
        mlp_ratio: MLP hidden width / ``dim``; ``0`` drops the MLP (zoology's Figure 2 setting).
        max_position_embeddings: length of the learned positional embedding; ``0`` uses none.
        tie_weights: share the head's weight with the token embedding (zoology does).
        short_conv: if ``> 0``, block 0's mixer is ``base_conv`` with ``kernel_size=short_conv`` instead of
            ``mixer`` (the other ``num_layers - 1`` blocks use ``mixer``).
        seq_len: the training sequence length, if known: fills the mixer's size options (``l_max``,
            ``max_len``, ``seq_len``; the variant's ``size_options``) unless ``mixer_kwargs`` sets them.
    """

    def __init__(self, vocab_size: int, dim: int, num_layers: int, mixer: str = SOFTMAX,
                 mixer_kwargs: Mapping[str, Any] | None = None, mlp_ratio: float = 4.0,
                 max_position_embeddings: int = 0, tie_weights: bool = True, short_conv: int = 0,
                 seq_len: int | None = None) -> None:
        super().__init__()
        if short_conv < 0 or (short_conv and num_layers < 2):
            raise ValueError(f"short_conv={short_conv} with num_layers={num_layers}: expected short_conv >= 0, "
                             "and num_layers >= 2 when it is > 0 (block 0 is the convolution)")
        grid = None if seq_len is None else (seq_len,)
        build = mixer_factory(mixer, dim, mixer_kwargs, layouts=(SEQUENCE_LAYOUT,), causal=True, grid=grid)
        stem = mixer_factory("base_conv", dim, {"kernel_size": short_conv}, grid=grid) if short_conv else build
        self.mixer_name = mixer
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = (nn.Embedding(max_position_embeddings, dim)
                                   if max_position_embeddings > 0 else None)
        self.blocks = nn.ModuleList(Block(dim, (stem if i == 0 else build)(), mlp_ratio) for i in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        # Zoology's _init_weights draws embeddings from N(0, 0.02); nn.Embedding's N(0, 1) would give a tied
        # head logits of norm ~sqrt(dim) at initialisation.
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding.weight, std=0.02)
        if tie_weights:
            self.head.weight = self.token_embedding.weight

    @property
    def vocab_size(self) -> int:
        """Number of tokens."""
        return self.token_embedding.num_embeddings

    @property
    def max_sequence_length(self) -> int | None:
        """The most tokens the model can read: ``max_position_embeddings``, ``None`` without learned positions."""
        return None if self.position_embedding is None else self.position_embedding.num_embeddings

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> ModelCache:
        """An empty decoding cache for ``forward(tokens, cache=...)``: one per block, from each mixer's
        ``new_cache`` (:func:`~attnzoo.models.generation.new_model_cache`; ``NotSupportedError`` names a mixer
        that cannot decode)."""
        return new_model_cache(self, batch_size, dtype, device, max_length)

    def forward(self, tokens: torch.Tensor, at: torch.Tensor | None = None,
                cache: ModelCache | None = None) -> torch.Tensor:
        """``tokens``: ``(B, N)`` int64 -> logits ``(B, N, vocab_size)``; logits at ``t`` use tokens ``<= t``.

        ``at``: an optional ``(B, N)`` bool mask; then only the logits of those positions are computed and
        returned, ``(at.sum(), vocab_size)`` in row-major order. Tasks scored at a few positions (MQAR's queries)
        skip the ``N x vocab`` head GEMM and softmax elsewhere, which dominate a small model's cost.
        ``cache`` (:meth:`new_cache`): ``tokens`` are the next ``N`` tokens after the ``cache.length`` it holds
        (positions ``cache.length ..``); it is updated, and the logits equal those of a forward over the whole
        sequence at these positions.
        """
        if at is not None and (at.shape != tokens.shape or at.dtype != torch.bool):
            raise ValueError(f"at must be a bool mask of the tokens' shape {tuple(tokens.shape)}, got "
                             f"{at.dtype} {tuple(at.shape)}")
        start = 0
        if cache is not None:
            if not isinstance(cache, ModelCache):
                raise TypeError(f"cache={type(cache).__name__}: expected a ModelCache (model.new_cache(...))")
            cache.check(self, tokens)
            start = cache.length
        x = self.token_embedding(tokens)
        if self.position_embedding is not None:
            length = start + tokens.shape[1]
            if length > self.position_embedding.num_embeddings:
                raise ValueError(f"sequence length {length} exceeds max_position_embeddings="
                                 f"{self.position_embedding.num_embeddings}")
            x = x + self.position_embedding(torch.arange(start, length, device=tokens.device))
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache.layers[i])
        if cache is not None:
            cache.length += tokens.shape[1]
        return self.head(self.norm(x if at is None else x[at]))

    def generate(self, tokens: torch.Tensor, max_new_tokens: int, *, do_sample: bool = False,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None, stop_tokens: int | Sequence[int] | None = None,
                 pad_token: int | None = None, use_cache: bool = True, prefill_chunk_size: int | None = None,
                 progress: bool = False, return_logits: bool = False
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Prefill ``tokens`` ``(B, N)`` and decode up to ``max_new_tokens`` more, greedy or sampled:
        :func:`attnzoo.models.generation.generate`, whose docstring describes every option."""
        return generate(self, tokens, max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
                        top_p=top_p, generator=generator, stop_tokens=stop_tokens, pad_token=pad_token,
                        use_cache=use_cache, prefill_chunk_size=prefill_chunk_size, progress=progress,
                        return_logits=return_logits)
