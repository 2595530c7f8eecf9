"""Registry entry of pointer attention (Pointer Networks, arXiv 1506.03134).

Registered without a ``layer``: :class:`attnzoo.layers.pointer.PointerAttention` maps (decoder states, encoder
states) to a distribution over the encoder positions, not ``(B, N, C) -> (B, N, C)``, so the mixer machinery
(:func:`attnzoo.models.mixers.usable_mixers`) must not offer it as a token mixer."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.ops.pointer.chunked import pointer_chunked
from attnzoo.ops.pointer.functional import pointer_attention
from attnzoo.ops.pointer.reference import pointer_reference
from attnzoo.registry import TOKENS, Implementation, Paper, Variant, register

register(Variant(
    name="pointer_attention",
    family="heads",
    paper=Paper("Pointer Networks", 2015, "1506.03134", 37),
    layout=TOKENS,
    summary="Pointer Networks' additive attention u_ij = vᵀ tanh(W1 e_j + W2 d_i) whose softmax over the input "
            "positions is the output: decoder (B, Nq, Dd) and encoder (B, Nk, De) -> (B, Nq, Nk) probabilities "
            "(or masked logits); optional mask of allowed targets; no layer entry (not a token mixer)",
    op=pointer_attention,
    implementations={
        "chunked": Implementation("chunked", pointer_chunked, CUSTOM_BACKWARD,
                                  "projections once, tanh scores in query chunks (O(chunk·Nk·A) memory), "
                                  "backward recomputing each chunk"),
        "reference": Implementation("reference", pointer_reference, AUTOGRAD_ANY_FLOAT,
                                    "the whole (B, Nq, Nk, A) tanh tensor by broadcasting (oracle)"),
    },
))
