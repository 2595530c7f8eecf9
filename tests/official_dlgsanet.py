"""NeonLeexiang/DLGSANet at commit 3c99082326d43e91bf6467900f9f2f00a738c5b4, transcribed for
tests/test_dynamic_local.py and tests/test_sparse_global.py.

- ``basicsr/archs/dlgsanet_idynamicdwconv_util.py``: the three CuPy CUDA kernels of ``_idynamic``
  (``idynamic_forward_kernel``, ``idynamic_backward_grad_input_kernel``, ``idynamic_backward_grad_weight_kernel``)
  as loops over the kernel offsets with each kernel's index arithmetic (stride, padding, dilation as there),
  vectorised over the other indices; ``IDynamicDWConv`` with them as its autograd function.
- ``basicsr/archs/dlgsanet_arch.py``: ``IDynamicDWConvBlock`` (``dynamic=True``), ``SparseAttention`` (SparseGSA)
  and ``Attention`` (Restormer's MDTA) with their eval-mode TLC (``grids`` / ``grids_inverse``, from
  megvii-research/TLC), einops' ``rearrange`` written as reshapes.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def idynamic_forward(bottom, weight, stride, pad, dilation):
    """``idynamic_forward_kernel``: top[n, c, h, w] = Σ_{kh, kw} weight[n, g, kh, kw, h, w] · bottom[n, c, h_in, w_in]
    over in-bounds ``h_in = -pad + h·stride + kh·dilation`` (same for w), ``g = c / (channels / groups)``."""
    num, channels, height, width = bottom.shape
    groups, kernel_h, kernel_w, top_h, top_w = weight.shape[1:]
    g = torch.arange(channels) // (channels // groups)
    top = bottom.new_zeros(num, channels, top_h, top_w)
    h = torch.arange(top_h)[:, None]
    w = torch.arange(top_w)[None, :]
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            h_in = -pad + h * stride + kh * dilation
            w_in = -pad + w * stride + kw * dilation
            inside = (h_in >= 0) & (h_in < height) & (w_in >= 0) & (w_in < width)
            value = bottom[:, :, h_in.clamp(0, height - 1), w_in.clamp(0, width - 1)]
            top += torch.where(inside, weight[:, g, kh, kw] * value, 0)
    return top


def idynamic_backward_grad_input(top_diff, weight, bottom_shape, stride, pad, dilation):
    """``idynamic_backward_grad_input_kernel``: bottom_diff[n, c, h, w] = Σ_{kh, kw} weight[n, g, kh, kw, h_out,
    w_out] · top_diff[n, c, h_out, w_out] with ``h_out = (h + pad - kh·dilation) / stride`` when divisible and in
    bounds."""
    num, channels, height, width = bottom_shape
    groups, kernel_h, kernel_w, top_h, top_w = weight.shape[1:]
    g = torch.arange(channels) // (channels // groups)
    bottom_diff = top_diff.new_zeros(bottom_shape)
    h = torch.arange(height)[:, None]
    w = torch.arange(width)[None, :]
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            h_s, w_s = h + pad - kh * dilation, w + pad - kw * dilation
            h_out, w_out = h_s // stride, w_s // stride
            inside = ((h_s % stride) == 0) & ((w_s % stride) == 0) & (h_out >= 0) & (h_out < top_h) \
                & (w_out >= 0) & (w_out < top_w)
            hc, wc = h_out.clamp(0, top_h - 1), w_out.clamp(0, top_w - 1)
            bottom_diff += torch.where(inside, weight[:, g, kh, kw][:, :, hc, wc] * top_diff[:, :, hc, wc], 0)
    return bottom_diff


def idynamic_backward_grad_weight(top_diff, bottom, weight_shape, stride, pad, dilation):
    """``idynamic_backward_grad_weight_kernel``: buffer[n, g, kh, kw, h, w] = Σ_{c in group g} top_diff[n, c, h, w]
    · bottom[n, c, h_in, w_in] where in bounds, else 0."""
    num, channels, height, width = bottom.shape
    groups, kernel_h, kernel_w, top_h, top_w = weight_shape[1:]
    buffer = top_diff.new_zeros(weight_shape)
    h = torch.arange(top_h)[:, None]
    w = torch.arange(top_w)[None, :]
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            h_in = -pad + h * stride + kh * dilation
            w_in = -pad + w * stride + kw * dilation
            inside = (h_in >= 0) & (h_in < height) & (w_in >= 0) & (w_in < width)
            product = top_diff * bottom[:, :, h_in.clamp(0, height - 1), w_in.clamp(0, width - 1)]
            per_group = product.view(num, groups, channels // groups, top_h, top_w).sum(2)
            buffer[:, :, kh, kw] = torch.where(inside, per_group, 0)
    return buffer


class _idynamic(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, stride, padding, dilation):
        ctx.save_for_backward(input, weight)
        ctx.stride, ctx.padding, ctx.dilation = stride, padding, dilation
        return idynamic_forward(input, weight, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        s, p, d = ctx.stride, ctx.padding, ctx.dilation
        return (idynamic_backward_grad_input(grad_output, weight, input.shape, s, p, d),
                idynamic_backward_grad_weight(grad_output, input, weight.shape, s, p, d), None, None, None)


class OfficialIDynamicDWConv(nn.Module):
    def __init__(self, channels, kernel_size, group_channels, bias=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.channels = channels
        reduction_ratio = 4
        self.group_channels = group_channels
        self.groups = self.channels // self.group_channels
        self.conv1 = nn.Sequential(
            nn.Conv2d(channels, channels // reduction_ratio, 1, bias=bias),
            nn.Conv2d(channels // reduction_ratio, channels // reduction_ratio, kernel_size=kernel_size,
                      padding=kernel_size // 2, groups=channels // reduction_ratio, bias=bias))
        self.conv2 = nn.Sequential(nn.Conv2d(channels // reduction_ratio, kernel_size ** 2 * self.groups, 1, bias=bias))

    def forward(self, x):
        weight = self.conv2(self.conv1(x))
        b, c, h, w = weight.shape
        weight = weight.view(b, self.groups, self.kernel_size, self.kernel_size, h, w)
        return _idynamic.apply(x, weight, 1, (self.kernel_size - 1) // 2, 1)


class OfficialIDynamicDWConvBlock(nn.Module):
    def __init__(self, dim, window_size, heads, bias=True):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv = OfficialIDynamicDWConv(dim, kernel_size=window_size, group_channels=heads, bias=bias)

    def forward(self, x):
        return self.conv1(self.conv(self.conv0(x)))


class OfficialSparseAttention(nn.Module):
    """``SparseAttention`` (``activation='relu'``); ``activation='softmax'`` gives ``Attention`` (MDTA), whose
    ``_forward`` differs only by ``self.softmax`` in place of ``self.act``."""

    def __init__(self, dim, num_heads, bias=False, activation="relu", tlc_flag=True, tlc_kernel=48):
        super().__init__()
        self.tlc_flag = tlc_flag
        self.kernel_size = [tlc_kernel, tlc_kernel]
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, stride=1, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)
        self.act = nn.ReLU() if activation == "relu" else nn.Softmax(dim=-1)

    def _forward(self, qkv):
        q, k, v = qkv.chunk(3, dim=1)
        b, c, h, w = q.shape
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = self.act(attn)
        return attn @ v

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x))
        if self.training or not self.tlc_flag:
            out = self._forward(qkv).reshape(b, c, h, w)
            return self.project_out(out)
        qkv = self.grids(qkv)
        out = self._forward(qkv).reshape(qkv.shape[0], c, qkv.shape[-2], qkv.shape[-1])
        out = self.grids_inverse(out)
        return self.project_out(out)

    def grids(self, x):
        b, c, h, w = x.shape
        self.original_size = (b, c // 3, h, w)
        assert b == 1
        k1, k2 = self.kernel_size
        k1 = min(h, k1)
        k2 = min(w, k2)
        num_row = (h - 1) // k1 + 1
        num_col = (w - 1) // k2 + 1
        step_j = k2 if num_col == 1 else math.ceil((w - k2) / (num_col - 1) - 1e-8)
        step_i = k1 if num_row == 1 else math.ceil((h - k1) / (num_row - 1) - 1e-8)
        parts = []
        idxes = []
        i = 0
        last_i = False
        while i < h and not last_i:
            j = 0
            if i + k1 >= h:
                i = h - k1
                last_i = True
            last_j = False
            while j < w and not last_j:
                if j + k2 >= w:
                    j = w - k2
                    last_j = True
                parts.append(x[:, :, i:i + k1, j:j + k2])
                idxes.append({"i": i, "j": j})
                j = j + step_j
            i = i + step_i
        self.idxes = idxes
        return torch.cat(parts, dim=0)

    def grids_inverse(self, outs):
        preds = torch.zeros(self.original_size, dtype=outs.dtype)
        b, c, h, w = self.original_size
        count_mt = torch.zeros((b, 1, h, w), dtype=outs.dtype)
        k1, k2 = self.kernel_size
        k1 = min(h, k1)
        k2 = min(w, k2)
        for cnt, each_idx in enumerate(self.idxes):
            i = each_idx["i"]
            j = each_idx["j"]
            preds[0, :, i:i + k1, j:j + k2] += outs[cnt, :, :, :]
            count_mt[0, 0, i:i + k1, j:j + k2] += 1.
        return preds / count_mt
