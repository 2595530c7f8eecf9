"""Stochastically subsampled self-attention, SSA (Hussain, Zaki, Subramanian, "The Information Pathways
Hypothesis: Transformers are Dynamic Self-Ensembles", KDD 2023, arXiv 2306.01705): during training each query
attends only a random, locally biased subset of the keys, resampled every step (a pathway-level dropout that
cuts the attention's cost by about the subsampling ratio); at inference the full attention is used (or several
subsampled passes are averaged, the paper's self-ensemble).

The op takes the subsample explicitly, so that every implementation sees the same one: an
:class:`~attnzoo.ops.ssa.sampling.SSASample` as :func:`~attnzoo.ops.ssa.sampling.ssa_sample` draws it (the sampler
is this library's: the official repository holds no code; see there), whose ``key_index`` ``(ceil(N / s), K)``
lists the key positions each segment of ``s = segment_size`` consecutive queries attends (``-1`` pads a row;
shared across the batch and the heads). Query ``i`` of segment ``b`` takes a softmax over the keys of row ``b``
(causal: those ``<= i``) and nothing else. ``importance_weighting=True`` adds ``-log pi`` to each logit, with
``pi`` the sample's inclusion probabilities: the Horvitz-Thompson weights that make the softmax's numerator
``sum_S e^s v / pi`` and denominator ``sum_S e^s / pi`` unbiased estimates of the dense ones
(``tests/test_ssa.py`` tests exactly that); the output, their ratio, is not unbiased (a self-normalised estimate,
consistent as the sample grows), and without the weights the locally biased sample tilts the attention towards
the nearby keys (the paper's premise: that is where the important pathways are).

Implementations: ``gathered`` (each query segment's sampled keys gathered once, SDPA on the gathered blocks with
their mask, O(N · K) time and memory, never N x N) and ``reference`` (dense N x N scores with the sample's explicit
mask; oracle). Limits (tested): a sample holding every key (``subsample_ratio = 1``) is dense attention, exactly.
"""

from __future__ import annotations

import math

import torch

from attnzoo.ops.ssa.sampling import SSASample
from attnzoo.ops.tiled import compute_dtype
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_int, check_qkv, check_scale, empty_output

VARIANT_NAME = "stochastic_subsampled_attention"
LAYOUT = "(B, H, N, D)"


def check_sample(sample: SSASample, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sample`` an :class:`SSASample` for the query's ``N`` tokens: ``1 <= segment_size <= N``, ``key_index`` an
    int64 ``(ceil(N / s), K)`` tensor with entries in ``[-1, N)``, no key twice in a row and each row holding every
    position of its own segment (so each query sees at least itself), ``inclusion`` a floating tensor of its
    shape in ``(0, 1]`` at the sampled keys. Returns ``key_index`` and ``inclusion`` on the query's device (a
    sample drawn on another device is moved: it is ``ceil(N / s) x K`` numbers). The value checks (one pass over
    the sample) run in eager calls, not while ``torch.compile`` traces."""
    if not isinstance(sample, SSASample):
        raise TypeError(f"sample must be an SSASample (attnzoo.ops.ssa_sample), got {type(sample).__name__}")
    length, segment_size = query.shape[2], sample.segment_size
    check_int("sample.segment_size", segment_size)
    if segment_size > length:
        raise ValueError(f"sample.segment_size={segment_size}: expected at most the sequence length N={length}")
    segments = math.ceil(length / segment_size)
    key_index, inclusion = sample.key_index, sample.inclusion
    if not isinstance(key_index, torch.Tensor) or key_index.dtype != torch.int64:
        raise TypeError(f"sample.key_index must be an int64 torch.Tensor (key positions, -1 = padding), got "
                        f"{getattr(key_index, 'dtype', type(key_index).__name__)}")
    if key_index.dim() != 2 or key_index.shape[0] != segments or key_index.shape[1] == 0:
        raise ValueError(f"sample.key_index has shape {tuple(key_index.shape)}; expected (ceil(N / segment_size), K) "
                         f"= ({segments}, K >= 1) for N={length}, segment_size={segment_size}")
    if not isinstance(inclusion, torch.Tensor) or not inclusion.is_floating_point():
        raise TypeError(f"sample.inclusion must be a floating torch.Tensor, got "
                        f"{getattr(inclusion, 'dtype', type(inclusion).__name__)}")
    if inclusion.shape != key_index.shape:
        raise ValueError(f"sample.inclusion has shape {tuple(inclusion.shape)}; expected key_index's shape "
                         f"{tuple(key_index.shape)}")
    key_index, inclusion = key_index.to(query.device), inclusion.to(query.device)
    if torch.compiler.is_compiling():
        return key_index, inclusion
    if bool(((key_index < -1) | (key_index >= length)).any()):
        raise ValueError(f"sample.key_index has entries outside [-1, {length}): from {key_index.min().item()} to "
                         f"{key_index.max().item()}; expected key positions of the N={length} tokens or -1")
    ordered = key_index.sort(dim=1).values
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if bool(repeated.any()):
        row = int(repeated.any(1).nonzero()[0])
        raise ValueError(f"sample.key_index[{row}] holds a key twice; expected distinct keys per row")
    own = torch.arange(segments, device=key_index.device)[:, None] == key_index // segment_size
    sizes = (length - segment_size * torch.arange(segments, device=key_index.device)).clamp(max=segment_size)
    missing = (own & (key_index >= 0)).sum(1) != sizes
    if bool(missing.any()):
        row = int(missing.nonzero()[0])
        raise ValueError(f"sample.key_index[{row}] lacks keys of its own segment (positions {row * segment_size} to "
                         f"{row * segment_size + int(sizes[row]) - 1}); expected each row to hold its whole segment "
                         "(the local window), so that every query sees itself")
    bad = (key_index >= 0) & ~((inclusion > 0) & (inclusion <= 1))
    if bool(bad.any()):
        raise ValueError(f"sample.inclusion has {int(bad.sum())} values outside (0, 1] at sampled keys; expected "
                         "inclusion probabilities")
    return key_index, inclusion


def stochastic_subsampled_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, sample: SSASample,
                                    is_causal: bool = False, importance_weighting: bool = False,
                                    scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """SSA on one explicit subsample: ``(B, H, N, D)`` query/key, ``(B, H, N, Dv)`` value -> ``(B, H, N, Dv)``.

    Query ``i`` (segment ``b = i // sample.segment_size``) attends ``softmax_j(q_i · k_j · scale - log pi_bj)``
    over ``j`` in ``sample.key_index[b]`` (causal: ``j <= i``; the ``-log pi`` term only with
    ``importance_weighting``); see the module docstring. ``impl``: ``"auto"``, ``"gathered"`` or
    ``"reference"``. Time O(N · K · D) for ``K`` keys per row.

    >>> import torch
    >>> from attnzoo.ops.ssa.sampling import ssa_sample
    >>> q = k = v = torch.randn(1, 2, 256, 16)
    >>> sample = ssa_sample(256, 16, subsample_ratio=4.0, generator=torch.Generator().manual_seed(0))
    >>> stochastic_subsampled_attention(q, k, v, sample, is_causal=True).shape
    torch.Size([1, 2, 256, 16])
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    check_flag("is_causal", is_causal)
    check_flag("importance_weighting", importance_weighting)
    key_index, inclusion = check_sample(sample, query)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(VARIANT_NAME, impl, CallFacts.of([query, key, value], causal=is_causal,
                                                                            length=query.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        return empty_output(query, key, value)
    log_weight = -inclusion.log().to(compute_dtype(query.dtype)) if importance_weighting else None
    return implementation.fn(query, key, value, key_index=key_index, segment_size=sample.segment_size,
                             is_causal=is_causal, log_weight=log_weight, scale=scale)
