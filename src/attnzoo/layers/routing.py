"""Routing Transformer self-attention layer (Roy et al., arXiv 2003.05997): local heads and routing heads side by
side, as in the paper's configurations; the layer of the ``routing_attention`` variant."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.routing.functional import routed_attention
from attnzoo.ops.routing.kmeans import ema_update_
from attnzoo.ops.routing.routing import commitment_loss
from attnzoo.ops.sliding_window.functional import sliding_window_attention
from attnzoo.validation import check_flag, check_int, check_optional_int, check_real, check_scale

LN_EPS = 1e-6
"""The official code's ``layer_norm`` epsilon (``utils.layer_norm(..., scaling=False)``)."""


def routing_sizes(seq_len: int, num_clusters: int | None, window: int | None) -> tuple[int, int]:
    """``(num_clusters, window)`` for sequences of ``seq_len`` tokens: the paper's ``k ≈ √n`` clusters of
    ``w = ⌈n / k⌉`` members when neither is given, the other one from ``k · w ≈ n`` when one is."""
    if num_clusters is None:
        num_clusters = max(1, round(math.sqrt(seq_len))) if window is None else math.ceil(seq_len / window)
    return num_clusters, math.ceil(seq_len / num_clusters) if window is None else window


class RoutingAttention(ShowsOptions, nn.Module):
    """Routing Transformer attention on ``(B, N, C)``: ``num_local_heads`` local heads and ``num_heads -
    num_local_heads`` routing heads of ``C / num_heads`` channels each, concatenated and projected.

    - Routing heads (:func:`attnzoo.ops.routing_attention`): queries and keys layer-normalised without scale or
      bias (as the official ``clustered_local_attention_helper``), routed to ``num_clusters`` centroids per head,
      each cluster attending among its ``window`` highest-scoring tokens, causally on the original positions,
      the results averaged back. ``shared_qk=True`` (the default of every official decoder configuration): the
      keys are the queries (no key projection), a query not attending to itself unless nothing else is
      visible. The logits are ``q̂ · k̂ · scale`` with ``scale`` defaulting to ``head_dim ** -0.5``; the official
      code scales ``q`` by it *before* the layer norm, which undoes it (its logits are ``q̂ · k̂``): pass
      ``scale=1.0`` for those.
    - Centroids: the buffer :attr:`centroids` ``(routing heads, num_clusters, head_dim)`` (saved and loaded with
      the ``state_dict``), random unit vectors at construction (the official code draws them from a normal
      distribution and layer-normalises them). In training mode every forward updates them by the EMA spherical
      k-means step with ``decay`` (0.999, :mod:`attnzoo.ops.routing.kmeans`), after routing with the old ones;
      never in eval mode (the official update runs only in ``ModeKeys.TRAIN``). Under ``torch.no_grad`` in
      training mode they are still updated, as BatchNorm's statistics are.
    - Commitment loss: after each forward :attr:`aux_loss` holds ``commitment · mean ‖x̂ − sg(μ)‖²`` of the
      routed queries (and keys when not shared); add it to the training loss (``loss = task + sum of the layers'
      aux_loss``), as the paper's β = 1e-4 term. It carries the gradient to the projections only. (attnzoo's own
      task loops do not add it: there the centroids follow the EMA alone.)
    - Local heads: causal sliding-window attention of ``local_window`` keys
      (:func:`attnzoo.ops.sliding_window_attention`, default ``window``; with ``is_causal=False`` the centred
      window must be odd, so the default is then the largest odd number <= ``window``). The official local heads attend in
      blocks (``query_shape`` 256, each block to itself and the previous one, ``memory_flange`` 256) with
      relative position embeddings; here every query sees the same number of earlier keys and no relative
      embedding.

    Sizes: ``seq_len`` is the length the layer is built for (models fill it from their token count);
    ``num_clusters`` defaults to ``round(√seq_len)`` and ``window`` to ``⌈seq_len / num_clusters⌉`` (the paper:
    ``k ≈ √n``, ``w ≈ n / k``; wikitext103-4k uses 8 clusters of 512, enwik8-8k 16 of 512). A forward needs at least
    ``window`` tokens. ``fit_window=True`` (inference only: eval mode) runs shorter sequences with the window
    clipped to their length (every token in every cluster: dense causal attention), e.g. to recompute a short
    prompt; in training mode it raises, since training there would silently train another mechanism.
    ``num_local_heads`` defaults to half of ``num_heads`` (wikitext103: 8 + 8); at least one routing head.
    Projections have no bias by default (the official ``compute_qkv`` and ``output_transform``). Under
    ``torch.autocast`` the routing heads run in float32 (see :meth:`forward`). Time
    ``O(N · (K + window + local_window) · C)``.

    Verified (``tests/test_routing.py``): the heads against the ops they are built of; the centroid update against
    the spherical k-means step and lucidrains' ``Kmeans.update`` (train mode only, decay 0 / 1 / 0.999, routing with
    the old centroids); the ``state_dict`` round trip; ``aux_loss``; ``fit_window``. Not verified: training
    quality against the paper (its runs are TPU-scale).
    """

    def __init__(self, dim: int, num_heads: int = 4, num_local_heads: int | None = None, seq_len: int = 64,
                 num_clusters: int | None = None, window: int | None = None, local_window: int | None = None,
                 shared_qk: bool = True, is_causal: bool = True, commitment: float = 1e-4, decay: float = 0.999,
                 qkv_bias: bool = False, scale: float | None = None, fit_window: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        self.num_local_heads = check_optional_int("num_local_heads", num_local_heads, minimum=0)
        if self.num_local_heads is None:
            self.num_local_heads = num_heads // 2
        if self.num_local_heads >= num_heads:
            raise ValueError(f"num_local_heads={self.num_local_heads}: expected fewer than num_heads={num_heads} "
                             "(at least one routing head; a layer of local heads only is sliding_window_attention)")
        self.seq_len = check_int("seq_len", seq_len)
        check_optional_int("num_clusters", num_clusters)
        check_optional_int("window", window)
        self.num_clusters, self.window = routing_sizes(seq_len, num_clusters, window)
        if self.window > seq_len:
            raise ValueError(f"window={self.window}: expected at most seq_len={seq_len} (each cluster gathers window "
                             "tokens of the sequence)")
        self.is_causal = check_flag("is_causal", is_causal)
        default_local = self.window if is_causal is True or self.window % 2 else max(1, self.window - 1)
        self.local_window = check_int("local_window", default_local if local_window is None else local_window)
        if not is_causal and self.local_window % 2 == 0:
            raise ValueError(f"local_window={self.local_window}: expected an odd window when is_causal=False (the "
                             "local heads' window is centred on the query)")
        self.shared_qk = check_flag("shared_qk", shared_qk)
        self.commitment = check_real("commitment", commitment, inclusive=True)
        self.decay = check_real("decay", decay, inclusive=True)
        if self.decay > 1:
            raise ValueError(f"decay={decay!r}: expected a real number in [0, 1] (the centroids' EMA decay)")
        check_flag("qkv_bias", qkv_bias)
        self.fit_window = check_flag("fit_window", fit_window)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.dim, self.num_heads = dim, num_heads
        self.num_routing_heads = num_heads - self.num_local_heads
        width = self.head_dim * self.num_local_heads
        self.local_qkv = nn.Linear(dim, 3 * width, bias=qkv_bias) if width else None
        self.routing_qkv = nn.Linear(dim, (2 if shared_qk else 3) * self.head_dim * self.num_routing_heads,
                                     bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.register_buffer("centroids", torch.empty(self.num_routing_heads, self.num_clusters, self.head_dim))
        self.reset_centroids()
        self.aux_loss = torch.zeros(())

    def reset_centroids(self) -> None:
        """Draw new centroids: standard normal vectors put on the unit sphere."""
        with torch.no_grad():
            self.centroids.copy_(F.normalize(torch.randn_like(self.centroids), dim=-1))

    def routing_window(self, length: int) -> int:
        """The window for an input of ``length`` tokens (see the class: ``fit_window``)."""
        if self.fit_window and self.training:
            raise ValueError("fit_window=True: expected eval mode (call .eval() first); it is inference-only, "
                             "clipping the routing window to shorter sequences, which training must not do silently")
        if length >= self.window:
            return self.window
        if self.fit_window:
            return length
        raise ValueError(f"window={self.window}: expected at most the input's N={length} tokens (each cluster gathers "
                         "window tokens); for shorter sequences at inference set fit_window=True in eval mode")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, C)`` -> ``(B, N, C)``; sets :attr:`aux_loss` and, in training mode, updates
        :attr:`centroids`. Under ``torch.autocast`` the routing heads run in float32 (autocast off for them):
        routing is discrete, and rounding the projections to the autocast dtype would move tokens between
        clusters; the local heads and the output projection follow autocast."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        window = self.routing_window(x.shape[1])
        heads = []
        if self.local_qkv is not None:
            lq, lk, lv = split_heads(self.local_qkv(x), 3 * self.num_local_heads).chunk(3, dim=1)
            heads.append(sliding_window_attention(lq, lk, lv, self.local_window, self.is_causal, scale=self.scale))
        with torch.autocast(x.device.type, enabled=False):
            routed = self.routing_heads(x, window)
        heads.append(routed.to(heads[0].dtype) if heads else routed)
        return self.proj(merge_heads(torch.cat(heads, dim=1)))

    def routing_heads(self, x: torch.Tensor, window: int) -> torch.Tensor:
        """The routing heads' output ``(B, routing heads, N, head_dim)`` of ``(B, N, C)`` input, the commitment
        loss in :attr:`aux_loss`, the centroids' update in training mode."""
        count = 2 if self.shared_qk else 3
        parts = split_heads(self.routing_qkv(x.to(self.routing_qkv.weight.dtype)), count * self.num_routing_heads)
        parts = parts.chunk(count, dim=1)
        value = parts[-1]
        query = F.layer_norm(parts[0], (self.head_dim,), eps=LN_EPS)
        key = query if self.shared_qk else F.layer_norm(parts[1], (self.head_dim,), eps=LN_EPS)
        out, routing = routed_attention(query, key, value, self.centroids, window, self.is_causal, self.scale,
                                        self.impl, shared_qk=self.shared_qk)
        if routing is None:
            self.aux_loss = out.new_zeros(())
            return out
        self.aux_loss = self.commitment * commitment_loss(self.centroids, routing)
        if self.training:
            query_nearest, key_nearest = routing.nearest()
            units, nearest = [routing.query_unit], [query_nearest]
            if not routing.shared:
                units, nearest = units + [routing.key_unit], nearest + [key_nearest]
            ema_update_(self.centroids, units, nearest, self.decay)
        return out
