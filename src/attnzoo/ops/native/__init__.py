"""Fused local attention on CPU: a small C++ library (no torch headers, compiled on first use in seconds, AVX2 + FMA
kernels chosen at run time beside generic ones) behind a ``torch.library`` custom op, serving every local pattern
whose queries see a rectangle of keys (:class:`LocalPlan`)."""

from attnzoo.ops.native.build import NativeBuildError, unavailable_reason
from attnzoo.ops.native.op import native_local_attention, register_plan, supported_isas
from attnzoo.ops.native.plan import LocalPlan, local_plan

__all__ = ["LocalPlan", "NativeBuildError", "local_plan", "native_local_attention", "register_plan", "supported_isas",
           "unavailable_reason"]
