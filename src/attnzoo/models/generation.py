"""Generation with the library's language models: prefill the prompt into per-layer caches, then
decode one token at a time, greedy or sampled (temperature, top-k, top-p), until ``max_new_tokens`` or a stop
token.

As HF transformers' ``generate`` with a ``DynamicCache`` (and fla's recurrent-state generation): the prompt runs
once (in chunks of ``prefill_chunk_size`` tokens if given) through the model with a :class:`ModelCache`, one
decoding cache per block (:mod:`attnzoo.layers.cache`: K/V for softmax attention, the window for sliding-window
attention, the state for the recurrent linear family); each step then feeds only the new token, whose logits
equal the full forward's at that position. A step costs ``O(L C)`` per softmax layer (``L`` tokens cached),
``O(window C)`` per window layer and ``O(C²/H)`` per recurrent layer, against ``O(L² C)`` for recomputing the
prefix. A model with a mixer that cannot decode raises :class:`~attnzoo.registry.NotSupportedError` naming it;
``use_cache=False`` (explicit) recomputes the whole prefix each step instead.

Any model with the :class:`GenerativeModel` interface decodes through the same :func:`generate`: the causal language
model (:class:`~attnzoo.models.CausalLanguageModel`, a :class:`ModelCache` of one layer cache per block) and the Block
Transformer (:class:`~attnzoo.models.BlockTransformer`, whose cache subclasses :class:`ModelCache`).

Sampling follows HF's logits warpers in HF's order (``TemperatureLogitsWarper``, ``TopKLogitsWarper``,
``TopPLogitsWarper`` of ``transformers/generation/logits_process.py``; :func:`filter_logits` is tested equal to
them), then ``torch.multinomial`` with the caller's ``generator``. Finished rows (they emitted a stop token) get
``pad_token`` afterwards, as HF's ``unfinished_sequences``; generation ends when every row has finished.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from attnzoo.layers.cache import LayerCache, can_decode
from attnzoo.registry import NotSupportedError
from attnzoo.validation import check_flag, check_int, check_optional_int, check_real, is_int

if TYPE_CHECKING:
    from attnzoo.models.language_model import CausalLanguageModel

__all__ = ["GenerativeModel", "ModelCache", "filter_logits", "generate", "new_model_cache", "prefill"]


class GenerativeModel(Protocol):
    """What :func:`generate` and :func:`prefill` need of a model: a token-level causal LM whose
    ``forward(tokens, at=None, cache=None)`` returns the logits of ``tokens`` ``(B, N)`` (those at ``t`` predict
    token ``t + 1`` from tokens ``<= t``; with ``at``, a ``(B, N)`` bool mask, only those rows), with ``cache`` the
    next ``N`` tokens after what the cache holds; ``new_cache`` makes such a cache; ``vocab_size`` and
    ``max_sequence_length`` (the most tokens it can read, ``None``: no limit) bound the inputs."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def max_sequence_length(self) -> int | None: ...

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> ModelCache: ...

    def __call__(self, tokens: torch.Tensor, at: torch.Tensor | None = None,
                 cache: ModelCache | None = None) -> torch.Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


class ModelCache:
    """The decoding caches of a model's blocks (``layers[i]`` belongs to ``blocks[i].mixer``) and ``length``, the
    tokens consumed: the position of the next token (the learned position embedding's offset).

    Memory, summed over the layers: ``nbytes`` (held now, whole batch), ``nbytes_at(length)``,
    ``bytes_per_token`` and ``state_bytes`` (per sequence).
    """

    def __init__(self, model: nn.Module, layers: Sequence[LayerCache], max_length: int | None = None) -> None:
        if not layers:
            raise ValueError("a ModelCache needs one layer cache per block; got none")
        self._model = weakref.ref(model)
        self.model_name = type(model).__name__
        self.layers = list(layers)
        self.max_length = check_optional_int("max_length", max_length)
        self.length = 0

    @property
    def batch_size(self) -> int:
        return self.layers[0].batch_size

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].dtype

    @property
    def device(self) -> torch.device:
        return self.layers[0].device

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers)

    @property
    def bytes_per_token(self) -> int:
        return sum(layer.bytes_per_token for layer in self.layers)

    @property
    def state_bytes(self) -> int:
        return sum(layer.state_bytes for layer in self.layers)

    def nbytes_at(self, length: int) -> int:
        """Bytes held (whole batch) once ``length`` tokens are consumed."""
        return sum(layer.nbytes_at(length) for layer in self.layers)

    def check(self, model: nn.Module, tokens: torch.Tensor) -> None:
        """Raise unless ``tokens`` ``(B, T)`` can be the next ``T`` tokens of this cache in ``model``."""
        if self._model() is not model:
            raise ValueError(f"cache was made for another model (a {self.model_name}); expected a cache of this "
                             "model (make one with model.new_cache(...))")
        self._check_layers(model)
        if tokens.dim() != 2 or tokens.shape[0] != self.batch_size:
            raise ValueError(f"tokens has shape {tuple(tokens.shape)}; the cache was made for (B, T) tokens with "
                             f"B = batch_size={self.batch_size}")
        if tokens.device != self.device:
            raise ValueError(f"tokens are on {tokens.device}; the cache was made for device={self.device}")
        if tokens.shape[1] < 1:
            raise ValueError(f"tokens has shape {tuple(tokens.shape)}: expected at least one new token (T >= 1)")
        if self.max_length is not None and self.length + tokens.shape[1] > self.max_length:
            raise ValueError(f"{tokens.shape[1]} new tokens after the {self.length} the cache holds exceed "
                             f"max_length={self.max_length}")

    def _check_layers(self, model: nn.Module) -> None:
        """Raise unless the cache has one layer cache per block of ``model``."""
        if len(self.layers) != len(model.blocks):
            raise ValueError(f"cache has {len(self.layers)} layer caches; the model has {len(model.blocks)} blocks")

    def __repr__(self) -> str:
        return (f"ModelCache(layers={len(self.layers)}, batch_size={self.batch_size}, dtype={self.dtype}, "
                f"device={self.device}, length={self.length}, max_length={self.max_length}, nbytes={self.nbytes})")


def new_model_cache(model: CausalLanguageModel, batch_size: int, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, max_length: int | None = None) -> ModelCache:
    """An empty :class:`ModelCache` for ``model`` (dtype and device default to its embedding's). ``max_length``
    defaults to the learned position embedding's length, if any, and cannot exceed it.
    :class:`~attnzoo.registry.NotSupportedError` names the mixers whose layers cannot decode."""
    check_int("batch_size", batch_size)
    check_optional_int("max_length", max_length)
    unable = sorted({type(block.mixer).__name__ for block in model.blocks if not can_decode(block.mixer)})
    if unable:
        raise NotSupportedError(f"mixer {model.mixer_name!r}: layer {', '.join(unable)} cannot decode with a cache "
                                "(no new_cache); pass use_cache=False to generate to recompute the whole prefix "
                                "each step")
    positions = None if model.position_embedding is None else model.position_embedding.num_embeddings
    if positions is not None and max_length is not None and max_length > positions:
        raise ValueError(f"max_length={max_length} exceeds the model's max_position_embeddings={positions}")
    max_length = positions if max_length is None else max_length
    weight = model.token_embedding.weight
    dtype = weight.dtype if dtype is None else dtype
    device = weight.device if device is None else torch.device(device)
    layers = [block.mixer.new_cache(batch_size, dtype=dtype, device=device, max_length=max_length)
              for block in model.blocks]
    return ModelCache(model, layers, max_length)


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """``logits`` ``(B, V)`` divided by ``temperature``, then every token outside the ``top_k`` most likely
    (ties with the k-th kept) and outside the nucleus (the most likely tokens whose probabilities, before the
    token's own, sum to less than ``top_p``; the most likely always kept) set to ``-inf``: HF's
    ``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and ``TopPLogitsWarper`` in that order. ``O(B V log V)``."""
    logits = logits / temperature if temperature != 1.0 else logits
    if top_k is not None:
        threshold = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if top_p is not None and top_p < 1.0:
        ascending, order = torch.sort(logits, descending=False)
        remove = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
        remove[..., -1:] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def _check_tokens(model: GenerativeModel, tokens: torch.Tensor) -> None:
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
    if tokens.dtype != torch.long:
        raise TypeError(f"tokens.dtype={tokens.dtype}; expected torch.int64 token ids")
    if tokens.dim() != 2 or tokens.shape[0] < 1 or tokens.shape[1] < 1:
        raise ValueError(f"tokens has shape {tuple(tokens.shape)}; expected (B, N) with B >= 1 and N >= 1 prompt "
                         "tokens")
    vocab = model.vocab_size
    if tokens.min() < 0 or tokens.max() >= vocab:
        raise ValueError(f"tokens hold ids in [{int(tokens.min())}, {int(tokens.max())}]; expected ids in "
                         f"[0, vocab_size={vocab})")
    device = next(model.parameters()).device
    if tokens.device != device:
        raise ValueError(f"tokens are on {tokens.device}; the model is on {device}")


def _token_ids(name: str, value: int | Sequence[int] | None, vocab: int) -> list[int]:
    """``None``, one id or a sequence of ids, each in ``[0, vocab)``."""
    if value is None:
        return []
    ids = [value] if is_int(value) else list(value) if isinstance(value, Sequence) else None
    if ids is None or not all(is_int(i) for i in ids):
        raise TypeError(f"{name}={value!r}: expected an int token id or a sequence of them")
    outside = [i for i in ids if not 0 <= i < vocab]
    if outside:
        raise ValueError(f"{name}={value!r}: ids {outside} are outside the vocabulary [0, vocab_size={vocab})")
    return ids


def _check_sampling(do_sample: bool, temperature: float, top_k: int | None, top_p: float | None,
                    generator: torch.Generator | None, vocab: int, device: torch.device) -> None:
    check_flag("do_sample", do_sample)
    check_real("temperature", temperature)
    check_optional_int("top_k", top_k)
    if top_k is not None and top_k > vocab:
        raise ValueError(f"top_k={top_k}: expected at most vocab_size={vocab}")
    if top_p is not None and not 0 < check_real("top_p", top_p) <= 1:
        raise ValueError(f"top_p={top_p!r}: expected 0 < top_p <= 1")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator={generator!r}: expected a torch.Generator")
        if generator.device.type != device.type:
            raise ValueError(f"generator is on {generator.device}; the tokens are on {device}")
    given = ([f"temperature={temperature!r}"] if temperature != 1.0 else []) + [
        f"{name}={value!r}" for name, value in (("top_k", top_k), ("top_p", top_p), ("generator", generator))
        if value is not None]
    if not do_sample and given:
        raise ValueError(f"{', '.join(given)} only apply when sampling; pass do_sample=True (greedy decoding takes "
                         "the most likely token)")


def _check_length(model: GenerativeModel, prompt: int, max_new_tokens: int) -> None:
    """The positions decoding reaches (the last token generated is never fed back) must have an embedding."""
    positions = model.max_sequence_length
    if positions is None:
        return
    fed = prompt + max(max_new_tokens - 1, 0)
    if fed > positions:
        raise ValueError(f"{prompt} prompt tokens + max_new_tokens={max_new_tokens} feed {fed} tokens to the model; "
                         f"its max_position_embeddings={positions} is the longest sequence it can read")


def _last(tokens: torch.Tensor) -> torch.Tensor:
    """The ``at`` mask selecting each row's last position."""
    at = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
    at[:, -1] = True
    return at


def prefill(model: GenerativeModel, tokens: torch.Tensor, cache: ModelCache,
            chunk_size: int | None = None) -> torch.Tensor:
    """Feed ``tokens`` ``(B, N)`` into ``cache`` (``chunk_size`` tokens at a time; all at once if ``None``) and
    return the logits ``(B, V)`` of the last position (the head runs on that position only)."""
    step = tokens.shape[1] if chunk_size is None else chunk_size
    starts = range(0, tokens.shape[1], step)
    for start in starts[:-1]:
        piece = tokens[:, start:start + step]
        model(piece, at=torch.zeros(piece.shape, dtype=torch.bool, device=piece.device), cache=cache)
    piece = tokens[:, starts[-1]:]
    return model(piece, at=_last(piece), cache=cache)


def generate(model: GenerativeModel, tokens: torch.Tensor, max_new_tokens: int, *, do_sample: bool = False,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None, stop_tokens: int | Sequence[int] | None = None,
             pad_token: int | None = None, use_cache: bool = True, prefill_chunk_size: int | None = None,
             progress: bool = False, return_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Continue each prompt row of ``tokens`` ``(B, N)`` (int64) by up to ``max_new_tokens`` tokens.

    Greedy (``do_sample=False``: the most likely token, the first on ties) or sampled (``do_sample=True``:
    :func:`filter_logits` with ``temperature``, ``top_k``, ``top_p``, then ``torch.multinomial`` drawing from
    ``generator``, so a seeded generator reproduces the tokens). ``stop_tokens``: one id or several; a row that
    emits one is finished and gets ``pad_token`` (default: the first stop token) from then on; generation ends
    early once every row has finished. ``use_cache=True`` prefills a :class:`ModelCache` (``prefill_chunk_size``
    tokens at a time if given) and feeds one token per step; ``use_cache=False`` recomputes the whole sequence
    each step (``O(L²)`` per step for softmax), for mixers without a cache. ``progress`` shows a tqdm bar.

    Returns the tokens ``(B, N + S)`` with ``S <= max_new_tokens`` generated, and with ``return_logits`` also
    the raw logits ``(B, S, vocab_size)`` each step drew from. Runs under ``torch.no_grad()`` and leaves the
    model's mode alone: call ``model.eval()`` first (dropout and batch norm in training mode change outputs).
    Raises ``ValueError`` / ``TypeError`` for bad tokens or options (sampling options without ``do_sample``,
    stop or pad ids outside the vocabulary, a prompt plus ``max_new_tokens`` past ``max_position_embeddings``)
    and :class:`~attnzoo.registry.NotSupportedError` for a mixer that cannot decode with ``use_cache=True``.
    """
    _check_tokens(model, tokens)
    check_int("max_new_tokens", max_new_tokens, 0)
    vocab = model.vocab_size
    _check_sampling(do_sample, temperature, top_k, top_p, generator, vocab, tokens.device)
    stops = _token_ids("stop_tokens", stop_tokens, vocab)
    if pad_token is not None:
        if not is_int(pad_token):
            raise TypeError(f"pad_token={pad_token!r}: expected an int token id")
        _token_ids("pad_token", pad_token, vocab)
        if not stops:
            raise ValueError(f"pad_token={pad_token!r} is only used after a stop token; pass stop_tokens as well")
    pad = pad_token if pad_token is not None else stops[0] if stops else 0
    for name, flag in (("use_cache", use_cache), ("progress", progress), ("return_logits", return_logits)):
        check_flag(name, flag)
    check_optional_int("prefill_chunk_size", prefill_chunk_size)
    if prefill_chunk_size is not None and not use_cache:
        raise ValueError(f"prefill_chunk_size={prefill_chunk_size} needs use_cache=True (without a cache the "
                         "prompt is read whole each step)")
    _check_length(model, tokens.shape[1], max_new_tokens)
    from tqdm.auto import tqdm

    generated: list[torch.Tensor] = []
    step_logits: list[torch.Tensor] = []
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    stop_ids = torch.tensor(stops, dtype=torch.long, device=tokens.device)
    with torch.no_grad():
        cache = None
        if max_new_tokens and use_cache:
            cache = model.new_cache(tokens.shape[0], device=tokens.device)
            logits = prefill(model, tokens, cache, prefill_chunk_size)
        elif max_new_tokens:
            logits = model(tokens, at=_last(tokens))
        for step in tqdm(range(max_new_tokens), desc="generate", disable=not progress):
            step_logits.append(logits)
            if do_sample:
                probabilities = filter_logits(logits, temperature, top_k, top_p).softmax(dim=-1)
                chosen = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
            else:
                chosen = logits.argmax(dim=-1)
            if stops:
                chosen = torch.where(finished, torch.full_like(chosen, pad), chosen)
                finished = finished | torch.isin(chosen, stop_ids)
            generated.append(chosen)
            if step == max_new_tokens - 1 or bool(finished.all()):
                break
            if cache is not None:
                logits = model(chosen[:, None], cache=cache)[:, -1]
            else:
                sequence = torch.cat([tokens, torch.stack(generated, dim=1)], dim=1)
                logits = model(sequence, at=_last(sequence))
    new = torch.stack(generated, dim=1) if generated else tokens.new_zeros(tokens.shape[0], 0)
    out = torch.cat([tokens, new], dim=1)
    if not return_logits:
        return out
    logits_out = (torch.stack(step_logits, dim=1) if step_logits
                  else next(model.parameters()).new_zeros(tokens.shape[0], 0, vocab))
    return out, logits_out
