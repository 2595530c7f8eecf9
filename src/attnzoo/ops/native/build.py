"""Building and loading the native local-attention library: compiled on first use, cached per machine.

The kernel sources (``kernel/*.cpp``) include no torch header, so a build takes a few seconds, not the minute or two
of a torch C++ extension. ``kernels.cpp`` is compiled twice, for the baseline ISA and with ``-mavx2 -mfma``; the
driver checks the CPU at run time (``__builtin_cpu_supports``) and runs the AVX2 kernels only where the CPU has
AVX2 and FMA. Nothing is built with ``-march=native``, so a library built on an AVX-512 host runs on an AVX2 one.

The library goes to ``$ATTNZOO_CACHE/native/<key>/`` (default ``~/.cache/attnzoo``), ``key`` hashing the sources,
the flags and the compiler's version; builds are serialised by a lock file and published by an atomic rename, so
concurrent processes never load a half-written library. ``$ATTNZOO_CXX`` names the compiler (default ``c++``,
then ``g++``). Where there is no compiler or the build fails, :func:`unavailable_reason` says so and the native
implementations are reported unavailable: ``impl="auto"`` then picks the next one and ``explain`` says why.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

KERNEL_DIR = Path(__file__).parent / "kernel"
SOURCES = ("local_attention.h", "kernels.cpp", "driver.cpp")
COMMON_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-Wall", "-Wno-psabi", "-fno-tree-loop-distribute-patterns")
ISA_FLAGS = {"generic": (), "avx2": ("-mavx2", "-mfma")}
LIBRARY_NAME = "libattnzoo_local.so"


class NativeBuildError(RuntimeError):
    """The native library could not be built or loaded; the message holds the compiler's output."""


def compiler() -> str | None:
    """The C++ compiler to use: ``$ATTNZOO_CXX``, else ``c++`` or ``g++`` on ``PATH``; ``None`` if there is none."""
    named = os.environ.get("ATTNZOO_CXX")
    if named:
        return shutil.which(named)
    return shutil.which("c++") or shutil.which("g++")


def cache_root() -> Path:
    """``$ATTNZOO_CACHE`` or ``~/.cache/attnzoo``."""
    return Path(os.environ.get("ATTNZOO_CACHE") or Path.home() / ".cache" / "attnzoo")


def _build_key(cxx: str) -> str:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    digest = hashlib.sha256(version.encode())
    digest.update(repr((COMMON_FLAGS, ISA_FLAGS)).encode())
    for name in SOURCES:
        digest.update((KERNEL_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def _compile(cxx: str, work: Path) -> Path:
    """Compile the three translation units (the two kernel builds in parallel) and link them in ``work``."""
    jobs = []
    for isa, flags in ISA_FLAGS.items():
        cmd = [cxx, *COMMON_FLAGS, *flags, f"-DAZ_ISA={isa}", "-c", str(KERNEL_DIR / "kernels.cpp"),
               "-o", str(work / f"kernels_{isa}.o")]
        jobs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    jobs.append(subprocess.Popen([cxx, *COMMON_FLAGS, "-c", str(KERNEL_DIR / "driver.cpp"), "-o",
                                  str(work / "driver.o")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    failures = []
    for job in jobs:
        output, _ = job.communicate()
        if job.returncode:
            failures.append(f"{' '.join(job.args)}\n{output}")
    if failures:
        raise NativeBuildError("compiling the native local-attention kernels failed:\n" + "\n".join(failures))
    library = work / LIBRARY_NAME
    objects = [str(work / f"kernels_{isa}.o") for isa in ISA_FLAGS] + [str(work / "driver.o")]
    link = subprocess.run([cxx, "-shared", *objects, "-o", str(library), "-pthread"], capture_output=True, text=True)
    if link.returncode:
        raise NativeBuildError(f"linking the native local-attention library failed:\n{link.stdout}{link.stderr}")
    return library


def build() -> Path:
    """The path of the built library, building it first if this machine's cache lacks it."""
    if platform.system() != "Linux":
        raise NativeBuildError(f"the native kernels are built and tested on Linux only; this is {platform.system()}")
    cxx = compiler()
    if cxx is None:
        raise NativeBuildError("no C++ compiler: none of $ATTNZOO_CXX, c++, g++ is on PATH")
    target = cache_root() / "native" / _build_key(cxx)
    library = target / LIBRARY_NAME
    if library.exists():
        return library
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not library.exists():  # another process may have built it while this one waited
            with tempfile.TemporaryDirectory(dir=target) as work:
                built = _compile(cxx, Path(work))
                os.replace(built, library)
    return library


@functools.lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str | None]:
    try:
        lib = ctypes.CDLL(str(build()))
    except (NativeBuildError, OSError) as error:
        return None, str(error)
    lib.az_forward_workspace.restype = ctypes.c_int64
    lib.az_backward_workspace.restype = ctypes.c_int64
    return lib, None


def library() -> ctypes.CDLL:
    """The loaded library (built on first use); raises :class:`NativeBuildError` with the reason otherwise."""
    lib, reason = _load()
    if lib is None:
        raise NativeBuildError(reason)
    return lib


@torch.compiler.assume_constant_result  # constant for the process: torch.compile calls it once, never traces it
def unavailable_reason() -> str | None:
    """``None`` when the native library builds and loads here, else why not (the first line of the error)."""
    lib, reason = _load()
    return None if lib is not None else f"native kernels unavailable: {reason.splitlines()[0]}"
