"""The SSA token mixer (stochastically subsampled attention, arXiv 2306.01705) on ``(B, N, C)``."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.softmax.functional import softmax_attention
from attnzoo.ops.ssa.functional import stochastic_subsampled_attention
from attnzoo.ops.ssa.sampling import SSASample, check_sampler, ssa_sample
from attnzoo.validation import check_flag, check_int, check_real, check_scale


class StochasticSubsampledAttention(ShowsOptions, nn.Module):
    """Multi-head self-attention on ``(B, N, C)`` that subsamples its connectivity in training (SSA): fused
    ``qkv`` projection, heads, attention, output projection.

    In training mode each call draws a fresh :class:`~attnzoo.ops.ssa.sampling.SSASample` (from torch's default
    generator: ``torch.manual_seed`` makes runs reproducible), shared by the batch and the heads, with this
    layer's ``segment_size``, ``subsample_ratio`` (about ``N / subsample_ratio`` keys per query segment, its
    local window of ``local_segments`` neighbouring segments included) and ``locality`` (the decay exponent of the
    far keys' sampling), and attends it (:func:`attnzoo.ops.stochastic_subsampled_attention`; with
    ``importance_weighting=True`` each logit gets the sample's ``-log pi``). In eval mode it is dense softmax
    attention, exactly (:func:`attnzoo.ops.softmax_attention`): the paper's inference. ``forward(x, sample=...)``
    attends a given sample in either mode (e.g. ``layer.sample(N)`` in eval mode: one member of the paper's
    self-ensemble, whose outputs are averaged over draws). Causal by default (a language-model mixer). Time in
    training O(N² C / subsample_ratio), at inference O(N² C).

    ``torch.compile``: the sampler is traced into the graph (its plan is a compile-time constant), but compiled
    random numbers differ from eager ones, so a compiled training step draws other samples than an eager one.
    """

    def __init__(self, dim: int, num_heads: int = 1, segment_size: int = 16, subsample_ratio: float = 4.0,
                 local_segments: int = 1, locality: float = 1.0, is_causal: bool = True,
                 importance_weighting: bool = False, qkv_bias: bool = True, scale: float | None = None,
                 impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, check_heads(dim, num_heads)
        self.segment_size = check_int("segment_size", segment_size)
        self.subsample_ratio = check_real("subsample_ratio", subsample_ratio, minimum=1.0, inclusive=True)
        self.local_segments = check_int("local_segments", local_segments, minimum=0)
        self.locality = check_real("locality", locality, minimum=0.0, inclusive=True)
        self.is_causal = check_flag("is_causal", is_causal)
        self.importance_weighting = check_flag("importance_weighting", importance_weighting)
        check_flag("qkv_bias", qkv_bias)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def sample(self, length: int, generator: torch.Generator | None = None) -> SSASample:
        """A subsample for ``length`` tokens with this layer's options, on its device; a segment longer than the
        sequence is shortened to it."""
        segment = min(self.segment_size, length)
        check_sampler(length, segment, self.subsample_ratio, self.local_segments, self.locality)
        return ssa_sample(length, segment, self.subsample_ratio, self.is_causal, self.local_segments, self.locality,
                          generator=generator, device=self.qkv.weight.device)

    def forward(self, x: torch.Tensor, sample: SSASample | None = None) -> torch.Tensor:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)``; ``sample``: the subsample to attend (default: a fresh one in
        training, none, i.e. dense attention, in eval mode)."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        if sample is not None and not isinstance(sample, SSASample):
            raise TypeError(f"sample must be None or an SSASample (layer.sample(N)), got {type(sample).__name__}")
        query, key, value = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        if sample is None and self.training:
            sample = self.sample(x.shape[1])
        if sample is None:
            out = softmax_attention(query, key, value, self.is_causal, self.scale)
        else:
            out = stochastic_subsampled_attention(query, key, value, sample, self.is_causal,
                                                  self.importance_weighting, self.scale, self.impl)
        return self.proj(merge_heads(out))
