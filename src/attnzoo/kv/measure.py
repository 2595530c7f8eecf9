"""Decode speed and memory of each KV policy, measured for ratios, not absolute times.

For each policy a ``context``-token window is prefilled under it once (not timed); each repeat then decodes
``tokens`` further tokens of the text from a copy of that cache, one call each (teacher-forced, so every policy
reads the same tokens); the time of those model calls is summed. Repeats run round-robin over the policies
(repeat 1 of every policy, then repeat 2, ...) so that a slow stretch of a shared machine hits them all, after one
untimed warm-up round; a row reports the median tokens/s over the repeats (each repeat's value kept in
``tokens_per_s_runs``) and its ratio to the median of full attention in the same run.

Memory, two numbers, not to be confused:

- ``peak_kv_bytes``: exact, from tensor sizes: the largest KV state the policy holds between calls (after the
  prefill and after every decode call; all layers, K and V, ZipVL's mixed precision at its packed size). Within a
  call a layer transiently holds its ``budget`` tokens plus the call's new one before the policy evicts.
- ``peak_rss_rise_bytes``: the process' peak resident set during the timed decode over its resident set before it
  (Linux: ``VmHWM`` reset through ``/proc/self/clear_refs``; ``None`` elsewhere). It includes activations and
  allocator behaviour, not only the cache: a rough figure.
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from attnzoo.bench.machine import cpu_model
from attnzoo.kv.policies import KVPolicy
from attnzoo.validation import check_int

__all__ = ["budget_nbytes", "decode_once", "machine_info", "measure_decode", "peak_rss_probe", "policy_applied",
           "prefill"]


def machine_info() -> dict[str, Any]:
    """CPU model (:func:`attnzoo.bench.machine.cpu_model`), the ISA torch dispatches to, torch's thread count."""
    return {"cpu": cpu_model(), "isa": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "logical_cpus": os.cpu_count()}


@contextlib.contextmanager
def policy_applied(model: Any, policy: KVPolicy | None) -> Iterator[Callable[[], Any]]:  # noqa: ANN401
    """``policy`` on a transformers causal LM under ``torch.no_grad`` inside the block (``None``: the model's own
    cache and attention); yields the factory of empty caches to pass as ``cache=``."""
    from attnzoo.kv import apply_policy

    with torch.no_grad():
        if policy is None:
            from transformers import DynamicCache

            yield lambda: DynamicCache(config=model.config)
        else:
            with apply_policy(model, policy) as kv:
                yield kv.new_cache


def _status(field: str) -> int | None:
    path = Path("/proc/self/status")
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


class peak_rss_probe:  # noqa: N801 (a context manager used like a function)
    """``with peak_rss_probe() as probe: ...``; then ``probe.rise`` is the peak RSS inside the block over the RSS
    at entry, in bytes (``None`` where ``/proc/self/clear_refs`` cannot reset the peak)."""

    def __enter__(self) -> peak_rss_probe:
        self.rise: int | None = None
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._start = _status("VmRSS")
        except OSError:
            self._start = None
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status("VmHWM")
        if self._start is not None and peak is not None:
            self.rise = max(0, peak - self._start)


def _cache_nbytes(cache: Any) -> int:  # noqa: ANN401
    if hasattr(cache, "packed_nbytes"):
        return int(cache.packed_nbytes())
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers if layer.keys is not None)


def budget_nbytes(config: Any, budget: int, batch: int = 1, itemsize: int = 4) -> int:  # noqa: ANN401
    """Bytes of ``budget`` tokens of K and V in every layer and K/V head of a transformers ``config``."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return batch * config.num_hidden_layers * heads * budget * 2 * head_dim * itemsize


def prefill(model: Any, window: torch.Tensor, context: int, policy: KVPolicy | None) -> Any:  # noqa: ANN401
    """The cache after ``window[:, :context]`` under ``policy`` (``None``: the model's own ``DynamicCache``)."""
    check_int("context", context)
    with policy_applied(model, policy) as new_cache:
        cache = new_cache()
        model(window[:, :context], cache=cache, use_cache=True)
    return cache


def decode_once(model: Any, window: torch.Tensor, context: int, tokens: int,  # noqa: ANN401
                policy: KVPolicy | None, prefilled: Any = None) -> dict[str, Any]:  # noqa: ANN401
    """Decode ``window[:, context:context + tokens]`` one call each under ``policy`` (``None``: the model's own
    cache and attention) from a copy of ``prefilled`` (:func:`prefill`'s cache; ``None``: prefill here): the summed
    seconds of those calls, the peak KV bytes held between calls, the peak RSS rise (module docstring)."""
    check_int("context", context)
    check_int("tokens", tokens)
    if window.shape[1] < context + tokens:
        raise ValueError(f"window of {window.shape[1]} tokens; context={context} + tokens={tokens} needs more")
    cache = copy.deepcopy(prefilled) if prefilled is not None else prefill(model, window, context, policy)
    with policy_applied(model, policy):
        return _decode(model, window, context, tokens, cache)


def _decode(model: Any, window: torch.Tensor, context: int, tokens: int, cache: Any) -> dict:  # noqa: ANN401
    peak, seconds = _cache_nbytes(cache), 0.0
    with peak_rss_probe() as probe:
        for t in range(context, context + tokens):
            start = time.perf_counter()
            model(window[:, t:t + 1], cache=cache, use_cache=True)
            seconds += time.perf_counter() - start
            peak = max(peak, _cache_nbytes(cache))
    return {"seconds": seconds, "peak_kv_bytes": peak, "peak_rss_rise_bytes": probe.rise}


def measure_decode(model: Any, window: torch.Tensor, context: int, tokens: int, repeats: int,  # noqa: ANN401
                   policies: list[tuple[str, Any, KVPolicy | None]], progress: bool = True) -> list[dict]:
    """One row per ``(name, setting, policy)``: median decode tokens/s over ``repeats`` (round-robin), its ratio to
    the row named ``"full"`` (which ``policies`` must hold), the peak KV bytes (exact; the same every repeat) and
    the median peak RSS rise."""
    from tqdm.auto import tqdm

    check_int("repeats", repeats)
    if "full" not in [name for name, _, _ in policies]:
        raise ValueError("policies: expected a row named 'full' (full attention), the reference of the ratios")
    runs: list[list[dict]] = [[] for _ in policies]
    bar = tqdm(total=(repeats + 2) * len(policies), desc=f"decode timing {context}", disable=not progress)
    prefilled = []
    for _, _, policy in policies:
        prefilled.append(prefill(model, window, context, policy))
        bar.update()
    for repeat in range(repeats + 1):
        for i, (_, _, policy) in enumerate(policies):
            measured = decode_once(model, window, context, tokens, policy, prefilled[i])
            if repeat:  # round 0 warms up every policy's decode path and is not kept
                runs[i].append(measured)
            bar.update()
    bar.close()
    rows = []
    for (name, setting, _), measured in zip(policies, runs, strict=True):
        rises = [m["peak_rss_rise_bytes"] for m in measured if m["peak_rss_rise_bytes"] is not None]
        rows.append({"context": context, "policy": name, "setting": setting, "decode_tokens": tokens,
                     "repeats": repeats, "tokens_per_s_median": statistics.median(tokens / m["seconds"]
                                                                                  for m in measured),
                     "tokens_per_s_runs": [tokens / m["seconds"] for m in measured],
                     "peak_kv_bytes": max(m["peak_kv_bytes"] for m in measured),
                     "peak_rss_rise_bytes_median": statistics.median(rises) if rises else None})
    full = next(r["tokens_per_s_median"] for r in rows if r["policy"] == "full")
    for row in rows:
        row["speed_vs_full"] = row["tokens_per_s_median"] / full
    return rows
