"""``TrainConfig``: every knob of the training loop in one plain, serialisable dataclass."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    """Raise ``ValueError`` naming the setting, its value and what is expected unless ``ok``."""
    if not ok:
        raise ValueError(f"TrainConfig {name}={value!r}: expected {expected}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class TrainConfig:
    """Settings of one training run (see :func:`attnzoo.train.train`).

    ``steps`` is the total number of optimizer steps; the learning rate warms up linearly over
    ``warmup_steps`` to ``lr`` and then follows a cosine down to ``lr * min_lr_ratio`` at the last step.
    Weight decay applies to tensors with two or more dimensions (matrices, embeddings), not to biases
    and norm gains. ``grad_clip`` is the max global gradient L2 norm (``None`` or ``0`` disables it).
    ``log_interval`` / ``ckpt_interval`` are in steps (``0`` disables periodic checkpoints; a final one is
    always written when ``out_dir`` is set). ``seed`` seeds torch/numpy/python and the data-order
    generator handed to the batch function. ``deterministic`` turns on
    ``torch.use_deterministic_algorithms`` for the run (an op without a deterministic implementation then
    raises; set it to ``False`` for such models). ``device="auto"`` is ``cuda:LOCAL_RANK`` when CUDA is
    available, else CPU. ``progress`` shows a tqdm bar on rank 0.
    """

    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    seed: int = 0
    log_interval: int = 10
    ckpt_interval: int = 0
    eval_interval: int = 0
    keep_checkpoints: int = 2
    out_dir: str | None = None
    deterministic: bool = True
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        _check("steps", self.steps, self.steps >= 1, "an integer >= 1")
        _check("lr", self.lr, _finite(self.lr) and self.lr > 0, "a finite number > 0")
        _check("weight_decay", self.weight_decay, _finite(self.weight_decay) and self.weight_decay >= 0,
               "a finite number >= 0")
        _check("betas", self.betas, all(0.0 <= b < 1.0 for b in self.betas), "two numbers in [0, 1)")
        _check("eps", self.eps, _finite(self.eps) and self.eps > 0, "a finite number > 0")
        _check("warmup_steps", self.warmup_steps, 0 <= self.warmup_steps <= self.steps,
               f"an integer in [0, steps={self.steps}]")
        _check("min_lr_ratio", self.min_lr_ratio, 0.0 <= self.min_lr_ratio <= 1.0, "a number in [0, 1]")
        clip = self.grad_clip
        _check("grad_clip", clip, clip is None or (_finite(clip) and clip >= 0),
               "None or a finite number >= 0 (0 or None disables clipping)")
        _check("log_interval", self.log_interval, self.log_interval >= 1, "an integer >= 1")
        _check("ckpt_interval", self.ckpt_interval, self.ckpt_interval >= 0,
               "an integer >= 0 (0: the final checkpoint only)")
        _check("eval_interval", self.eval_interval, self.eval_interval >= 0, "an integer >= 0 (0: at the end only)")
        _check("keep_checkpoints", self.keep_checkpoints, self.keep_checkpoints >= 1, "an integer >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain-container form (safe for JSON and ``torch.load(weights_only=True)``)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        return cls(**kw)
