"""What the benchmark measures: a :class:`Workload` (one computation and its useful work) run by a :class:`Case`
(one implementation of it).

Every implementation of a workload gets the same inputs (canonical layout ``(B, H, *grid, D)``, fp32, drawn
from a fixed seed), so their outputs can be compared with the workload's reference and their times with the
baseline's. A case that cannot run carries the reason in ``skip`` (the whole case) or ``backward_skip``
(forward + backward only); the runner reports it as a row, never drops it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch

Inputs = dict[str, torch.Tensor]

BACKWARD_FLOP_FACTOR = 3.5
"""Forward + backward FLOPs as a multiple of the forward's: backward = 2.5x forward (five GEMMs against two,
the FlashAttention convention)."""


def attention_flops(batch: int, heads: int, visible_pairs: int, head_dim: int) -> float:
    """Useful forward FLOPs: two GEMMs (``QKᵀ`` and ``PV``) of 2 FLOPs per multiply-add over the visible
    query-key pairs only: ``4 · B · H · pairs · D``. Masked-out pairs an implementation computes anyway are
    not counted."""
    return 4.0 * batch * heads * visible_pairs * head_dim


@dataclass(frozen=True)
class Workload:
    """One computation: its shape, useful work, inputs and reference output.

    ``series`` groups workloads that differ only in length (one line per implementation in the plots);
    ``make_inputs(generator)`` returns ``query``/``key``/``value`` in the canonical layout; ``reference(inputs)``
    is the O(N^2) oracle used for the error column, ``None`` (with ``reference_skip`` saying why) when too big.
    ``device`` is where the inputs live and the calls run (the runner synchronises and measures memory there);
    ``flops`` is 0 when the workload's useful work has no agreed count (then no GFLOP/s is reported).
    """

    name: str
    family: str
    variant: str
    series: str
    shape: Mapping[str, Any]
    tokens: int
    score_entries: int
    """``B · H · N^2``: the size of the dense score matrix, which decides what an O(N^2) path can afford."""
    flops: float
    make_inputs: Callable[[torch.Generator], Inputs]
    reference: Callable[[Inputs], torch.Tensor] | None = None
    reference_skip: str | None = None
    device: str = "cpu"


@dataclass(frozen=True)
class Case:
    """One implementation of a workload.

    ``prepare()`` is the per-pattern set-up (dense mask, block mask, tile plan), timed alone as the set-up
    column; its result goes to ``forward(inputs, prepared)``. ``to_layout`` converts the canonical inputs to
    the implementation's layout (untimed) and ``from_layout`` converts its output back for the error check.
    ``reference`` overrides the workload's reference when the implementation computes a slightly different
    function (stated in ``note``).
    """

    workload: Workload
    impl: str
    forward: Callable[[Inputs, Any], torch.Tensor]
    prepare: Callable[[], Any] | None = None
    to_layout: Callable[[Inputs], Inputs] = field(default=lambda inputs: inputs)
    from_layout: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda out: out)
    reference: Callable[[Inputs], torch.Tensor] | None = None
    baseline: bool = False
    skip: str | None = None
    backward_skip: str | None = None
    note: str = ""


class Spec(Protocol):
    """A benchmark shape of a suite: it knows its cases (one per implementation)."""

    def cases(self) -> list[Case]: ...


def select_cases(subsets: Mapping[str, Sequence[Spec]], subset: str, impls: Collection[str] | None,
                 device: str | None = None) -> list[Case]:
    """The cases of ``subsets[subset]`` (each spec moved to ``device`` when given; specs are dataclasses with a
    ``device`` field); ``impls`` keeps only those implementations (the baseline is always kept: every ratio
    needs it)."""
    if subset not in subsets:
        raise ValueError(f"subset={subset!r}; expected one of {sorted(subsets)}")
    specs = [spec if device is None else replace(spec, device=device) for spec in subsets[subset]]
    cases = [case for spec in specs for case in spec.cases()]
    return [case for case in cases if impls is None or case.baseline or case.impl in impls]
