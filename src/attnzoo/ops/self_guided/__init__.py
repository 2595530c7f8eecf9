"""SG-Former's self-guided attention (arXiv 2308.12216): keys and values reallocated by significance; reference
and gathered paths."""

from attnzoo.ops.self_guided.functional import self_guided_attention

__all__ = ["self_guided_attention"]
