"""Named capability declarations shared by implementations; each name says what it declares.

A declaration is a claim the test contract checks: every listed device, dtype and backward runs and agrees with
the reference, and every other one raises :class:`attnzoo.NotSupportedError`.
"""

from __future__ import annotations

import torch

from attnzoo.ops.flex import flex_unavailable
from attnzoo.ops.native.build import unavailable_reason as native_unavailable
from attnzoo.registry import FLOAT_DTYPES, Capabilities

CPU_CUDA = frozenset({"cpu", "cuda"})

AUTOGRAD_ANY_FLOAT = Capabilities(devices=CPU_CUDA, backward_devices=CPU_CUDA, double_backward=True)
"""Plain PyTorch ops differentiated by autograd, to any order, in every float dtype, on CPU and CUDA."""

CUSTOM_BACKWARD = Capabilities(devices=CPU_CUDA, backward_devices=CPU_CUDA)
"""A hand-written first-order backward (``torch.autograd.Function``); gradients of gradients raise."""

FULL_PRECISION = frozenset({torch.float32, torch.float64})
"""float32 and float64: what ``torch.fft`` transforms of any length and ``torch.linalg`` solvers run in."""

FLEX_COMPILED = Capabilities(devices=CPU_CUDA, backward_devices=frozenset({"cuda"}), dtypes=FLOAT_DTYPES,
                             auto_devices=frozenset({"cuda"}), available=flex_unavailable)
"""Compiled FlexAttention: forward on CPU and CUDA, backward on CUDA only; ``auto`` picks it on CUDA only."""

DROP_IN = frozenset({"attn_mask", "key_padding", "varlen", "cross", "gqa", "dropout", "weights"})
"""Every drop-in feature of :mod:`attnzoo.ops.dropin` (what the dense references of sequence ops run)."""

NATIVE_CPU = Capabilities(devices=frozenset({"cpu"}), dtypes=FLOAT_DTYPES, backward_devices=frozenset({"cpu"}),
                          features=frozenset({"causal", "dilation", "bias", "gqa"}), available=native_unavailable)
"""The fused C++ local-attention kernel (:mod:`attnzoo.ops.native`): CPU, float32 and float64 (half precision
computed in float32), a hand-written first-order backward, grouped KV heads read in place; unavailable (with the
reason) where it cannot be built."""
