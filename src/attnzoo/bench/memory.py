"""Peak memory of one call: from ``torch.profiler`` memory events on CPU, from the CUDA caching allocator's
peak statistics on CUDA.

``tracemalloc`` does not see torch's allocations. On CPU the profiler records every allocation and free of
torch's CPU allocator (``[memory]`` events with signed byte counts); their running sum, in time order, peaks at
the call's peak of live torch memory *above what was live before the call* (its inputs excluded). Memory that a
library allocates outside torch (scratch buffers inside a compiled C++ kernel, say) is not seen. On CUDA the
peak is ``max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated before the call.

The profiler's C++ side (kineto) writes a ``profiler_start`` / ``profiler_stop`` line to file descriptor 2 on
every start and stop, whatever Python's ``sys.stderr`` is; :func:`quiet_stderr` sends that descriptor to
``/dev/null`` for the profiled call only (restored on every exit, exceptions included), so a benchmark's
terminal shows the progress bar and the results, not two log lines per case.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 (C and C++ writes included) to ``/dev/null`` inside the block; restore it after,
    also when the block raises. Python's ``sys.stderr`` is flushed first so nothing written before is lost."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a detached process): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_trace(fn: Callable[[], object]) -> tuple[int, int]:
    with quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak, live


def _cuda_trace(fn: Callable[[], object], device: torch.device) -> tuple[int, int]:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before), torch.cuda.memory_allocated(device) - before


def peak_allocated_bytes(fn: Callable[[], object], device: str = "cpu") -> int:
    """Peak bytes of torch memory on ``device`` allocated by ``fn`` and live at the same time."""
    return allocated_bytes(fn, device)[0]


def allocated_bytes(fn: Callable[[], object], device: str = "cpu") -> tuple[int, int]:
    """Peak bytes of torch memory on ``device`` allocated by ``fn`` and live at the same time, and the bytes
    it allocated that are still live when it returns (what it keeps, e.g. an autograd graph's saved tensors)."""
    where = torch.device(device)
    if where.type == "cuda":
        return _cuda_trace(fn, where)
    return _cpu_trace(fn)
