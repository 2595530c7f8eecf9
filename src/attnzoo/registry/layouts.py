"""Where a mechanism comes from (:class:`Paper`) and the tensor layouts its op and layer take (:class:`Layout`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """Where a mechanism comes from. ``number`` is its line in ``shared/papers/index.txt`` (the 61 papers the
    project implements), ``None`` for a baseline from outside that list."""

    title: str
    year: int
    arxiv: str
    number: int | None


@dataclass(frozen=True)
class Layout:
    """A tensor layout, stated once: batch first; then a heads axis (functional ops, ``(B, H, N, D)``), or the
    channels (``channels_first``, CNN modules, ``(B, C, H, W)``); then ``token_axes`` token axes; the feature
    axis last for channels-last layouts. Equal layouts compare equal whatever their axes are called."""

    token_axes: int
    heads: bool = False
    channels_first: bool = False

    def __post_init__(self) -> None:
        if self.token_axes not in (1, 2, 3):
            raise ValueError(f"token_axes={self.token_axes!r}: expected 1, 2 or 3")
        if self.heads and self.channels_first:
            raise ValueError("a layout has either a heads axis or channels first, not both")

    @property
    def rank(self) -> int:
        """Number of tensor dims."""
        return self.token_axes + (3 if self.heads else 2)

    def __str__(self) -> str:
        if self.token_axes == 1:
            tokens = ("N",)
        else:
            tokens = ("H", "W") if self.token_axes == 2 and not self.heads else ("X", "Y", "Z")[:self.token_axes]
        if self.heads:
            dims = ("B", "H", *tokens, "D")
        elif self.channels_first:
            dims = ("B", "C", *tokens)
        else:
            dims = ("B", *tokens, "C")
        return f"({', '.join(dims)})"


SEQUENCE = Layout(1, heads=True)
"""``(B, H, N, D)``: the SDPA convention of sequence ops."""
GRID_2D = Layout(2, heads=True)
"""``(B, H, X, Y, D)``: 2-D grid ops."""
GRID_3D = Layout(3, heads=True)
"""``(B, H, X, Y, Z, D)``: 3-D grid ops."""
TOKENS = Layout(1)
"""``(B, N, C)``: token mixers (and the channels-last sequence ops without heads)."""
IMAGE = Layout(2)
"""``(B, H, W, C)``: channels-last spatial mixers."""
VOLUME = Layout(3)
"""``(B, X, Y, Z, C)``: channels-last 3-D mixers."""

FEATURE_MAP = Layout(2, channels_first=True)
"""``(B, C, H, W)``: CNN feature maps, what the ``cnn`` family's ops and layers take and return."""
