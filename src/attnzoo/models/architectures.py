"""Whole language-model architectures that the quality tasks can train in place of a token mixer.

A language-modelling task (MQAR, the Austen LM) builds :class:`~attnzoo.models.CausalLanguageModel` around the
mixer it is given; a name of :data:`ARCHITECTURES` instead builds that architecture from the task's sizes
(vocabulary, width, depth, MLP ratio, positions), so it trains, scores and joins ``attnzoo compare`` as one more
row of the task's table. Each architecture belongs to the family of the registry variant it is built on (its
rows are that family's, and its cached rows depend on that variant's source). The model must keep the causal LM
contract of :class:`~attnzoo.models.CausalLanguageModel` (``forward(tokens, at=None)``, logits at ``t``
predicting token ``t + 1``), which the tasks' losses and scores rely on.

* ``block_transformer``: :class:`~attnzoo.models.BlockTransformer` (arXiv 2406.02657), the task's layers split
  between the block and the token decoder (the block decoder takes the odd one), both of the task's width. It has
  no short-convolution stem (MQAR's ``short_conv`` applies to the mixer models only).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from attnzoo.models.block_transformer import BlockTransformer, split_layers
from attnzoo.models.language_model import CausalLanguageModel
from attnzoo.models.mixers import SEQUENCE_LAYOUT, check_mixers, usable_mixers


@dataclass(frozen=True)
class Sizes:
    """What a language-modelling task fixes of its model."""

    vocab_size: int
    dim: int
    num_layers: int
    mlp_ratio: float
    max_position_embeddings: int


@dataclass(frozen=True)
class Architecture:
    """A trainable language-model architecture: ``build(sizes, options)``, the registry ``variant`` it is built
    on, and the constructor (``layer``) whose keyword arguments ``options`` may set."""

    name: str
    variant: str
    build: Callable[[Sizes, Mapping[str, Any]], nn.Module]
    constructor: type[nn.Module]


def _block_transformer(sizes: Sizes, options: Mapping[str, Any]) -> nn.Module:
    block_layers, token_layers = split_layers(sizes.num_layers)
    return BlockTransformer(sizes.vocab_size, sizes.dim, **{
        "block_layers": block_layers, "token_layers": token_layers, "mlp_ratio": sizes.mlp_ratio,
        "max_position_embeddings": sizes.max_position_embeddings, **options})


ARCHITECTURES: dict[str, Architecture] = {
    "block_transformer": Architecture("block_transformer", "block_local_attention", _block_transformer,
                                      BlockTransformer),
}
"""The architectures by name (the name a task's ``--mixers`` takes)."""


def mixer_variant(name: str) -> str:
    """The registry variant behind a task's mixer name: the architecture's, else the name itself."""
    return ARCHITECTURES[name].variant if name in ARCHITECTURES else name


def build_language_model(name: str, sizes: Sizes, options: Mapping[str, Any], *, short_conv: int = 0,
                         seq_len: int | None = None) -> nn.Module:
    """Architecture ``name`` built from ``sizes``, or a :class:`~attnzoo.models.CausalLanguageModel` whose token
    mixer is ``name`` (with ``short_conv`` and ``seq_len`` as that class takes them)."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name].build(sizes, options)
    return CausalLanguageModel(sizes.vocab_size, sizes.dim, sizes.num_layers, name, options,
                               mlp_ratio=sizes.mlp_ratio, max_position_embeddings=sizes.max_position_embeddings,
                               short_conv=short_conv, seq_len=seq_len)


def check_language_models(options: Mapping[str, Mapping[str, Any]], sizes: Sizes) -> None:
    """Raise one ``ValueError`` naming every mixer or architecture of ``options`` (name -> options) that a causal
    language model of ``sizes`` cannot take: the mixers' checks (:func:`~attnzoo.models.mixers.check_mixers`),
    and each architecture built (with a vocabulary of 2) with its options."""
    problems = []
    for name in (n for n in options if n in ARCHITECTURES):
        architecture = ARCHITECTURES[name]
        accepted = [p for p in inspect.signature(architecture.constructor).parameters if p != "self"]
        unknown = [key for key in options[name] if key not in accepted]
        try:
            if unknown:
                raise TypeError(f"unexpected options {unknown}; {architecture.constructor.__name__} accepts "
                                f"{', '.join(accepted)}")
            architecture.build(Sizes(2, sizes.dim, sizes.num_layers, sizes.mlp_ratio, sizes.max_position_embeddings),
                               options[name])
        except (TypeError, ValueError) as error:
            problems.append(f"architecture {name!r} with {dict(options[name])}: {error}")
    mixers = {name: value for name, value in options.items() if name not in ARCHITECTURES}
    try:
        if mixers:
            check_mixers(mixers, sizes.dim, (SEQUENCE_LAYOUT,), causal=True)
    except ValueError as error:
        problems.append(str(error))
    if problems:
        raise ValueError("; ".join(problems) + f". Architectures: {', '.join(ARCHITECTURES)}")


def language_model_names() -> Sequence[str]:
    """Every name a language-modelling task takes: the causal ``(B, N, C)`` mixers, then the architectures."""
    return [*usable_mixers((SEQUENCE_LAYOUT,), causal=True), *ARCHITECTURES]
