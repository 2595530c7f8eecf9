"""TiC's MSA-Conv (arXiv 2310.04134): self-attention inside convolution windows; the functional op (reference
and gathered implementations)."""

from attnzoo.ops.msa_conv.functional import msa_conv_attention

__all__ = ["msa_conv_attention"]
