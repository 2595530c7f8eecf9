"""How long each compare job takes: measured durations kept from earlier runs, estimates for new jobs.

The cost book (``<cache>/compare_costs.json``) keeps, per machine (CPU model, vector ISA, threads per job),
the wall seconds of every job it has seen run, by the job's :meth:`cost_key` (which leaves out source hashes:
an edit rarely changes a cost). A job it has not seen is estimated, in order, from:

1. the same mixer on the same task at another size, scaled by the items it trains on;
2. the median seconds per training item of the other mixers of the same task setting (speed jobs: the
   median of the same suite's workloads, per implementation);
3. the seed book committed with the package (:data:`SEED`, measured on the build machine by
   ``attnzoo compare --full``), scaled by this machine's speed against the build machine's: both run the same
   ~0.3 s calibration (:func:`calibrate`), a fixed training-like loop of attention and MLP steps;
4. a conservative default per kind (:data:`DEFAULT_S`).

Every estimate says where it came from, and the report prints planned against measured time per kind, so a
budget that did not hold shows why.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from attnzoo.compare.jobs import Job

SEED = Path(__file__).with_name("seed_costs.json")
"""Costs measured on the build machine (``attnzoo compare --full --write-seed``), with its calibration."""
DEFAULT_S = {"quality": 90.0, "speed": 20.0}
"""Seconds assumed for a job nothing else can estimate: generous, so a budget holds."""
FORMAT = 1


def calibrate(threads: int, repeats: int = 5) -> float:
    """Median seconds of a fixed training-like loop (causal softmax attention + MLP, forward and backward, at
    MQAR's model size) on ``threads`` threads: the machine-speed yardstick of the estimates."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(32, 128, 64, generator=generator, requires_grad=True)
        w1 = torch.randn(64, 256, generator=generator, requires_grad=True)
        w2 = torch.randn(256, 64, generator=generator, requires_grad=True)

        def step() -> None:
            q = x.view(32, 128, 4, 16).transpose(1, 2)
            y = torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
            h = torch.relu(y.transpose(1, 2).reshape(32, 128, 64) @ w1) @ w2
            h.square().mean().backward()

        step()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(8):
                step()
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        torch.set_num_threads(previous)


def machine_id(threads: int) -> str:
    """The cost book's machine key: CPU model, best vector ISA, threads per job."""
    from attnzoo.bench.machine import cpu_model, vector_isa

    return f"{cpu_model()} | {vector_isa()['isa']} | {threads} threads"


class CostBook:
    """Measured job durations per machine (see the module docstring); ``path=None`` keeps them in memory."""

    def __init__(self, path: Path | None, machine: str, calibration_s: float) -> None:
        self.path = path
        self.machine = machine
        self.calibration_s = calibration_s
        self._data = _read(path) if path is not None else {}
        self._data.setdefault("format", FORMAT)
        self._data.setdefault("machines", {})
        self._here = self._data["machines"].setdefault(machine, {"calibration_s": calibration_s, "costs": {}})
        self._here["calibration_s"] = calibration_s
        self._seed = _read(SEED) if SEED.exists() else {}

    def record(self, job: Job, seconds: float) -> None:
        """Keep ``job``'s measured wall time (written at once: an interrupted run keeps what it learnt)."""
        self._here["costs"][job.cost_key()] = {"seconds": seconds, "work": job.work, "kind": job.kind,
                                               "setting": job.setting, "task": job.task_name, "who": job.who}
        if self.path is not None:
            from attnzoo.train.checkpoint import atomic_write

            atomic_write(self.path, lambda tmp: Path(tmp).write_text(json.dumps(self._data, indent=1) + "\n"))

    def estimate(self, job: Job) -> tuple[float, str]:
        """Estimated wall seconds of ``job`` on this machine and where the number comes from."""
        known = self._here["costs"].get(job.cost_key())
        if known is not None:
            return known["seconds"], "measured before on this machine"
        for fields, what in ((("kind", "task", "who"), "this mixer's other sizes"),
                             (("kind", "setting"), "this setting's other mixers")):
            per_item = _per_item(self._here["costs"].values(), job, fields)
            if per_item is not None:
                return per_item * job.work, f"scaled from {what} on this machine"
        seed = self._seed.get("costs", {})
        scale = self.calibration_s / self._seed["calibration_s"] if self._seed.get("calibration_s") else 1.0
        if job.cost_key() in seed:
            return seed[job.cost_key()]["seconds"] * scale, f"build machine's time x {scale:.2f} (calibration)"
        per_item = _per_item(seed.values(), job, ("kind", "setting"))
        if per_item is not None:
            return per_item * job.work * scale, f"build machine's similar jobs x {scale:.2f} (calibration)"
        return DEFAULT_S[job.kind] * max(scale, 1.0), "default guess"

    def seed_document(self) -> dict[str, Any]:
        """This machine's costs as a seed book (``--write-seed``)."""
        return {"format": FORMAT, "machine": self.machine, "calibration_s": self.calibration_s,
                "costs": dict(self._here["costs"])}


def _per_item(entries: Iterable[dict[str, Any]], job: Job, same: tuple[str, ...]) -> float | None:
    """Median seconds per unit of work over the entries that share the ``same`` fields with ``job``, or
    ``None``."""
    wanted = {"kind": job.kind, "setting": job.setting, "task": job.task_name, "who": job.who}
    rates = [e["seconds"] / e["work"] for e in entries
             if all(e.get(name) == wanted[name] for name in same) and e["work"] > 0]
    return statistics.median(rates) if rates else None


def _read(path: Path) -> dict[str, Any]:
    """The JSON of a cost book, or an empty one when missing, unreadable or of another format (warned about: the
    estimates then fall back to the seed)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        return data
    except (OSError, ValueError, AttributeError) as error:
        import warnings

        warnings.warn(f"ignoring the unreadable cost book {path} ({error}); estimating every job afresh",
                      stacklevel=3)
        return {}
