"""Routing attention (Routing Transformer, Roy et al., arXiv 2003.05997): online spherical k-means routing of queries
and keys to shared centroids, attention inside each cluster's top-w members, outputs averaged back."""

from attnzoo.ops.routing.functional import routing_attention

__all__ = ["routing_attention"]
