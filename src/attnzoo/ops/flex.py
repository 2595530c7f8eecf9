"""FlexAttention paths: any mask function plus an optional additive bias, compiled, on flattened grids.

FlexAttention (``torch.nn.attention.flex_attention``) runs the same mask functions as the reference
(:mod:`attnzoo.masks`). Forward and backward on CUDA; on CPU torch supports the forward only. It is always
compiled: eager FlexAttention materialises the full score matrix, which would be a silent slow path. For the
same reason the compiled function may recompile up to :data:`RECOMPILE_LIMIT` times (torch's default of 8 would
fall back to eager from the ninth shape) and is compiled with ``fullgraph=True``, so that passing the limit
raises instead of falling back. Block masks are built once per pattern, shape and device and cached; the first
call per shape compiles.

CPU safety: the sequence is padded to a multiple of the block size (:data:`BLOCK_SIZE`, 128) and the output
sliced back, because torch 2.13's CPU kernel is wrong on key blocks whose length is not a multiple of 16. Its
``q @ k^T`` micro-GEMM (16 columns per step) hands the last columns of such a block to a tail routine that
takes the "transpose first" branch whenever the tail is a multiple of the vector width and the head dim is
too and under 24; that branch handles full 16-column steps only. With AVX2 (8 floats), head dim 8 or 16 and a
key block of length 8 mod 16 it reads 8 keys past the block (past the end of the key tensor for the last head)
and writes 8 scores past each row, the last row's over the running row maxima. Measured with B=1, H=2, D=16,
a 7-key window, a fresh inductor cache and ``ATEN_CPU_CAPABILITY=avx2`` (or ``cpp.simdlen = 256``) on an
AVX-512 host: rows 0-7 of the last head wrong at N = 8, 24, 40, 120 (16 NaNs at N=40 after a compile at
N=32), right at N = 16, 32, 48, 64, 100, 128 and, by the luck of the memory layout, at 56 and 136; right at
D = 24 and 32 and, under AVX-512, at every length tried. With NaN after the inputs in memory the unpadded path
gives NaN at N = 8 and 40 every time. Padded, every key block holds 128 keys and the tail routine never runs.
The padding is invisible: padded keys are masked out, padded queries attend only to themselves (no fully
masked row) and their outputs are dropped; ``tests/test_flex_cpu.py`` checks lengths 1-300 against the
reference under the host's ISA and under forced AVX2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from attnzoo.masks import MaskMod, Pattern

BLOCK_SIZE = 128  # FlexAttention's default block size, the granularity of every block mask here
RECOMPILE_LIMIT = 256  # compiled variants kept for the FlexAttention paths: one per pattern, shape and dtype


def flex_unavailable() -> str | None:
    """``None`` when FlexAttention can be imported, else why not."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError as error:  # pragma: no cover - torch >= 2.5 ships it
        return f"FlexAttention is not available in torch {torch.__version__}: {error}"
    return None


@functools.cache
def _compiled_flex() -> Callable[..., torch.Tensor]:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False, fullgraph=True, recompile_limit=RECOMPILE_LIMIT,
                         isolate_recompiles=True)


def padded_length(length: int, device: str) -> int:
    """The sequence length FlexAttention runs at: on CPU ``length`` rounded up to a multiple of
    :data:`BLOCK_SIZE` (see the module docstring for the torch bug this avoids), elsewhere ``length``."""
    if torch.device(device).type != "cpu":
        return length
    return -(-length // BLOCK_SIZE) * BLOCK_SIZE


def padded_mask_mod(mask_mod: MaskMod, length: int, device: str) -> MaskMod:
    """``mask_mod`` on a sequence of ``length`` real tokens followed by padding: real queries see the real keys
    ``mask_mod`` allows, padded queries see only their own (padded) key, so no row is fully masked.

    ``length`` is held as a tensor, not a constant, so one compiled kernel serves every length that pads to the
    same size when ``mask_mod`` itself does not depend on the length (sliding windows, groups).
    """
    length = torch.tensor(length, device=device)

    def padded(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        real_query = q_idx < length
        real = real_query & (kv_idx < length) & mask_mod(b, h, q_idx, kv_idx)
        return real | (~real_query & (kv_idx == q_idx))

    return padded


@functools.lru_cache(maxsize=64)
def block_mask(pattern: Pattern, device: str):  # noqa: ANN201
    """The block mask :func:`flex_grid_attention` uses for ``pattern`` on ``device`` (a full device string such
    as ``"cuda:1"``), built once and cached; on the :func:`padded_length` sequence; per head when the pattern's
    ``mask_heads`` (optional attribute) gives a head count, else shared by all heads."""
    from torch.nn.attention.flex_attention import create_block_mask

    length = pattern.num_tokens
    padded = padded_length(length, device)
    mask_mod = pattern.mask_mod() if padded == length else padded_mask_mod(pattern.mask_mod(), length, device)
    heads = getattr(pattern, "mask_heads", None)
    return create_block_mask(mask_mod, None, heads, padded, padded, device=device, BLOCK_SIZE=BLOCK_SIZE)


def flex_grid_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: Pattern,
                        scale: float,
                        bias: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                        ) -> torch.Tensor:
    """Masked attention on ``(B, H, *grid, D)`` inputs: flatten the grid, pad it to the :func:`padded_length`,
    run compiled FlexAttention, drop the padding, restore the grid.

    ``bias(h, q_idx, kv_idx)`` is added to the scores (a ``score_mod``). It is evaluated on padded indices too
    (up to the padded length, on masked pairs), so it must stay in bounds there; the callers' relative position
    tables clamp every offset, which does.
    """
    length = pattern.num_tokens
    device = str(query.device)
    pad = padded_length(length, device) - length

    def flat(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], x.shape[1], length, x.shape[-1])
        return F.pad(x, (0, 0, 0, pad)) if pad else x

    score_mod = None
    if bias is not None:
        def score_mod(score, b, h, q_idx, kv_idx):  # noqa: ANN001, ANN202
            return score + bias(h, q_idx, kv_idx)

    mask = block_mask(pattern, device)
    out = _compiled_flex()(flat(query), flat(key), flat(value), score_mod=score_mod, block_mask=mask, scale=scale)
    return out[:, :, :length].reshape(*query.shape[:-1], value.shape[-1])
