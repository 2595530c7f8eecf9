"""Mesa (arXiv 2111.11124) as a wrapper: the forward runs exactly, and what autograd saves for the backward is
stored as bytes and dequantized there.

Mesa replaces each op (Linear, Conv, GELU, LayerNorm, BN, ReLU, Softmax, MatMul) by a custom autograd function
that saves an 8-bit copy of its inputs / outputs, each with its own running range. Here one mechanism serves
every op: ``torch.autograd.graph.saved_tensors_hooks`` packs each floating-point tensor the wrapped forward saves,
with its own :class:`RunningRangeQuantizer` per save position (the saves of a forward come in the same order every
call), so each op input keeps its own range as in Mesa. Parameters (the weights a Linear saves) and tensors of
fewer than ``min_numel`` elements are saved as they are; integer and boolean tensors too.

Verified: the grouping transcribed from ``pack_group`` / ``depack_group``, the running-range update from
``update_clip_val_shift`` and the pack / unpack rule from the CUDA kernel's arithmetic (read, not run: it is CUDA
only); the catalog's invariants are the tests (forward bit-identical, error below one step, unbiased, gradients
close to exact, 1 byte per saved element against 4).
"""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.quant.mesa.quantizer import PackedActivation, RunningRangeQuantizer
from attnzoo.validation import check_int


def check_bits(bits: int) -> int:
    """``bits`` must be an int from 2 to 8 (the codes are stored as bytes); returns it."""
    check_int("bits", bits, minimum=2)
    if bits > 8:
        raise ValueError(f"bits={bits}: expected 2 to 8 (the codes are stored as bytes)")
    return bits


class MesaSavedActivations(nn.Module):
    """``module`` whose saved activations are stored in ``bits`` bits (Mesa: 8), in ``groups`` groups (Mesa's
    ``convert_by_num_groups``: the number of heads for attention tensors; see :mod:`.grouping` for which dimension
    a rank splits and when a tensor is one group).

    The forward output is exactly ``module``'s. ``saved_bytes`` / ``full_bytes``: what the last training forward
    stored for the backward, and what it would have stored unquantized (the tensors this wrapper packs). In eval
    mode, or under ``torch.no_grad``, nothing is saved and nothing is packed.
    """

    def __init__(self, module: nn.Module, groups: int = 1, bits: int = 8, min_numel: int = 1024,
                 ema_decay: float = 0.9) -> None:
        super().__init__()
        check_int("groups", groups, minimum=1)
        check_bits(bits)
        check_int("min_numel", min_numel, minimum=0)
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay={ema_decay!r}: expected a number in [0, 1)")
        self.module, self.groups, self.levels, self.min_numel = module, groups, 2**bits, min_numel
        self.ema_decay = ema_decay
        self.quantizers: list[RunningRangeQuantizer] = []
        self.saved_bytes = 0
        self.full_bytes = 0
        self._position = 0

    def _pack(self, x: torch.Tensor) -> torch.Tensor | PackedActivation:
        if not x.is_floating_point() or x.numel() < self.min_numel:
            return x
        if self._position == len(self.quantizers):
            self.quantizers.append(RunningRangeQuantizer(self.levels, self.ema_decay))
        packed = self.quantizers[self._position].pack(x, self.groups)
        self._position += 1
        self.saved_bytes += packed.nbytes
        self.full_bytes += x.numel() * x.element_size()
        return packed

    @staticmethod
    def _unpack(saved: torch.Tensor | PackedActivation) -> torch.Tensor:
        return saved.unpack() if isinstance(saved, PackedActivation) else saved

    def forward(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self._position, self.saved_bytes, self.full_bytes = 0, 0, 0
        parameters = {p.data_ptr() for p in self.module.parameters()}

        def pack(x: torch.Tensor) -> torch.Tensor | PackedActivation:
            return x if x.data_ptr() in parameters else self._pack(x)

        with torch.autograd.graph.saved_tensors_hooks(pack, self._unpack):
            return self.module(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, bits={self.levels.bit_length() - 1}, min_numel={self.min_numel}"
