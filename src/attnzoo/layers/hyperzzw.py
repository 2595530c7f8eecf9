"""HyperZ·Z·W's local branch (arXiv 2401.17948, paper 5) as a layer, following the official ``hyperevolnet/
Terminator`` code (commit 458c8c5): ``HyperZZW_L`` = the context-dependent slow network ``MAGNet_L``
(``models/modules/magnet.py``, ``slow_net.py``) generating a depthwise kernel from the kernel coordinates and the
input, and ``LocalConv`` (``local_conv.py``): the depthwise convolution, a 1x1 channel mixer, standardisation
(batch norm without affine parameters or running statistics) and GELU, plus a scalar ``fast_bias``.

MAGNet_L with ``L`` layers on coordinates ``p ∈ linspace(−1, 1, k)²``:
``h₀ = sin(A₀ p)``, ``h_l = renorm(sin(A_l p) ⊙ (B_l h_{l−1} + b_l) + b_p) ⊙ (D_l c + e_l)`` and the kernel
``W = O h_L + o``, where ``A_l`` are 1x1 maps ``2 -> hidden`` scaled by ``2π · omega_0 · γ``, ``γ ~ Gamma(6 / (l
+ 1), 1)`` (fixed at construction), ``b_p`` a learnt ``(k, k)`` bias, ``renorm(h) = α · stopgrad(h) + β ·
h / ‖h‖`` per hidden unit over the ``k x k`` kernel, and ``c = GELU(F₂ · mean_batch(F₁ · avgpool_k(x)))`` the
context: the input average-pooled to ``k x k``, reduced to ``hidden`` channels and averaged over the batch (the
official code's "context"). ``O`` is scaled by ``√(1 / k²)`` at initialisation (Chang et al.).

Where the release is incomplete or odd, and what this layer does:
- ``linear.Linear2d`` is not in the release; it is taken to be a 1x1 convolution (as in the ckconv / FlexConv code
  MAGNet comes from).
- ``omega_0`` is read from a config key the released ``cfg/config.yaml`` lacks; ``omega_0=1.0`` by default here.
- The renormalisation's ``α`` (1) and ``β`` (0.1) are plain Python lists of ``nn.Parameter`` in the official code,
  so no optimiser sees them and they stay at their initial values; here they are those constants (buffers).
- The official code calls ``.cuda()`` on them; nothing here depends on the device.
- ``context="batch"`` (default, official) shares one kernel across the batch, so a sample's output depends on the
  rest of the batch (as does the standardisation, which always uses batch statistics); ``context="sample"``
  computes one kernel per sample (each sample's context alone).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.feature_maps import LAYOUT, check_choice, check_odd_int
from attnzoo.ops.hyperzzw.functional import hyperzzw_conv
from attnzoo.validation import check_int, check_real

CONTEXTS = ("batch", "sample")


def kernel_coordinates(size: int) -> torch.Tensor:
    """``(1, 2, size, size)``: the official ``linspace_grid``, coordinates in ``[−1, 1]`` (``ij`` indexing)."""
    axis = torch.linspace(-1, 1, size)
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"))[None]


class MAGNet(ShowsOptions, nn.Module):
    """The context-dependent slow network (official ``MAGNet_L``): ``forward(x)`` with ``x`` ``(B, dim, H, W)``
    -> kernels ``(B or 1, dim, k, k)`` (one for the batch with ``context="batch"``). See the module docstring.

    >>> import torch
    >>> net = MAGNet(8, kernel_size=5)
    >>> net(torch.randn(2, 8, 12, 12)).shape
    torch.Size([1, 8, 5, 5])
    """

    def __init__(self, dim: int, kernel_size: int, hidden: int = 32, num_layers: int = 2, omega_0: float = 1.0,
                 alpha: float = 6.0, beta: float = 1.0, context: str = "batch") -> None:
        super().__init__()
        self.dim, self.kernel_size = check_int("dim", dim), check_int("kernel_size", kernel_size)
        check_int("hidden", hidden)
        self.num_layers = check_int("num_layers", num_layers)
        omega_0 = check_real("omega_0", omega_0)
        check_real("alpha", alpha)
        check_real("beta", beta)
        self.context = check_choice("context", context, CONTEXTS)
        self.filters = nn.ModuleList(nn.Conv2d(2, hidden, 1) for _ in range(num_layers + 1))
        for layer, conv in enumerate(self.filters):
            gamma = torch.distributions.Gamma(alpha / (layer + 1), beta).sample((hidden, 2))
            with torch.no_grad():
                conv.weight.mul_(2 * math.pi * omega_0 * gamma[..., None, None])
                conv.bias.zero_()
        self.linears = nn.ModuleList(nn.Conv2d(hidden, hidden, 1) for _ in range(num_layers))
        self.context_linears = nn.ModuleList(nn.Conv2d(hidden, hidden, 1) for _ in range(num_layers))
        for conv in (*self.linears, *self.context_linears):
            nn.init.kaiming_uniform_(conv.weight, nonlinearity="linear")
            nn.init.constant_(conv.bias, 1.0)
        self.output_linear = nn.Conv2d(hidden, dim, 1)
        nn.init.kaiming_uniform_(self.output_linear.weight, nonlinearity="linear")
        with torch.no_grad():
            self.output_linear.weight.mul_(math.sqrt(1.0 / kernel_size ** 2))
        nn.init.zeros_(self.output_linear.bias)
        self.bias_p = nn.Parameter(torch.zeros(1, 1, kernel_size, kernel_size))
        self.reduce = nn.Conv2d(dim, hidden, 1)
        self.context_fc = nn.Conv2d(hidden, hidden, 1)
        self.register_buffer("coords", kernel_coordinates(kernel_size), persistent=False)
        self.register_buffer("renorm_alpha", torch.ones(hidden), persistent=False)
        self.register_buffer("renorm_beta", torch.full((hidden,), 0.1), persistent=False)

    def renormalize(self, h: torch.Tensor) -> torch.Tensor:
        """Official ``s_renormalization``: ``α · stopgrad(h) + β · h / ‖h‖`` per hidden unit, the norm over the
        ``k x k`` kernel (per sample with ``context="sample"``; the official kernel has one sample)."""
        normed = F.normalize(h.flatten(2), dim=-1).reshape(h.shape)
        return self.renorm_alpha[:, None, None] * h.detach() + self.renorm_beta[:, None, None] * normed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.reduce(F.adaptive_avg_pool2d(x, (self.kernel_size, self.kernel_size)))
        if self.context == "batch":
            pooled = pooled.mean(dim=0, keepdim=True)
        context = F.gelu(self.context_fc(pooled))
        coords = self.coords.to(x.dtype)
        h = self.filters[0](coords).sin()
        for layer in range(self.num_layers):
            h = self.filters[layer + 1](coords).sin() * self.linears[layer](h) + self.bias_p
            h = self.renormalize(h) * self.context_linears[layer](context)
        return self.output_linear(h)


class HyperZZWLocal(ShowsOptions, nn.Module):
    """HyperZ·Z·W's local branch ``(B, dim, H, W)`` -> ``(B, dim, H, W)``: ``GELU(standardise(M · (Ŵ(x) ⋆ x)))
    + fast_bias`` with the context-dependent depthwise kernel ``Ŵ(x)`` of :class:`MAGNet` (``kernel_size`` odd;
    official sizes 3, 5, 7, 9, ``hidden=32``, ``num_layers=2``) and the 1x1 channel mixer ``M``. ``impl`` as
    :func:`attnzoo.ops.hyperzzw.hyperzzw_conv` (``"fft"`` for large kernels).

    >>> import torch
    >>> layer = HyperZZWLocal(8, kernel_size=5)
    >>> layer(torch.randn(2, 8, 11, 13)).shape
    torch.Size([2, 8, 11, 13])
    """

    def __init__(self, dim: int, kernel_size: int = 3, hidden: int = 32, num_layers: int = 2, omega_0: float = 1.0,
                 context: str = "batch", impl: str = "auto") -> None:
        super().__init__()
        check_odd_int("kernel_size", kernel_size)
        self.dim, self.impl = check_int("dim", dim), impl
        self.slow_net = MAGNet(dim, kernel_size, hidden, num_layers, omega_0, context=context)
        self.channel_mixer = nn.Conv2d(dim, dim, 1)
        nn.init.kaiming_normal_(self.channel_mixer.weight)
        nn.init.zeros_(self.channel_mixer.bias)
        self.standardize = nn.BatchNorm2d(dim, eps=1e-5, momentum=1.0, affine=False, track_running_stats=False)
        self.fast_bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout=LAYOUT, channels_first=True)
        kernel = autocast_like(self.slow_net(x), x).expand(x.shape[0], -1, -1, -1)
        out = hyperzzw_conv(x, kernel, impl=self.impl)
        return F.gelu(self.standardize(self.channel_mixer(out))) + self.fast_bias
