"""The variant registry: what each attention mechanism is, which implementations it has and what each can do.

Every mechanism is a :class:`Variant` (paper, family, layout, functional op, layer) with one or more
:class:`Implementation` entries. Each implementation declares its :class:`Capabilities`; a call is described
by a :class:`CallFacts` and :func:`select_implementation` either returns the implementation to run or raises
:class:`NotSupportedError` listing every reason, per implementation (xformers' ``not_supported_reasons``).
``impl="auto"`` takes the first implementation, in declared priority order, that can run the call, and
:func:`explain` says which and why the others were passed over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger("attnzoo")

FLOAT_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


class NotSupportedError(RuntimeError):
    """Raised when no requested implementation can run a call; the message lists every reason."""


@dataclass(frozen=True)
class Paper:
    """Where a mechanism comes from. ``number`` is its line in ``shared/papers/index.txt`` (the 61 papers the
    project implements), ``None`` for a baseline from outside that list."""

    title: str
    year: int
    arxiv: str
    number: int | None


@dataclass(frozen=True)
class Capabilities:
    """What an implementation can run. ``backward_devices`` lists the devices where gradients flow."""

    devices: frozenset[str]
    dtypes: frozenset[torch.dtype] = FLOAT_DTYPES
    backward_devices: frozenset[str] = frozenset()
    causal: bool = True  # False: cannot run the variant's causal option (if it has one)
    dilation: bool = True  # False: cannot run dilation > 1 (if the variant has dilation)
    bias: bool = True  # False: cannot run a positional bias (if the variant has one)
    max_head_dim: int | None = None
    auto_devices: frozenset[str] | None = None
    """Devices on which ``impl="auto"`` may pick this implementation (``None``: all of ``devices``)."""
    auto_max_coverage: float | None = None
    """``impl="auto"`` passes this implementation over for calls whose :attr:`CallFacts.coverage` exceeds this
    (where a dense path is as fast, measured); ``None``: no limit. Asking for it by name still runs it."""
    auto_min_length: int | None = None
    """``impl="auto"`` passes this implementation over for calls whose :attr:`CallFacts.length` is below this
    (where the dense reference is faster, measured); ``None``: no limit."""
    available: Callable[[], str | None] = field(default=lambda: None, compare=False)
    """Returns ``None`` when the implementation's software is importable, else why not."""

    def describe(self) -> str:
        """One line: devices, dtypes, backward, and the variant options this implementation cannot run."""
        dtypes = ",".join(sorted(str(d).removeprefix("torch.") for d in self.dtypes))
        backward = ",".join(sorted(self.backward_devices)) or "none"
        missing = [f"no {name}" for name in ("causal", "dilation", "bias") if not getattr(self, name)]
        if self.max_head_dim:
            missing.append(f"head_dim<={self.max_head_dim}")
        limits = f" limits={','.join(missing)}" if missing else ""
        return f"devices={','.join(sorted(self.devices))} dtypes={dtypes} backward={backward}{limits}"


@dataclass(frozen=True)
class CallFacts:
    """The facts about one call that decide which implementations can run it."""

    device: str
    dtype: torch.dtype
    needs_grad: bool
    head_dim: int
    causal: bool = False
    dilation: bool = False
    bias: bool = False
    coverage: float = 0.0
    """Fraction of the keys a query may attend to (window volume / tokens) for windowed patterns; 0 if unknown."""
    length: int = 0
    """Sequence length ``N`` where an implementation's speed depends on it; 0 if not given."""

    @classmethod
    def of(cls, tensors: Sequence[torch.Tensor], *, causal: bool = False, dilation: bool = False,
           bias: bool = False, coverage: float = 0.0, length: int = 0) -> CallFacts:
        """Facts from the input tensors (the first one sets device, dtype and head dim) and the options."""
        first = tensors[0]
        return cls(device=first.device.type, dtype=first.dtype,
                   needs_grad=torch.is_grad_enabled() and any(t.requires_grad for t in tensors),
                   head_dim=first.shape[-1], causal=causal, dilation=dilation, bias=bias, coverage=coverage,
                   length=length)


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
            return (f"auto passes it over: length {facts.length} is below {shortest}, where the dense reference "
                    "is faster (ask for it by name)")
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
        if facts.causal and not caps.causal:
            reasons.append("is_causal=True is not supported")
        if facts.dilation and not caps.dilation:
            reasons.append("dilation > 1 is not supported")
        if facts.bias and not caps.bias:
            reasons.append("a positional bias is not supported")
        if caps.max_head_dim is not None and facts.head_dim > caps.max_head_dim:
            reasons.append(f"head_dim={facts.head_dim} (at most {caps.max_head_dim})")
        return reasons


@dataclass
class Variant:
    """A registered mechanism: metadata, implementations in ``auto`` priority order, op and layer.

    ``op`` is the public functional op (it validates, dispatches and accepts ``impl=``); ``layer`` the
    ``nn.Module`` built by :func:`attnzoo.create`. ``cases`` are awkward configurations on which every
    implementation is compared against ``reference``; ``make_inputs(case, dtype, device, generator)`` builds
    the op's tensor arguments and ``options(case)`` its keyword arguments; ``tiny_case`` is small enough for
    ``torch.autograd.gradcheck`` (a few dozen input elements); ``random_case(rnd)`` draws a
    small configuration for the property tests; ``future_mask(case)`` (causal variants only) says, for each
    (query, key) pair of the flattened sequence, whether the key lies in the query's future; the causality
    test then checks that no output depends on a future position of any batched input.
    """

    name: str
    family: str
    paper: Paper
    layout: str
    summary: str
    op: Callable[..., torch.Tensor]
    implementations: dict[str, Implementation]
    layer: type[torch.nn.Module] | None = None
    layer_layout: str = ""
    layer_defaults: Mapping[str, Any] = field(default_factory=dict)
    layer_input_shape: tuple[int, ...] = ()
    cases: Sequence[Mapping[str, Any]] = ()
    tiny_case: Mapping[str, Any] = field(default_factory=dict)
    make_inputs: Callable[..., dict[str, torch.Tensor]] | None = None
    options: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda case: {}
    random_case: Callable[[Any], dict[str, Any]] | None = None
    future_mask: Callable[[Mapping[str, Any]], torch.Tensor | None] | None = None
    batched_inputs: tuple[str, ...] = ("query", "key", "value")
    """Names of the op's tensor arguments whose first dim is the batch; the first one also sets the
    output's batch size (and, for ``(B, H, ...)`` ops, its heads)."""

    def __post_init__(self) -> None:
        if "reference" not in self.implementations:
            raise ValueError(f"variant {self.name!r} has no 'reference' implementation")


_REGISTRY: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
    """Add a variant; names are unique."""
    if variant.name in _REGISTRY:
        raise ValueError(f"variant {variant.name!r} is already registered")
    _REGISTRY[variant.name] = variant
    return variant


def _ensure_loaded() -> None:
    # Importing the catalog registers every variant.
    import attnzoo.catalog  # noqa: F401


def variants(family: str | None = None) -> list[Variant]:
    """All registered variants, optionally of one family, in registration order."""
    _ensure_loaded()
    found = [v for v in _REGISTRY.values() if family is None or v.family == family]
    if family is not None and not found:
        raise ValueError(f"family={family!r} has no variants; families: {sorted(families())}")
    return found


def families() -> list[str]:
    """The distinct families, in registration order."""
    _ensure_loaded()
    return list(dict.fromkeys(v.family for v in _REGISTRY.values()))


def get_variant(name: str) -> Variant:
    """The variant called ``name``; the error lists the registered names."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no variant named {name!r}; registered: {sorted(_REGISTRY)}") from None


def create(name: str, **kwargs: Any) -> torch.nn.Module:
    """Build the layer of variant ``name``; ``kwargs`` override its defaults."""
    variant = get_variant(name)
    if variant.layer is None:
        raise ValueError(f"variant {name!r} has no layer")
    return variant.layer(**{**variant.layer_defaults, **kwargs})


def select_implementation(variant_name: str, impl: str, facts: CallFacts) -> Implementation:
    """The implementation to run: ``impl`` itself if it can run the call, or with ``"auto"`` the first that can.

    Raises :class:`NotSupportedError` naming every reason otherwise, and ``ValueError`` for an unknown name.
    """
    variant = get_variant(variant_name)
    if impl != "auto" and impl not in variant.implementations:
        raise ValueError(f"impl={impl!r} is not an implementation of {variant_name}; "
                         f"expected 'auto' or one of {list(variant.implementations)}")
    candidates = list(variant.implementations.values()) if impl == "auto" else [variant.implementations[impl]]
    reasons = {c.name: c.not_supported_reasons(facts) for c in candidates}
    if impl == "auto":
        for c in candidates:
            passed_over = c.auto_passes_over(facts)
            if not reasons[c.name] and passed_over:
                reasons[c.name] = [passed_over]
    for candidate in candidates:
        if not reasons[candidate.name]:
            if impl == "auto":
                logger.debug("%s: impl='auto' chose %r for %s; passed over: %s", variant_name,
                             candidate.name, facts, {k: v for k, v in reasons.items() if v})
            return candidate
    lines = "\n".join(f"  {name}: " + "; ".join(why) for name, why in reasons.items())
    raise NotSupportedError(f"{variant_name}: no implementation can run this call "
                            f"(impl={impl!r}, {facts}):\n{lines}")


def explain(variant_name: str, facts: CallFacts) -> str:
    """Which implementation ``impl="auto"`` picks for ``facts`` and why each other one cannot run or lost."""
    variant = get_variant(variant_name)
    lines, chosen = [], None
    for candidate in variant.implementations.values():
        why = candidate.not_supported_reasons(facts)
        passed_over = candidate.auto_passes_over(facts)
        if not why and passed_over:
            lines.append(f"  {candidate.name}: can run, but {passed_over}")
        elif why:
            lines.append(f"  {candidate.name}: cannot run: " + "; ".join(why))
        elif chosen is None:
            chosen = candidate.name
            lines.append(f"  {candidate.name}: CHOSEN (first in priority order that can run it)")
        else:
            lines.append(f"  {candidate.name}: can run, lower priority than {chosen}")
    return f"{variant_name} for {facts}:\n" + "\n".join(lines)
