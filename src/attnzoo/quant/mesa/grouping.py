"""Mesa's quantization groups (arXiv 2111.11124, ``ziplab/Mesa`` ``mesa/custom_quant.py``: ``pack_group`` /
``depack_group``, transcribed): a saved activation is viewed as ``(groups, -1)`` so that each group gets its own
range. ``(B, N, C)`` and ``(B, C)``: the channels split into ``groups`` consecutive slices; ``(B, H, N, D)``
(queries, keys, values, attention maps, convolution maps): the heads (channels) dimension split into ``groups``
runs of consecutive heads. Mesa asserts these ranks; here a tensor of another rank, or one whose grouped
dimension ``groups`` does not divide, is one group (documented on :class:`MesaSavedActivations`).
"""

from __future__ import annotations

import torch


def group_dim(shape: torch.Size, groups: int) -> int | None:
    """The dimension Mesa splits into ``groups`` for a tensor of ``shape``, or ``None`` when the tensor is one
    group (another rank, or a dimension ``groups`` does not divide)."""
    dim = {2: 1, 3: 2, 4: 1}.get(len(shape))
    if groups == 1 or dim is None or shape[dim] % groups:
        return None
    return dim


def to_groups(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, int]:
    """``x`` as ``(g, -1)`` with its ``g`` groups (``groups`` or 1, :func:`group_dim`), contiguous."""
    dim = group_dim(x.shape, groups)
    if dim is None:
        return x.reshape(1, -1), 1
    split = x.unflatten(dim, (groups, x.shape[dim] // groups))  # group index at dim, its members at dim + 1
    return split.movedim(dim, 0).reshape(groups, -1), groups


def from_groups(x: torch.Tensor, groups: int, shape: torch.Size) -> torch.Tensor:
    """The inverse of :func:`to_groups` for a tensor of ``shape`` packed in ``groups`` groups."""
    if groups == 1:
        return x.reshape(shape)
    dim = group_dim(shape, groups)
    assert dim is not None
    split = list(shape[:dim]) + [shape[dim] // groups] + list(shape[dim + 1:])
    return x.reshape(groups, *split).movedim(0, dim).reshape(shape)
