"""HaloNet blocked local self-attention (arXiv 2103.12731: Vaswani et al. 2021, "Scaling Local Self-Attention for
Parameter Efficient Visual Backbones", arXiv 2103.12731), with timm's ``HaloAttn`` semantics.

Each ``b x b`` block of queries attends to the ``w x w`` window, ``w = b + 2h``, centred on it::

    O_i = softmax_j( q_i · k_j · scale + q_i · rel_h[dy_ij + h + w - 1] + q_i · rel_w[dx_ij + h + w - 1] ) v_j

with the factorised 2-D relative position logits of AA-Net / SASA (``dy, dx = key - query``; tables
``(2w - 1, D)`` shared by all heads, added after scaling: timm's ``scale_pos_embed=False``). Layout
``(B, H, X, Y, D)``; ``X`` and ``Y`` divisible by ``b``. Borders: ``mask_padding=True`` (default) masks keys
off the image; ``mask_padding=False`` is timm's behaviour: the window is zero-padded after the projection and
padding keys (``k = v = 0``) keep logit = position term and take softmax mass. ``stride = s > 1`` is timm's
strided-query attention downsampling (its mode for ``b % s == 0``; timm's other mode, a 2x2 average pool
after stride-1 attention, is not implemented): queries are the pixels ``(s·i, s·j)``, given as
``(B, H, X/s, Y/s, D)``, and the output is the stride-1 result at those pixels.

Implementations: ``blocked`` (pad + unfold windows, per-block SDPA; time O(N/s² · w² · D), forward and
backward) and ``reference`` (dense Nq x Nk mask). No FlexAttention path: the position term depends on q,
so a ``score_mod`` would have to read precomputed ``q · rel`` logits ``(B, H, N, 2w - 1)`` as a captured,
differentiable tensor; left out (CPU Flex is forward-only and the blocked path already avoids N x N).

Verified against timm's ``timm/layers/halo_attn.py`` (timm cannot be imported here, so its ``HaloAttn.forward``
from the projections on, ``rel_logits_1d`` and ``PosEmbedRel`` are transcribed into tests/test_halo.py):
``mask_padding=False`` equals it to 1e-10 in float64, which pins the window geometry (``F.pad`` +
``unfold(w, b)``), the table rows (key window slot ``k``, query block slot ``t`` -> row ``k - t + w - 1``),
logits ``q kᵀ · scale + rel`` and the unmasked padding. ``mask_padding=True`` is checked against dense
attention over the real pixels built with explicit loops. Difference: at stride s > 1 timm reads row
``k - t + w - 1`` with ``t`` the slot in the *subsampled* block; here the row follows the true pixel offset
(``k - s·t + w - 1``), which is what makes the output equal dense attention at the subsampled pixels.
``halo_size = 0`` with ``b = X = Y`` is full attention with the 2-D position term (tested).
"""

from __future__ import annotations

import torch

from attnzoo.ops.halo.pattern import HaloPattern
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_int, check_qkv, check_scale, check_tensor_like, empty_output

LAYOUT = "(B, H, X, Y, D)"
VARIANT_NAME = "halo_attention"


def halo_pattern(shape: tuple[int, int], block_size: int, halo_size: int, stride: int) -> HaloPattern:
    """Validated pattern: ``block_size >= 1``, ``halo_size >= 0``, ``stride | block_size | X, Y``."""
    check_int("block_size", block_size)
    check_int("halo_size", halo_size, 0)
    check_int("stride", stride)
    if block_size % stride:
        raise ValueError(f"stride={stride}: must divide block_size={block_size} (strided queries per block)")
    if shape[0] % block_size or shape[1] % block_size:
        raise ValueError(f"the grid (X, Y) = {shape} must be divisible by block_size={block_size} on both axes")
    return HaloPattern(shape, block_size, halo_size, stride)


def _check_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, stride: int) -> None:
    """:func:`check_qkv`, with the query expected on the key grid subsampled by ``stride``."""
    if stride > 1 and all(isinstance(t, torch.Tensor) and t.dim() == 5 for t in (query, key)):
        expected = (*key.shape[:2], key.shape[2] // stride, key.shape[3] // stride, key.shape[4])
        if tuple(query.shape) != expected:
            raise ValueError(f"query has shape {tuple(query.shape)}; expected {expected}: the key's {LAYOUT} "
                             f"with X and Y divided by stride={stride}")
        query = query.new_empty(()).expand(key.shape)  # stands in with the query's dtype and device
    check_qkv(query, key, value, spatial_dims=2, layout=LAYOUT)


def halo_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, block_size: int,
                   halo_size: int, rel_h: torch.Tensor | None = None, rel_w: torch.Tensor | None = None,
                   mask_padding: bool = True, scale: float | None = None, stride: int = 1,
                   impl: str = "auto") -> torch.Tensor:
    """HaloNet attention. Keys/values ``(B, H, X, Y, D)`` / ``(B, H, X, Y, Dv)``, queries ``(B, H, X/s, Y/s, D)``
    -> ``(B, H, X/s, Y/s, Dv)``.

    ``rel_h`` / ``rel_w``: optional ``(2w - 1, D)`` position tables (rows: X axis / Y axis offsets);
    ``mask_padding``: mask keys off the image (``False``: timm's zero-padded keys); ``scale`` defaults to
    ``D ** -0.5``; ``stride``: query stride ``s`` dividing ``block_size``; ``impl``: ``"auto"``, ``"blocked"`` or
    ``"reference"``. Time O(X · Y / s² · (b + 2h)² · D).
    """
    _check_inputs(query, key, value, check_int("stride", stride))
    pattern = halo_pattern(tuple(key.shape[2:4]), block_size, halo_size, stride)
    check_flag("mask_padding", mask_padding)
    for name, table in (("rel_h", rel_h), ("rel_w", rel_w)):
        if table is not None:
            check_tensor_like(name, table, (2 * pattern.window - 1, query.shape[-1]), query)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    tensors = [t for t in (query, key, value, rel_h, rel_w) if t is not None]
    facts = CallFacts.of(tensors, bias=rel_h is not None or rel_w is not None)
    implementation = select_implementation(VARIANT_NAME, impl, facts)
    if query.shape[0] == 0 or query.shape[1] == 0:
        return empty_output(query, key, value)[:, :, ::stride, ::stride]
    return implementation.fn(query, key, value, pattern=pattern, rel_h=rel_h, rel_w=rel_w,
                             mask_padding=mask_padding, scale=scale)
