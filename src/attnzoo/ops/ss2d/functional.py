"""The 2-D selective scan of SS2D (VMamba, Liu et al. 2024, arXiv 2401.10166, Sec. 3.2; Mamba YOLO, Wang et al.
2024, arXiv 2406.05835, Sec. 3.3; LaMamba-Diff, arXiv 2408.02615), as a registered op.

Per direction ``k`` of :mod:`attnzoo.ops.ss2d.cross` (row-major, column-major, both reversed), over the ``L = H W``
pixels in that scan order, with a diagonal state ``h_t`` of ``N`` entries per channel (Mamba's S6, arXiv
2312.00752, Alg. 2, zero-order hold for ``A``, Euler for ``B``)::

    Δ_t = softplus(delta_t + delta_bias)            (delta_softplus=True; else Δ_t = delta_t + delta_bias)
    h_t = exp(Δ_t A) ⊙ h_(t-1) + Δ_t B_t x_t        h_(-1) = 0
    y_t = C_t · h_t + D ⊙ x_t

and the output is the cross-merge: the four directions' ``y`` put back at their pixels and summed.

Layout (channels last, per direction in image coordinates): ``x`` ``(B, H, W, E)`` (the same input for every
direction), ``delta`` ``(B, 4, H, W, E)``, ``A`` ``(4, E, N)`` (negative for a decaying state: the layer passes
``-exp(A_log)``), ``B`` and ``C`` ``(B, 4, H, W, N)``, ``D`` and ``delta_bias`` ``(4, E)``; output
``(B, H, W, E)``. The official code computes ``delta, B, C`` from the cross-scanned sequences with per-direction
projections; every projection acts on one pixel, so computing them in image coordinates and scanning afterwards
is the same. Half-precision inputs are scanned in float32 and the result cast back, as ``selective_scan_ref``.
Implementations: ``chunked`` (``auto`` from 100 pixels: all chunks of about ``√L`` pixels scanned at once, the
chunks' states carried across chunks; ``3√L`` sequential steps, ``O(B · 4 · L · E · N)`` time and memory) and
``reference`` (one step per pixel, ``L`` sequential steps, the oracle; ``auto`` below 100 pixels, where its single
pass is faster).

Verified against the official ``selective_scan_ref`` (state-spaces/mamba ``mamba_ssm/ops/selective_scan_interface.py``,
which VMamba's ``csms6s.py`` and Mamba YOLO's ``SelectiveScanCore`` match) and ``cross_selective_scan``
(HZAI-ZJNU/Mamba-YOLO ``ultralytics/nn/modules/common_utils_mbyolo.py`` at ec7851c): both transcribed in
``tests/test_ss2d.py`` and compared in float64 with this op and :class:`attnzoo.layers.ss2d.SS2D`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnzoo.ops.ss2d.cross import DIRECTIONS, scan_directions
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_float_tensors, check_tensor_like

VARIANT_NAME = "selective_scan_2d"
LAYOUT = "(B, H, W, E)"


@dataclass(frozen=True)
class Sequences:
    """The op's inputs read in the four scan orders, in the compute dtype: ``u`` and ``delta`` (``Δ``, after
    bias and softplus) ``(B, 4, L, E)``, ``B``, ``C`` ``(B, 4, L, N)``, ``A`` ``(4, E, N)``, ``D`` ``(4, E)``."""

    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other float dtype is scanned in float32 (as the official kernels)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def sequences(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
              D: torch.Tensor | None, delta_bias: torch.Tensor | None, delta_softplus: bool) -> Sequences:
    """Cross-scan the inputs (module docstring) and form ``Δ``; what every implementation scans."""
    dtype = compute_dtype(x.dtype)
    height, width = x.shape[1:3]
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None, None, :]
    if delta_softplus:
        delta = F.softplus(delta)
    u = scan_directions(x.to(dtype)[:, None].expand(-1, DIRECTIONS, -1, -1, -1), height, width)
    return Sequences(u, scan_directions(delta, height, width), A.to(dtype), scan_directions(B.to(dtype), height, width),
                     scan_directions(C.to(dtype), height, width), None if D is None else D.to(dtype))


def check_inputs(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                 D: torch.Tensor | None, delta_bias: torch.Tensor | None) -> None:
    """Shapes, dtypes and devices of the op's inputs (module docstring); nothing broadcasts."""
    check_float_tensors({"x": x}, 4, LAYOUT)
    b, height, width, e = x.shape
    if height == 0 or width == 0 or e == 0:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected at least one pixel and one channel {LAYOUT}")
    if not isinstance(A, torch.Tensor) or A.dim() != 3 or A.shape[-1] == 0:
        raise ValueError(f"A has shape {tuple(getattr(A, 'shape', ()))}; expected (4, E, N) = (4, {e}, N >= 1)")
    n = A.shape[-1]
    check_tensor_like("A", A, (DIRECTIONS, e, n), x, "x")
    check_tensor_like("delta", delta, (b, DIRECTIONS, height, width, e), x, "x")
    for name, t in (("B", B), ("C", C)):
        check_tensor_like(name, t, (b, DIRECTIONS, height, width, n), x, "x")
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None:
            check_tensor_like(name, t, (DIRECTIONS, e), x, "x")


def selective_scan_2d(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                      D: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
                      delta_softplus: bool = True, impl: str = "auto") -> torch.Tensor:
    """SS2D's four-direction selective scan and cross-merge (module docstring): ``x`` ``(B, H, W, E)``,
    ``delta`` ``(B, 4, H, W, E)``, ``A`` ``(4, E, N)``, ``B``, ``C`` ``(B, 4, H, W, N)``, ``D``, ``delta_bias``
    ``(4, E)`` -> ``(B, H, W, E)``. ``impl``: ``"auto"`` (``"chunked"`` from 100 pixels, else ``"reference"``),
``"chunked"`` or ``"reference"``.
    Not causal: every output pixel reads the whole image (each direction is causal along its own order).

    >>> import torch
    >>> x = torch.randn(2, 5, 7, 8)
    >>> delta, b = torch.randn(2, 4, 5, 7, 8), torch.randn(2, 4, 5, 7, 3)
    >>> A = -torch.rand(4, 8, 3)
    >>> y = selective_scan_2d(x, delta, A, b, b, torch.ones(4, 8))
    >>> y.shape, bool(torch.allclose(y, selective_scan_2d(x, delta, A, b, b, torch.ones(4, 8), impl="reference")))
    (torch.Size([2, 5, 7, 8]), True)
    """
    check_inputs(x, delta, A, B, C, D, delta_bias)
    check_flag("delta_softplus", delta_softplus)
    tensors = [t for t in (x, delta, A, B, C, D, delta_bias) if t is not None]
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of(tensors, length=x.shape[1] * x.shape[2]))
    seqs = sequences(x, delta, A, B, C, D, delta_bias, delta_softplus)
    return implementation.fn(seqs, x.shape[1], x.shape[2]).to(x.dtype)
