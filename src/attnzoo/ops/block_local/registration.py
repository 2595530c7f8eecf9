"""Registry entry of block-local attention (Block Transformer, arXiv 2406.02657): the token decoder's attention."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD, DROP_IN
from attnzoo.layers.block_local import BlockLocalAttention
from attnzoo.ops.block_local.blocked import block_local_blocked
from attnzoo.ops.block_local.functional import VARIANT_NAME, block_local_attention
from attnzoo.ops.block_local.reference import block_local_reference
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

PAPER = Paper("Block Transformer: Global-to-Local Language Modeling for Fast Inference", 2024, "2406.02657", 21)


def _fit_block(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """Blocks of ``extent`` tokens (the last one may be shorter)."""
    return {"block_size": max(1, extent)}


register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=PAPER,
    layout=SEQUENCE,
    summary="the Block Transformer token decoder's attention: causal inside consecutive blocks of S tokens, "
            "optionally with a bidirectional prefix of P positions per block",
    op=block_local_attention,
    implementations={
        "blocked": Implementation("blocked", block_local_blocked,
                                  replace(CUSTOM_BACKWARD, features=CUSTOM_BACKWARD.features | {"cross", "gqa"}),
                                  "reshape into blocks, one batched SDPA over the full blocks (+ one for a "
                                  "shorter last block); O(N * S) memory"),
        "reference": Implementation("reference", block_local_reference,
                                    replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | DROP_IN),
                                    "dense scores + explicit Nq x Nk mask (oracle); every drop-in feature"),
    },
    causal=True,
    layer=BlockLocalAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4, "block_size": 16},
    fit_options=_fit_block,
))
