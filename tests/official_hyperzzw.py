"""hyperevolnet/Terminator at commit 458c8c52ee0005b392263473f737c200177e7dab, transcribed for
tests/test_hyperzzw.py: ``models/modules/magnet.py`` (``MAGNetLayer``, ``MAGNetBase``, ``MAGNet_L``),
``slow_net.py`` (``linspace_grid``, ``SlowNetBase``, ``SlowNet_L``), ``local_conv.py`` (``LocalConv``) and
``hyperzzw.py`` (``HyperZZW_L``, ``HyperZZW_2E``, ``HyperZZW_G``). Changes: ``linear.Linear2d`` (not in the
release) is a 1x1 ``nn.Conv2d``; the ``.cuda()`` calls on ``alphas`` / ``betas`` are dropped (their dtype follows the
input instead, as ``.cuda()`` would follow the device); ``kernel_cfg`` is a plain namespace."""

import math

import torch
import torch.nn as nn


class linear:  # noqa: N801  (the module ``models.modules.linear``)
    @staticmethod
    def Linear2d(in_channels, out_channels, bias=True):  # noqa: N802
        return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias)


def normalize(out):
    return nn.functional.normalize(out.view(out.shape[0], -1)).view_as(out)


class MAGNetLayer(torch.nn.Module):
    def __init__(self, data_dim, hidden_channels, omega_0, alpha, beta):
        super().__init__()
        Linear = getattr(linear, f"Linear{data_dim}d")  # noqa: N806
        self.gamma = torch.distributions.gamma.Gamma(alpha, beta).sample((hidden_channels, data_dim))
        self.linear = Linear(data_dim, hidden_channels, bias=True)
        self.linear.weight.data *= (2 * math.pi * omega_0 * self.gamma.view(*self.gamma.shape, *((1,) * data_dim)))
        self.linear.bias.data.fill_(0.0)

    def forward(self, x):
        return torch.sin(self.linear(x))


class MAGNetBase(torch.nn.Module):
    def __init__(self, data_dim, kernel_size, hidden_channels, out_channels, num_layers, omega_0, alpha=6.0,
                 beta=1.0, **kwargs):
        super().__init__()
        self.hidden_channels = hidden_channels
        Linear = getattr(linear, f"Linear{data_dim}d")  # noqa: N806
        self.linears = torch.nn.ModuleList([
            Linear(in_channels=hidden_channels, out_channels=hidden_channels, bias=True) for _ in range(num_layers)])
        self.output_linear = Linear(in_channels=hidden_channels, out_channels=out_channels, bias=True)
        self.filters = torch.nn.ModuleList([
            MAGNetLayer(data_dim=data_dim, hidden_channels=hidden_channels, omega_0=omega_0,
                        alpha=alpha / (layer + 1), beta=beta) for layer in range(num_layers + 1)])
        for idx, lin in enumerate(self.linears):
            torch.nn.init.kaiming_uniform_(lin.weight, nonlinearity="linear")
            if lin.bias is not None:
                lin.bias.data.fill_(1.0)
        torch.nn.init.kaiming_uniform_(self.output_linear.weight, nonlinearity="linear")
        self.output_linear.bias.data.fill_(0.0)


class MAGNet_L(MAGNetBase):  # noqa: N801
    def __init__(self, data_dim, kernel_size, hidden_channels, out_channels, num_layers, omega_0, alpha=6.0,
                 beta=1.0, **kwargs):
        super().__init__(data_dim=data_dim, kernel_size=kernel_size, hidden_channels=hidden_channels,
                         out_channels=out_channels, num_layers=num_layers, omega_0=omega_0, alpha=alpha, beta=beta)
        self.bias_pk = torch.nn.Parameter(torch.zeros(1, 1, kernel_size, kernel_size), requires_grad=True)
        self.data_dim = data_dim
        self.kernel_size = kernel_size
        self.out_channels = out_channels
        Linear = getattr(linear, f"Linear{data_dim}d")  # noqa: N806
        self.fast_reduce = torch.nn.Conv2d(self.out_channels, self.hidden_channels, 1, 1, 0, bias=True)
        self.fast_fc1 = torch.nn.Conv2d(self.hidden_channels, self.hidden_channels, 1, 1, 0, bias=True)
        self.fast_gelu1 = nn.GELU()
        self.fast_linears_x = torch.nn.ModuleList([
            Linear(in_channels=hidden_channels, out_channels=hidden_channels, bias=True) for _ in range(num_layers)])
        for idx, lin in enumerate(self.fast_linears_x):
            torch.nn.init.kaiming_uniform_(lin.weight, nonlinearity="linear")
            if lin.bias is not None:
                lin.bias.data.fill_(1.0)
        self.alphas = [nn.Parameter(torch.Tensor(hidden_channels).fill_(1)) for _ in range(num_layers)]
        self.betas = [nn.Parameter(torch.Tensor(hidden_channels).fill_(0.1)) for _ in range(num_layers)]

    def s_renormalization(self, out, alpha, beta):
        out = out.transpose(0, 1)
        delta = out.data.clone()
        assert delta.shape == out.shape
        v = (-1,) + (1,) * (out.dim() - 1)
        out_t = alpha.view(*v) * delta + beta.view(*v) * normalize(out)
        return out_t.transpose(0, 1)

    def forward(self, coords, x):
        x_gap = torch.nn.functional.adaptive_avg_pool2d(x, (self.kernel_size,) * self.data_dim)
        x_gap = self.fast_reduce(x_gap)
        x_gap = x_gap.mean(axis=0, keepdims=True)
        x_gap = self.fast_fc1(x_gap)
        x_gap = self.fast_gelu1(x_gap)
        out = self.filters[0](coords)
        for i in range(1, len(self.filters)):
            out = self.filters[i](coords) * self.linears[i - 1](out) + self.bias_pk.repeat(
                1, self.hidden_channels, 1, 1)
            out = self.s_renormalization(out, self.alphas[i - 1].to(out.dtype), self.betas[i - 1].to(out.dtype))
            out = out * self.fast_linears_x[i - 1](x_gap)
        out = self.output_linear(out)
        return out


def linspace_grid(grid_sizes):
    tensors = []
    for size in grid_sizes:
        tensors.append(torch.linspace(-1, 1, steps=size))
    grid = torch.stack(torch.meshgrid(*tensors, indexing="ij"), dim=0)
    return grid


class SlowNet_L(torch.nn.Module):  # noqa: N801  (SlowNetBase's kernel construction folded in)
    def __init__(self, in_channels, data_dim, kernel_cfg, kernel_size):
        super().__init__()
        self.data_dim = data_dim
        self.kernel_size = kernel_size
        self.register_buffer("train_length", torch.zeros(1).int(), persistent=True)
        self.register_buffer("kernel_coords", torch.zeros(1), persistent=False)
        self.register_buffer("initialized", torch.zeros(1).bool(), persistent=False)
        self.Kernel = MAGNet_L(data_dim=data_dim, kernel_size=self.kernel_size, hidden_channels=kernel_cfg.no_hidden,
                               out_channels=in_channels, num_layers=kernel_cfg.num_layers, omega_0=kernel_cfg.omega_0)

    def construct_kernel(self, x):
        self.kernel_coords = self.get_kernel_coords(x)
        self.chang_initialization(self.kernel_coords)
        x_shape = x.shape
        return self.Kernel(self.kernel_coords, x).view(-1, x_shape[1], *self.kernel_coords.shape[2:])

    def get_kernel_coords(self, x):
        self.train_length[0] = int(self.kernel_size)
        kernel_coords = linspace_grid(grid_sizes=self.train_length.repeat(self.data_dim))
        return kernel_coords.unsqueeze(0).type_as(self.kernel_coords)

    def chang_initialization(self, kernel_coords):
        if not self.initialized[0]:
            with torch.no_grad():
                kernel_size = kernel_coords.reshape(*kernel_coords.shape[: -self.data_dim], -1)
                normalization_factor = kernel_size.shape[-1]
                self.Kernel.output_linear.weight.data *= math.sqrt(1.0 / normalization_factor)
            self.initialized[0] = True

    def forward(self, x):
        local_hk = self.construct_kernel(x)
        return local_hk.view(local_hk.shape[1], 1, *local_hk.shape[2:])


class LocalConv(torch.nn.Module):
    def __init__(self, in_channels, kernel_size):
        super().__init__()
        self.padding = (kernel_size - 1) // 2
        self.local_conv = torch.nn.functional.conv2d
        self.channel_mixer = linear.Linear2d(in_channels=in_channels, out_channels=in_channels, bias=True)
        torch.nn.init.kaiming_normal_(self.channel_mixer.weight)
        torch.nn.init.zeros_(self.channel_mixer.bias)
        self.batch_std = torch.nn.BatchNorm2d(in_channels, eps=1e-05, momentum=1.0, affine=False,
                                              track_running_stats=False)
        self.nonlinear = torch.nn.GELU()

    def forward(self, local_hk, x):
        groups = local_hk.shape[0]
        local_feat = self.local_conv(x, local_hk, stride=1, padding=self.padding, dilation=1, groups=groups)
        local_feat = self.channel_mixer(local_feat)
        local_feat = self.nonlinear(self.batch_std(local_feat))
        return local_feat


class HyperZZW_L(torch.nn.Module):  # noqa: N801
    def __init__(self, SlowNetType_L, in_channels, kernel_size):  # noqa: N803
        super().__init__()
        self.slow_net = SlowNetType_L(in_channels=in_channels, out_channels=in_channels, kernel_size=kernel_size)
        self.local_conv = LocalConv(in_channels=in_channels, kernel_size=kernel_size)
        self.fast_bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x1, x2):
        local_ctx_hk = self.slow_net(x1)
        return self.local_conv(local_ctx_hk, x2) + self.fast_bias


def HyperZZW_G(global_hk, x):  # noqa: N802
    return torch.matmul(global_hk, x)


def HyperZZW_2E(hk, x):  # noqa: N802
    ctx_hk = x.mul(hk)
    return torch.mul(ctx_hk, x)


def hyperzzw_state_dict_mapping(num_layers):
    """Our ``HyperZZWLocal`` parameter names -> the official ``HyperZZW_L``'s."""
    mapping = {"fast_bias": "fast_bias", "slow_net.bias_p": "slow_net.Kernel.bias_pk"}
    for kind in ("weight", "bias"):
        mapping[f"channel_mixer.{kind}"] = f"local_conv.channel_mixer.{kind}"
        mapping[f"slow_net.output_linear.{kind}"] = f"slow_net.Kernel.output_linear.{kind}"
        mapping[f"slow_net.reduce.{kind}"] = f"slow_net.Kernel.fast_reduce.{kind}"
        mapping[f"slow_net.context_fc.{kind}"] = f"slow_net.Kernel.fast_fc1.{kind}"
        for i in range(num_layers + 1):
            mapping[f"slow_net.filters.{i}.{kind}"] = f"slow_net.Kernel.filters.{i}.linear.{kind}"
        for i in range(num_layers):
            mapping[f"slow_net.linears.{i}.{kind}"] = f"slow_net.Kernel.linears.{i}.{kind}"
            mapping[f"slow_net.context_linears.{i}.{kind}"] = f"slow_net.Kernel.fast_linears_x.{i}.{kind}"
    return mapping
