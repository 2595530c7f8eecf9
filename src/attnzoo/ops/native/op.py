"""The native local-attention kernel as a ``torch.library`` custom op: forward (output and log-sum-exp), a
first-order backward (input and bias gradients), fake (meta) implementations so that ``torch.compile`` traces it.

Tensors are ``(B, H, N, D)`` queries, ``(B, Hkv, N, D)`` keys, ``(B, Hkv, N, Dv)`` values with ``H % Hkv == 0``
(grouped KV heads read in place, their gradients summed over each group without atomics), float32 or float64 on
CPU; the geometry is a :class:`~attnzoo.ops.native.plan.LocalPlan`, named to the op by a kind and integers
(:func:`register_plan`) and built (and cached) inside it, so that ``torch.compile`` never traces its construction.
Threads: ``torch.get_num_threads()`` at call
time. ``isa``: ``"auto"`` the best this CPU runs (AVX2 + FMA where it has them), ``"generic"`` the baseline-ISA
kernels, ``"avx2"`` the AVX2 + FMA ones (:func:`supported_isas`).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Sequence

import torch

from attnzoo.ops.native.build import library
from attnzoo.ops.native.plan import LocalPlan, problem
from attnzoo.registry import NotSupportedError
from attnzoo.validation import first_order_only

IMPLEMENTATION = "the native local-attention kernel (attnzoo.ops.native, impl='native')"
PlanBuilder = Callable[..., LocalPlan]
_PLANS: dict[str, PlanBuilder] = {}

DTYPES = {torch.float32: 0, torch.float64: 1}
ISAS = {"auto": 0, "generic": 1, "avx2": 2}
_OUT_OF_MEMORY, _NO_ISA = 1, 2


def register_plan(kind: str, builder: PlanBuilder) -> None:
    """Name the plans ``builder(*ints)`` of one mechanism (cached per argument list)."""
    _PLANS[kind] = functools.lru_cache(maxsize=32)(builder)


def _plan(kind: str, arguments: list[int]) -> LocalPlan:
    return _PLANS[kind](*arguments)


def _pointer(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if t is None else t.data_ptr())


def supported_isas() -> tuple[str, ...]:
    """The kernel builds this CPU runs: ``("generic", "avx2")`` or ``("generic",)``."""
    lib = library()
    return tuple(name for name, code in ISAS.items() if code and lib.az_isa_supported(code))


def _check(status: int, isa: int) -> None:
    if status == _OUT_OF_MEMORY:
        raise MemoryError("native local attention: allocating its work buffers failed")
    if status == _NO_ISA:
        name = next(n for n, code in ISAS.items() if code == isa)
        raise NotSupportedError(f"native local attention: isa={name!r} needs a CPU with AVX2 and FMA; this one runs "
                                f"{supported_isas()}")


@torch.library.custom_op("attnzoo::native_local_attention", mutates_args=(), device_types="cpu")
def native_forward(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, rpb: torch.Tensor | None,
                   plan_kind: str, plan_arguments: list[int], scale: float,
                   isa: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out (B, H, N, Dv), lse (B, H, N))``."""
    q, k, v = query.contiguous(), key.contiguous(), value.contiguous()
    rpb = None if rpb is None else rpb.contiguous()
    out = q.new_empty(*q.shape[:3], v.shape[3])
    lse = q.new_empty(q.shape[:3])
    plan = _plan(plan_kind, plan_arguments)
    p = problem(plan, q, k, v, scale, torch.get_num_threads())
    lib = library()
    workspace = torch.empty(lib.az_forward_workspace(ctypes.byref(p), DTYPES[q.dtype]), dtype=torch.uint8)
    status = lib.az_local_forward(ctypes.byref(p), DTYPES[q.dtype], isa, _pointer(q), _pointer(k), _pointer(v),
                                  _pointer(rpb), _pointer(out), _pointer(lse), _pointer(workspace))
    _check(status, isa)
    return out, lse


@native_forward.register_fake
def _(query, key, value, rpb, plan_kind, plan_arguments, scale, isa):  # noqa: ANN001, ANN202
    return query.new_empty(*query.shape[:3], value.shape[3]), query.new_empty(query.shape[:3])


@torch.library.custom_op("attnzoo::native_local_attention_backward", mutates_args=(), device_types="cpu")
def native_backward(grad_out: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    rpb: torch.Tensor | None, out: torch.Tensor, lse: torch.Tensor, plan_kind: str,
                    plan_arguments: list[int], scale: float,
                    isa: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dq, dk, dv, drpb)``; ``drpb`` is empty without a bias."""
    q, k, v, o, do = (t.contiguous() for t in (query, key, value, out, grad_out))
    rpb = None if rpb is None else rpb.contiguous()
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    drpb = q.new_zeros(0) if rpb is None else torch.zeros_like(rpb)
    p = problem(_plan(plan_kind, plan_arguments), q, k, v, scale, torch.get_num_threads())
    lib = library()
    workspace = torch.empty(lib.az_backward_workspace(ctypes.byref(p), DTYPES[q.dtype]), dtype=torch.uint8)
    status = lib.az_local_backward(
        ctypes.byref(p), DTYPES[q.dtype], isa, _pointer(q), _pointer(k), _pointer(v), _pointer(rpb), _pointer(o),
        _pointer(lse.contiguous()), _pointer(do), _pointer(dq), _pointer(dk), _pointer(dv),
        _pointer(None if rpb is None else drpb), _pointer(workspace))
    _check(status, isa)
    return dq, dk, dv, drpb


@native_backward.register_fake
def _(grad_out, query, key, value, rpb, out, lse, plan_kind, plan_arguments, scale, isa):  # noqa: ANN001, ANN202
    # contiguous, as the kernel writes them (empty_like would keep a permuted input's strides)
    drpb = query.new_empty(0) if rpb is None else rpb.new_empty(rpb.shape)
    return query.new_empty(query.shape), key.new_empty(key.shape), value.new_empty(value.shape), drpb


def _setup_context(ctx, inputs: tuple, output: tuple) -> None:  # noqa: ANN001
    query, key, value, rpb, plan_kind, plan_arguments, scale, isa = inputs
    out, lse = output
    ctx.save_for_backward(query, key, value, rpb, out, lse)
    ctx.plan, ctx.scale, ctx.isa = (plan_kind, plan_arguments), scale, isa


@first_order_only(IMPLEMENTATION)
def _backward(ctx, grad_out: torch.Tensor, _grad_lse: torch.Tensor | None):  # noqa: ANN001, ANN202
    query, key, value, rpb, out, lse = ctx.saved_tensors
    dq, dk, dv, drpb = native_backward(grad_out, query, key, value, rpb, out, lse, *ctx.plan, ctx.scale, ctx.isa)
    return dq, dk, dv, (None if rpb is None else drpb), None, None, None, None


native_forward.register_autograd(_backward, setup_context=_setup_context)


def native_local_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, plan_kind: str,
                           plan_arguments: Sequence[int], *, scale: float, rpb: torch.Tensor | None = None,
                           isa: str = "auto") -> torch.Tensor:
    """``(B, H, *grid, D)`` queries, ``(B, Hkv, *grid, D)`` keys and values -> ``(B, H, *grid, Dv)``, on the plan
    ``plan_kind`` (:func:`register_plan`) builds from ``plan_arguments``.

    ``rpb``: the ``(H, 2 r_1 + 1, ...)`` bias table of the plan's axes (axes of the grid only, not the padding).
    The log-sum-exp is computed but not returned (the backward uses it); time O(N · window · D), memory O(N · D)
    for the keys transposed (and in the backward the values) and O(N · window) for the backward's probabilities,
    in slabs of heads of at most 64 MB. float32 and float64 run as
    they are; bfloat16 and float16 are computed in float32 (the inputs converted, the output rounded back once,
    the gradients returned in the inputs' dtype through the conversions), which is more accurate than a
    half-precision softmax; compare the speed with ``attnzoo bench --op ... --dtype bfloat16``.
    """
    if isa not in ISAS:
        raise ValueError(f"isa={isa!r}: expected one of {list(ISAS)}")
    dtype = query.dtype
    if dtype not in DTYPES:
        query, key, value = (t.float() for t in (query, key, value))
        rpb = None if rpb is None else rpb.float()
    grid = query.shape[2:-1]
    flat = [t.reshape(t.shape[0], t.shape[1], -1, t.shape[-1]) for t in (query, key, value)]
    table = None if rpb is None else rpb.reshape(rpb.shape[0], -1)
    out, _ = native_forward(*flat, table, plan_kind, list(plan_arguments), scale, ISAS[isa])
    return out.view(*out.shape[:2], *grid, out.shape[-1]).to(dtype)
