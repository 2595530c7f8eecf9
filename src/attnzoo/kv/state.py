"""What a KV policy tracks for one layer, and the step it runs after each call of the layer.

:class:`LayerState` holds, per batch row and K/V head, the positions of the held tokens, the attention they have
received (``mass``: summed over the queries of every call, averaged over the query heads of the K/V group, as
kvpress' ``ObservedAttentionPress``), the number of queries that saw them (``seen``) and their bit widths
(``0`` = unquantised). :meth:`LayerState.step` takes the keys and values a call attended to (those held before
it, then its ``T`` new ones) and, for a policy that reads attention, the call's probabilities; it returns what to
hold for the next call. The attention of the call itself is untouched: compression happens after it, as
kvpress' forward hooks do. Both integrations (attnzoo's causal LM, :mod:`attnzoo.kv.attnzoo_model`, and Hugging
Face models, :mod:`attnzoo.kv.transformers`) run this same step. Cost per call ``O(B H T L)`` for the
probabilities' reduction plus ``O(B Hkv L log L)`` for the selection.
"""

from __future__ import annotations

import torch

from attnzoo.kv.policies import KVPolicy, ZipVL
from attnzoo.kv.quantization import packed_bytes, quantize_rows

__all__ = ["LayerState", "group_mass"]


def group_mass(probs: torch.Tensor, num_kv_heads: int) -> torch.Tensor:
    """``probs`` ``(B, H, T, L)`` -> ``(B, Hkv, L)``: summed over the ``T`` queries, averaged over the ``H / Hkv``
    query heads sharing a K/V head (query head ``i`` reads K/V head ``i // (H / Hkv)``)."""
    b, h, _, length = probs.shape
    summed = probs.to(torch.float64).sum(dim=2)
    return summed.view(b, num_kv_heads, h // num_kv_heads, length).mean(dim=2)


class LayerState:
    """One layer's policy state (see the module docstring); ``length`` counts the tokens consumed, ``budget`` is
    set by the first call."""

    def __init__(self, policy: KVPolicy) -> None:
        if not isinstance(policy, KVPolicy):
            raise TypeError(f"policy={policy!r}: expected a KVPolicy (SlidingWindow, StreamingLLM, H2O, ZipVL)")
        self.policy = policy
        self.length = 0
        self.budget: int | None = None
        self.positions = self.mass = self.seen = self.bits = None
        self.fresh = 0
        """ZipVL: the tokens appended since its last selection."""
        self.selected: list[int] = []
        """ZipVL: the important counts ``p`` of its selections so far (prompt first)."""

    @property
    def held(self) -> int:
        """Tokens held per K/V head."""
        return 0 if self.positions is None else self.positions.shape[-1]

    def step(self, keys: torch.Tensor, values: torch.Tensor,
             probs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``keys`` ``(B, Hkv, L + T, Dk)`` / ``values`` ``(B, Hkv, L + T, Dv)`` the call attended to, ``probs``
        ``(B, H, T, L + T)`` its attention probabilities (required by policies that read attention) -> the keys
        and values to hold."""
        b, hkv, total = keys.shape[:3]
        new = total - self.held
        if new < 1:
            raise ValueError(f"the layer attended to {total} keys but {self.held} were already held: expected the "
                             "held keys followed by at least one new one (was the cache changed outside the policy?)")
        if self.policy.needs_attention:
            if probs is None:
                raise ValueError(f"{type(self.policy).__name__} reads the attention probabilities; the layer gave none")
            if probs.shape[0] != b or probs.shape[2] != new or probs.shape[3] != total or probs.shape[1] % hkv:
                raise ValueError(f"attention probabilities of shape {tuple(probs.shape)}; expected ({b}, H, {new}, "
                                 f"{total}) with H a multiple of the {hkv} K/V heads")
        device = keys.device
        positions = torch.arange(self.length, self.length + new, device=device).expand(b, hkv, new)
        zeros = torch.zeros(b, hkv, new, dtype=torch.float64, device=device)
        if self.positions is None:
            self.positions, self.mass, self.seen = positions, zeros, zeros.clone()
            self.bits = torch.zeros(b, hkv, new, dtype=torch.long, device=device)
        else:
            self.positions = torch.cat([self.positions, positions], dim=-1)
            self.mass, self.seen = torch.cat([self.mass, zeros], dim=-1), torch.cat([self.seen, zeros], dim=-1)
            self.bits = torch.cat([self.bits, torch.zeros_like(positions)], dim=-1)
        # query t of the call (0-based) sees the held tokens and the new ones up to itself
        visible = torch.cat([torch.full((total - new,), float(new), dtype=torch.float64, device=device),
                             torch.arange(new, 0, -1, dtype=torch.float64, device=device)])
        self.seen = self.seen + visible
        if probs is not None:
            self.mass = self.mass + group_mass(probs, hkv)
        first = self.length == 0
        self.length += new
        if isinstance(self.policy, ZipVL):
            self.fresh += new
            return self._zipvl(keys, values) if first or self.fresh >= self.policy.interval else (keys, values)
        if first:
            self.budget = self.policy.resolve_budget(new, self.mass)
        if self.held <= self.budget:
            return keys, values
        index = self.policy.select(self.positions, self.mass, self.seen, self.budget)
        return self._gather(index, keys, values)

    def _gather(self, index: torch.Tensor, keys: torch.Tensor,
                values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.positions, self.mass, self.seen, self.bits = (t.gather(-1, index) for t in
                                                          (self.positions, self.mass, self.seen, self.bits))
        return (keys.gather(2, index[..., None].expand(-1, -1, -1, keys.shape[-1])),
                values.gather(2, index[..., None].expand(-1, -1, -1, values.shape[-1])))

    def _zipvl(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ZipVL's selection over the ``fresh`` tokens (the last ones held): ``p`` from ``tau`` on their mass, the
        top ``p`` by normalised score important; the others evicted, or quantised to ``low_bits`` (the important
        ones to ``high_bits``)."""
        policy, start = self.policy, self.held - self.fresh
        segment = slice(start, self.held)
        p = policy.resolve_budget(self.fresh, self.mass[..., segment])
        self.selected.append(p)
        local = policy.select(self.positions[..., segment], self.mass[..., segment], self.seen[..., segment], p)
        self.fresh = 0
        if policy.evicts:
            older = torch.arange(start, device=keys.device).expand(*local.shape[:2], start)
            return self._gather(torch.cat([older, local + start], dim=-1), keys, values)
        important = torch.zeros_like(self.bits[..., segment], dtype=torch.bool).scatter(-1, local, True)
        bits = torch.where(important, torch.full_like(important, policy.high_bits or 0, dtype=torch.long),
                           torch.full_like(important, policy.low_bits, dtype=torch.long))
        self.bits = torch.cat([self.bits[..., :start], bits], dim=-1)
        return (torch.cat([keys[:, :, :start], quantize_rows(keys[:, :, start:], bits)], dim=2),
                torch.cat([values[:, :, :start], quantize_rows(values[:, :, start:], bits)], dim=2))

    def packed_nbytes(self, key_dim: int, value_dim: int, itemsize: int) -> int:
        """Bytes the held keys and values take packed at their bit widths (whole batch)."""
        if self.bits is None:
            return 0
        return packed_bytes(self.bits, key_dim, itemsize) + packed_bytes(self.bits, value_dim, itemsize)
