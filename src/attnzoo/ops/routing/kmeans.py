"""The centroids' online spherical k-means update of routing attention (arXiv 2003.05997, Section 4.1):
``μ_c ← λ μ_c + (1 − λ) m_c`` with decay ``λ`` (0.999 in every configuration of the official code, hparam
``decay``), ``m_c`` the spherical k-means centroid of the batch's unit queries and keys whose nearest centroid is
``c``: ``normalize(Σ x̂)``, summed over the batch and positions of each head. A cluster nobody chose keeps its
centroid. ``λ = 0`` is one step of spherical k-means.

This is lucidrains' ``kmeans_iter`` + ``ema_inplace`` (routing-transformer 1.6.1; ``tests/test_routing.py``
checks it against them). The official code keeps the VQ-VAE form instead (``online_kmeans``: EMA of the counts
and of the sums, their Laplace-smoothed ratio as the centroid, never renormalised), which needs two more buffers
and starts far from the sphere (its count EMA starts at 0); both move each centroid towards the mean direction of
its members at rate ``1 − λ``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kmeans_centroids(units: list[torch.Tensor], nearest: list[torch.Tensor], centroids: torch.Tensor
                     ) -> torch.Tensor:
    """One spherical k-means step: ``(H, K, D)`` centroids -> ``(H, K, D)``, each the normalised sum of the unit
    vectors ``units`` (each ``(B, H, N, D)``) whose ``nearest`` centroid (``(B, H, N)``) it is; a centroid with
    no such vector is kept."""
    h, k, d = centroids.shape
    sums = centroids.new_zeros(h, k, d)
    counts = centroids.new_zeros(h, k)
    for x, a in zip(units, nearest):
        flat_x = x.detach().transpose(0, 1).reshape(h, -1, d).to(centroids.dtype)
        flat_a = a.transpose(0, 1).reshape(h, -1)
        sums.scatter_add_(1, flat_a[..., None].expand(-1, -1, d), flat_x)
        counts.scatter_add_(1, flat_a, torch.ones_like(flat_a, dtype=centroids.dtype))
    return torch.where(counts[..., None] > 0, F.normalize(sums, dim=-1), centroids)


@torch.no_grad()
def ema_update_(centroids: torch.Tensor, units: list[torch.Tensor], nearest: list[torch.Tensor],
                decay: float) -> torch.Tensor:
    """``centroids ← decay · centroids + (1 − decay) · kmeans_centroids(...)`` in place; returns ``centroids``."""
    step = kmeans_centroids(units, nearest, centroids)
    return centroids.mul_(decay).add_(step, alpha=1.0 - decay)
