"""The training engine shared by every task (``attnzoo.tasks``) and model (``attnzoo.models``).

``train(model, batches, loss_fn, TrainConfig(...), resume=..., max_steps_this_run=..., eval_fn=...)`` runs
AdamW with linear warm-up + cosine decay and gradient clipping, seeded and deterministic, with a tqdm bar,
metrics as JSON lines and atomic checkpoints (safetensors weights + a ``weights_only`` state file with the
optimizer, scheduler, RNG states and step) that ``resume=True`` continues bit-exactly. Under ``torchrun``
the same call trains data-parallel with ``DistributedDataParallel`` (gloo on CPU, nccl on GPU).
Resume refuses changed settings, skips a checkpoint that does not verify for the newest one that does, and a
diverging run stops with :class:`NonFiniteLossError` before it checkpoints a NaN state.
"""

from attnzoo.train.checkpoint import (
    CheckpointError,
    DiskFullError,
    atomic_write,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from attnzoo.train.config import TrainConfig
from attnzoo.train.distributed import DistInfo, cleanup_distributed, dist_info, init_distributed, shard_batch
from attnzoo.train.loop import BatchFn, EvalFn, LossFn, NonFiniteLossError, RunSettings, TrainResult, train
from attnzoo.train.metrics import read_jsonl
from attnzoo.train.schedule import warmup_cosine

__all__ = [
    "BatchFn", "CheckpointError", "DiskFullError", "DistInfo", "EvalFn", "LossFn", "NonFiniteLossError",
    "RunSettings", "TrainConfig", "TrainResult", "atomic_write",
    "cleanup_distributed", "dist_info", "init_distributed", "latest_checkpoint", "load_checkpoint",
    "read_jsonl", "save_checkpoint", "shard_batch", "train", "warmup_cosine",
]
