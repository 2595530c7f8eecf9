"""Bit packing of integer codes into bytes, for real weight storage.

- :func:`pack_codes` / :func:`unpack_codes`: unsigned codes of ``width`` bits, ``width`` in ``{1, 2, 4, 8, 16}``:
  ``8 // width`` codes per byte, the first code in the lowest bits (int4: element ``2i`` in the low nibble of
  byte ``i``, the common layout); 16-bit codes as two little-endian bytes. A code of ``b`` bits is stored in the
  narrowest container ``≥ b`` (:func:`container_width`): 3-bit codes take 4 bits — the bytes reported say so.
- :func:`pack_base3` / :func:`unpack_base3`: ternary codes ``{0, 1, 2}`` five to a byte (``Σ c_i 3^i < 243``):
  1.6 bits per weight, 20% below 2-bit packing, at the cost of a division-based unpack. Ternary weights default
  to the 2-bit container (shift-and-mask unpack); base 3 is the densest option.

Byte counts are exact: ``ceil(n · width / 8)`` and ``ceil(n / 5)`` (tested, with round trips, in
``tests/test_quant_packing.py``).
"""

from __future__ import annotations

import math

import torch

WIDTHS = (1, 2, 4, 8, 16)


def container_width(bits: int) -> int:
    """The narrowest packing width holding ``bits``-bit codes."""
    for width in WIDTHS:
        if bits <= width:
            return width
    raise ValueError(f"bits={bits}: codes wider than 16 bits are not packed")


def _check_codes(codes: torch.Tensor, high: int) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor) or codes.dtype.is_floating_point or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer torch.Tensor, got {getattr(codes, 'dtype', type(codes))}")
    flat = codes.reshape(-1).to(torch.int32)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) > high):
        raise ValueError(f"codes range over [{int(flat.min())}, {int(flat.max())}]; expected integers in [0, {high}]")
    return flat


def packed_bytes(numel: int, width: int) -> int:
    """Bytes that ``numel`` codes of ``width`` bits take packed."""
    return math.ceil(numel * width / 8)


def pack_codes(codes: torch.Tensor, width: int) -> torch.Tensor:
    """Codes in ``[0, 2^width)`` as a flat ``uint8`` tensor of :func:`packed_bytes` bytes."""
    if width not in WIDTHS:
        raise ValueError(f"width={width}: expected one of {WIDTHS}")
    flat = _check_codes(codes, 2 ** width - 1)
    if width == 16:
        return torch.stack([flat & 0xFF, flat >> 8], dim=1).reshape(-1).to(torch.uint8)
    per_byte = 8 // width
    padded = torch.zeros(packed_bytes(flat.numel(), width) * per_byte, dtype=torch.int32, device=flat.device)
    padded[: flat.numel()] = flat
    shifts = torch.arange(per_byte, dtype=torch.int32, device=flat.device) * width
    return (padded.reshape(-1, per_byte) << shifts).sum(dim=1).to(torch.uint8)


def unpack_codes(packed: torch.Tensor, width: int, numel: int) -> torch.Tensor:
    """The first ``numel`` codes of ``packed`` (flat ``int32``)."""
    if width not in WIDTHS:
        raise ValueError(f"width={width}: expected one of {WIDTHS}")
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != packed_bytes(numel, width):
        raise ValueError(f"packed has dtype {packed.dtype} and shape {tuple(packed.shape)}; expected a flat uint8 "
                         f"tensor of {packed_bytes(numel, width)} bytes for {numel} codes of {width} bits")
    data = packed.to(torch.int32)
    if width == 16:
        pairs = data.reshape(-1, 2)
        return pairs[:, 0] | (pairs[:, 1] << 8)
    per_byte = 8 // width
    shifts = torch.arange(per_byte, dtype=torch.int32, device=packed.device) * width
    return ((data[:, None] >> shifts) & (2 ** width - 1)).reshape(-1)[:numel]


def pack_base3(codes: torch.Tensor) -> torch.Tensor:
    """Ternary codes ``{0, 1, 2}``, five per byte (``ceil(n / 5)`` bytes, flat ``uint8``)."""
    flat = _check_codes(codes, 2)
    padded = torch.zeros(math.ceil(flat.numel() / 5) * 5, dtype=torch.int32, device=flat.device)
    padded[: flat.numel()] = flat
    powers = torch.tensor([1, 3, 9, 27, 81], dtype=torch.int32, device=flat.device)
    return (padded.reshape(-1, 5) * powers).sum(dim=1).to(torch.uint8)


def unpack_base3(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """The first ``numel`` ternary codes of ``packed`` (flat ``int32``)."""
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != math.ceil(numel / 5):
        raise ValueError(f"packed has dtype {packed.dtype} and shape {tuple(packed.shape)}; expected a flat uint8 "
                         f"tensor of {math.ceil(numel / 5)} bytes for {numel} base-3 codes")
    powers = torch.tensor([1, 3, 9, 27, 81], dtype=torch.int32, device=packed.device)
    return ((packed.to(torch.int32)[:, None] // powers) % 3).reshape(-1)[:numel]
