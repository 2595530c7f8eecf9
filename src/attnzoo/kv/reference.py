"""The readable oracle of every KV policy on one softmax-attention layer: explicit Python sets of held positions,
one query row at a time, dense softmax over exactly the keys that row can see.

:func:`reference_policy_attention` feeds a sequence to a layer in calls of the given lengths (the prompt, then one
token per decode step, or any chunking). Query ``t`` of a call sees every token held after the previous call and
the call's own tokens up to itself; after the call the policy keeps, per batch row and K/V head, the tokens its
rule names, written here as list operations (:mod:`attnzoo.kv.policies` describes each rule):

* sliding window: the last ``budget``; StreamingLLM: the sinks, then the last ``budget − sinks``;
* H2O: the last ``int(budget · recent_fraction)``, then the largest accumulated attention (``/ seen`` if
  normalised) among the others;
* ZipVL: over the prompt, then over each ``interval`` tokens decoded since: ``p`` = their count minus the most
  least-attended of them whose mass stays within ``(1 − tau)`` of theirs (summed over the layer's heads; largest
  over the batch), the top ``p`` by normalised score important; the others evicted, or quantised.

``O(B H N L D)`` Python-level work: for tests at small sizes, in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnzoo.kv.policies import H2O, KVPolicy, SlidingWindow, StreamingLLM, ZipVL
from attnzoo.kv.quantization import quantize_rows

__all__ = ["reference_policy_attention"]


def _budget(policy: KVPolicy, n: int, layer_mass: list[dict[int, float]]) -> int:
    if isinstance(policy, ZipVL):
        counts = []
        for row in layer_mass:
            total, dropped, running = sum(row.values()), 0, 0.0
            for value in sorted(row.values()):
                running += value
                if running > (1 - policy.tau) * total:
                    break
                dropped += 1
            counts.append(n - dropped)
        return max(counts)
    return policy.budget if policy.budget is not None else max(1, int(n * policy.keep_ratio))


def _zipvl(policy: ZipVL, fresh: list[int], held: list[list[list[int]]], mass: list, seen: list,
           key: torch.Tensor, value: torch.Tensor) -> None:
    """ZipVL's selection over the ``fresh`` positions (in place): evict or quantise the unimportant ones."""
    kv_heads = len(held[0])
    layer_mass = [{p: sum(mass[b][g][p] for g in range(kv_heads)) for p in fresh} for b in range(len(held))]
    p_count = _budget(policy, len(fresh), layer_mass)
    for b in range(len(held)):
        for g in range(kv_heads):
            older = [p for p in held[b][g] if p not in fresh]
            important = _keep(policy, fresh, p_count, mass[b][g], seen[b][g])
            if policy.evicts:
                held[b][g] = older + important
                continue
            held[b][g] = older + fresh
            bits = torch.tensor([policy.high_bits or 0 if p in important else policy.low_bits for p in fresh])
            key[b, g, fresh] = quantize_rows(key[b, g, fresh][None, None], bits[None, None])[0, 0]
            value[b, g, fresh] = quantize_rows(value[b, g, fresh][None, None], bits[None, None])[0, 0]


def _keep(policy: KVPolicy, held: list[int], budget: int, mass: dict[int, float], seen: dict[int, float]
          ) -> list[int]:
    if len(held) <= budget:
        return held
    if isinstance(policy, SlidingWindow):
        return held[-budget:]
    if isinstance(policy, StreamingLLM):
        sinks = [p for p in held if p < policy.num_sinks]
        others = [p for p in held if p >= policy.num_sinks]
        return sinks + others[len(others) - (budget - len(sinks)):]  # budget >= num_sinks (checked)
    if isinstance(policy, H2O):
        recent = held[len(held) - int(budget * policy.recent_fraction):] if int(budget * policy.recent_fraction) \
            else []
        score = (lambda p: mass[p] / seen[p]) if policy.normalize else (lambda p: mass[p])
        rest = sorted((p for p in held if p not in recent), key=score, reverse=True)
        return sorted(rest[:budget - len(recent)] + recent)
    if isinstance(policy, ZipVL):
        return sorted(sorted(held, key=lambda p: mass[p] / seen[p], reverse=True)[:budget])
    raise TypeError(f"no reference rule for {type(policy).__name__}")


def reference_policy_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, policy: KVPolicy,
                               calls: Sequence[int], scale: float | None = None
                               ) -> tuple[torch.Tensor, list[list[list[int]]]]:
    """``query`` ``(B, H, N, D)``, ``key`` ``(B, Hkv, N, D)``, ``value`` ``(B, Hkv, N, Dv)`` of the whole sequence,
    fed in ``calls`` (lengths summing to ``N``) under ``policy`` -> the outputs ``(B, H, N, Dv)`` and the positions
    held after the last call, ``held[b][kv_head]`` (ascending)."""
    b_size, heads, n, _ = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    if sum(calls) != n:
        raise ValueError(f"calls={tuple(calls)} sum to {sum(calls)}; expected the sequence length {n}")
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    key, value = key.clone(), value.clone()  # mixed precision overwrites the rows it quantises
    out = query.new_zeros(b_size, heads, n, value.shape[-1])
    held = [[[] for _ in range(kv_heads)] for _ in range(b_size)]
    mass = [[{} for _ in range(kv_heads)] for _ in range(b_size)]
    seen = [[{} for _ in range(kv_heads)] for _ in range(b_size)]
    budget, start, fresh = None, 0, []
    for length in calls:
        new = list(range(start, start + length))
        for b in range(b_size):
            for h in range(heads):
                g = h // group
                for t, position in enumerate(new):
                    visible = held[b][g] + new[:t + 1]
                    weights = ((key[b, g, visible] @ query[b, h, position]) * scale).softmax(dim=0)
                    out[b, h, position] = weights @ value[b, g, visible]
                    for p, w in zip(visible, weights.tolist()):
                        mass[b][g][p] = mass[b][g].get(p, 0.0) + w / group
                        seen[b][g][p] = seen[b][g].get(p, 0.0) + 1 / group
        first, start = start == 0, start + length
        fresh += new
        if isinstance(policy, ZipVL):
            if first or len(fresh) >= policy.interval:
                _zipvl(policy, fresh, held, mass, seen, key, value)
                fresh = []
            else:
                held = [[held[b][g] + new for g in range(kv_heads)] for b in range(b_size)]
            continue
        if first:
            budget = _budget(policy, length, [])
        held = [[_keep(policy, held[b][g] + new, budget, mass[b][g], seen[b][g]) for g in range(kv_heads)]
                for b in range(b_size)]
    return out, held
