"""What real models pass to attention, shared by every sequence op: explicit masks, key padding, packed
variable-length sequences, queries and keys of different lengths, grouped KV heads, dropout, weights.

Conventions, stated once (and those of PyTorch and FlashAttention, so that a model's tensors pass as they are):

- ``query`` ``(B, Hq, Nq, D)``, ``key`` ``(B, Hkv, Nk, D)``, ``value`` ``(B, Hkv, Nk, Dv)``. ``Nq <= Nk``: the
  queries are the *last* ``Nq`` positions of the key sequence (FlashAttention's bottom-right alignment), so a
  decode step is one query against its KV cache, and causal or windowed patterns apply at those positions.
- ``Hkv < Hq`` only with ``enable_gqa=True`` (as SDPA): query head ``h`` reads key/value head
  ``h // (Hq / Hkv)``; nothing broadcasts silently.
- ``attn_mask``: boolean (``True`` = the pair takes part, SDPA's convention) or additive in the query's dtype,
  of shape ``(Nq, Nk)``, ``(B, 1, Nq, Nk)`` or ``(B, Hq, Nq, Nk)``; combined with the op's own pattern (a pair
  takes part when both allow it).
- ``key_padding_mask``: ``(B, Nk)`` boolean, ``True`` = padding, ignored (``nn.MultiheadAttention``'s convention).
- ``cu_seqlens``: ``(S + 1,)`` integer cumulative lengths of ``S`` sequences packed along the tokens of a batch of
  one (FlashAttention's varlen convention); tokens attend only within their sequence, and the op's pattern is
  evaluated in each sequence's own positions (its window, its sinks).
- ``dropout_p``: attention dropout applied to the probabilities whenever ``> 0`` (as SDPA: pass 0 in eval).
- ``return_weights``: also return the attention probabilities ``(B, Hq, Nq, Nk)`` (before dropout).
- A query that sees no key (all of its keys padded or masked) outputs zeros, with zero gradients (as
  FlashAttention and FlexAttention), never NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnzoo.masks import MaskMod
from attnzoo.ops.dense import attend_values, check_dense_size
from attnzoo.validation import (
    check_flag,
    check_float_tensors,
    check_one_dtype_and_device,
    check_real,
)


@dataclass(frozen=True)
class DropIn:
    """A call's validated drop-in options (see the module docstring)."""

    attn_mask: torch.Tensor | None = None
    key_padding_mask: torch.Tensor | None = None
    cu_seqlens: torch.Tensor | None = None
    enable_gqa: bool = False
    dropout_p: float = 0.0
    return_weights: bool = False
    cross: bool = False
    gqa: bool = False

    @property
    def features(self) -> frozenset[str]:
        """The :data:`attnzoo.registry.FEATURES` this call uses."""
        used = {"attn_mask": self.attn_mask is not None, "key_padding": self.key_padding_mask is not None,
                "varlen": self.cu_seqlens is not None, "cross": self.cross, "gqa": self.gqa,
                "dropout": self.dropout_p > 0, "weights": self.return_weights}
        return frozenset(name for name, on in used.items() if on)


def check_sequence_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, enable_gqa: bool,
                          layout: str = "(B, H, N, D)") -> tuple[bool, bool]:
    """Check ``(B, Hq, Nq, D)`` / ``(B, Hkv, Nk, D)`` / ``(B, Hkv, Nk, Dv)``; returns ``(cross, gqa)``."""
    check_float_tensors({"query": query, "key": key, "value": value}, 4, layout)
    check_flag("enable_gqa", enable_gqa)
    (b, hq, nq, d), (bk, hkv, nk, dk) = query.shape, key.shape
    if (bk, dk) != (b, d):
        raise ValueError(f"key has shape {tuple(key.shape)}; expected batch {b} and head dim {d} of the query "
                         f"{tuple(query.shape)} {layout}")
    if nk < nq:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected at least the query's {nq} tokens, Nk >= Nq "
                         f"(the queries are the last Nq positions of the key sequence) {layout}")
    if value.shape[:3] != key.shape[:3]:
        raise ValueError(f"value has shape {tuple(value.shape)}; expected {tuple(key.shape[:3])} (the key's) in all "
                         f"but the last (head) dim {layout}")
    if hkv != hq and not (enable_gqa and hkv >= 1 and hq % hkv == 0):
        raise ValueError(f"key has {hkv} heads and query {hq}; expected equal head counts, or enable_gqa=True with "
                         f"the query's heads a multiple of the key's (grouped KV heads)")
    check_one_dtype_and_device(query, key, value)
    if d == 0 or value.shape[-1] == 0 or nq == 0:
        raise ValueError(f"query {tuple(query.shape)}, value {tuple(value.shape)}: expected at least one token and "
                         "head dims >= 1")
    return nk != nq, hkv != hq


def check_dropin(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                 attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
                 cu_seqlens: torch.Tensor | None, enable_gqa: bool, dropout_p: float,
                 return_weights: bool) -> DropIn:
    """Validate the inputs and drop-in options of a sequence op (shapes in the module docstring)."""
    cross, gqa = check_sequence_inputs(query, key, value, enable_gqa=enable_gqa)
    (b, hq, nq, _), nk = query.shape, key.shape[2]
    if attn_mask is not None:
        allowed = [(nq, nk), (b, 1, nq, nk), (b, hq, nq, nk)]
        if not isinstance(attn_mask, torch.Tensor) or tuple(attn_mask.shape) not in allowed:
            shape = tuple(attn_mask.shape) if isinstance(attn_mask, torch.Tensor) else type(attn_mask).__name__
            raise ValueError(f"attn_mask has shape {shape}; expected one of {allowed}")
        if attn_mask.dtype not in (torch.bool, query.dtype):
            raise TypeError(f"attn_mask.dtype={attn_mask.dtype}; expected torch.bool (True = take part) or the "
                            f"query's dtype {query.dtype} (additive)")
    if key_padding_mask is not None:
        check_key_padding(key_padding_mask, b, nk, "Nk")
    if cu_seqlens is not None:
        check_cu_seqlens(cu_seqlens, b, nq, nk)
    dropout_p = check_real("dropout_p", dropout_p, inclusive=True)
    if dropout_p >= 1:
        raise ValueError(f"dropout_p={dropout_p!r}: expected 0 <= dropout_p < 1")
    check_flag("return_weights", return_weights)
    for name, t in (("attn_mask", attn_mask), ("key_padding_mask", key_padding_mask), ("cu_seqlens", cu_seqlens)):
        if t is not None and t.device != query.device:
            raise ValueError(f"{name} is on {t.device}; expected the query's device {query.device}")
    return DropIn(attn_mask, key_padding_mask, cu_seqlens, enable_gqa, dropout_p, return_weights, cross, gqa)


def check_key_padding(key_padding_mask: torch.Tensor, batch: int, tokens: int, axis: str = "N") -> None:
    """``key_padding_mask`` is a ``torch.bool`` tensor of shape ``(B, tokens)`` (``True`` = padding)."""
    if not isinstance(key_padding_mask, torch.Tensor) or tuple(key_padding_mask.shape) != (batch, tokens) \
            or key_padding_mask.dtype != torch.bool:
        shape = tuple(getattr(key_padding_mask, "shape", ())), getattr(key_padding_mask, "dtype", None)
        raise ValueError(f"key_padding_mask has shape/dtype {shape}; expected torch.bool of shape (B, {axis}) = "
                         f"({batch}, {tokens}), True = padding")


def sequence_ids(cu_seqlens: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """``(N,)``: the index of the packed sequence (``cu_seqlens``) each of ``n`` tokens belongs to."""
    return torch.bucketize(torch.arange(n, device=device), cu_seqlens[1:].to(device), right=True)


def check_cu_seqlens(cu_seqlens: torch.Tensor, batch: int, nq: int, nk: int) -> None:
    """``(S + 1,)`` integers from 0 to ``N``, strictly increasing; a batch of one with ``Nq == Nk``."""
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dim() != 1 or cu_seqlens.dtype not in (
            torch.int32, torch.int64) or cu_seqlens.numel() < 2:
        raise ValueError(f"cu_seqlens={cu_seqlens!r}: expected a 1-D int32/int64 tensor of S + 1 >= 2 cumulative "
                         "sequence lengths")
    if batch != 1 or nq != nk:
        raise ValueError(f"cu_seqlens needs the packed layout: batch 1 and Nq == Nk, got batch {batch}, Nq {nq}, "
                         f"Nk {nk}")
    bounds = cu_seqlens.tolist()
    if bounds[0] != 0 or bounds[-1] != nk or any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"cu_seqlens={bounds}: expected strictly increasing values from 0 to the {nk} tokens")


def dropin_visibility(pattern: MaskMod | None, dropin: DropIn, shape: tuple[int, int, int, int],
                      device: torch.device) -> torch.Tensor:
    """The boolean ``(B or 1, H or 1, Nq, Nk)`` mask of the pairs that take part: the op's ``pattern``
    (evaluated at the queries' positions ``Nk - Nq + i``, per packed sequence in its own positions) and
    ``attn_mask`` (boolean) and the key padding."""
    b, h, nq, nk = shape
    q = torch.arange(nk - nq, nk, device=device)[:, None]
    kv = torch.arange(nk, device=device)[None, :]
    if dropin.cu_seqlens is not None:
        seq = sequence_ids(dropin.cu_seqlens, nk, device)
        start = dropin.cu_seqlens.to(device)[seq]
        visible = (seq[q] == seq[kv])[None, None]
        q, kv = q - start[q], kv - start[kv]
    else:
        visible = torch.ones(1, 1, nq, nk, dtype=torch.bool, device=device)
    if pattern is not None:
        heads = torch.arange(h, device=device)[:, None, None]
        visible = visible & pattern(torch.zeros((), dtype=torch.long, device=device), heads, q[None], kv[None])[None]
    if dropin.attn_mask is not None and dropin.attn_mask.dtype == torch.bool:
        visible = visible & dropin.attn_mask
    if dropin.key_padding_mask is not None:
        visible = visible & ~dropin.key_padding_mask[:, None, None, :]
    return visible


def dropin_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, dropin: DropIn,
                     pattern: MaskMod | None, scale: float,
                     bias: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The dense oracle of a sequence op with every drop-in feature: ``softmax(q kᵀ · scale + bias) v`` over the
    pairs of :func:`dropin_visibility`; O(B · Hq · Nq · Nk) time and memory (refused up front beyond the
    machine's memory). Returns the output ``(B, Hq, Nq, Dv)``, and the probabilities with ``return_weights``."""
    b, hq, nq, _ = query.shape
    nk = key.shape[2]
    check_dense_size("the dense score matrix", (b, hq, nq, nk), query.dtype, "a fast path, impl='auto'")
    if dropin.gqa:
        key, value = (t.repeat_interleave(hq // key.shape[1], dim=1) for t in (key, value))
    visible = dropin_visibility(pattern, dropin, (b, hq, nq, nk), query.device)
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if dropin.attn_mask is not None and dropin.attn_mask.dtype != torch.bool:
        scores = scores + dropin.attn_mask
    if bias is not None:
        scores = scores + bias()
    visible = visible & (scores != float("-inf"))  # an additive -inf hides the pair too
    any_visible = visible.any(-1, keepdim=True)
    scores = scores.masked_fill(~visible, float("-inf")).masked_fill(~any_visible, 0)
    probs = torch.softmax(scores, dim=-1) * any_visible  # a query that sees no key: zeros, no NaN
    weights = probs
    if dropin.dropout_p > 0:
        probs = F.dropout(probs, dropin.dropout_p)
    out = attend_values(probs, value, visible)
    return (out, weights) if dropin.return_weights else out
