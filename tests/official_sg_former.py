"""OliverRensu/SG-Former at commit b982803ceb0af70ff20f42784ddac51212ef954e, transcribed once for the SG-Former
tests: ``Attention``, ``window_partition`` and ``window_reverse`` of ``sgformer.py``, line for line. Changes:
timm's ``trunc_normal_`` is ``nn.init.trunc_normal_`` (``import timm`` crashes here), the unused ``linear``
argument and the ``sr_ratio == 1`` branch are dropped, and ``stable`` (default ``False``, the official
``torch.sort``) makes the two sorts stable for the tie tests."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def local_conv(dim):
    return nn.Conv2d(dim, dim, kernel_size=3, padding=1, stride=1, groups=dim)


class Attention(nn.Module):
    def __init__(self, dim, mask, num_heads=8, qkv_bias=False, qk_scale=None, attn_drop=0., proj_drop=0., sr_ratio=1,
                 stable=False):
        super().__init__()
        assert dim % num_heads == 0, f"dim {dim} should be divided by num_heads {num_heads}."
        assert sr_ratio > 1
        self.dim = dim
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5
        self.sr_ratio = sr_ratio
        self.stable = stable
        if mask:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv1 = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv2 = nn.Linear(dim, dim, bias=qkv_bias)
            if self.sr_ratio == 8:
                f1, f2, f3 = 14 * 14, 56, 28
            elif self.sr_ratio == 4:
                f1, f2, f3 = 49, 14, 7
            elif self.sr_ratio == 2:
                f1, f2, f3 = 2, 1, None
            self.f1 = nn.Linear(f1, 1)
            self.f2 = nn.Linear(f2, 1)
            if f3 is not None:
                self.f3 = nn.Linear(f3, 1)
        else:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)
            self.act = nn.GELU()

            self.q1 = nn.Linear(dim, dim // 2, bias=qkv_bias)
            self.kv1 = nn.Linear(dim, dim, bias=qkv_bias)
            self.q2 = nn.Linear(dim, dim // 2, bias=qkv_bias)
            self.kv2 = nn.Linear(dim, dim, bias=qkv_bias)

        self.lepe_linear = nn.Linear(dim, dim)
        self.lepe_conv = local_conv(dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            fan_out //= m.groups
            m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                m.bias.data.zero_()

    def forward(self, x, H, W, mask):
        B, N, C = x.shape
        lepe = self.lepe_conv(
            self.lepe_linear(x).transpose(1, 2).view(B, C, H, W)).view(B, C, -1).transpose(-1, -2)
        if mask is None:
            # global
            q1 = self.q1(x).reshape(B, N, self.num_heads // 2, C // self.num_heads).permute(0, 2, 1, 3)
            x_ = x.permute(0, 2, 1).reshape(B, C, H, W)
            x_1 = self.sr(x_).reshape(B, C, -1).permute(0, 2, 1)
            x_1 = self.act(self.norm(x_1))
            kv1 = self.kv1(x_1).reshape(B, -1, 2, self.num_heads // 2, C // self.num_heads).permute(2, 0, 3, 1, 4)
            k1, v1 = kv1[0], kv1[1]  # B head N C

            attn1 = (q1 @ k1.transpose(-2, -1)) * self.scale  # B head Nq Nkv
            attn1 = attn1.softmax(dim=-1)
            attn1 = self.attn_drop(attn1)
            x1 = (attn1 @ v1).transpose(1, 2).reshape(B, N, C // 2)

            global_mask_value = torch.mean(attn1.detach().mean(1), dim=1)  # B Nk  #max ?  mean ?
            global_mask_value = F.interpolate(global_mask_value.view(B, 1, H // self.sr_ratio, W // self.sr_ratio),
                                              (H, W), mode='nearest')[:, 0]

            # local
            q2 = self.q2(x).reshape(B, N, self.num_heads // 2, C // self.num_heads).permute(0, 2, 1, 3)  # B head N C
            kv2 = self.kv2(x_.reshape(B, C, -1).permute(0, 2, 1)).reshape(B, -1, 2, self.num_heads // 2,
                                                                          C // self.num_heads).permute(2, 0, 3, 1, 4)
            k2, v2 = kv2[0], kv2[1]
            q_window = 7
            window_size = 7
            q2, k2, v2 = window_partition(q2, q_window, H, W), window_partition(k2, window_size, H, W), \
                window_partition(v2, window_size, H, W)
            attn2 = (q2 @ k2.transpose(-2, -1)) * self.scale
            # (B*numheads*num_windows, window_size*window_size, window_size*window_size)
            attn2 = attn2.softmax(dim=-1)
            attn2 = self.attn_drop(attn2)

            x2 = (attn2 @ v2)  # B*numheads*num_windows, window_size*window_size, C   .transpose(1, 2).reshape(B, N, C)
            x2 = window_reverse(x2, q_window, H, W, self.num_heads // 2)

            local_mask_value = torch.mean(attn2.detach().view(
                B, self.num_heads // 2, H // window_size * W // window_size, window_size * window_size,
                window_size * window_size).mean(1), dim=2)
            local_mask_value = local_mask_value.view(B, H // window_size, W // window_size, window_size, window_size)
            local_mask_value = local_mask_value.permute(0, 1, 3, 2, 4).contiguous().view(B, H, W)

            # mask B H W
            x = torch.cat([x1, x2], dim=-1)
            x = self.proj(x + lepe)
            x = self.proj_drop(x)
            # cal mask
            mask = local_mask_value + global_mask_value
            mask_1 = mask.view(B, H * W)
            mask_2 = mask.permute(0, 2, 1).reshape(B, H * W)
            mask = [mask_1, mask_2]
        else:
            q = self.q(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)

            # mask [local_mask global_mask]  local_mask [value index]  value [B, H, W]
            # use mask to fuse
            mask_1, mask_2 = mask
            mask_sort1, mask_sort_index1 = torch.sort(mask_1, dim=1, stable=self.stable)
            mask_sort2, mask_sort_index2 = torch.sort(mask_2, dim=1, stable=self.stable)
            if self.sr_ratio == 8:
                token1, token2, token3 = H * W // (14 * 14), H * W // 56, H * W // 28
                token1, token2, token3 = token1 // 4, token2 // 2, token3 // 4
            elif self.sr_ratio == 4:
                token1, token2, token3 = H * W // 49, H * W // 14, H * W // 7
                token1, token2, token3 = token1 // 4, token2 // 2, token3 // 4
            elif self.sr_ratio == 2:
                token1, token2 = H * W // 2, H * W // 1
                token1, token2 = token1 // 2, token2 // 2
            if self.sr_ratio == 4 or self.sr_ratio == 8:
                p1 = torch.gather(x, 1, mask_sort_index1[:, :H * W // 4].unsqueeze(-1).repeat(1, 1, C))  # B, N//4, C
                p2 = torch.gather(x, 1, mask_sort_index1[:, H * W // 4:H * W // 4 * 3].unsqueeze(-1).repeat(1, 1, C))
                p3 = torch.gather(x, 1, mask_sort_index1[:, H * W // 4 * 3:].unsqueeze(-1).repeat(1, 1, C))
                seq1 = torch.cat([self.f1(p1.permute(0, 2, 1).reshape(B, C, token1, -1)).squeeze(-1),
                                  self.f2(p2.permute(0, 2, 1).reshape(B, C, token2, -1)).squeeze(-1),
                                  self.f3(p3.permute(0, 2, 1).reshape(B, C, token3, -1)).squeeze(-1)],
                                 dim=-1).permute(0, 2, 1)  # B N C

                x_ = x.view(B, H, W, C).permute(0, 2, 1, 3).reshape(B, H * W, C)
                p1_ = torch.gather(x_, 1, mask_sort_index2[:, :H * W // 4].unsqueeze(-1).repeat(1, 1, C))  # B, N//4, C
                p2_ = torch.gather(x_, 1, mask_sort_index2[:, H * W // 4:H * W // 4 * 3].unsqueeze(-1).repeat(1, 1, C))
                p3_ = torch.gather(x_, 1, mask_sort_index2[:, H * W // 4 * 3:].unsqueeze(-1).repeat(1, 1, C))
                seq2 = torch.cat([self.f1(p1_.permute(0, 2, 1).reshape(B, C, token1, -1)).squeeze(-1),
                                  self.f2(p2_.permute(0, 2, 1).reshape(B, C, token2, -1)).squeeze(-1),
                                  self.f3(p3_.permute(0, 2, 1).reshape(B, C, token3, -1)).squeeze(-1)],
                                 dim=-1).permute(0, 2, 1)  # B N C
            elif self.sr_ratio == 2:
                p1 = torch.gather(x, 1, mask_sort_index1[:, :H * W // 2].unsqueeze(-1).repeat(1, 1, C))  # B, N//4, C
                p2 = torch.gather(x, 1, mask_sort_index1[:, H * W // 2:].unsqueeze(-1).repeat(1, 1, C))
                seq1 = torch.cat([self.f1(p1.permute(0, 2, 1).reshape(B, C, token1, -1)).squeeze(-1),
                                  self.f2(p2.permute(0, 2, 1).reshape(B, C, token2, -1)).squeeze(-1)],
                                 dim=-1).permute(0, 2, 1)  # B N C

                x_ = x.view(B, H, W, C).permute(0, 2, 1, 3).reshape(B, H * W, C)
                p1_ = torch.gather(x_, 1, mask_sort_index2[:, :H * W // 2].unsqueeze(-1).repeat(1, 1, C))  # B, N//4, C
                p2_ = torch.gather(x_, 1, mask_sort_index2[:, H * W // 2:].unsqueeze(-1).repeat(1, 1, C))
                seq2 = torch.cat([self.f1(p1_.permute(0, 2, 1).reshape(B, C, token1, -1)).squeeze(-1),
                                  self.f2(p2_.permute(0, 2, 1).reshape(B, C, token2, -1)).squeeze(-1)],
                                 dim=-1).permute(0, 2, 1)  # B N C

            kv1 = self.kv1(seq1).reshape(B, -1, 2, self.num_heads // 2, C // self.num_heads).permute(2, 0, 3, 1, 4)
            kv2 = self.kv2(seq2).reshape(B, -1, 2, self.num_heads // 2, C // self.num_heads).permute(2, 0, 3, 1, 4)
            kv = torch.cat([kv1, kv2], dim=2)
            k, v = kv[0], kv[1]
            attn = (q @ k.transpose(-2, -1)) * self.scale
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)

            x = (attn @ v).transpose(1, 2).reshape(B, N, C)
            x = self.proj(x + lepe)
            x = self.proj_drop(x)
            mask = None

        return x, mask


def window_partition(x, window_size, H, W):
    B, num_heads, N, C = x.shape
    x = x.contiguous().view(B * num_heads, N, C).contiguous().view(B * num_heads, H, W, C)
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C).\
        view(-1, window_size * window_size, C)
    return windows  # (B*numheads*num_windows, window_size, window_size, C)


def window_reverse(windows, window_size, H, W, head):
    Bhead = int(windows.shape[0] / (H * W / window_size / window_size))
    x = windows.view(Bhead, H // window_size, W // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(Bhead, H, W, -1).view(Bhead // head, head, H, W, -1)\
        .contiguous().permute(0, 2, 3, 1, 4).contiguous().view(Bhead // head, H, W, -1).view(Bhead // head, H * W, -1)
    return x  # (B, H, W, C)
