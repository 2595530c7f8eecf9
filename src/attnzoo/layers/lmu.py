"""LMUFormer's LMU token mixer (arXiv 2402.04882): Legendre memory of a projected input, then a ReLU readout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.cache import RecurrentStateCache, check_cache, layer_place
from attnzoo.layers.checks import check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.lmu.functional import lmu_memory
from attnzoo.validation import check_flag, check_int, check_optional_int, check_real


class LMUMixer(ShowsOptions, nn.Module):
    """The non-spiking ``LMU`` block of LMUFormer (``src/blocks/lmu.py`` with ``LMUFFTCell``) on ``(B, N, C)``::

        u_t = ReLU(W_u x_t)  (C -> 1),   m_t = Ā m_(t-1) + B̄ u_t  (memory_size),
        h_t = ReLU(W_h [m_t; x_t]),      y_t = BN(W_o h_t)   (the 1x1 ``Conv1d`` + ``BatchNorm1d``)

    Defaults as the official ``LMU``: ``memory_size = dim``, ``theta = 128``, the memory computed by FFT
    (``impl="fft"``: with one input channel and a large memory it is ~4x faster than ``"chunked"``; pass
    ``impl="chunked"`` for exact causality or half precision). ``forward`` takes an
    ``initial_state`` ``(B, 1, memory_size)`` and with ``output_final_state`` also returns the memory after the
    last token, so a sequence can be fed in pieces (streaming). Left out: the spiking neurons (LIF) and their
    BatchNorms of ``SLMU`` / ``SLMUMs``, the block's residual and ConvFFN. With ``batch_norm`` (official) the
    layer is causal in eval mode only: in training, BatchNorm's statistics span all tokens; ``batch_norm=False``
    makes it causal always. Linear layers use the official ``trunc_normal_(std=0.02)``, zero bias. Under
    ``torch.autocast`` the memory is computed in float32 (``u`` and ``initial_state`` upcast explicitly): the
    default ``impl="fft"`` declares float32/float64 only, and the linear maps around it follow autocast.

    Decoding: ``new_cache`` makes a :class:`~attnzoo.layers.cache.RecurrentStateCache` of the ``(1, memory_size)``
    memory; ``forward(x, cache=...)`` starts from it and stores the memory after the last token (as
    ``initial_state`` / ``output_final_state``, which it then refuses). With ``batch_norm`` it needs eval mode
    (in training the statistics span the tokens of the call, so pieces would not give the whole's output).
    """

    def __init__(self, dim: int, memory_size: int | None = None, theta: float = 128.0, batch_norm: bool = True,
                 impl: str = "fft") -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        self.memory_size = check_optional_int("memory_size", memory_size) or dim
        self.theta, self.impl = check_real("theta", theta), impl
        check_flag("batch_norm", batch_norm)
        self.w_u = nn.Linear(dim, 1)
        self.w_h = nn.Linear(self.memory_size + dim, dim)
        self.w_o = nn.Linear(dim, dim)
        self.norm = nn.BatchNorm1d(dim) if batch_norm else nn.Identity()
        for linear in (self.w_u, self.w_h, self.w_o):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> RecurrentStateCache:
        """A zero :class:`~attnzoo.layers.cache.RecurrentStateCache` of the ``(1, memory_size)`` memory per
        sequence (dtype and device default to the layer's)."""
        dtype, device = layer_place(self, dtype, device)
        return RecurrentStateCache(self, batch_size, (1, self.memory_size), dtype, device, max_length)

    def forward(self, x: torch.Tensor, initial_state: torch.Tensor | None = None,
                output_final_state: bool = False, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, cache: RecurrentStateCache | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)`` (and the memory after the last token with
        ``output_final_state``); ``key_padding_mask`` / ``cu_seqlens`` go to :func:`lmu_memory` (a padded token
        feeds nothing into the memory; packed sequences start from an empty one). The batch norm's statistics
        still include padded positions. With ``cache`` (:meth:`new_cache`), ``x`` is the next ``N`` tokens after
        those the cached memory summarises."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
        check_flag("output_final_state", output_final_state)
        if cache is not None:
            check_cache(self, cache, RecurrentStateCache, x, key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)
            if initial_state is not None or output_final_state:
                raise ValueError("initial_state / output_final_state with a cache: the cache holds the memory; pass "
                                 "one or the other")
            if self.training and isinstance(self.norm, nn.BatchNorm1d):
                raise ValueError("LMUMixer with batch_norm=True in training mode cannot decode with a cache (the "
                                 "batch statistics span the tokens of each call); call .eval() first")
            y, state = self.forward(x, cache.initial_state, True)
            cache.update(state, x.shape[1])
            return y
        u = F.relu(self.w_u(x))  # (B, N, 1)
        if torch.is_autocast_enabled(x.device.type):  # the memory in float32 (see the class docstring)
            u = u.float()
            initial_state = None if initial_state is None else initial_state.float()
        result = lmu_memory(u, self.memory_size, self.theta, initial_state=initial_state,
                            output_final_state=output_final_state, impl=self.impl,
                            key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)
        memory, state = result if output_final_state else (result, None)
        h = F.relu(self.w_h(torch.cat([memory.squeeze(2), x], dim=-1)))
        # contiguous: on a transposed input, torch 2.13's traced BatchNorm backward (AOT autograd) predicts
        # other strides than the eager kernel returns, and the compiled backward's view then fails
        y = self.norm(self.w_o(h).transpose(1, 2).contiguous()).transpose(1, 2)
        return (y, state) if output_final_state else y
