"""SDANet's selective attention, transcribed for tests/test_selective_attention.py from the compiled bytecode the
repository ships instead of source: ``bywang2018/security-dataset`` commit 3ade35cea328946d221395905ec20bacca4a134c,
``mmdet/models/necks/__pycache__/attfpn.cpython-37.pyc`` decompiled with ``uncompyle6`` 3.9.3 (classes
``channel_attention``, ``spatial_attention``, ``selective_attention``; ``attfpn2`` is the same with 256 channels
hard-coded). The decompiler's ``size()[2[:None]]`` is ``size()[2:]``. ``ContextBlock`` from open-mmlab/mmcv
``mmcv/cnn/bricks/context_block.py`` (commit 1d7b818), attention pooling and ``channel_add`` only, as
``ContextBlock(in_channels, 0.0625)`` builds it."""

import torch
import torch.nn.functional as F
from torch import nn


class ContextBlock(nn.Module):
    def __init__(self, in_channels, ratio):
        super().__init__()
        self.in_channels = in_channels
        self.planes = int(in_channels * ratio)
        self.conv_mask = nn.Conv2d(in_channels, 1, kernel_size=1)
        self.softmax = nn.Softmax(dim=2)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(self.in_channels, self.planes, kernel_size=1),
            nn.LayerNorm([self.planes, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.planes, self.in_channels, kernel_size=1))

    def spatial_pool(self, x):
        batch, channel, height, width = x.size()
        input_x = x.view(batch, channel, height * width).unsqueeze(1)
        context_mask = self.conv_mask(x).view(batch, 1, height * width)
        context_mask = self.softmax(context_mask).unsqueeze(-1)
        context = torch.matmul(input_x, context_mask)
        return context.view(batch, channel, 1, 1)

    def forward(self, x):
        context = self.spatial_pool(x)
        return x + self.channel_add_conv(context)


class channel_attention(nn.Module):  # noqa: N801
    def __init__(self, in_channels):
        super().__init__()
        self.in_channels = in_channels
        M = 2  # noqa: N806
        d = self.in_channels // 2
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Sequential(nn.Conv2d(in_channels, d, kernel_size=1, stride=1, bias=False), nn.BatchNorm2d(d),
                                nn.ReLU(inplace=False))
        self.fcs = nn.ModuleList([])
        for i in range(M):
            self.fcs.append(nn.Conv2d(d, in_channels, kernel_size=1, stride=1))
        self.softmax = nn.Softmax(dim=1)

    def forward(self, inputs, num_levels):
        feats_U = torch.sum(inputs, dim=1)  # noqa: N806
        feats_S = self.gap(feats_U)  # noqa: N806
        feats_Z = self.fc(feats_S)  # noqa: N806
        attention_vectors = [fc(feats_Z) for fc in self.fcs]
        attention_vectors = torch.cat(attention_vectors, dim=1)
        attention_vectors = attention_vectors.view(-1, num_levels, self.in_channels, 1, 1)
        attention_vectors = self.softmax(attention_vectors)
        return attention_vectors


class spatial_attention(nn.Module):  # noqa: N801
    def __init__(self, kernel_size=7):
        super().__init__()
        M = 2  # noqa: N806
        padding = 3 if kernel_size == 7 else 1
        self.conv = nn.ModuleList([])
        for i in range(M):
            self.conv.append(nn.Conv2d(2, 1, kernel_size, padding=padding, bias=False))
        self.softmax = nn.Softmax(dim=1)

    def forward(self, inputs, num_levels):
        inputs = torch.sum(inputs, dim=1)
        avg_out = torch.mean(inputs, dim=1, keepdim=True)
        max_out, _ = torch.max(inputs, dim=1, keepdim=True)
        x = torch.cat([avg_out, max_out], dim=1)
        attention_vectors = [conv(x) for conv in self.conv]
        attention_vectors = torch.cat(attention_vectors, dim=1)
        attention_vectors = self.softmax(attention_vectors)
        return attention_vectors.unsqueeze(2)


class selective_attention(nn.Module):  # noqa: N801
    def __init__(self, refine_level, in_channels, with_refine=True):
        super().__init__()
        self.refine_level = refine_level
        self.in_channels = in_channels
        self.channel_att = channel_attention(self.in_channels)
        self.spatial_att = spatial_attention()
        self.with_refine = with_refine
        if self.with_refine:
            self.refine = ContextBlock(in_channels, 0.0625)

    def forward(self, inputs):
        feats = []
        gather_size = inputs[self.refine_level].size()[2:]
        num_levels = len(inputs)
        for i in range(num_levels):
            if i < self.refine_level:
                gathered = F.adaptive_max_pool2d(inputs[i], output_size=gather_size)
            else:
                gathered = F.interpolate(inputs[i], size=gather_size, mode="nearest")
            feats.append(gathered)
        feats = torch.cat(feats, dim=1)
        feats = feats.view(feats.shape[0], num_levels, self.in_channels, feats.shape[2], feats.shape[3])
        channel_attention_vectors = self.channel_att(feats, num_levels)
        feats_C = torch.sum(feats * channel_attention_vectors, dim=1)  # noqa: N806
        spatial_attention_vectors = self.spatial_att(feats, num_levels)
        feats_S = torch.sum(feats * spatial_attention_vectors, dim=1)  # noqa: N806
        feats = feats_C + feats_S
        if self.with_refine:
            bsf = self.refine(feats)
        else:
            bsf = feats_S
        return bsf


def official_state_dict_mapping():
    """Our ``SelectiveDenseAttention`` parameter prefixes -> the official ``selective_attention``'s."""
    return {"squeeze.": "channel_att.fc.", "excite.": "channel_att.fcs.", "spatial.": "spatial_att.conv.",
            "refine.": "refine."}
