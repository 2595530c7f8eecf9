"""What the tests need of each mechanism, apart from what the library needs at run time (PyTorch's OpInfo).

Each mechanism declares an :class:`OpTestSpec` in ``attnzoo/ops/<mechanism>/testing.py`` beside its code: the
awkward cases every implementation is compared on against the reference, a gradcheck-sized case, a random-case
generator for the property tests, how to build the op's inputs and options from a case, which inputs are
batched, how to read a causal variant's future, and its error inputs (bad calls and the error each must
raise). The registry-wide contract (``tests/test_contract.py``) runs on every spec, and the all-variant
benchmark (``attnzoo bench --family all``) builds its inputs from the specs; the ops, layers and models never
import this module.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attnzoo.masks import unflatten_index
from attnzoo.registry import Variant, get_variant, import_mechanism_modules, variants
from attnzoo.validation import ArgumentTypeError

Case = Mapping[str, Any]
Inputs = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ErrorInput:
    """A bad call and what it must raise: the inputs of ``case`` (default: the spec's first case) changed by
    ``inputs`` and its options updated with ``options`` must raise ``error`` with a message matching ``match``."""

    description: str
    error: type[Exception] | tuple[type[Exception], ...]
    match: str
    options: Mapping[str, Any] = field(default_factory=dict)
    inputs: Callable[[Inputs], Inputs] | None = None
    case: Case | None = None


@dataclass(frozen=True)
class LayerErrorInput:
    """A bad layer constructor call and what it must raise: ``attnzoo.create(variant, **kwargs)`` (the layer's
    registered defaults updated with ``kwargs``) must raise ``error`` with a message matching ``match``."""

    description: str
    error: type[Exception] | tuple[type[Exception], ...]
    match: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpTestSpec:
    """The test-side description of variant ``variant`` (see the module docstring).

    ``make_inputs(case, dtype, device, generator)`` builds the op's tensor arguments, ``options(case)`` its
    keyword arguments; ``tiny_case`` has at most 200 input elements (gradcheck); ``random_case(rnd)`` draws a
    small case; ``future_mask(case)`` (causal variants) gives, per (query, key) pair of the flattened tokens,
    whether the key lies in the query's future, or ``None`` for a non-causal case; ``batched_inputs`` name the
    token inputs whose first dim is the batch (the first also sets the output's batch, and heads for
    ``(B, H, ...)`` ops), ``batched_states`` the batched inputs without tokens (an initial state);
    ``layer_input_shape`` is an input of the layer built with its defaults; ``benchmark_case`` is the case
    ``attnzoo bench --family all`` times (``None``: the largest of ``cases`` by number of tokens);
    ``layer_error_inputs`` are bad constructor options of the layer (beyond the ``dim`` / ``num_heads`` checks
    every layer gets, see ``tests/test_bad_input.py``).
    """

    variant: str
    cases: Sequence[Case]
    tiny_case: Case
    make_inputs: Callable[[Case, torch.dtype, str, torch.Generator], Inputs]
    random_case: Callable[[random.Random], dict[str, Any]]
    layer_input_shape: tuple[int, ...]
    options: Callable[[Case], dict[str, Any]] = lambda case: {}
    future_mask: Callable[[Case], torch.Tensor | None] | None = None
    batched_inputs: tuple[str, ...] = ("query", "key", "value")
    batched_states: tuple[str, ...] = ()
    error_inputs: Sequence[ErrorInput] = ()
    benchmark_case: Case | None = None
    layer_error_inputs: Sequence[LayerErrorInput] = ()

    @property
    def registered(self) -> Variant:
        """The runtime variant this spec describes."""
        return get_variant(self.variant)


_SPECS: dict[str, OpTestSpec] = {}


def register_spec(spec: OpTestSpec) -> OpTestSpec:
    """Add the test spec of a registered variant; one per variant."""
    if spec.variant in _SPECS:
        raise ValueError(f"variant {spec.variant!r} already has a test spec")
    get_variant(spec.variant)  # raises for an unknown name
    _SPECS[spec.variant] = spec
    return spec


def specs() -> list[OpTestSpec]:
    """The test spec of every registered variant, in registry order; raises naming any variant without one."""
    import_mechanism_modules("testing")
    missing = [v.name for v in variants() if v.name not in _SPECS]
    if missing:
        raise LookupError(f"variants without a test spec (attnzoo/ops/<mechanism>/testing.py): {missing}")
    return [_SPECS[v.name] for v in variants()]


def get_spec(name: str) -> OpTestSpec:
    """The test spec of variant ``name``."""
    return {s.variant: s for s in specs()}[name]


# ---- shared builders of inputs and futures -------------------------------------------------------------------

def random_tensor(shape: Sequence[int], dtype: torch.dtype, device: str, generator: torch.Generator) -> torch.Tensor:
    """Standard normal values drawn in float64 on CPU from ``generator`` (reproducible across dtypes/devices)."""
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)


FEATURE_KEYS: dict[str, str] = {"kv_heads": "gqa", "kv_length": "cross", "key_padding": "key_padding",
                                "attn_mask": "attn_mask", "varlen": "varlen", "return_weights": "weights",
                                "top_k": "top_k"}
"""Case keys that make a case use a drop-in feature (:data:`attnzoo.registry.FEATURES`): ``kv_heads`` (fewer
key/value heads), ``kv_length`` (longer keys than queries), ``key_padding`` (a random ``key_padding_mask``),
``attn_mask`` (``"bool"`` or ``"float"``, with ``attn_mask_shape`` ``"full"`` (B, Hq, Nq, Nk), ``"batch"``
(B, 1, Nq, Nk) or ``"plain"`` (Nq, Nk)), ``varlen`` (the packed sequences' lengths), ``return_weights`` and
``top_k`` (the op's own ``top_k``)."""


def case_features(case: Case) -> frozenset[str]:
    """The drop-in features a case uses (its :data:`FEATURE_KEYS`)."""
    return frozenset(feature for key, feature in FEATURE_KEYS.items() if case.get(key))


def batch_slice(spec: OpTestSpec, inputs: Inputs, rows: slice) -> Inputs:
    """``inputs`` restricted to batch entries ``rows``: the spec's batched inputs and states, and the drop-in
    masks that have a batch dim (``key_padding_mask``; a 4-D ``attn_mask``)."""
    def batched(name: str, t: torch.Tensor) -> bool:
        return name in (*spec.batched_inputs, *spec.batched_states, "key_padding_mask") or (
            name == "attn_mask" and t.dim() == 4)

    return {name: t[rows] if batched(name, t) else t for name, t in inputs.items()}


def random_lengths(rnd: random.Random, length: int) -> tuple[int, ...]:
    """Random lengths of up to 4 packed sequences that add up to ``length`` (a case's ``varlen``)."""
    cuts = sorted(rnd.sample(range(1, length), rnd.randint(0, min(3, length - 1))))
    bounds = [0, *cuts, length]
    return tuple(b - a for a, b in itertools.pairwise(bounds))


def without_features(case: Case, features: frozenset[str]) -> dict[str, Any]:
    """``case`` with the drop-in features outside ``features`` switched off (a random case for an implementation
    that declares only those)."""
    return {key: (0 if FEATURE_KEYS.get(key) and FEATURE_KEYS[key] not in features else value)
            for key, value in case.items()}


def dropin_options(case: Case) -> dict[str, Any]:
    """The op options a case's drop-in features need: ``enable_gqa``, ``return_weights``."""
    options: dict[str, Any] = {}
    if case.get("kv_heads"):
        options["enable_gqa"] = True
    if case.get("return_weights"):
        options["return_weights"] = True
    return options


def qkv_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``query`` ``(batch, heads, *grid, head_dim)`` and ``key``, ``value`` of the same shape, or with the case's
    ``kv_heads`` heads and ``kv_length`` tokens; plus the masks and ``cu_seqlens`` its :data:`FEATURE_KEYS` ask
    for (random, from ``generator``; padding and masks hide about 30% of the pairs, so some queries see nothing)."""
    b, h, d = case["batch"], case["heads"], case["head_dim"]
    kv_grid = (case["kv_length"],) if case.get("kv_length") else tuple(case["grid"])
    inputs = {"query": random_tensor((b, h, *case["grid"], d), dtype, device, generator)}
    for name in ("key", "value"):
        inputs[name] = random_tensor((b, case.get("kv_heads") or h, *kv_grid, d), dtype, device, generator)
    nq, nk = math.prod(case["grid"]), math.prod(kv_grid)
    if case.get("key_padding"):
        inputs["key_padding_mask"] = (torch.rand(b, nk, generator=generator) < 0.3).to(device)
    if case.get("attn_mask"):
        shapes = {"full": (b, h, nq, nk), "batch": (b, 1, nq, nk), "plain": (nq, nk)}
        shape = shapes[case.get("attn_mask_shape", "full")]
        if case["attn_mask"] == "bool":
            inputs["attn_mask"] = (torch.rand(shape, generator=generator) >= 0.3).to(device)
        else:
            inputs["attn_mask"] = random_tensor(shape, dtype, device, generator)
    if case.get("varlen"):
        lengths = torch.tensor([0, *case["varlen"]])
        inputs["cu_seqlens"] = lengths.cumsum(0).to(device)
    return inputs


def grid_future_mask(grid: Sequence[int], causal: Sequence[bool]) -> torch.Tensor | None:
    """``(N, N)``: key j lies in query i's future when j is later than i on any causal axis."""
    if not any(causal):
        return None
    n = math.prod(grid)
    idx = torch.arange(n)
    future = torch.zeros(n, n, dtype=torch.bool)
    for qc, kc, c in zip(unflatten_index(idx[:, None], grid), unflatten_index(idx[None, :], grid), causal):
        if c:
            future |= kc > qc
    return future


def case_future_mask(default_causal: bool) -> Callable[[Case], torch.Tensor | None]:
    """A spec's ``future_mask`` for cases with a ``"grid"`` (or a 1-D ``"length"``) and an optional
    ``"is_causal"`` (one flag or one per axis, ``default_causal`` when absent)."""
    def future_mask(case: Case) -> torch.Tensor | None:
        grid = tuple(case["grid"]) if "grid" in case else (case["length"],)
        causal = case.get("is_causal", default_causal)
        return grid_future_mask(grid, (causal,) * len(grid) if isinstance(causal, bool) else tuple(causal))

    return future_mask


# ---- shared error inputs ---------------------------------------------------------------------------------------

def same_token_future(default_causal: bool) -> Callable[[Case], torch.Tensor | None]:
    """:func:`case_future_mask` for cases whose queries and keys are the same tokens; ``None`` (nothing the
    shared causality test can read) for cases with longer keys or packed sequences."""
    future = case_future_mask(default_causal)

    def future_mask(case: Case) -> torch.Tensor | None:
        return None if case_features(case) & {"cross", "varlen"} else future(case)

    return future_mask


def option_match(name: str, value: object, expected: str = "") -> str:
    """The regex of a rejected option's message, as :mod:`attnzoo.validation` writes it:
    ``name=repr(value): expected`` followed by ``expected``."""
    return rf"{re.escape(name)}={re.escape(repr(value))}: expected{re.escape(expected)}"


def bad_option(name: str, value: object, error: type[Exception] = ArgumentTypeError, expected: str = "", *,
               extra: Mapping[str, Any] | None = None, case: Case | None = None,
               inputs: Callable[[Inputs], Inputs] | None = None) -> ErrorInput:
    """The option ``name=value`` (with the options ``extra``, on ``case`` and its inputs changed by ``inputs``)
    must raise ``error`` (default: a wrong type, :class:`~attnzoo.validation.ArgumentTypeError`) with the
    message ``name=repr(value): expected...``."""
    extra = dict(extra or {})
    description = ", ".join(f"{k}={v!r}" for k, v in {name: value, **extra}.items())
    return ErrorInput(description, error, option_match(name, value, expected), options={**extra, name: value},
                      inputs=inputs, case=case)


BAD_FLAGS: tuple[object, ...] = ("False", "no", "yes", None, 0, 1, 2, np.bool_(True), torch.tensor(True))
"""Values a boolean option must refuse: nothing is coerced to a bool (``"False"`` is truthy, ``1`` is not)."""


def flag_error_inputs(*flags: str, case: Case | None = None) -> list[ErrorInput]:
    """Error inputs for boolean options: each of :data:`BAD_FLAGS` raises
    :class:`~attnzoo.validation.ArgumentTypeError` with ``flag=repr(value): expected a bool`` (as
    :func:`attnzoo.validation.check_flag` and ``per_axis_flags`` word it)."""
    return [bad_option(flag, bad, expected=" a bool", case=case) for flag in flags for bad in BAD_FLAGS]


def scale_error_inputs(name: str = "scale", case: Case | None = None) -> list[ErrorInput]:
    """Error inputs for an attention scale (:func:`attnzoo.validation.check_scale`): a string, a tensor and a
    bool are of the wrong type, zero, a negative number, NaN and infinity out of range."""
    wrong_type = [bad_option(name, bad, expected=" a finite real number > 0", case=case)
                  for bad in ("0.5", torch.tensor(0.5), True)]
    out_of_range = [bad_option(name, bad, ValueError, " a finite real number > 0", case=case)
                    for bad in (0.0, -1, float("nan"), float("inf"))]
    return wrong_type + out_of_range


def int_error_inputs(name: str, minimum: int = 1, case: Case | None = None, *,
                     per_axis: bool = False) -> list[ErrorInput]:
    """Error inputs for an integer option: a float, a string and a bool are of the wrong type, ``minimum - 1`` out
    of range, with the messages of :func:`attnzoo.validation.check_int` (or, ``per_axis``, of
    :func:`attnzoo.validation.per_axis`: an int or one per axis)."""
    good = minimum + 1
    type_expected = " an int or a sequence of" if per_axis else f" an int >= {minimum}"
    wrong_type = [bad_option(name, bad, expected=type_expected, case=case) for bad in (float(good), str(good), True)]
    low = minimum - 1
    if per_axis:
        return [*wrong_type, ErrorInput(f"{name}={low!r}", ValueError,
                                        rf"{re.escape(name)}={low!r}: every entry must be >= {minimum}",
                                        options={name: low}, case=case)]
    return [*wrong_type, bad_option(name, low, ValueError, f" an int >= {minimum}", case=case)]


def bad_layer_option(name: str, value: object, error: type[Exception] = ArgumentTypeError, expected: str = "", *,
                     extra: Mapping[str, Any] | None = None) -> LayerErrorInput:
    """The layer constructor option ``name=value`` (with the options ``extra``) must raise ``error`` (default: a
    wrong type) with the message ``name=repr(value): expected...`` (``match`` as :func:`option_match`)."""
    kwargs = {**(extra or {}), name: value}
    return LayerErrorInput(", ".join(f"{k}={v!r}" for k, v in kwargs.items()), error,
                           option_match(name, value, expected), kwargs)


# ---- CNN modules ((B, C, H, W) feature maps) ---------------------------------------------------------------------

def feature_map(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> torch.Tensor:
    """A random ``(batch, channels, *grid)`` feature map (the ``x`` of a ``cnn`` family op) from a case's
    ``batch``, ``channels`` and ``grid`` ``(H, W)``."""
    return random_tensor((case["batch"], case["channels"], *case["grid"]), dtype, device, generator)


def random_feature_map_case(rnd: random.Random, *, max_channels: int = 12, max_side: int = 9) -> dict[str, Any]:
    """A small random ``{"batch", "channels", "grid"}`` case: batch 1-3, up to ``max_channels`` channels, sides
    1..``max_side`` (odd and even, H != W)."""
    return {"batch": rnd.randint(1, 3), "channels": rnd.randint(1, max_channels),
            "grid": (rnd.randint(1, max_side), rnd.randint(1, max_side))}
