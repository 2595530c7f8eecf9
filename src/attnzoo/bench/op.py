"""``attnzoo bench --op NAME``: one registered variant on one's own shape, against two dense baselines.

The shape comes from flags (batch, heads, ``--length`` or ``--grid``, head dim) and the variant's options from
``--opt key=value`` (values parsed with :func:`ast.literal_eval`, bare words kept as strings), on top of the
variant's test-spec benchmark case (:attr:`attnzoo.testing.OpTestSpec.benchmark_case`), which supplies every
setting the flags do not give (agents, features, rank, ...). Inputs are built by the spec's own
``make_inputs`` and options by its ``options``, so every registered variant can be measured; an ``--opt``
key the spec's cases and the op's keyword options do not know is refused naming it, and the op validates
the values (its error names the argument) before anything is timed.

Baselines in the same run, on the same tokens (``(B, H, N, D)`` flattened; ``(B, 1, N, C)`` for channels-last
ops without heads):

* ``dense-sdpa``: ``F.scaled_dot_product_attention`` with the explicit ``N x N`` boolean mask of the
  variant's sparsity pattern (local variants; the causal mask for other causal workloads; none for a
  non-causal workload without a pattern, a skipped row saying so). It is what the family benchmarks divide by,
  but a mask keeps SDPA off its fast kernels, so it flatters the sparse paths;
* ``flash-sdpa``: SDPA without a mask (``is_causal=True`` for a causal workload), the fast dense path.

Speed-ups are given against each. The baselines compute softmax attention over the same tokens, not the
variant's function, so their error column is empty.
"""

from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.bench.case import Case, Inputs, Workload
from attnzoo.bench.ours import DENSE_SCORE_LIMIT, DENSE_SDPA
from attnzoo.bench.suites.registry import BASELINE, COMPILED, _case, _first, _json, benchmark_case, case_tokens
from attnzoo.masks import dense_mask
from attnzoo.registry import NotSupportedError, Variant, get_variant
from attnzoo.testing import OpTestSpec, get_spec

FLASH_SDPA = "flash-sdpa"
SHAPE_KEYS = frozenset({"batch", "heads", "grid", "length", "head_dim", "channels"})
REFERENCE_SCORE_LIMIT = 2**28
"""The ``reference`` implementation (dense scores + mask) and the float64 oracle of the error column run while
``B · H · N^2 <= 2^28`` (2 GB of float64 scores); above, the row is skipped and the error column empty."""


@dataclass(frozen=True)
class OpRequest:
    """What ``attnzoo bench --op`` was asked: ``None`` keeps the spec's benchmark-case value."""

    name: str
    batch: int | None = None
    heads: int | None = None
    length: int | None = None
    grid: tuple[int, ...] | None = None
    head_dim: int | None = None
    opts: Mapping[str, Any] = field(default_factory=dict)
    backward: bool = False
    impls: Sequence[str] | None = None
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    """Input dtype; other than float32, each implementation is also timed in float32 in the same run."""
    compile: bool = False
    """Also time each implementation under ``torch.compile`` (its first call, in the first-call column, is the
    compile), beside the eager one."""


def parse_opt(text: str) -> tuple[str, Any]:
    """``"window=128"`` -> ``("window", 128)``; the value by :func:`ast.literal_eval` (``True``, ``(1, 2)``,
    ``0.5``), a bare word (``elu``) as a string. ``ValueError`` naming ``--opt`` for text without ``=``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ValueError(f"--opt {text!r}: expected KEY=VALUE, e.g. --opt window=128 or --opt is_causal=True")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return key, value


def op_keywords(variant: Variant) -> dict[str, inspect.Parameter]:
    """The op's non-tensor keyword options (``impl`` and tensor arguments left out)."""
    found = {}
    for name, param in inspect.signature(variant.op).parameters.items():
        if name == "impl" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if "Tensor" not in str(param.annotation):
            found[name] = param
    return found


def case_keywords(spec: OpTestSpec) -> set[str]:
    """The settings the spec's cases use besides the shape (window, kernel_size, agents, features, ...)."""
    cases = [*spec.cases, spec.tiny_case, *([spec.benchmark_case] if spec.benchmark_case is not None else [])]
    return {key for case in cases for key in case} - SHAPE_KEYS


def build_case(request: OpRequest, variant: Variant, spec: OpTestSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec case for ``request`` and the op's keyword options; ``ValueError`` naming the flag that does
    not fit the variant."""
    case = dict(benchmark_case(spec))
    axes = variant.layout.token_axes
    if request.grid is not None and request.length is not None:
        raise ValueError("--grid and --length: give one of them")
    tokens = request.grid if request.grid is not None else (
        (request.length,) if request.length is not None else None)
    if tokens is not None:
        flag = "--grid" if request.grid is not None else "--length"
        if len(tokens) != axes:
            raise ValueError(f"{flag} {' '.join(map(str, tokens))}: {variant.name} has {axes} token axes "
                             f"(layout {variant.layout}); expected {axes} size(s)"
                             + (", e.g. --length 4096" if axes == 1 else f", e.g. --grid {' '.join(['64'] * axes)}"))
        if any(not isinstance(n, int) or n < 1 for n in tokens):
            raise ValueError(f"{flag} {tokens}: expected positive integers")
        if "grid" in case or "length" not in case:
            case["grid"] = tuple(tokens)
        else:
            case["length"] = tokens[0]
    for flag, value, keys in (("--batch", request.batch, ("batch",)), ("--heads", request.heads, ("heads",)),
                              ("--head-dim", request.head_dim, ("head_dim", "channels"))):
        if value is None:
            continue
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{flag} {value!r}: expected a positive integer")
        key = next((k for k in keys if k in case), None)
        if key is None:
            raise ValueError(f"{flag} {value}: {variant.name} has no such axis (layout {variant.layout})")
        case[key] = value
    known_case, known_op = case_keywords(spec), op_keywords(variant)
    kwargs = {}
    for key, value in request.opts.items():
        if key not in known_case and key not in known_op:
            raise ValueError(f"--opt {key}={value!r}: {variant.name} has no option {key!r}; expected one of "
                             f"{', '.join(sorted(known_case | set(known_op)))}")
        if key in known_case:
            case[key] = value
        if key in known_op:
            kwargs[key] = value
    return case, {**spec.options(case), **kwargs}


def is_causal_workload(variant: Variant, options: Mapping[str, Any]) -> bool:
    """Causal when the op's ``is_causal`` (given or default) is true on every axis, or, for ops without one,
    when the variant is always causal."""
    params = inspect.signature(variant.op).parameters
    if "is_causal" not in params:
        return variant.causal
    flag = options.get("is_causal", params["is_causal"].default)
    return all(flag) if isinstance(flag, (tuple, list)) else bool(flag)


def _grid(case: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(case["grid"]) if "grid" in case else (int(case.get("length", 1)),)


def _pattern_builders() -> dict[str, Callable[[tuple[int, ...], int, Mapping[str, Any]], Any]]:
    """Per local variant, its sparsity pattern (``grid``, heads, op options) for the masked baseline."""
    from attnzoo.ops.neighborhood.functional import neighborhood_pattern
    from attnzoo.ops.sliding_window.patterns import ShiftedSparsePattern, SinkFocusedPattern, SlidingWindowPattern
    from attnzoo.ops.window.functional import window_pattern

    def neighborhood(grid: tuple[int, ...], heads: int, o: Mapping[str, Any]) -> Any:
        return neighborhood_pattern(grid, o["kernel_size"], o.get("dilation", 1), o.get("is_causal", False))

    def halo(grid: tuple[int, ...], heads: int, o: Mapping[str, Any]) -> Any:
        from attnzoo.ops.halo.functional import halo_pattern

        if o.get("stride", 1) != 1 or not o.get("mask_padding", True):
            return None  # strided queries (N/stride^2 of them) or attended zero padding: no N x N key mask
        return halo_pattern(grid, o["block_size"], o["halo_size"], 1)

    return {
        "neighborhood_attention_1d": neighborhood, "neighborhood_attention_2d": neighborhood,
        "neighborhood_attention_3d": neighborhood,
        "sliding_window_attention": lambda g, h, o: SlidingWindowPattern(
            length=g[0], window=o["window"], is_causal=o.get("is_causal", True),
            num_sink_tokens=o.get("num_sink_tokens", 0)),
        "shifted_sparse_attention": lambda g, h, o: ShiftedSparsePattern(
            length=g[0], group_size=o["group_size"], num_heads=h),
        "sink_focused_attention": lambda g, h, o: SinkFocusedPattern(
            length=g[0], group_size=o["group_size"], num_heads=h, num_sink_tokens=o.get("num_sink_tokens", 4)),
        "window_attention_2d": lambda g, h, o: window_pattern(g, o["window_size"], o.get("shift_size", 0)),
        "halo_attention": halo,
    }


def _dense_tokens(variant: Variant, inputs: Inputs) -> Inputs:
    """The baselines' ``query``/``key``/``value`` ``(B, H, N, D)`` from the variant's inputs: its own
    query/key/value flattened over the tokens (key = query where it has none), or ``x`` as ``(B, 1, N, C)``."""
    query = inputs.get("query", inputs.get("x"))
    if query is None:
        query = next(t for t in inputs.values() if isinstance(t, torch.Tensor))
    key, value = inputs.get("key", query), inputs.get("value", query)

    def flat(t: torch.Tensor) -> torch.Tensor:
        if variant.layout.heads:
            return t.reshape(t.shape[0], t.shape[1], -1, t.shape[-1])
        return t.reshape(t.shape[0], 1, -1, t.shape[-1])

    return {"query": flat(query), "key": flat(key), "value": flat(value)}


def baseline_cases(workload: Workload, variant: Variant, case: Mapping[str, Any], options: Mapping[str, Any],
                   device: str) -> list[Case]:
    """The masked dense SDPA row and the unmasked (flash) SDPA row of ``workload``."""
    causal = is_causal_workload(variant, options)
    grid, heads = _grid(case), case.get("heads", 1) if variant.layout.heads else 1
    tokens = math.prod(grid)
    to_layout = lambda inputs: _dense_tokens(variant, inputs)  # noqa: E731
    pattern, why = None, None
    builder = _pattern_builders().get(variant.name)
    if builder is not None:
        try:
            pattern = builder(grid, heads, options)
        except (KeyError, TypeError, ValueError) as error:
            why = f"no dense mask for these options ({type(error).__name__}: {error})"
        if pattern is None and why is None:
            why = "these options have no N x N key mask (strided queries or attended padding)"
    if pattern is not None:
        mask_note = "F.scaled_dot_product_attention with the pattern's N x N bool mask"

        def prepare() -> torch.Tensor:
            return dense_mask(pattern.mask_mod(), tokens, tokens, device=device,
                              heads=getattr(pattern, "mask_heads", None)).contiguous()
    elif causal and why is None:
        mask_note = "F.scaled_dot_product_attention with the explicit N x N causal bool mask"

        def prepare() -> torch.Tensor:
            return torch.ones(tokens, tokens, dtype=torch.bool, device=device).tril()
    else:
        mask_note = "F.scaled_dot_product_attention with an N x N bool mask"
        prepare = None  # type: ignore[assignment]
        why = why or "a non-causal workload without a sparsity pattern has no mask: flash-sdpa is its dense baseline"

    def masked(inputs: Inputs, mask: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(inputs["query"], inputs["key"], inputs["value"], attn_mask=mask)

    def flash(inputs: Inputs, _: Any) -> torch.Tensor:
        return F.scaled_dot_product_attention(inputs["query"], inputs["key"], inputs["value"], is_causal=causal)

    # A baseline computes softmax attention over the flattened tokens, not the variant's function: no error
    # against the variant's reference. The runner computes one anyway (against this zero, at no cost) and
    # add_speedups clears it.
    no_error = lambda inputs: torch.zeros(())  # noqa: E731
    big = workload.score_entries > DENSE_SCORE_LIMIT
    skip = why or (f"B*H*N^2 = {workload.score_entries:.2e} score entries > {DENSE_SCORE_LIMIT:.2e}" if big else None)
    flash_note = ("F.scaled_dot_product_attention, is_causal=True, no mask" if causal else
                  "F.scaled_dot_product_attention without a mask (the variant is not causal)")
    return [Case(workload, DENSE_SDPA, masked, prepare=prepare, to_layout=to_layout, baseline=True, skip=skip,
                 reference=no_error, note=mask_note),
            Case(workload, FLASH_SDPA, flash, to_layout=to_layout, reference=no_error, note=flash_note)]


def op_cases(request: OpRequest) -> tuple[list[Case], dict[str, Any], dict[str, Any]]:
    """The cases of ``request`` (baselines first, then each implementation of the variant), the spec case and
    the op's options, checked: ``ValueError`` naming the flag or option the variant or its op refuses."""
    try:
        variant = get_variant(request.name)
    except KeyError as error:
        raise ValueError(f"--op {request.name!r}: {error.args[0]}") from None
    spec = get_spec(variant.name)
    unknown = [i for i in request.impls or () if i not in variant.implementations]
    if unknown:
        raise ValueError(f"--impl {', '.join(map(repr, unknown))}: not an implementation of {variant.name}; "
                         f"expected one of {', '.join(variant.implementations)} (the baselines always run)")
    case, options = build_case(request, variant, spec)
    device = request.device
    try:
        inputs = spec.make_inputs(case, request.dtype, device, torch.Generator().manual_seed(0))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{variant.name} cannot build inputs for case {case} ({type(error).__name__}: {error})") \
            from None
    check_options(variant, inputs, options)
    grid = _grid(case)
    tokens, batch, heads = case_tokens(case), case.get("batch", 1), case.get("heads", 1)
    score_entries = batch * heads * tokens**2

    def make_inputs(generator: torch.Generator) -> Inputs:
        return spec.make_inputs(case, request.dtype, device, generator)

    def reference(inputs: Inputs) -> torch.Tensor:
        wide = {name: t.double() if t.is_floating_point() else t for name, t in inputs.items()}
        return _first(variant.op(**wide, **options, impl=BASELINE)).to(request.dtype)

    size = "x".join(map(str, grid))
    workload = Workload(
        name=f"{variant.name} {size} b{batch}", family=variant.family, variant=variant.name, series=variant.name,
        shape={**{k: _json(v) for k, v in case.items()}, "options": {k: _json(v) for k, v in options.items()},
               "case": "attnzoo bench --op"},
        tokens=tokens, score_entries=score_entries, flops=0.0, make_inputs=make_inputs,
        reference=reference if score_entries <= REFERENCE_SCORE_LIMIT else None,
        reference_skip=None if score_entries <= REFERENCE_SCORE_LIMIT else
        f"B*H*N^2 = {score_entries:.2e} > {REFERENCE_SCORE_LIMIT:.2e}: no float64 reference at this size",
        device=device)
    ours = [_case(workload, variant, impl, options, "full", device) for impl in variant.implementations.values()
            if request.impls is None or impl.name in request.impls]
    ours = [replace(c, baseline=False, skip=c.skip or (
        f"B*H*N^2 = {score_entries:.2e} > {REFERENCE_SCORE_LIMIT:.2e}: the dense reference would not fit the "
        "run's time and memory" if c.impl == BASELINE and score_entries > REFERENCE_SCORE_LIMIT else None))
            for c in ours]
    if request.dtype != torch.float32:  # the same implementations in float32, in the same run, for the ratio
        def float32_inputs(generator: torch.Generator) -> Inputs:
            return spec.make_inputs(case, torch.float32, device, generator)

        fp32 = replace(workload, name=f"{workload.name} float32", make_inputs=float32_inputs, reference=None,
                       reference_skip="the float32 rows are timed for the dtype ratio only")
        ours += [replace(_case(fp32, variant, impl, options, "full", device), impl=f"{impl.name} (float32)",
                         baseline=False) for impl in variant.implementations.values()
                 if impl.name != BASELINE and (request.impls is None or impl.name in request.impls)]
    if request.compile:
        ours += [compiled_case(c) for c in ours if c.impl not in COMPILED and c.skip is None]
    cases = baseline_cases(workload, variant, case, options, device) + ours
    if not request.backward:
        cases = [replace(c, backward_skip="not requested (--backward)") for c in cases]
    return cases, case, options


def compiled_case(case: Case) -> Case:
    """``case`` under ``torch.compile`` (fixed shapes): the same forward, compiled on its first call."""
    forward = torch.compile(case.forward, dynamic=False)
    return replace(case, impl=f"{case.impl}+compile", forward=forward,
                   note=f"torch.compile of {case.impl} (first call = compile)")


def check_options(variant: Variant, inputs: Inputs, options: Mapping[str, Any]) -> None:
    """Call the op once (``impl="auto"``, no grad) so that it validates the options and shape before anything
    is timed; ``ValueError`` with its message (which names the argument). An implementation limit
    (:class:`NotSupportedError`) is left to the rows."""
    try:
        with torch.no_grad():
            variant.op(**inputs, **options, impl="auto")
    except NotSupportedError:
        pass
    except (TypeError, ValueError) as error:
        raise ValueError(f"{variant.name} refuses the options {dict(options)}: {error}") from None


LABELS = {DENSE_SDPA: "dense-sdpa (N x N mask)", FLASH_SDPA: "flash-sdpa (no mask)"}
"""The baselines' labels: ``flash-sdpa`` has no mask (``is_causal=True`` for a causal workload)."""


def add_speedups(doc: dict[str, Any]) -> None:
    """Per row and mode, ``speedups[mode][baseline] = baseline median / row median`` against both baselines;
    the baselines' error cells are cleared (they compute softmax attention, not the variant)."""
    rows = doc["rows"]
    bases = {row["impl"]: row for row in rows if row["impl"] in (DENSE_SDPA, FLASH_SDPA)}
    for row in rows:
        row["speedups"] = {}
        for mode, result in row["modes"].items():
            cell = {}
            for name, base in bases.items():
                ref = base["modes"][mode]
                ok = result["status"] == "ok" and ref["status"] == "ok"
                cell[name] = ref["median_ms"] / result["median_ms"] if ok else None
            row["speedups"][mode] = cell
        if row["impl"] in bases:
            row["max_abs_error"] = None
            row["error_note"] = "a baseline: softmax attention over the same tokens, not the variant's function"
    doc["baselines"] = {name: LABELS[name] for name in bases}


def _ms(m: Mapping[str, Any]) -> str:
    if m["status"] != "ok":
        return m["status"]
    return f"{m['median_ms']:.3g} ({m['p10_ms']:.3g}-{m['p90_ms']:.3g})"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def format_table(doc: Mapping[str, Any], backward: bool) -> str:
    """The run as a markdown table: per implementation and mode the median ms (p10-p90), the speed-up against
    each baseline and the peak memory; skip and failure reasons listed below."""
    modes = ["forward"] + (["forward_backward"] if backward else [])
    header = ["impl"]
    for mode in modes:
        label = "fwd" if mode == "forward" else "fwd+bwd"
        header += [f"{label} ms (p10-p90)", f"{label} vs {LABELS[DENSE_SDPA]}", f"{label} vs {LABELS[FLASH_SDPA]}",
                   f"{label} peak MB"]
    header += ["max abs error", "measured"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = [f"- {row['impl']}: {row['note']}" for row in doc["rows"] if row["impl"] in LABELS]
    for row in doc["rows"]:
        cells = [row["impl"]]
        for mode in modes:
            m, s = row["modes"][mode], row["speedups"][mode]
            cells += [_ms(m), _x(s.get(DENSE_SDPA)), _x(s.get(FLASH_SDPA)),
                      "–" if m.get("peak_mb") is None else f"{m['peak_mb']:.3g}"]
            if m["status"] != "ok" and m.get("reason") and not (mode != "forward" and row["status"] != "ok"):
                notes.append(f"- {row['impl']} {mode}: {m['status']}: {m['reason']}")
        cells.append("–" if row["max_abs_error"] is None else f"{row['max_abs_error']:.1e}")
        cells.append(row.get("provenance") or "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ([""] + notes if notes else []))
