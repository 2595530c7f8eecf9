"""Pointer attention (Vinyals, Fortunato & Jaitly 2015, "Pointer Networks", arXiv 1506.03134): additive
(Bahdanau-style) attention whose softmax over the input positions *is* the output distribution.

Equation (paper Sec. 2.3)::

    u^i_j = vᵀ tanh(W1 e_j + W2 d_i)              j = 1..Nk   (encoder states e_j, decoder state d_i)
    p(C_i | C_1..C_{i-1}, P) = softmax_j(u^i_j)

Layout (not the ``(B, H, N, D)`` of the other sequence ops, and no value tensor): ``decoder`` ``(B, Nq, Dd)`` (one
row per output step ``i``), ``encoder`` ``(B, Nk, De)`` (one row per input position ``j``), ``w1`` ``(De, A)``,
``w2`` ``(Dd, A)``, ``v`` ``(A,)``; written as right-multiplications (``e_j W1``), i.e. the paper's ``W1 e_j``
with ``W1`` transposed. The result is ``(B, Nq, Nk)``: **probabilities** (each row sums to 1 over the allowed
positions; disallowed positions are exactly 0), or with ``return_logits=True`` the scores ``u`` themselves,
``-inf`` at the disallowed positions (ready for ``F.cross_entropy`` / ``log_softmax``, the numerically stable way
to train on the distribution). ``mask`` ``(B, Nq, Nk)`` bool, ``True`` = position ``j`` may be pointed to by
output ``i`` (to forbid inputs already pointed to, as the paper's constrained decoding for TSP); a row with no
allowed position has no distribution and raises ``ValueError``.

Cost: O(B · Nq · Nk · A) time for the tanh scores plus O(B · (Nq · Dd + Nk · De) · A) for the projections; the
reference holds the whole ``(B, Nq, Nk, A)`` tanh tensor, the ``chunked`` implementation O(chunk · Nk · A) of it
(forward and backward: its backward recomputes the tanh per query chunk).

Verified against the paper's equations (there is no official code; 2015): the reference is the equation written
out with an explicit ``(B, Nq, Nk, A)`` broadcast, checked entry by entry against ``vᵀ tanh(W1 e_j + W2 d_i)``
with matrix-vector products, and ``chunked`` equals it forward and backward in float64 (``tests/test_pointer.py``
and the registry contract). Against a peer: both give the pointer distribution of shirgur/PointerNet's
``Attention`` (``PointerNet.py`` at c7ed050, transcribed into the test with its weights; its two biases folded in
as a constant-1 encoder feature) to 1e-14.
"""

from __future__ import annotations

import torch

from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_float_tensors, check_tensor_like

LAYOUT = "(B, N, D)"


def check_pointer_inputs(decoder: torch.Tensor, encoder: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
                         v: torch.Tensor, mask: torch.Tensor | None) -> None:
    """Check every argument of :func:`pointer_attention` (see its docstring); errors name the argument, the value
    and what is expected. Nothing broadcasts."""
    check_float_tensors({"decoder": decoder, "encoder": encoder}, 3, LAYOUT)
    if encoder.shape[0] != decoder.shape[0]:
        raise ValueError(f"encoder has shape {tuple(encoder.shape)}; expected the decoder's batch "
                         f"{decoder.shape[0]} in dim 0 (decoder {tuple(decoder.shape)}, (B, Nq, Dd) / (B, Nk, De))")
    if encoder.shape[1] == 0:
        raise ValueError(f"encoder has shape {tuple(encoder.shape)}: no input positions to point to; expected "
                         "Nk >= 1")
    check_tensor_like("encoder", encoder, tuple(encoder.shape), decoder, "the decoder")
    if not isinstance(w1, torch.Tensor) or w1.dim() != 2:
        shape = tuple(w1.shape) if isinstance(w1, torch.Tensor) else type(w1).__name__
        raise ValueError(f"w1 has shape {shape}; expected (De, A) = ({encoder.shape[-1]}, A), 2-D")
    attn_dim = w1.shape[1]
    if attn_dim == 0:
        raise ValueError(f"w1 has shape {tuple(w1.shape)}: attention dim A = 0; expected A >= 1")
    check_tensor_like("w1", w1, (encoder.shape[-1], attn_dim), decoder, "the decoder")
    check_tensor_like("w2", w2, (decoder.shape[-1], attn_dim), decoder, "the decoder")
    check_tensor_like("v", v, (attn_dim,), decoder, "the decoder")
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask.dtype={mask.dtype}; expected torch.bool (True = the position may be pointed to)")
    expected = (decoder.shape[0], decoder.shape[1], encoder.shape[1])
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask has shape {tuple(mask.shape)}; expected (B, Nq, Nk) = {expected}")
    if mask.device != decoder.device:
        raise ValueError(f"mask is on {mask.device}; expected the decoder's device {decoder.device}")
    empty = ~mask.any(-1)
    if bool(empty.any()):
        b, i = (int(x) for x in empty.nonzero()[0])
        raise ValueError(f"mask[{b}, {i}] allows no input position ({int(empty.sum())} such rows): a pointer "
                         "distribution needs at least one allowed position per (batch, query) row")


def pointer_attention(decoder: torch.Tensor, encoder: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
                      v: torch.Tensor, *, mask: torch.Tensor | None = None, return_logits: bool = False,
                      impl: str = "auto") -> torch.Tensor:
    """Pointer distributions ``softmax_j(vᵀ tanh(e_j W1 + d_i W2))``: ``decoder`` ``(B, Nq, Dd)``, ``encoder``
    ``(B, Nk, De)``, ``w1`` ``(De, A)``, ``w2`` ``(Dd, A)``, ``v`` ``(A,)`` -> ``(B, Nq, Nk)`` probabilities (or, with
    ``return_logits=True``, the scores ``u`` with ``-inf`` at disallowed positions). ``mask`` ``(B, Nq, Nk)`` bool,
    ``True`` = allowed; every row needs one allowed position. ``impl``: ``"auto"``, ``"chunked"`` or
    ``"reference"``. Time O(B · Nq · Nk · A); see the module docstring.

    >>> import torch
    >>> d, e = torch.randn(2, 5, 16), torch.randn(2, 7, 16)      # 5 output steps over 7 inputs
    >>> w1, w2, v = torch.randn(16, 8), torch.randn(16, 8), torch.randn(8)
    >>> p = pointer_attention(d, e, w1, w2, v)
    >>> p.shape, bool(torch.allclose(p.sum(-1), torch.ones(2, 5)))
    (torch.Size([2, 5, 7]), True)
    """
    check_pointer_inputs(decoder, encoder, w1, w2, v, mask)
    check_flag("return_logits", return_logits)
    implementation = select_implementation("pointer_attention", impl, CallFacts.of(
        [decoder, encoder, w1, w2, v], length=encoder.shape[1]))
    return implementation.fn(decoder, encoder, w1, w2, v, mask=mask, return_logits=return_logits)
