"""What an implementation can run (:class:`Capabilities`), what a call uses (:class:`CallFacts`, the
:data:`FEATURES`), and :class:`Implementation`, which pairs a function with its declared capabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

FLOAT_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


class NotSupportedError(RuntimeError):
    """Raised when no requested implementation can run a call; the message lists every reason."""


@dataclass(frozen=True)
class Capabilities:
    """What an implementation can run: claims that the test contract checks one by one (a claimed dtype, device
    or backward runs and agrees with the reference; an unclaimed one raises :class:`NotSupportedError`).
    ``backward_devices`` lists the devices where gradients flow; ``double_backward`` whether gradients of
    gradients do (``create_graph=True``); where not, the backward raises :class:`NotSupportedError`."""

    devices: frozenset[str]
    dtypes: frozenset[torch.dtype] = FLOAT_DTYPES
    backward_devices: frozenset[str] = frozenset()
    double_backward: bool = False
    exactly_causal: bool = True
    """``False``: causal in exact arithmetic, but a future position leaks into the output at round-off level
    (FFT convolutions); ``True``: the output's gradient with respect to the future is exactly zero."""
    features: frozenset[str] = frozenset({"causal", "dilation", "bias"})
    """The call features of :data:`FEATURES` this implementation runs (when its variant has them): by default the
    variant's causal option, dilation and positional bias, none of the drop-in features."""
    max_head_dim: int | None = None
    auto_devices: frozenset[str] | None = None
    """Devices on which ``impl="auto"`` may pick this implementation (``None``: all of ``devices``)."""
    auto_max_coverage: float | None = None
    """``impl="auto"`` passes this implementation over for calls whose :attr:`CallFacts.coverage` exceeds this
    (where a dense path is as fast, measured); ``None``: no limit. Asking for it by name still runs it."""
    auto_min_length: int | None = None
    """``impl="auto"`` passes this implementation over for calls whose :attr:`CallFacts.length` is below this
    (where a lower-priority implementation is faster, measured); ``None``: no limit."""
    available: Callable[[], str | None] = field(default=lambda: None, compare=False)
    """Returns ``None`` when the implementation's software is importable, else why not."""

    def describe(self) -> str:
        """One line: devices, dtypes, backward, and the variant options this implementation cannot run."""
        dtypes = ",".join(sorted(str(d).removeprefix("torch.") for d in self.dtypes))
        backward = ",".join(sorted(self.backward_devices)) or "none"
        if self.backward_devices and self.double_backward:
            backward += " (double)"
        default = Capabilities.__dataclass_fields__["features"].default
        missing = [f"no {name}" for name in sorted(default - self.features)]
        missing += [f"+{name}" for name in sorted(self.features - default)]
        if self.max_head_dim:
            missing.append(f"head_dim<={self.max_head_dim}")
        limits = f" features={','.join(missing)}" if missing else ""
        return f"devices={','.join(sorted(self.devices))} dtypes={dtypes} backward={backward}{limits}"


FEATURES: dict[str, str] = {
    "causal": "is_causal=True",
    "dilation": "dilation > 1",
    "bias": "a positional bias",
    "attn_mask": "an attn_mask (boolean or additive)",
    "key_padding": "a key_padding_mask",
    "varlen": "packed variable-length sequences (cu_seqlens)",
    "cross": "query and key/value of different lengths",
    "gqa": "fewer key/value heads than query heads (enable_gqa=True)",
    "dropout": "attention dropout (dropout_p > 0)",
    "weights": "return_weights=True",
    "top_k": "keeping only the top_k highest-scoring keys of each query (top_k)",
}
"""The features a call may use, each declared per implementation in :attr:`Capabilities.features`."""


@dataclass(frozen=True)
class CallFacts:
    """The facts about one call that decide which implementations can run it; ``features`` are the
    :data:`FEATURES` it uses."""

    device: str
    dtype: torch.dtype
    needs_grad: bool
    head_dim: int
    features: frozenset[str] = frozenset()
    coverage: float = 0.0
    """Fraction of the keys a query may attend to (window volume / tokens) for windowed patterns; 0 if unknown."""
    length: int = 0
    """Sequence length ``N`` where an implementation's speed depends on it; 0 if not given."""

    @classmethod
    def of(cls, tensors: Sequence[torch.Tensor], *, causal: bool = False, dilation: bool = False,
           bias: bool = False, features: Sequence[str] = (), coverage: float = 0.0, length: int = 0) -> CallFacts:
        """Facts from the input tensors (the first one sets device, dtype and head dim) and the options:
        ``causal``, ``dilation`` and ``bias`` are shorthands for those features."""
        if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
            raise ValueError(f"tensors={[type(t).__name__ for t in tensors]}: expected a non-empty sequence of "
                             "torch.Tensor (the call's inputs, the main one first)")
        first = tensors[0]
        return cls(device=first.device.type, dtype=first.dtype,
                   needs_grad=torch.is_grad_enabled() and any(t.requires_grad for t in tensors),
                   head_dim=first.shape[-1], features=_features(features, causal=causal, dilation=dilation,
                                                                bias=bias), coverage=coverage, length=length)


def _features(features: Sequence[str], **flags: bool) -> frozenset[str]:
    """``features`` and the flagged shorthands as one set; an unknown name raises, listing :data:`FEATURES`."""
    found = frozenset(features) | {name for name, on in flags.items() if on}
    unknown = sorted(found - FEATURES.keys())
    if unknown:
        raise ValueError(f"features={unknown}: unknown; expected names from {list(FEATURES)}")
    return found


@dataclass(frozen=True)
class Implementation:
    """One way to compute a variant. ``fn`` takes the op's validated arguments."""

    name: str
    fn: Callable[..., Any]
    capabilities: Capabilities
    description: str

    def auto_eligible(self, device: str) -> bool:
        """Whether ``impl="auto"`` may consider this implementation on ``device``."""
        return device in (self.capabilities.auto_devices or self.capabilities.devices)

    def auto_passes_over(self, facts: CallFacts) -> str | None:
        """Why ``impl="auto"`` does not pick this implementation for a call it can run, or ``None``."""
        if not self.auto_eligible(facts.device):
            return f"auto does not pick it on {facts.device} (ask for it by name)"
        limit = self.capabilities.auto_max_coverage
        if limit is not None and facts.coverage > limit:
            return (f"auto passes it over: each query sees {facts.coverage:.0%} of the keys, above "
                    f"{limit:.0%}, where the dense reference is as fast (ask for it by name)")
        shortest = self.capabilities.auto_min_length
        if shortest is not None and 0 < facts.length < shortest:
            return (f"auto passes it over: length {facts.length} is below {shortest}, where a lower-priority "
                    "implementation is faster (measured; ask for it by name)")
        return None

    def not_supported_reasons(self, facts: CallFacts) -> list[str]:
        """Every reason this implementation cannot run the call; empty when it can."""
        caps, reasons = self.capabilities, []
        missing = caps.available()
        if missing:
            reasons.append(missing)
        if facts.device not in caps.devices:
            reasons.append(f"device={facts.device} (supported: {sorted(caps.devices)})")
        if facts.dtype not in caps.dtypes:
            reasons.append(f"dtype={facts.dtype} (supported: {sorted(str(d) for d in caps.dtypes)})")
        if facts.needs_grad and facts.device not in caps.backward_devices:
            reasons.append(f"backward on device={facts.device} (backward supported on: "
                           f"{sorted(caps.backward_devices) or 'no device'})")
        reasons += [f"{FEATURES[name]} is not supported" for name in FEATURES
                    if name in facts.features and name not in caps.features]
        if caps.max_head_dim is not None and facts.head_dim > caps.max_head_dim:
            reasons.append(f"head_dim={facts.head_dim} (at most {caps.max_head_dim})")
        return reasons

