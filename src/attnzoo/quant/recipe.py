"""Recipes: which layers get which quantizers, named by ``fnmatch`` glob patterns on module names
(``model.named_modules()``; ``*`` also matches dots, so ``"blocks.*.mlp.*"`` covers every block's MLP layers).

- A :class:`Rule` gives a pattern a weight quantizer and / or input and output :class:`ActivationSpec`. Each
  quantizable layer (``nn.Linear``, Hugging Face ``Conv1D``) takes the *first* rule matching its name.
- ``skip`` patterns keep layers in float whatever the rules say (e.g. ``"head"``, ``"lm_head"``).
- ``outputs`` quantize the output of any module by name (e.g. the residual stream after each block).

Every pattern must match something: a pattern naming no layer of the model is an error listing the near
matches (a typo in ``skip`` must not silently quantize the LM head).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from attnzoo.quant.base import Quantizer
from attnzoo.quant.modules import ActivationQuantizer
from attnzoo.quant.observers import Observer
from attnzoo.quant.ste import STE, check_ste


@dataclass(frozen=True)
class ActivationSpec:
    """How to build each layer's :class:`~attnzoo.quant.modules.ActivationQuantizer`: a format, an observer
    prototype (copied per layer; ``None``: dynamic) and the straight-through estimator."""

    quantizer: Quantizer
    observer: Observer | None = None
    ste: STE = "clipped"

    def __post_init__(self) -> None:
        if not isinstance(self.quantizer, Quantizer):
            raise TypeError(f"quantizer={self.quantizer!r}: expected an attnzoo.quant Quantizer")
        check_ste(self.ste)

    def build(self) -> ActivationQuantizer:
        return ActivationQuantizer(self.quantizer, self.observer, self.ste)


@dataclass(frozen=True)
class Rule:
    """Quantizers for the layers whose names match ``pattern``."""

    pattern: str
    weight: Quantizer | None = None
    input: ActivationSpec | None = None
    output: ActivationSpec | None = None

    def __post_init__(self) -> None:
        _check_pattern("pattern", self.pattern)
        if self.weight is not None and not isinstance(self.weight, Quantizer):
            raise TypeError(f"weight={self.weight!r}: expected an attnzoo.quant Quantizer or None")
        for name in ("input", "output"):
            spec = getattr(self, name)
            if spec is not None and not isinstance(spec, ActivationSpec):
                raise TypeError(f"{name}={spec!r}: expected an ActivationSpec or None")
        if self.weight is None and self.input is None and self.output is None:
            raise ValueError(f"rule {self.pattern!r} quantizes nothing: give weight, input or output "
                             "(use Recipe.skip to keep layers in float)")


def _check_pattern(name: str, pattern: object) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise TypeError(f"{name}={pattern!r}: expected a non-empty glob pattern string")


@dataclass(frozen=True)
class Recipe:
    """``rules`` (first match wins), ``skip`` patterns, and ``outputs`` (pattern, spec) pairs (see the module
    docstring)."""

    rules: tuple[Rule, ...]
    skip: tuple[str, ...] = ()
    outputs: tuple[tuple[str, ActivationSpec], ...] = field(default=())

    def __post_init__(self) -> None:
        for attr in ("rules", "skip", "outputs"):
            value = getattr(self, attr)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise TypeError(f"{attr}={value!r}: expected a sequence")
            object.__setattr__(self, attr, tuple(value))
        if not self.rules and not self.outputs:
            raise ValueError("recipe has no rules and no outputs: it would quantize nothing")
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise TypeError(f"rules hold {rule!r}: expected Rule objects")
        for pattern in self.skip:
            _check_pattern("skip", pattern)
        for entry in self.outputs:
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], ActivationSpec)):
                raise TypeError(f"outputs hold {entry!r}: expected (pattern, ActivationSpec) pairs")
            _check_pattern("outputs pattern", entry[0])

    def assign(self, layers: Sequence[str]) -> dict[str, Rule]:
        """The rule of each of ``layers`` (quantizable layer names) that is not skipped; every rule and skip
        pattern must match at least one of them."""
        for pattern in [rule.pattern for rule in self.rules] + list(self.skip):
            require_match(pattern, layers, "quantizable layer (nn.Linear / Conv1D)")
        assigned = {}
        for name in layers:
            if any(fnmatch.fnmatchcase(name, p) for p in self.skip):
                continue
            rule = next((r for r in self.rules if fnmatch.fnmatchcase(name, r.pattern)), None)
            if rule is not None:
                assigned[name] = rule
        return assigned

    def assign_outputs(self, modules: Sequence[str]) -> dict[str, ActivationSpec]:
        """The output spec of each of ``modules`` (all module names) named by ``outputs`` (first match)."""
        for pattern, _ in self.outputs:
            require_match(pattern, modules, "module")
        assigned = {}
        for name in modules:
            spec = next((s for p, s in self.outputs if fnmatch.fnmatchcase(name, p)), None)
            if spec is not None:
                assigned[name] = spec
        return assigned


def require_match(pattern: str, names: Sequence[str], what: str) -> None:
    """Raise a ``ValueError`` naming ``pattern``, its near matches among ``names`` and their count when it
    matches none of them."""
    if any(fnmatch.fnmatchcase(n, pattern) for n in names):
        return
    near = difflib.get_close_matches(pattern, names, n=5, cutoff=0.5)
    hint = (f"near matches: {near}" if near else
            f"the model's {what} names include {list(names[:8])}" if names else f"the model has no {what}")
    raise ValueError(f"recipe pattern {pattern!r} matches no {what} of the model ({len(names)} of them); {hint}")


def weight_only(quantizer: Quantizer, *, pattern: str = "*", skip: Sequence[str] = ()) -> Recipe:
    """Weights of every layer matching ``pattern`` (default all) quantized with ``quantizer``."""
    return Recipe((Rule(pattern, weight=quantizer),), tuple(skip))


def weights_and_activations(weight: Quantizer, activation: Quantizer, observer: Observer | None, *,
                            pattern: str = "*", skip: Sequence[str] = (), outputs: bool = False) -> Recipe:
    """Weights with ``weight``; each layer's input (and output, with ``outputs=True``) with ``activation``,
    calibrated by a copy of ``observer`` (``None``: dynamic)."""
    spec = ActivationSpec(activation, observer)
    return Recipe((Rule(pattern, weight=weight, input=spec, output=spec if outputs else None),), tuple(skip))
