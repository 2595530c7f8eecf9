"""Position and channel attention (DANet's PAM / CAM) as the multi-scale self-guided attention of Sinha & Dolz
(arXiv 1906.02849) uses them; the guided network is :class:`attnzoo.layers.MultiScaleGuidedAttention`."""

from attnzoo.ops.dual_attention.functional import channel_self_attention, position_self_attention

__all__ = ["channel_self_attention", "position_self_attention"]
