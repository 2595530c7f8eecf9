"""The variant registry: what each attention mechanism is, which implementations it has and what each can do.

Every mechanism is a :class:`Variant` (paper, family, layout, functional op, layer) with one or more
:class:`Implementation` entries. Each implementation declares its :class:`Capabilities`; a call is described
by a :class:`CallFacts` and :func:`select_implementation` either returns the implementation to run or raises
:class:`NotSupportedError` listing every reason, per implementation (xformers' ``not_supported_reasons``).
``impl="auto"`` takes the first implementation, in declared priority order, that can run the call, and
:func:`explain` says which and why the others were passed over. Dispatch has no logging or other side effect
(``torch.compile`` traces it without graph breaks); :func:`explain` is the way to ask.

Each mechanism registers itself next to its code: ``attnzoo/ops/<mechanism>/registration.py`` calls
:func:`register`, and the registry imports every such module of the ``attnzoo.ops`` package on first use, so
adding a mechanism adds a folder and edits no existing file. What the tests need (cases, sample and error
inputs, random-case generators) lives apart, in :mod:`attnzoo.testing`.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

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
class Layout:
    """A tensor layout, stated once: batch first; then a heads axis (functional ops, ``(B, H, N, D)``), or the
    channels (``channels_first``, CNN modules, ``(B, C, H, W)``); then ``token_axes`` token axes; the feature
    axis last for channels-last layouts. Equal layouts compare equal whatever their axes are called."""

    token_axes: int
    heads: bool = False
    channels_first: bool = False

    def __post_init__(self) -> None:
        if self.token_axes not in (1, 2, 3):
            raise ValueError(f"token_axes={self.token_axes!r}: expected 1, 2 or 3")
        if self.heads and self.channels_first:
            raise ValueError("a layout has either a heads axis or channels first, not both")

    @property
    def rank(self) -> int:
        """Number of tensor dims."""
        return self.token_axes + (3 if self.heads else 2)

    def __str__(self) -> str:
        if self.token_axes == 1:
            tokens = ("N",)
        else:
            tokens = ("H", "W") if self.token_axes == 2 and not self.heads else ("X", "Y", "Z")[:self.token_axes]
        if self.heads:
            dims = ("B", "H", *tokens, "D")
        elif self.channels_first:
            dims = ("B", "C", *tokens)
        else:
            dims = ("B", *tokens, "C")
        return f"({', '.join(dims)})"


SEQUENCE = Layout(1, heads=True)
"""``(B, H, N, D)``: the SDPA convention of sequence ops."""
GRID_2D = Layout(2, heads=True)
"""``(B, H, X, Y, D)``: 2-D grid ops."""
GRID_3D = Layout(3, heads=True)
"""``(B, H, X, Y, Z, D)``: 3-D grid ops."""
TOKENS = Layout(1)
"""``(B, N, C)``: token mixers (and the channels-last sequence ops without heads)."""
IMAGE = Layout(2)
"""``(B, H, W, C)``: channels-last spatial mixers."""
VOLUME = Layout(3)
"""``(B, X, Y, Z, C)``: channels-last 3-D mixers."""


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
    (where the dense reference is faster, measured); ``None``: no limit."""
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
        reasons += [f"{FEATURES[name]} is not supported" for name in FEATURES
                    if name in facts.features and name not in caps.features]
        if caps.max_head_dim is not None and facts.head_dim > caps.max_head_dim:
            reasons.append(f"head_dim={facts.head_dim} (at most {caps.max_head_dim})")
        return reasons


FAMILIES: dict[str, str] = {
    "full": "full softmax attention (the baseline every family is measured against)",
    "local": "local and windowed attention",
    "linear": "linear, kernel and recurrent attention",
}
"""The families, in the order ``attnzoo list``, the README and the reports show them, with what they are."""


@dataclass
class Variant:
    """A registered mechanism: what the library needs at run time.

    ``op`` is the public functional op (it validates, dispatches and accepts ``impl=``) with inputs in
    ``layout``; ``implementations`` in ``auto`` priority order, a ``"reference"`` among them; ``causal``: the
    variant can run causally (it is always causal, or has an ``is_causal`` option), so that no output reads a
    later token. ``layer`` is the ``nn.Module`` that :func:`attnzoo.create` builds with ``layer_defaults``, its
    input in ``layer_layout``. ``size_options`` are the layer's keyword arguments fixed by the token shape it
    sees (``(N,)`` or ``(H, W)``), each computed from that shape, which a model fills unless told otherwise;
    ``fit_options(grid, extent)`` gives the options that make the layer local over about ``extent`` tokens per
    axis of a model's token ``grid`` (window, kernel, block, group), for variants that have such a size.
    """

    name: str
    family: str
    paper: Paper
    layout: Layout
    summary: str
    op: Callable[..., Any]
    implementations: dict[str, Implementation]
    causal: bool = False
    layer: type[torch.nn.Module] | None = None
    layer_layout: Layout | None = None
    layer_defaults: Mapping[str, Any] = field(default_factory=dict)
    size_options: Mapping[str, Callable[[tuple[int, ...]], Any]] = field(default_factory=dict)
    fit_options: Callable[[tuple[int, ...], int], dict[str, Any]] | None = None
    aliases: tuple[str, ...] = ()
    """Other names :func:`get_variant` (and so :func:`create`) resolves to this variant (``"softmax"``)."""

    def __post_init__(self) -> None:
        if "reference" not in self.implementations:
            raise ValueError(f"variant {self.name!r} has no 'reference' implementation")
        if self.family not in FAMILIES:
            raise ValueError(f"variant {self.name!r}: family={self.family!r}; expected one of {list(FAMILIES)}")
        for key, implementation in self.implementations.items():
            if key != implementation.name:
                raise ValueError(f"variant {self.name!r}: implementation registered as {key!r} is named "
                                 f"{implementation.name!r}")
        if not isinstance(self.layout, Layout) or not isinstance(self.layer_layout, (Layout, type(None))):
            raise TypeError(f"variant {self.name!r}: layout and layer_layout must be attnzoo.registry.Layout")
        if (self.layer is None) != (self.layer_layout is None):
            raise ValueError(f"variant {self.name!r}: a layer needs a layer_layout and vice versa")


_REGISTRY: dict[str, Variant] = {}
_ALIASES: dict[str, str] = {}


def register(variant: Variant) -> Variant:
    """Add a variant; names are unique."""
    if variant.name in _REGISTRY or variant.name in _ALIASES:
        raise ValueError(f"variant {variant.name!r} is already registered")
    taken = [a for a in variant.aliases if a in _REGISTRY or a in _ALIASES or a == variant.name]
    if taken:
        raise ValueError(f"variant {variant.name!r}: aliases {taken} are already registered names")
    _REGISTRY[variant.name] = variant
    _ALIASES.update(dict.fromkeys(variant.aliases, variant.name))
    return variant


def import_mechanism_modules(module: str) -> list[str]:
    """Import ``attnzoo.ops.<mechanism>.<module>`` for every mechanism package that has one; their names."""
    import attnzoo.ops

    found = []
    for info in pkgutil.iter_modules(attnzoo.ops.__path__):
        name = f"attnzoo.ops.{info.name}.{module}"
        if info.ispkg and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            found.append(name)
    return found


_LOADED = False


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_mechanism_modules("registration")


def variants(family: str | None = None) -> list[Variant]:
    """All registered variants, optionally of one family: families in :data:`FAMILIES` order, then in
    registration order (mechanism packages alphabetically)."""
    _ensure_loaded()
    if family is not None and family not in families():
        raise ValueError(f"family={family!r} has no variants; families: {families()}")
    order = list(FAMILIES)
    return sorted((v for v in _REGISTRY.values() if family is None or v.family == family),
                  key=lambda v: order.index(v.family))


def families() -> list[str]:
    """The families that have variants, in :data:`FAMILIES` order."""
    _ensure_loaded()
    present = {v.family for v in _REGISTRY.values()}
    return [f for f in FAMILIES if f in present]


def get_variant(name: str) -> Variant:
    """The variant called ``name`` (or one of its :attr:`Variant.aliases`); the error lists the registered names."""
    _ensure_loaded()
    try:
        return _REGISTRY[_ALIASES.get(name, name)]
    except KeyError:
        raise KeyError(f"no variant named {name!r}; registered: {sorted(_REGISTRY)}") from None


def create(name: str, *, channels_first: bool = False, **kwargs: Any) -> torch.nn.Module:
    """Build the layer of variant ``name``: its constructor with the registry's ``layer_defaults``, which
    ``kwargs`` override. ``channels_first=True`` wraps a spatial layer (``(B, H, W, C)``) so that it takes and
    returns ``(B, C, H, W)`` (:class:`attnzoo.layers.channels.ChannelsFirst`). ``attnzoo.describe(name)`` (``attnzoo list NAME``) lists every argument with its
    effective default; an unknown keyword raises ``TypeError`` listing the accepted ones, an unknown name
    ``KeyError`` listing the registered variants.

    >>> import torch, attnzoo
    >>> layer = attnzoo.create("sliding_window_attention", dim=32, num_heads=4, window=8)
    >>> layer(torch.randn(2, 64, 32)).shape
    torch.Size([2, 64, 32])
    >>> attnzoo.create("sliding_window_attention", windw=8)
    Traceback (most recent call last):
    TypeError: create('sliding_window_attention'): unexpected keyword argument 'windw'; ...
    """
    import inspect

    variant = get_variant(name)
    if variant.layer is None:
        raise ValueError(f"variant {name!r} has no layer")
    params = inspect.signature(variant.layer.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [p for p in params if p != "self"]
        unknown = [key for key in kwargs if key not in accepted]
        if unknown:
            raise TypeError(f"create({name!r}): unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}; {variant.layer.__qualname__} accepts "
                            f"{', '.join(accepted)} (defaults: attnzoo.describe({name!r}))")
    layer = variant.layer(**{**variant.layer_defaults, **kwargs})
    if not isinstance(channels_first, bool):
        raise TypeError(f"channels_first={channels_first!r}: expected a bool")
    if not channels_first:
        return layer
    if variant.layer_layout is None or variant.layer_layout.token_axes < 2:
        raise ValueError(f"create({name!r}, channels_first=True): its layer takes {variant.layer_layout}, not a "
                         "spatial grid; channels_first is for (B, H, W, C) / (B, X, Y, Z, C) layers")
    from attnzoo.layers.channels import ChannelsFirst

    return ChannelsFirst(layer)


HALF_PRECISION = frozenset({torch.float16, torch.bfloat16})
SLOW_HALF_CPU_CAPABILITIES = frozenset({"DEFAULT", "AVX2"})
"""torch CPU kernel levels (``torch.backends.cpu.get_cpu_capability()``) on which bf16/fp16 matrix multiplies
fall back to slow paths. Measured with ``attnzoo bench --op neighborhood_attention_2d --batch 1 --heads 4 --grid
64 64 --head-dim 32 --opt kernel_size=7 --opt rpb=False --impl tiled --backward --dtype bfloat16`` (each row
against float32 in the same run; ``benchmarks/results/dtype/``): 28x slower forward and 15x slower forward +
backward under AVX2 (``ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2`` on an AMD EPYC), 0.45x / 1.06x with
AVX-512 on the same host."""
_WARNED_HALF: set[tuple[str, torch.dtype]] = set()


def slow_half_precision(facts: CallFacts) -> str | None:
    """Why this call's dtype runs much slower than float32 here (half precision on a CPU without AVX-512), or
    ``None``. ``auto`` does not upcast behind the caller's back: it says so, once per variant and dtype, as a
    warning (and :func:`explain` says so every time)."""
    if facts.device != "cpu" or facts.dtype not in HALF_PRECISION:
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in SLOW_HALF_CPU_CAPABILITIES:
        return None
    return (f"{facts.dtype} on this CPU (torch kernels at {capability}, no AVX-512) runs matrix multiplies far "
            "slower than float32 (measured 15-28x for 2-D neighborhood attention): cast the inputs to float32 "
            "for speed")


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
            _warn_slow_half(variant_name, facts)
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
    slow = slow_half_precision(facts)
    if slow:
        lines.append(f"  note: {slow}")
    return f"{variant_name} for {facts}:\n" + "\n".join(lines)


def _warn_slow_half(variant_name: str, facts: CallFacts) -> None:
    """The :func:`slow_half_precision` warning, once per variant and dtype (never while compiling: no side
    effect on a traced path)."""
    if torch.compiler.is_compiling() or (variant_name, facts.dtype) in _WARNED_HALF:
        return
    slow = slow_half_precision(facts)
    if slow:
        _WARNED_HALF.add((variant_name, facts.dtype))
        warnings.warn(f"{variant_name}: {slow}", stacklevel=4)
