"""Block Transformer (Ho, Bae, Kim et al., "Block Transformer: Global-to-Local Language Modeling for Fast
Inference", NeurIPS 2024, arXiv 2406.02657): a causal language model in two stages, global over blocks of
``L_B`` tokens, then local inside each block.

1. *Embedder* (official ``LookupEmbedder``, ``projection_method="concat"``): every token gets an embedding of
   ``dim / L_B`` channels and the ``L_B`` embeddings of a block are concatenated into one block embedding
   ``E_b`` of ``dim`` channels (exactly their concatenation, no projection).
2. *Block decoder*: a causal transformer over the block embeddings (pre-norm blocks of causal softmax
   attention and an MLP, a final norm); its output at block ``b`` is the context of the tokens of block ``b``.
   Its KV cache grows by one entry per block: ``T / L_B`` entries per layer.
3. *Token decoder* (strategy ``"prefix"``): the context goes through the expansion layer (the official
   ``Conv1d(dim, R·token_dim, kernel 1)``, a ``Linear``; initialised ``N(0, dim^-1/2)``, bias 0) and is cut
   into ``R = prefix_length`` prefix vectors. Block ``b``'s local sequence is ``[prefix_1..R, t_0 .. t_{L_B-2}]``
   (``S = R + L_B - 1`` positions; the official ``_adapt_forward_inputs_for_prefix`` drops the BOS placeholder),
   and the outputs at positions ``R - 1 .. S - 1`` predict ``t_0 .. t_{L_B-1}`` (``hidden_states[:, R-1:]``).
   Every block's local sequence is one block of the token decoder's stream, whose attention is
   :func:`attnzoo.ops.block_local_attention` with ``block_size = S``: causal (the official GPT-NeoX mask) or,
   ``prefix_attention="full"``, with the ``R`` prefix vectors seeing each other (not in the paper). Its cache
   holds the current block only: at most ``S - 1`` entries per layer whatever the length.
4. *Loss*: next-token cross-entropy on every token (the official ``token_decoding_loss``; the block-decoding
   and auto-encoding losses default to off and are not built).

The official model predicts no token of the first block (it is context only, its prompts are left-padded to a
block boundary). Here a learned *start* vector is the block decoder's first input, so the first block has a
context too and the model keeps the library's language-model contract: ``forward(tokens)`` ``(B, N)`` returns
logits ``(B, N, vocab)``, those at ``t`` predicting token ``t + 1`` from tokens ``<= t``, with ``at`` and
``cache`` as :class:`~attnzoo.models.CausalLanguageModel` (so the quality tasks train it and
:func:`attnzoo.models.generation.generate` decodes it). Blocks are aligned to position 0 (no padding). Positions
are learned (``max_position_embeddings`` tokens, ``0``: none) over blocks, and always over the ``S`` local
positions (the official decoders use rotary embeddings). The head is tied to the token decoder's embedding
(``tie_weights``; Pythia's is not). Defaults of the official ``block_main_b4_85``: ``L_B = 4``, ``R = 2``.

Decoding (:class:`~attnzoo.models.block_transformer_cache.BlockTransformerCache`): a token that completes a block
is embedded with the block's other tokens (kept in the cache), the block decoder takes one step over it (its
KV cache), the prefix of the next block enters the token decoder; any other token enters the token decoder
alone. The block decoder runs once every ``L_B`` tokens. Verified (``tests/test_block_transformer.py``): cached
decoding token by token and in chunks equals the full forward, greedy generation with the cache equals
recomputing the prefix, causality, the embedder's concatenation, the cache sizes; the official code
(``itsnamgyu/block-transformer``, ``model/block_transformer.py``, ``model/token_decoder/base.py``) was read,
not run (it needs HF GPT-NeoX and DeepSpeed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.models.block import Block
from attnzoo.models.block_transformer_cache import BlockTransformerCache
from attnzoo.models.generation import generate
from attnzoo.models.language_model import CausalLanguageModel
from attnzoo.models.mixers import SOFTMAX, mixer_factory
from attnzoo.validation import check_flag, check_int

__all__ = ["BlockEmbedder", "BlockTransformer", "split_layers", "vanilla_counterpart"]

PREFIX_ATTENTION = ("causal", "full")
"""How the prefix vectors attend to each other in the token decoder: causally (official) or all to all."""


class BlockEmbedder(nn.Module):
    """The lookup embedder with concatenation: ``(B, n, L_B)`` token ids -> ``(B, n, dim)`` block embeddings,
    each the concatenation of its tokens' ``dim / L_B``-channel embeddings (``N(0, 0.02)`` as the official)."""

    def __init__(self, vocab_size: int, dim: int, block_length: int) -> None:
        super().__init__()
        if dim % block_length:
            raise ValueError(f"dim={dim} must be divisible by block_length={block_length} (a block embedding "
                             "concatenates block_length token embeddings of dim / block_length channels)")
        self.block_length = block_length
        self.embedding = nn.Embedding(vocab_size, dim // block_length)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        if blocks.shape[-1] != self.block_length:
            raise ValueError(f"blocks has shape {tuple(blocks.shape)}; expected (..., block_length="
                             f"{self.block_length}) token ids")
        return self.embedding(blocks).flatten(-2)


class BlockTransformer(nn.Module):
    """The Block Transformer language model (see the module docstring).

    Args:
        vocab_size: number of tokens.
        dim: block decoder width (``D_block``); a multiple of ``block_length``.
        block_length: tokens per block (``L_B``).
        block_layers / token_layers: depths of the block and the token decoder.
        num_heads: attention heads of the block decoder (and of the token decoder unless ``token_heads``).
        token_dim: token decoder width (default ``dim``).
        prefix_length: prefix vectors per block (``R``, the official ``expansion_ratio``).
        mlp_ratio: MLP hidden width / width in both decoders (``0``: no MLP).
        max_position_embeddings: longest token sequence, for the learned block positions (``0``: none).
        prefix_attention: ``"causal"`` (official) or ``"full"`` (the prefix vectors see each other).
        tie_weights: share the head's weight with the token decoder's embedding.
    """

    def __init__(self, vocab_size: int, dim: int = 128, block_length: int = 4, block_layers: int = 2,
                 token_layers: int = 2, num_heads: int = 4, token_dim: int | None = None,
                 token_heads: int | None = None, prefix_length: int = 2, mlp_ratio: float = 4.0,
                 max_position_embeddings: int = 0, prefix_attention: str = "causal", tie_weights: bool = True) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("dim", dim), ("block_length", block_length),
                            ("block_layers", block_layers), ("token_layers", token_layers),
                            ("prefix_length", prefix_length)):
            check_int(name, value)
        check_int("max_position_embeddings", max_position_embeddings, 0)
        check_flag("tie_weights", tie_weights)
        if prefix_attention not in PREFIX_ATTENTION:
            raise ValueError(f"prefix_attention={prefix_attention!r}: expected one of {PREFIX_ATTENTION}")
        token_dim = dim if token_dim is None else check_int("token_dim", token_dim)
        token_heads = num_heads if token_heads is None else token_heads
        self.block_length, self.prefix_length, self.prefix_attention = block_length, prefix_length, prefix_attention
        self.local_length = prefix_length + block_length - 1
        self.max_position_embeddings = max_position_embeddings
        self.embedder = BlockEmbedder(vocab_size, dim, block_length)
        self.start = nn.Parameter(torch.randn(dim) * 0.02)
        self.block_position = (nn.Embedding(max_position_embeddings // block_length + 1, dim)
                               if max_position_embeddings else None)
        attention = mixer_factory(SOFTMAX, dim, {"num_heads": num_heads})
        self.block_decoder = nn.ModuleList(Block(dim, attention(), mlp_ratio) for _ in range(block_layers))
        self.block_norm = nn.LayerNorm(dim)
        self.expansion = nn.Linear(dim, prefix_length * token_dim)
        full = prefix_attention == "full"
        local = mixer_factory("block_local_attention", token_dim,
                              {"num_heads": token_heads, "block_size": self.local_length, "is_causal": not full,
                               "num_prefix_tokens": prefix_length if full else 0}, causal=not full)
        self.token_embedding = nn.Embedding(vocab_size, token_dim)
        self.local_position = nn.Embedding(self.local_length, token_dim)
        self.token_decoder = nn.ModuleList(Block(token_dim, local(), mlp_ratio) for _ in range(token_layers))
        self.norm = nn.LayerNorm(token_dim)
        self.head = nn.Linear(token_dim, vocab_size, bias=False)
        for embedding in (self.token_embedding, self.local_position, self.block_position):
            if embedding is not None:
                nn.init.normal_(embedding.weight, std=0.02)
        nn.init.normal_(self.expansion.weight, std=dim ** -0.5)  # the official _init_expansion_layer
        nn.init.zeros_(self.expansion.bias)
        if tie_weights:
            self.head.weight = self.token_embedding.weight

    @property
    def vocab_size(self) -> int:
        """Number of tokens."""
        return self.token_embedding.num_embeddings

    @property
    def max_sequence_length(self) -> int | None:
        """The most tokens the model can read: ``max_position_embeddings``, ``None`` without block positions."""
        return self.max_position_embeddings or None

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> BlockTransformerCache:
        """An empty decoding cache: a K/V cache over the block embeddings per block-decoder layer, a
        current-block cache per token-decoder layer (dtype and device default to the model's)."""
        return BlockTransformerCache.for_model(self, batch_size, dtype, device, max_length)

    def forward(self, tokens: torch.Tensor, at: torch.Tensor | None = None,
                cache: BlockTransformerCache | None = None) -> torch.Tensor:
        """``tokens`` ``(B, N)`` int64 -> logits ``(B, N, vocab_size)``: those at ``t`` predict token ``t + 1`` from
        tokens ``<= t``. ``at``: a ``(B, N)`` bool mask, then only those rows, ``(at.sum(), vocab_size)``.
        ``cache`` (:meth:`new_cache`): ``tokens`` are the next ``N`` after the ``cache.length`` it holds."""
        if at is not None and (at.shape != tokens.shape or at.dtype != torch.bool):
            raise ValueError(f"at must be a bool mask of the tokens' shape {tuple(tokens.shape)}, got "
                             f"{at.dtype} {tuple(at.shape)}")
        if cache is not None:
            if not isinstance(cache, BlockTransformerCache):
                raise TypeError(f"cache={type(cache).__name__}: expected a BlockTransformerCache "
                                "(model.new_cache(...))")
            cache.check(self, tokens)
        hidden = self._hidden(tokens, cache)
        return self.head(self.norm(hidden if at is None else hidden[at]))

    def _hidden(self, tokens: torch.Tensor, cache: BlockTransformerCache | None) -> torch.Tensor:
        """The token decoder's outputs ``(B, N, token_dim)`` that predict tokens ``P0 + 1 .. P0 + N`` (``P0`` the
        tokens cached), feeding every stream position that becomes known and updating ``cache``."""
        block, prefix, local = self.block_length, self.prefix_length, self.local_length
        batch = tokens.shape[0]
        before = 0 if cache is None else cache.length
        after = before + tokens.shape[1]
        if self.max_position_embeddings and after > self.max_position_embeddings:
            raise ValueError(f"sequence length {after} exceeds max_position_embeddings={self.max_position_embeddings}")
        first, last = before // block, after // block  # the blocks of the first new token and of the next one
        ids = tokens if cache is None else torch.cat([cache.pending, tokens], dim=1)  # from block `first` on
        complete = self.embedder(ids[:, :(last - first) * block].reshape(batch, last - first, block))
        if before == 0:  # block 0's context comes from the start vector
            complete = torch.cat([self.start.to(complete.dtype).expand(batch, 1, -1), complete], dim=1)
        contexts = self._contexts(complete, last + 1 - complete.shape[1], cache)
        prefixes = self.expansion(contexts).unflatten(-1, (prefix, -1))  # (B, new contexts, R, token_dim)
        if before:  # block `first`'s prefix is in the token decoder's cache already
            prefixes = torch.cat([prefixes.new_zeros(batch, 1, *prefixes.shape[2:]), prefixes], dim=1)
        segments = last - first + 1
        padded = F.pad(ids, (0, segments * block - ids.shape[1]))
        inputs = self.token_embedding(padded.view(batch, segments, block)[:, :, :block - 1])
        stream = (torch.cat([prefixes, inputs], dim=2) + self.local_position.weight).flatten(1, 2)
        low = 0 if before == 0 else prefix + before % block  # stream positions from block `first`'s start
        high = (last - first) * local + prefix + after % block
        x = stream[:, low:high]
        for i, decoder_block in enumerate(self.token_decoder):
            x = decoder_block(x, None if cache is None else cache.token_layers[i])
        targets = torch.arange(before + 1, after + 1, device=tokens.device)  # predicted positions
        rows = (targets // block - first) * local + prefix - 1 + targets % block - low
        if cache is not None:
            cache.pending = ids[:, (last - first) * block:]
            cache.length = after
        return x[:, rows]

    def _contexts(self, inputs: torch.Tensor, start: int, cache: BlockTransformerCache | None) -> torch.Tensor:
        """The block decoder over ``inputs`` ``(B, n, dim)`` (block-decoder positions ``start ..``; ``n`` may be
        0 with a cache): the contexts ``(B, n, dim)``."""
        if inputs.shape[1] == 0:
            return inputs
        x = inputs
        if self.block_position is not None:
            x = x + self.block_position(torch.arange(start, start + inputs.shape[1], device=inputs.device))
        for i, decoder_block in enumerate(self.block_decoder):
            x = decoder_block(x, None if cache is None else cache.block_layers[i])
        return self.block_norm(x)

    def generate(self, tokens: torch.Tensor, max_new_tokens: int, **options: object
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Prefill ``tokens`` ``(B, N)`` and decode up to ``max_new_tokens`` more through the library's one
        generation function, :func:`attnzoo.models.generation.generate` (every option of it)."""
        return generate(self, tokens, max_new_tokens, **options)


def vanilla_counterpart(model: BlockTransformer, num_heads: int | None = None) -> CausalLanguageModel:
    """A vanilla decoder-only transformer of about ``model``'s parameters: the library's
    :class:`~attnzoo.models.CausalLanguageModel` of the token decoder's width with ``block_layers +
    token_layers`` causal softmax blocks (the same MLP ratio, positions and head tying). The Block Transformer
    has a little more (its embedder, start vector, expansion layer and second final norm)."""
    first = model.token_decoder[0]
    heads = first.mixer.num_heads if num_heads is None else num_heads
    mlp = first.mlp
    ratio = 0.0 if mlp is None else mlp[0].out_features / mlp[0].in_features
    layers = len(model.block_decoder) + len(model.token_decoder)
    return CausalLanguageModel(model.vocab_size, model.token_embedding.embedding_dim, layers, SOFTMAX,
                               {"num_heads": heads}, mlp_ratio=ratio,
                               max_position_embeddings=model.max_position_embeddings,
                               tie_weights=model.head.weight is model.token_embedding.weight)


def split_layers(num_layers: int) -> tuple[int, int]:
    """``(block_layers, token_layers)`` for a budget of ``num_layers`` blocks: half each, the block decoder taking
    the odd one (at least one of each)."""
    check_int("num_layers", num_layers, 2)
    return num_layers - num_layers // 2, num_layers // 2
