"""The test contract every registered variant inherits (design principles 1, 4 and 8), for EVERY implementation.

Each variant's test spec (``attnzoo/ops/<mechanism>/testing.py``, :mod:`attnzoo.testing`) gives its cases; every
implementation that declares the CPU is run on them (not only ``auto``'s pick):

- default-argument smoke test of every op and layer;
- every implementation against the reference, forward and backward through every output (final states too),
  float64 tight and float32 with stated tolerances, on the variant's awkward cases;
- ``torch.autograd.gradcheck`` on each variant's tiny case; the double-backward claim (gradgradcheck, or
  ``NotSupportedError`` when differentiating twice);
- hypothesis random sweeps per implementation: values and gradients against the reference, shape,
  finiteness, batch independence;
- causality where declared (exact-zero gradients), non-contiguous and empty inputs, per implementation;
- declared dtypes are claims: a declared dtype runs and agrees with the reference within a dtype-specific
  tolerance, an undeclared one raises ``NotSupportedError``;
- the variant's declared error inputs, and generic bad input.

Compiled FlexAttention on CPU is the one implementation left out here: it compiles for seconds per shape and has
no backward on CPU; ``tests/test_flex_cpu.py`` sweeps it against the reference across lengths, and
``tests/test_gpu.py`` runs it on CUDA.
"""

from __future__ import annotations

import random
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from registry_cases import case_id, forward_backward, make_inputs, outputs, run, run_all

import attnzoo
from attnzoo.registry import FEATURE_MAP, FEATURES, FLOAT_DTYPES, CallFacts, NotSupportedError
from attnzoo.testing import (
    FEATURE_KEYS,
    OpTestSpec,
    batch_slice,
    case_features,
    specs,
    without_features,
)

SPECS = specs()
SPEC_IDS = [s.variant for s in SPECS]

# error of outputs / gradients relative to the largest reference entry (inputs ~ N(0, 1); softmax outputs are
# O(1), unnormalised linear attention grows with N), per dtype of the implementation under test
TOLERANCE = {torch.float64: {"out": 1e-10, "grad": 1e-10}, torch.float32: {"out": 2e-5, "grad": 1e-4},
             torch.float16: {"out": 2e-2, "grad": 5e-2}, torch.bfloat16: {"out": 8e-2, "grad": 2e-1}}


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, tol: float, msg: str = "") -> None:
    """``|actual - expected| <= tol * max(1, max |expected|)`` elementwise."""
    atol = tol * max(1.0, expected.abs().max().item()) if expected.numel() else tol
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0, msg=msg or None)


def cpu_implementations(spec: OpTestSpec, *, backward: bool = False, reference: bool = False) -> list[str]:
    """The implementations run here: those ``auto`` may pick on CPU (every one but compiled FlexAttention, see
    the module docstring), with CPU backward if ``backward``; the reference only if ``reference``."""
    return [name for name, impl in spec.registered.implementations.items()
            if (reference or name != "reference") and impl.auto_eligible("cpu")
            and (not backward or "cpu" in impl.capabilities.backward_devices)]


def per_implementation(*, backward: bool = False, reference: bool = False) -> list:
    return [pytest.param(s, impl, id=f"{s.variant}-{impl}") for s in SPECS
            for impl in cpu_implementations(s, backward=backward, reference=reference)]


def declares(spec: OpTestSpec, impl: str, case: dict) -> bool:
    """Whether ``impl`` declares every drop-in feature ``case`` uses (:data:`attnzoo.testing.FEATURE_KEYS`)."""
    return case_features(case) <= spec.registered.implementations[impl].capabilities.features


def per_case(*, backward: bool = True) -> list:
    return [pytest.param(s, impl, case, id=f"{s.variant}-{impl}-{case_id(case)}") for s in SPECS
            for impl in cpu_implementations(s, backward=backward) for case in s.cases if declares(s, impl, case)]


def assert_matches(outs: tuple, grads: dict, ref_outs: tuple, ref_grads: dict, dtype: torch.dtype) -> None:
    tol = TOLERANCE[dtype]
    assert len(outs) == len(ref_outs)
    for i, (out, ref) in enumerate(zip(outs, ref_outs)):
        assert out.dtype == dtype and out.shape == ref.shape
        assert_close_scaled(out.double(), ref.double(), tol["out"], msg=f"output {i}")
    scale = max([1.0] + [g.abs().max().item() for g in ref_grads.values() if g.numel()])
    for name, ref in ref_grads.items():
        ref = ref.double()
        if ref.numel() and ref.abs().max().item() <= 1e-9 * scale:
            # zero in exact arithmetic (a key bias under softmax's shift invariance): a cancellation of terms of
            # the size of the call's other gradients, so its round-off scales with them, not with 1
            torch.testing.assert_close(grads[name].double(), ref, atol=tol["grad"] * scale, rtol=0,
                                       msg=f"grad of {name} (zero in exact arithmetic)")
        else:
            assert_close_scaled(grads[name].double(), ref, tol["grad"], msg=f"grad of {name}")


def test_every_variant_has_a_test_spec_and_every_spec_a_variant() -> None:
    assert [s.variant for s in SPECS] == [v.name for v in attnzoo.variants()]


@pytest.mark.parametrize("spec", [s for s in SPECS if s.registered.layer is not None], ids=lambda s: s.variant)
def test_layer_smoke_with_defaults(spec: OpTestSpec) -> None:
    layer = attnzoo.create(spec.variant)
    x = torch.randn(spec.layer_input_shape, requires_grad=True)
    out = layer(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_op_smoke_with_auto(spec: OpTestSpec) -> None:
    case = spec.cases[0]
    out = run(spec, case, make_inputs(spec, case, torch.float32), "auto")
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("spec", "impl", "case"), per_case())
def test_implementation_matches_reference_float64(spec, impl, case) -> None:
    inputs = make_inputs(spec, case, requires_grad=True)
    ref_outs, ref_grads = forward_backward(spec, case, inputs, "reference")
    outs, grads = forward_backward(spec, case, inputs, impl)
    assert_matches(outs, grads, ref_outs, ref_grads, torch.float64)


@pytest.mark.parametrize(("spec", "impl", "case"), per_case())
def test_implementation_float32_against_float64_reference(spec, impl, case) -> None:
    ref_outs, ref_grads = forward_backward(spec, case, make_inputs(spec, case, requires_grad=True), "reference")
    outs, grads = forward_backward(spec, case, make_inputs(spec, case, torch.float32, requires_grad=True), impl)
    assert_matches(outs, grads, ref_outs, ref_grads, torch.float32)


def _tiny_fn(spec: OpTestSpec, impl: str):  # noqa: ANN202
    case = spec.tiny_case
    inputs = make_inputs(spec, case, requires_grad=True)
    assert sum(t.numel() for t in inputs.values()) <= 200, f"tiny_case of {spec.variant} is too big for gradcheck"
    names = list(inputs)

    def fn(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return outputs(run_all(spec, case, dict(zip(names, tensors)), impl))

    return fn, tuple(inputs.values())


UNDECLARED = [pytest.param(s, impl, case, id=f"{s.variant}-{impl}-{case_id(case)}") for s in SPECS
              for impl in cpu_implementations(s, reference=True) for case in s.cases if not declares(s, impl, case)]


@pytest.mark.parametrize(("spec", "impl", "case"), UNDECLARED)
def test_undeclared_features_raise_not_supported(spec, impl, case) -> None:
    """A drop-in feature an implementation does not declare (a mask, padding, packed sequences, grouped KV heads,
    longer keys, weights) raises NotSupportedError naming it: never silently ignored."""
    missing = case_features(case) - spec.registered.implementations[impl].capabilities.features
    with pytest.raises(NotSupportedError, match="|".join(re.escape(FEATURES[name]) for name in missing)):
        run_all(spec, case, make_inputs(spec, case), impl)


def test_every_drop_in_feature_is_exercised_where_declared() -> None:
    """Each feature an implementation declares is used by at least one of its variant's cases."""
    for spec in SPECS:
        used = frozenset().union(*(case_features(c) for c in spec.cases))
        for impl in spec.registered.implementations.values():
            declared = impl.capabilities.features & frozenset(FEATURE_KEYS.values())
            assert declared <= used, (spec.variant, impl.name, sorted(declared - used))


@pytest.mark.parametrize(("spec", "impl"), per_implementation(backward=True, reference=True))
def test_gradcheck(spec, impl) -> None:
    fn, inputs = _tiny_fn(spec, impl)
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize(("spec", "impl"), per_implementation(backward=True, reference=True))
def test_double_backward_claim(spec, impl) -> None:
    """``double_backward=True``: gradgradcheck passes. ``False``: differentiating twice raises NotSupportedError."""
    fn, inputs = _tiny_fn(spec, impl)
    if spec.registered.implementations[impl].capabilities.double_backward:
        assert torch.autograd.gradgradcheck(fn, inputs)
        return
    outs = fn(*inputs)
    grads = torch.autograd.grad(outs, inputs, [torch.ones_like(o) for o in outs], create_graph=True,
                                allow_unused=True)
    with pytest.raises(NotSupportedError, match="double backward"):
        used = [g for g in grads if g is not None]
        torch.autograd.grad(sum(g.sum() for g in used), inputs, allow_unused=True)


@pytest.mark.parametrize(("spec", "impl"), per_implementation())
@given(rnd=st.randoms(use_true_random=False))
def test_random_sweep_against_reference(spec, impl, rnd: random.Random) -> None:
    """A random case per example (NATTEN's randsweep), with the drop-in features the implementation declares:
    values and gradients equal the reference's, outputs are finite, and each sample alone gives the same output
    as in the batch."""
    case = without_features(spec.random_case(rnd), spec.registered.implementations[impl].capabilities.features)
    backward = "cpu" in spec.registered.implementations[impl].capabilities.backward_devices
    inputs = make_inputs(spec, case, seed=rnd.randint(0, 2**31), requires_grad=backward)
    if backward:
        ref_outs, ref_grads = forward_backward(spec, case, inputs, "reference")
        outs, grads = forward_backward(spec, case, inputs, impl)
        assert_matches(outs, grads, ref_outs, ref_grads, torch.float64)
    else:
        outs, ref_outs = outputs(run_all(spec, case, inputs, impl)), outputs(run_all(spec, case, inputs, "reference"))
        assert_matches(outs, {}, ref_outs, {}, torch.float64)
    out = outs[0]
    assert out.shape[0] == inputs[spec.batched_inputs[0]].shape[0]
    assert all(torch.isfinite(o).all() for o in outs)
    sample = rnd.randrange(out.shape[0])
    alone = batch_slice(spec, inputs, slice(sample, sample + 1))
    with torch.no_grad():
        torch.testing.assert_close(run(spec, case, alone, impl), out[sample:sample + 1].detach(), atol=1e-12, rtol=0)


CAUSAL = [pytest.param(s, impl, c, id=f"{s.variant}-{impl}-{case_id(c)}") for s in SPECS if s.future_mask is not None
          for impl in cpu_implementations(s, backward=True, reference=True)
          for c in [*s.cases, s.tiny_case] if s.future_mask(c) is not None and declares(s, impl, c)]


def token_view(spec, n: int):  # noqa: ANN001, ANN201
    """``t -> (B, H, n, -1)`` for ops with a heads axis, ``(B, n, -1)`` otherwise: the grid flattened row-major."""
    lead = 2 if spec.registered.layout.heads else 1
    return lambda t: t.reshape(*t.shape[:lead], n, -1)


@pytest.mark.parametrize(("spec", "impl", "case"), CAUSAL)
def test_causality(spec, impl, case) -> None:
    """No output depends on any batched input at a position in its query's future: exact-zero gradients, or
    round-off-level ones for implementations declared not ``exactly_causal``.

    Inputs and output are read as ``(B, H, N, ...)`` for ops with a heads axis, as ``(B, N, ...)`` otherwise
    (token mixers such as ``(B, N, C)``), with the grid flattened row-major.
    """
    inputs = make_inputs(spec, case, requires_grad=True)
    future = spec.future_mask(case)
    n = future.shape[0]
    out = run(spec, case, inputs, impl)
    tokens = token_view(spec, n)

    exact = spec.registered.implementations[impl].capabilities.exactly_causal
    batched = [inputs[name] for name in spec.batched_inputs]
    for query in torch.randperm(n)[:6].tolist():
        grads = torch.autograd.grad(tokens(out)[..., query, :].sum(), batched, retain_graph=True)
        for grad in grads:
            leak = tokens(grad)[..., future[query], :].abs()
            # declared exactly causal: exact zeros; else at round-off level of the largest gradient entry
            assert (leak == 0).all() if exact else (leak <= 1e-12 * max(1.0, grad.abs().max().item())).all()


@pytest.mark.parametrize(("spec", "impl", "case"), [p for p in CAUSAL if p.values[0].registered.causal_selection])
def test_causality_by_changing_the_future(spec, impl, case) -> None:
    """Changing every batched input at a query's future positions leaves its output unchanged: the forward-side
    check that gradients cannot make, since a selection (routing, top-k, sampling) has no gradient. A variant whose
    selection reads later tokens says so (``Variant.causal_selection=False``; its own tests show the leak) and is
    left out."""
    inputs, other = make_inputs(spec, case), make_inputs(spec, case, seed=1)  # other: valid values to move in
    future = spec.future_mask(case)
    n = future.shape[0]
    tokens = token_view(spec, n)

    with torch.no_grad():
        out = tokens(run(spec, case, inputs, impl))
        for query in torch.randperm(n)[:4].tolist():
            if not future[query].any():
                continue
            changed = dict(inputs)
            for name in spec.batched_inputs:
                moved = tokens(inputs[name].clone())
                moved[..., future[query], :] = tokens(other[name])[..., future[query], :]
                changed[name] = moved.reshape(inputs[name].shape)
            diff = (tokens(run(spec, case, changed, impl))[..., query, :] - out[..., query, :]).abs().max().item()
            assert diff <= 1e-12 * max(1.0, out.abs().max().item()), (query, diff)


def test_causal_declarations_match_the_test_specs() -> None:
    """A variant declared causal has a future mask to check it by, and the other way round."""
    for spec in SPECS:
        assert spec.registered.causal == (spec.future_mask is not None), spec.variant


@pytest.mark.parametrize(("spec", "impl", "dtype"),
                         [pytest.param(s, impl, d, id=f"{s.variant}-{impl}-{str(d)[6:]}") for s in SPECS
                          for impl in cpu_implementations(s, reference=True)
                          for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)])
def test_declared_dtypes_are_claims(spec, impl, dtype) -> None:
    """A declared dtype runs forward (and backward where declared on CPU) and agrees with the float64
    reference within the dtype's tolerance; an undeclared dtype raises NotSupportedError naming it."""
    caps = spec.registered.implementations[impl].capabilities
    case = spec.cases[1] if len(spec.cases) > 1 else spec.cases[0]
    inputs = make_inputs(spec, case, dtype, requires_grad="cpu" in caps.backward_devices)
    if dtype not in caps.dtypes:
        with pytest.raises(NotSupportedError, match=f"dtype={dtype}"):
            run(spec, case, inputs, impl)
        return
    ref_outs, ref_grads = forward_backward(spec, case, make_inputs(spec, case, requires_grad=True), "reference")
    if "cpu" in caps.backward_devices:
        outs, grads = forward_backward(spec, case, inputs, impl)
        assert_matches(outs, grads, ref_outs, ref_grads, dtype)
    else:
        assert_matches(outputs(run_all(spec, case, inputs, impl)), {}, ref_outs, {}, dtype)


def test_declared_dtypes_are_float_dtypes() -> None:
    for spec in SPECS:
        for impl in spec.registered.implementations.values():
            assert impl.capabilities.dtypes <= FLOAT_DTYPES and impl.capabilities.dtypes, (spec.variant, impl.name)


ERRORS = [pytest.param(s, e, id=f"{s.variant}-{e.description}") for s in SPECS for e in s.error_inputs]


@pytest.mark.parametrize(("spec", "error"), ERRORS)
def test_error_inputs(spec, error) -> None:
    case = error.case or spec.cases[0]
    inputs = make_inputs(spec, case)
    if error.inputs is not None:
        inputs = error.inputs(inputs)
    with pytest.raises(error.error, match=error.match):
        spec.registered.op(**inputs, **{**spec.options(case), **error.options})


QKV_SPECS = [pytest.param(s, id=s.variant) for s in SPECS if s.batched_inputs[:3] == ("query", "key", "value")]


@pytest.mark.parametrize("spec", QKV_SPECS)
def test_bad_input_errors_name_the_argument(spec) -> None:
    """(query, key, value) ops: wrong rank, mismatched shapes, mixed or integer dtypes, unknown impl."""
    case = spec.cases[0]
    inputs = make_inputs(spec, case)
    options = spec.options(case)
    op = spec.registered.op
    with pytest.raises(ValueError, match="query has shape"):
        op(**{**inputs, "query": inputs["query"][None]}, **options)
    with pytest.raises(ValueError, match="key has shape"):
        op(**{**inputs, "key": torch.cat([inputs["key"]] * 2)}, **options)
    with pytest.raises(TypeError, match="dtypes differ"):
        op(**{**inputs, "value": inputs["value"].float()}, **options)
    with pytest.raises(TypeError, match="query.dtype"):
        op(**{**inputs, "query": inputs["query"].long()}, **options)
    with pytest.raises(ValueError, match="impl='fastest'"):
        op(**inputs, **options, impl="fastest")


FEATURE_MAP_SPECS = [pytest.param(s, id=s.variant) for s in SPECS if s.registered.layout == FEATURE_MAP]


@pytest.mark.parametrize("spec", FEATURE_MAP_SPECS)
def test_feature_map_bad_input_errors_name_the_argument(spec) -> None:
    """``(B, C, H, W)`` ops (the ``cnn`` family): a wrong rank, an integer feature map, a weight of another dtype
    than the feature map, an unknown impl."""
    case = spec.cases[0]
    inputs = make_inputs(spec, case)
    options = spec.options(case)
    op, name = spec.registered.op, spec.batched_inputs[0]
    with pytest.raises(ValueError, match=rf"{name} has shape .*expected 4-D \(B, C, H, W\)"):
        op(**{**inputs, name: inputs[name][None]}, **options)
    with pytest.raises(TypeError, match=rf"{name}.dtype=torch.int64"):
        op(**{**inputs, name: inputs[name].long()}, **options)
    weight = next(n for n, t in inputs.items() if n != name and t.is_floating_point())
    with pytest.raises(TypeError, match=rf"{weight}.dtype=torch.float32; expected {name}'s dtype torch.float64"):
        op(**{**inputs, weight: inputs[weight].float()}, **options)
    with pytest.raises(ValueError, match="impl='fastest'"):
        op(**inputs, **options, impl="fastest")


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_unsupported_implementation_lists_reasons(spec) -> None:
    """Asking for an implementation without CPU backward, with gradients on CPU, raises and says why."""
    impl = next((n for n, i in spec.registered.implementations.items()
                 if "cpu" not in i.capabilities.backward_devices), None)
    if impl is None:
        pytest.skip(f"every implementation of {spec.variant} supports backward on CPU")
    case = spec.cases[0]
    inputs = make_inputs(spec, case, requires_grad=True)
    with pytest.raises(NotSupportedError, match="backward on device=cpu"):
        run(spec, case, inputs, impl)
    reasons = spec.registered.implementations[impl].not_supported_reasons(CallFacts.of(list(inputs.values())))
    assert any("backward" in r for r in reasons)


@pytest.mark.parametrize(("spec", "impl"), per_implementation(reference=True))
def test_non_contiguous_inputs_give_the_same_result(spec, impl) -> None:
    case = spec.cases[0]
    inputs = make_inputs(spec, case)
    # the same values, laid out with the last dim outermost in memory
    strided = {n: t.transpose(0, -1).contiguous().transpose(0, -1) if n in spec.batched_inputs else t
               for n, t in inputs.items()}
    torch.testing.assert_close(run(spec, case, strided, impl), run(spec, case, inputs, impl))


@pytest.mark.parametrize(("spec", "impl"), per_implementation(reference=True))
def test_empty_batch_gives_an_empty_result(spec, impl) -> None:
    case = spec.cases[0]
    inputs = batch_slice(spec, make_inputs(spec, case), slice(0, 0))
    out = run(spec, case, inputs, impl)
    assert out.shape[0] == 0 and out.shape[1:] == run(spec, case, make_inputs(spec, case), impl).shape[1:]
