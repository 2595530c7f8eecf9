"""ConViT's gated positional self-attention, GPSA (arXiv 2103.10697): the functional op (reference and SDPA
implementations) and its position helpers (relative positions, locality init, non-locality)."""

from attnzoo.ops.gpsa.functional import gpsa_attention
from attnzoo.ops.gpsa.positions import nonlocality

__all__ = ["gpsa_attention", "nonlocality"]
