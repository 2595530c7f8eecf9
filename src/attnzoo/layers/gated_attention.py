"""Gated attention (Bondarenko et al. 2023, arXiv 2306.12929, Section 4.2): the token mixer of the
``gated_attention`` variant, with the paper's gate modules and, optionally, its clipped softmax inside.

Transcribed from the official code (Qualcomm-AI-research/outlier-free-transformers,
``transformers_language/models/bert_attention.py`` and ``opt_attention.py``, commit 1e59744) and compared with it
on copied weights in ``tests/test_gated_attention.py``:

- ``"unconditional"``: one learned logit per head (``AttentionGateType.unconditional_per_head``);
- ``"linear"``: per token, one ``Linear(d_model -> H)`` of the whole input (``attn_gate_linear_all_features``);
- ``"per_head_linear"``: per token, each head's own ``Linear(d_head -> 1)`` of its slice of the input channels
  (``conditional_per_token``, the official default, the OPT scripts');
- ``"mlp"``: per token, each head's ``Linear(d_head -> d_head // 4) -> ReLU -> Linear(-> 1)`` (``attn_gate_mlp``,
  the BERT script's).

The gate is ``π = sigmoid(G(x))`` of the layer input ``x``, ``(B, H, N)``. ``gate_init`` (π_init, the paper's
``--attn_gate_init 0.25``) sets the last bias to ``logit(π_init)`` (for ``"unconditional"`` the logit itself), so
every gate starts near π_init; the official code applies it to the per-head linear gate only and leaves the
others at PyTorch's initialisation (``gate_init=None`` here: the unconditional logit starts at 0). Not
transcribed: the mean-pooled ``conditional_per_head`` gate (it reads future tokens, so it cannot be causal)
and the fine-tuning rescaling by ``1 / π_init``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from attnzoo.layers.cache import KVCache
from attnzoo.layers.checks import autocast_like, check_heads
from attnzoo.layers.clipped_softmax import check_fixed_gamma, clip_options
from attnzoo.layers.options import ShowsOptions
from attnzoo.layers.softmax import SoftmaxAttention
from attnzoo.ops.clipped_softmax.functional import clipped_softmax_attention
from attnzoo.ops.clipped_softmax.stretch import gamma_from_alpha
from attnzoo.ops.gated_attention.functional import gated_attention
from attnzoo.ops.gated_attention.gate import gate_heads
from attnzoo.validation import ArgumentTypeError, is_real

GATE_KINDS = ("unconditional", "linear", "per_head_linear", "mlp")
SOFTMAX_KINDS = ("vanilla", "clipped")


def _uniform(*shape: int, fan_in: int) -> nn.Parameter:
    """A parameter drawn as ``nn.Linear`` draws its weights and biases: U(-1/√fan_in, 1/√fan_in)."""
    bound = 1 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


def check_gate_init(gate_init: float | None) -> float | None:
    """``None`` or π_init, a real number strictly between 0 and 1."""
    if gate_init is None:
        return None
    if not is_real(gate_init):
        raise ArgumentTypeError(f"gate_init={gate_init!r}: expected None or a real number in (0, 1), got "
                                f"{type(gate_init).__name__}")
    if not 0 < gate_init < 1:
        raise ValueError(f"gate_init={gate_init!r}: expected None or a real number in (0, 1) (the initial gate "
                         "value pi_init; its logit is the gate's initial bias)")
    return float(gate_init)


class HeadGate(ShowsOptions, nn.Module):
    """The gate ``π = sigmoid(G(x))`` of gated attention: ``(B, N, C)`` -> ``(B, H, N)`` in (0, 1) (see the module
    docstring for the ``kind`` of ``G`` and ``gate_init``). Per-head parameters are stacked ``(H, ...)`` tensors
    (one GEMM for all heads instead of the official code's loop over ``H`` modules). Time O(N C) (``"mlp"``:
    O(N C d_head / 4))."""

    def __init__(self, dim: int, num_heads: int, kind: str = "linear", gate_init: float | None = 0.25) -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        if kind not in GATE_KINDS:
            raise ValueError(f"gate={kind!r}: expected one of {GATE_KINDS}")
        if kind == "mlp" and head_dim < 4:
            raise ValueError(f"gate='mlp' needs head_dim >= 4 (its hidden layer has head_dim // 4 units); got "
                             f"dim={dim}, num_heads={num_heads}, head_dim={head_dim}")
        self.kind, self.num_heads, self.gate_init = kind, num_heads, check_gate_init(gate_init)
        hidden = head_dim // 4
        if kind == "unconditional":
            self.bias = nn.Parameter(torch.zeros(num_heads))
        elif kind == "linear":
            self.weight, self.bias = _uniform(num_heads, dim, fan_in=dim), _uniform(num_heads, fan_in=dim)
        elif kind == "per_head_linear":
            self.weight, self.bias = _uniform(num_heads, head_dim, fan_in=head_dim), _uniform(num_heads,
                                                                                              fan_in=head_dim)
        else:
            self.hidden_weight = _uniform(num_heads, head_dim, hidden, fan_in=head_dim)
            self.hidden_bias = _uniform(num_heads, hidden, fan_in=head_dim)
            self.weight, self.bias = _uniform(num_heads, hidden, fan_in=hidden), _uniform(num_heads, fan_in=hidden)
        if self.gate_init is not None:
            with torch.no_grad():
                self.bias.fill_(math.log(self.gate_init / (1 - self.gate_init)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``G(x)``: ``(B, N, C)`` -> ``(B, H, N)`` gate logits."""
        b, n, _ = x.shape
        if self.kind == "unconditional":
            return self.bias[None, :, None].expand(b, -1, n)
        if self.kind == "linear":
            return torch.einsum("bnc,hc->bhn", x, self.weight) + self.bias[:, None]
        heads = x.unflatten(-1, (self.num_heads, -1))  # (B, N, H, d_head)
        if self.kind == "mlp":
            heads = torch.relu(torch.einsum("bnhd,hde->bnhe", heads, self.hidden_weight) + self.hidden_bias)
        return torch.einsum("bnhd,hd->bhn", heads, self.weight) + self.bias[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``sigmoid(G(x))``: ``(B, N, C)`` -> ``(B, H, N)``."""
        return torch.sigmoid(self.logits(x))


class GatedAttention(SoftmaxAttention):
    """Multi-head self-attention on ``(B, N, C)`` whose heads are gated: fused qkv projection,
    ``sigmoid(G(x))_h ⊙ softmax(q_h k_hᵀ / √d) v_h`` per head (:func:`attnzoo.ops.gated_attention`), output
    projection.

    ``gate``: the gate module's kind (``"linear"``, the default, ``"per_head_linear"``, ``"mlp"``,
    ``"unconditional"``), ``gate_init`` its π_init (see the module docstring). ``softmax="clipped"`` uses the
    clipped softmax inside the gated heads, as the paper combines them, with ``gamma`` / ``zeta`` or ``alpha``
    (defaults γ = −0.025, ζ = 1; see :class:`attnzoo.layers.ClippedSoftmaxAttention`); with
    ``softmax="vanilla"`` these must stay ``None``. ``is_causal``, ``dropout``, ``scale``, ``qkv_bias`` as
    :class:`attnzoo.layers.SoftmaxAttention`; ``impl`` names an implementation of the op that runs
    (``gated_attention``'s, or ``clipped_softmax_attention``'s with ``softmax="clipped"``). ``forward`` takes
    ``key_padding_mask``, ``cu_seqlens`` and, causal and without ``alpha``, a ``cache`` from :meth:`new_cache`
    (the softmax layer's :class:`~attnzoo.layers.cache.KVCache`). Time ``O(N² C)``.
    """

    def __init__(self, dim: int, num_heads: int = 1, is_causal: bool = True, gate: str = "linear",
                 gate_init: float | None = 0.25, softmax: str = "vanilla", gamma: float | None = None,
                 zeta: float | None = None, alpha: float | None = None, qkv_bias: bool = True, dropout: float = 0.0,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__(dim, num_heads, is_causal=is_causal, qkv_bias=qkv_bias, dropout=dropout, scale=scale,
                         impl=impl)
        if softmax not in SOFTMAX_KINDS:
            raise ValueError(f"softmax={softmax!r}: expected one of {SOFTMAX_KINDS}")
        if softmax == "vanilla":
            given = {name: v for name, v in (("gamma", gamma), ("zeta", zeta), ("alpha", alpha)) if v is not None}
            if given:
                raise ValueError(f"{', '.join(f'{k}={v!r}' for k, v in given.items())}: expected None with "
                                 "softmax='vanilla' (the stretch factors are for softmax='clipped')")
        else:
            gamma = -0.025 if gamma is None and alpha is None else gamma
            gamma, zeta, alpha = clip_options(gamma, 1.0 if zeta is None else zeta, alpha)
        self.softmax, self.gamma, self.zeta, self.alpha = softmax, gamma, zeta, alpha
        self.head_gate = HeadGate(dim, num_heads, gate, gate_init)

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> KVCache:
        """:meth:`SoftmaxAttention.new_cache` (the gate reads only the new tokens); ``ValueError`` with ``alpha``
        (see :func:`attnzoo.layers.clipped_softmax.check_fixed_gamma`)."""
        check_fixed_gamma(self)
        return super().new_cache(batch_size, dtype, device, max_length)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, x: torch.Tensor,
               **options: Any) -> torch.Tensor:  # noqa: ANN401
        """The gated heads: ``sigmoid(G(x))`` times :func:`attnzoo.ops.gated_attention` (vanilla) or
        :func:`attnzoo.ops.clipped_softmax_attention` (clipped) of the heads."""
        gate = autocast_like(self.head_gate(x), q)
        if self.softmax == "vanilla":
            return gated_attention(q, k, v, gate, self.is_causal, self.scale, self.impl, **options)
        gamma = self.gamma if self.alpha is None else gamma_from_alpha(self.alpha, x.shape[1])
        return gate_heads(clipped_softmax_attention(q, k, v, self.is_causal, self.scale, self.impl, gamma=gamma,
                                                    zeta=self.zeta, **options), gate)
