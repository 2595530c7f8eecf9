"""MEDUSA's attention heads (arXiv 2110.06063): ``x + x ⊙ (W ∗ resize(S) + b)`` from one shared saliency map."""

from attnzoo.ops.medusa.functional import medusa_attention

__all__ = ["medusa_attention"]
