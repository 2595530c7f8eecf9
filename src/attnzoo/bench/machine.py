"""The machine a benchmark ran on, and its measured fp32 GEMM peak."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from attnzoo.bench.timing import time_calls

GEMM_SIZE = 2048
PEER_PACKAGES = {"natten": "natten", "local-attention": "local-attention", "fla naive (reference)": "fla-core",
                 "routing-transformer": "routing-transformer"}
"""Peer implementation name of a benchmark row -> the distribution it comes from: result files record these
versions, and a cached peer row depends on its version (:mod:`attnzoo.bench.cache`)."""


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


ISA_FLAGS = (("AMX", ("amx_tile", "amx_bf16", "amx_int8")), ("AVX-512", ("avx512f",)), ("AVX2", ("avx2",)))
"""``/proc/cpuinfo`` flags of each vector ISA level, best first (AMX implies AVX-512 on every CPU that has it)."""


def cpu_flags() -> frozenset[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo`` (empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def vector_isa(flags: frozenset[str] | None = None) -> dict[str, object]:
    """The CPU's vector instruction sets: ``isa`` (the best of AMX / AVX-512 / AVX2 its flags show, else
    ``"none detected"``), every level present, and the level torch's CPU kernels dispatch to
    (``torch.backends.cpu.get_cpu_capability()``, e.g. ``AVX2`` or ``AVX512``; ``ATEN_CPU_CAPABILITY`` can
    lower it)."""
    flags = cpu_flags() if flags is None else flags
    present = [name for name, needed in ISA_FLAGS if any(flag in flags for flag in needed)]
    try:
        torch_capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        torch_capability = "unknown"
    return {"isa": present[0] if present else "none detected", "isa_levels": present,
            "torch_cpu_capability": torch_capability}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """``HEAD``'s short hash, with ``-dirty`` when the work tree has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent,
                              check=True).stdout.strip()

    try:
        commit, changes = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if changes else commit or None


def describe_machine() -> dict[str, object]:
    """CPU model and vector ISA (:func:`vector_isa`), cores, torch version and threads, Python, peer versions,
    date and git commit."""
    return {
        "cpu": cpu_model(),
        **vector_isa(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "peers": {name: _version(name) for name in dict.fromkeys(PEER_PACKAGES.values())},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
    }


def gemm_peak_gflops(size: int = GEMM_SIZE, target_s: float = 1.0) -> float:
    """Median GFLOP/s of ``torch.mm`` on two fp32 ``size x size`` matrices (``2 · size^3`` FLOPs per call)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        torch.mm(a, b)
    timing = time_calls(lambda: torch.mm(a, b), min_repeats=5, max_repeats=50, target_s=target_s)
    return 2.0 * size**3 / (timing.median_ms * 1e-3) / 1e9
