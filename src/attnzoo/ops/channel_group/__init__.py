"""DaViT channel group attention (arXiv 2204.03645): reference and SDPA implementations."""

from attnzoo.ops.channel_group.functional import channel_group_attention

__all__ = ["channel_group_attention"]
