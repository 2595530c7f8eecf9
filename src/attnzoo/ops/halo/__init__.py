"""HaloNet blocked local attention (arXiv 2103.12731): functional op with reference and blocked (unfold)
implementations."""

from attnzoo.ops.halo.functional import halo_attention

__all__ = ["halo_attention"]
