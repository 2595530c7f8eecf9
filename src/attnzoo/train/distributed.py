"""Data-parallel plumbing on ``torch.distributed``: process-group set-up from ``torchrun``'s environment,
per-rank batch sharding and small collective helpers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` (1 and 0 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints, metrics and progress bars (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """The current process group's layout, or the single-process default when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    return DistInfo()


def is_main_process() -> bool:
    """True on rank 0, the process that writes reports and prints them: the process group's rank when one
    is initialised, else torchrun's ``RANK`` environment variable (set before any group exists), else True."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Initialise the default process group from ``torchrun`` variables (``RANK``, ``WORLD_SIZE``, ...).

    A no-op returning the single-process layout when ``WORLD_SIZE`` is unset or 1, or the group already
    exists. ``backend`` defaults to ``nccl`` when CUDA is available and ``gloo`` otherwise; with nccl the
    process binds to ``cuda:LOCAL_RANK``.
    """
    if dist.is_initialized():
        return dist_info()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend)
    return dist_info()


def cleanup_distributed() -> None:
    """Wait for every rank, then destroy the default process group (if one exists).

    The barrier keeps a fast rank from tearing the group down while rank 0 still writes its outputs.
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def shard_batch(batch: Any, rank: int, world_size: int) -> Any:
    """This rank's contiguous slice of a global batch (tensors split on dim 0; tuples/lists/dicts recurse).

    The leading size must divide evenly by ``world_size`` so that every rank's mean loss has the same
    weight and DDP's gradient average equals the single-process gradient of the global batch.
    """
    if world_size == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        n = batch.shape[0]
        if n % world_size:
            raise ValueError(f"global batch of {n} does not split evenly over {world_size} ranks")
        per = n // world_size
        return batch[rank * per:(rank + 1) * per]
    if isinstance(batch, Mapping):
        return type(batch)({k: shard_batch(v, rank, world_size) for k, v in batch.items()})
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard_batch(v, rank, world_size) for v in batch)
    return batch


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: to_device(v, device) for k, v in batch.items()})
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over all ranks (identity when not distributed)."""
    info = dist_info()
    if not info.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def barrier() -> None:
    """``dist.barrier()`` when distributed, else nothing."""
    if dist_info().enabled:
        dist.barrier()
