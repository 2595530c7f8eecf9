"""The drop-in features of the linear-attention sequence ops (:func:`~attnzoo.ops.lightning.lightning_attention`,
:func:`~attnzoo.ops.linear.linear_attention`), applied once for every form (reference, chunked, recurrent).

- Grouped KV heads (``enable_gqa=True``, ``key``/``value`` with ``Hkv`` heads, ``Hq % Hkv == 0``): query head
  ``h`` reads KV head ``h // (Hq / Hkv)``. :func:`share_kv_heads` repeats the KV heads (``repeat_interleave``)
  before the form runs, so every form sees ``Hq`` heads; this costs ``Hq / Hkv`` times the key/value memory
  (the states are per query head anyway: decays are per query head, and so are ``initial_state`` and the
  final state, ``(B, Hq, D, E)``).
- Key padding (``key_padding_mask`` ``(B, N)``, ``True`` = padding): :func:`drop_padded` sets a padded token's
  key and value rows to zero (``torch.where``, so non-finite padding does not leak), so they enter no state, no
  score and no normaliser. It runs on the keys *after* the feature map (``elu(0) + 1 = 1``: zeroing raw keys
  would not do). Positions are kept: a padded token still counts as one step of the decay (as key padding in
  softmax attention keeps ALiBi's distances). Padded queries still get outputs.
- Packed sequences (``cu_seqlens`` ``(S + 1,)``, batch 1): each sequence starts from a zero state, with its own
  causality (and, with decay, distances inside it; decay weights depend only on distances, so per-sequence
  positions need no shift). The reference forms multiply their dense mask by :func:`same_sequence`; the
  chunked and recurrent forms run :func:`packed_as_batch`, which lays the sequences out as a zero-padded batch
  ``(S, H, max length, D)``, runs the form once and gathers the real tokens back: exact (zero keys and values
  appended after a sequence change none of its outputs, causal or not), no Python loop over the sequences, but
  ``S · max length`` tokens of memory and work instead of ``N``.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch

from attnzoo.ops.dropin import DropIn, check_dropin, sequence_ids


def check_linear_dropin(op: str, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                        attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
                        cu_seqlens: torch.Tensor | None, enable_gqa: bool, dropout_p: float, return_weights: bool,
                        initial_state: torch.Tensor | None, output_final_state: bool) -> DropIn:
    """:func:`~attnzoo.ops.dropin.check_dropin` plus the rules of these ops: keys as long as queries (a decode step
    carries the earlier tokens in ``initial_state``), and no states with packed sequences."""
    if all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in (query, key)) and key.shape[2] != query.shape[2]:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected the query's {query.shape[2]} tokens (Nk == Nq): "
                         f"{op} has no cross-attention; to decode, pass the earlier tokens' state as initial_state "
                         "(output_final_state=True returns it) and only the new tokens as query, key and value")
    dropin = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                          return_weights=return_weights)
    if cu_seqlens is not None and (initial_state is not None or output_final_state):
        raise ValueError(f"cu_seqlens with initial_state or output_final_state=True: {op} starts every packed "
                         "sequence from a zero state and returns no per-sequence states; pass initial_state=None "
                         "and output_final_state=False (or run the sequences as a batch to carry states)")
    return dropin


def share_kv_heads(key: torch.Tensor, value: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Key and value with ``heads`` heads: KV head ``g`` repeated for query heads ``g · r .. g · r + r - 1``."""
    if key.shape[1] == heads:
        return key, value
    repeats = heads // key.shape[1]
    return key.repeat_interleave(repeats, dim=1), value.repeat_interleave(repeats, dim=1)


def drop_padded(key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the key and value rows of padded tokens (``key_padding_mask`` ``(B, N)``, ``True`` = padding)."""
    if key_padding_mask is None:
        return key, value
    pad = key_padding_mask[:, None, :, None]
    return torch.where(pad, 0, key), torch.where(pad, 0, value)


def same_sequence(cu_seqlens: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """``(N, N)`` boolean: tokens ``i`` and ``j`` lie in the same packed sequence."""
    seq = sequence_ids(cu_seqlens, n, device)
    return seq[:, None] == seq[None, :]


Form = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def packed_as_batch(form: Form, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    decay: torch.Tensor | None, cu_seqlens: torch.Tensor, block_size: int) -> torch.Tensor:
    """Run ``form`` (the conventions of :mod:`attnzoo.ops.lightning`, no states) on the packed sequences of
    ``(1, H, N, ·)`` inputs as a zero-padded batch of ``S`` sequences; returns the output ``(1, H, N, E)``."""
    bounds = cu_seqlens.tolist()
    starts = torch.tensor(bounds[:-1], device=query.device)
    sizes = [b - a for a, b in pairwise(bounds)]
    lengths, longest = torch.tensor(sizes, device=query.device), max(sizes)
    steps = torch.arange(longest, device=query.device)
    real = steps[None, :] < lengths[:, None]  # (S, L)
    index = (starts[:, None] + steps[None, :]).clamp(max=query.shape[2] - 1)  # (S, L)

    def as_batch(t: torch.Tensor) -> torch.Tensor:  # (1, H, N, F) -> (S, H, L, F), zeros past each sequence
        return torch.where(real[:, None, :, None], t[0][:, index].transpose(0, 1), 0)

    out, _ = form(as_batch(query), as_batch(key), as_batch(value), decay, None, block_size, False)
    return out.transpose(0, 1)[:, real][None]  # (H, S, L, E) -> (1, H, N, E), tokens in packed order
