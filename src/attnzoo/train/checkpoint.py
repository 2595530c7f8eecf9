"""Atomic checkpoints: weights in safetensors, optimizer/scheduler/RNG/step in a ``weights_only`` torch file.

A checkpoint at step ``s`` is two files in the checkpoint folder, ``ckpt-{s:08d}.safetensors`` and
``ckpt-{s:08d}.state.pt``, plus the pointer ``latest.json`` naming the newest complete pair. Every file is
written to a temporary file in the same folder, fsync'ed and moved into place with ``os.replace``; the
pointer is replaced last, so a crash at any moment leaves the previous checkpoint loadable.

Loading verifies: a pointer that does not parse, or a checkpoint whose files are truncated or unreadable, is
skipped with a warning naming the file and why, and the newest checkpoint that loads is used instead
(:class:`CheckpointError` names every file when none does). A write that runs out of disk space raises
:class:`DiskFullError` naming the file; the previous checkpoint stays in place.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

POINTER = "latest.json"
TMP_SUFFIX = ".tmp"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class CheckpointError(ValueError):
    """No checkpoint in a folder verifies (the message names each file tried and why it failed)."""


class DiskFullError(OSError):
    """A write ran out of disk space (``ENOSPC`` / ``EDQUOT``); the message names the file."""


def _fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename inside it is durable (a no-op where the OS does not allow it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills a temp file in the same folder, then fsync + replace.

    On any exception the temp file is removed and ``path`` keeps its previous content (or stays absent); a full
    disk raises :class:`DiskFullError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        write(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(error.errno, f"the disk is full: no space left to write {path} "
                                f"({os.strerror(error.errno)}); its previous version, if any, is kept; free "
                                f"space on the filesystem of {path.parent} and rerun") from error
        raise
    _fsync_dir(path.parent)


def remove_orphaned_tmp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files an interrupted :func:`atomic_write` left in ``folder`` (warning once); returns them.

    Call it only while no other process writes into ``folder``.
    """
    orphans = sorted(Path(folder).glob(f".*{TMP_SUFFIX}"))
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    if orphans:
        warnings.warn(f"removed {len(orphans)} temp file(s) left by an interrupted write in {folder}: "
                      f"{[p.name for p in orphans]}", stacklevel=2)
    return orphans


def _write_text(text: str) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text)
    return write


def save_checkpoint(ckpt_dir: str | os.PathLike[str], step: int, model: nn.Module, state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Write the checkpoint of ``step`` atomically and point ``latest.json`` at it.

    ``model`` is the bare module (not a DDP wrapper); tied/shared tensors are handled by
    ``safetensors.torch.save_model``. ``state`` holds tensors and plain containers only. The oldest
    checkpoints beyond ``keep`` (>= 1) are deleted after the pointer moves. Returns the weights path.
    """
    ckpt_dir = Path(ckpt_dir)
    stem = f"ckpt-{step:08d}"
    weights, state_file = ckpt_dir / f"{stem}.safetensors", ckpt_dir / f"{stem}.state.pt"
    atomic_write(weights, lambda tmp: save_model(model, tmp))
    atomic_write(state_file, lambda tmp: torch.save({"step": step, **state}, tmp))
    pointer = {"step": step, "weights": weights.name, "state": state_file.name}
    atomic_write(ckpt_dir / POINTER, _write_text(json.dumps(pointer)))
    _prune(ckpt_dir, keep=max(1, keep), current=stem)
    return weights


def _prune(ckpt_dir: Path, keep: int, current: str) -> None:
    stems = sorted({p.name.split(".")[0] for p in ckpt_dir.glob("ckpt-*.safetensors")})
    stems = [s for s in stems if s <= current]
    for stem in stems[:-keep]:
        for suffix in (".safetensors", ".state.pt"):
            (ckpt_dir / f"{stem}{suffix}").unlink(missing_ok=True)


def _files(ckpt_dir: Path, step: int, weights: str | None = None, state: str | None = None) -> dict[str, Any]:
    stem = f"ckpt-{step:08d}"
    return {"step": step, "weights": ckpt_dir / (weights or f"{stem}.safetensors"),
            "state": ckpt_dir / (state or f"{stem}.state.pt")}


def latest_checkpoint(ckpt_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The pointer of the newest complete checkpoint (``step``, ``weights``, ``state`` paths) or ``None``.

    Raises :class:`CheckpointError` naming ``latest.json`` when it exists but does not parse.
    """
    ckpt_dir = Path(ckpt_dir)
    pointer = ckpt_dir / POINTER
    if not pointer.exists():
        return None
    try:
        p = json.loads(pointer.read_text())
        return _files(ckpt_dir, int(p["step"]), str(p["weights"]), str(p["state"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint pointer {pointer} is unreadable ({type(error).__name__}: {error}); "
                              'expected JSON {"step": int, "weights": file, "state": file}') from error


def checkpoint_candidates(ckpt_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The checkpoints to try on resume, best first: the pointer's, then every other ``ckpt-*`` pair, newest first.

    An unreadable pointer is skipped with a warning (the files on disk are still candidates).
    """
    ckpt_dir = Path(ckpt_dir)
    try:
        pointed = latest_checkpoint(ckpt_dir)
    except CheckpointError as error:
        warnings.warn(f"{error}; falling back to the newest checkpoint that verifies", stacklevel=3)
        pointed = None
    steps = sorted((int(m[1]) for p in ckpt_dir.glob("ckpt-*.safetensors")
                    if (m := re.fullmatch(r"ckpt-(\d+)\.safetensors", p.name))), reverse=True)
    others = [_files(ckpt_dir, step) for step in steps if pointed is None or step != pointed["step"]]
    return ([pointed] if pointed is not None else []) + others


def _verified(path: Path, read: Callable[[], Any]) -> Any:
    """``read()``; any failure is re-raised as :class:`CheckpointError` naming ``path`` and the reason."""
    try:
        return read()
    except Exception as error:  # noqa: BLE001 - whatever stops a file from loading means it does not verify
        raise CheckpointError(f"{path}: {type(error).__name__}: {error}") from error


def _load_one(candidate: dict[str, Any], model: nn.Module, map_location: str | torch.device) -> dict[str, Any]:
    """The state of one checkpoint, its weights loaded into ``model``; :class:`CheckpointError` if a file does
    not verify (the weights are read in full before ``model`` changes)."""
    state_file, step = candidate["state"], candidate["step"]
    state = _verified(state_file, lambda: torch.load(state_file, map_location=map_location, weights_only=True))
    if not isinstance(state, dict) or state.get("step") != step:
        raise CheckpointError(f"{state_file}: not the state of step {step}")
    _verified(candidate["weights"],
              lambda: load_model(model, candidate["weights"], strict=True, device=str(map_location)))
    return state


def load_checkpoint(ckpt_dir: str | os.PathLike[str], model: nn.Module,
                    map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """Load the newest checkpoint that verifies into ``model`` (strict) and return its state dict, or ``None``.

    The state file is read with ``torch.load(weights_only=True)``. A checkpoint whose files are missing,
    truncated or unreadable is skipped with a warning naming the file and the reason, and the next older one
    is tried (see :func:`checkpoint_candidates`); :class:`CheckpointError` lists every failure when no
    checkpoint loads. ``None`` when the folder holds no checkpoint at all.
    """
    failures = []
    for candidate in checkpoint_candidates(ckpt_dir):
        try:
            state = _load_one(candidate, model, map_location)
        except CheckpointError as error:
            failures.append(str(error))
            continue
        if failures:
            warnings.warn(f"skipped checkpoint(s) that do not verify: {'; '.join(failures)}; resuming from "
                          f"step {candidate['step']} ({candidate['weights'].name})", stacklevel=2)
        return state
    if failures:
        raise CheckpointError(f"no checkpoint in {ckpt_dir} verifies: {'; '.join(failures)}; delete the folder "
                              "to start over")
    return None
