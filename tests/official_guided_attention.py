"""sinAshish/Multi-Scale-Attention at commit 96d76f2794ee1b16e847f38a16d397d137c774f6, transcribed for
tests/test_dual_attention.py.

- ``src/models/attention.py``: ``PAM_Module``, ``CAM_Module``, ``_EncoderBlock``, ``_DecoderBlock``,
  ``semanticModule``, ``PAM_CAM_Layer`` (its ``super(PAM_CAM_Layer).__init__()`` bug fixed by passing ``self``),
  ``MultiConv`` (hard-coded ``BatchNorm2d(64)``, as there); ``F.upsample`` written as ``F.interpolate``, the
  deprecated default ``align_corners=None`` as ``False``.
- ``src/models/my_stacked_danet.py``: the part of ``DAF_stack.__init__`` and ``forward`` from the four 64-channel
  maps ``down4 .. down1`` to the refined ``refine4 .. refine1`` (the backbone, ``down*`` reductions, dropout heads
  and predictions are left out; the unused ``attention1..4`` / ``refine1..4`` MultiConvs are not built).
- ``src/main.py``: the semantic (0.25) and reconstruction (0.1) loss terms.
"""

import torch
import torch.nn.functional as F
from torch import nn


class PAM_Module(nn.Module):  # noqa: N801
    def __init__(self, in_dim):
        super().__init__()
        self.chanel_in = in_dim
        self.query_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim // 8, kernel_size=1)
        self.value_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        m_batchsize, C, height, width = x.size()
        proj_query = self.query_conv(x).view(m_batchsize, -1, width * height).permute(0, 2, 1)
        proj_key = self.key_conv(x).view(m_batchsize, -1, width * height)
        energy = torch.bmm(proj_query, proj_key)
        attention = self.softmax(energy)
        proj_value = self.value_conv(x).view(m_batchsize, -1, width * height)
        out = torch.bmm(proj_value, attention.permute(0, 2, 1))
        out = out.view(m_batchsize, C, height, width)
        out = self.gamma * out + x
        return out


class CAM_Module(nn.Module):  # noqa: N801
    def __init__(self, in_dim):
        super().__init__()
        self.chanel_in = in_dim
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        m_batchsize, C, height, width = x.size()
        proj_query = x.view(m_batchsize, C, -1)
        proj_key = x.view(m_batchsize, C, -1).permute(0, 2, 1)
        energy = torch.bmm(proj_query, proj_key)
        energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
        attention = self.softmax(energy_new)
        proj_value = x.view(m_batchsize, C, -1)
        out = torch.bmm(attention, proj_value)
        out = out.view(m_batchsize, C, height, width)
        out = self.gamma * out + x
        return out


class _EncoderBlock(nn.Module):
    def __init__(self, in_channels, out_channels, dropout=False):
        super().__init__()
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        if dropout:
            layers.append(nn.Dropout())
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.encode = nn.Sequential(*layers)

    def forward(self, x):
        return self.encode(x)


class _DecoderBlock(nn.Module):
    def __init__(self, in_channels, middle_channels, out_channels):
        super().__init__()
        self.decode = nn.Sequential(
            nn.Conv2d(in_channels, middle_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(middle_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(middle_channels, middle_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(middle_channels),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(middle_channels, out_channels, kernel_size=2, stride=2),
        )

    def forward(self, x):
        return self.decode(x)


class semanticModule(nn.Module):  # noqa: N801
    def __init__(self, in_dim):
        super().__init__()
        self.chanel_in = in_dim
        self.enc1 = _EncoderBlock(in_dim, in_dim * 2)
        self.enc2 = _EncoderBlock(in_dim * 2, in_dim * 4)
        self.dec2 = _DecoderBlock(in_dim * 4, in_dim * 2, in_dim * 2)
        self.dec1 = _DecoderBlock(in_dim * 2, in_dim, in_dim)

    def forward(self, x):
        enc1 = self.enc1(x)
        enc2 = self.enc2(enc1)
        dec2 = self.dec2(enc2)
        dec1 = self.dec1(F.interpolate(dec2, enc1.size()[2:], mode="bilinear", align_corners=False))
        return enc2.view(-1), dec1


class PAM_CAM_Layer(nn.Module):  # noqa: N801
    def __init__(self, in_ch, use_pam=True):
        super().__init__()
        self.attn = nn.Sequential(
            nn.Conv2d(in_ch * 2, in_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(in_ch),
            nn.PReLU(),
            PAM_Module(in_ch) if use_pam else CAM_Module(in_ch),
            nn.Conv2d(in_ch, in_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(in_ch),
            nn.PReLU(),
        )

    def forward(self, x):
        return self.attn(x)


class MultiConv(nn.Module):
    def __init__(self, in_ch, out_ch, attn=True):
        super().__init__()
        self.fuse_attn = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.PReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.PReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=1),
            nn.BatchNorm2d(64),
            nn.Softmax2d() if attn else nn.PReLU(),
        )

    def forward(self, x):
        return self.fuse_attn(x)


class DAFGuidedPart(nn.Module):
    """``DAF_stack``'s attention modules (the names as there) and its forward from ``down4 .. down1``."""

    def __init__(self):
        super().__init__()
        self.conv8_1 = nn.Conv2d(64, 64, 1)
        self.conv8_2 = nn.Conv2d(64, 64, 1)
        self.conv8_3 = nn.Conv2d(64, 64, 1)
        self.conv8_4 = nn.Conv2d(64, 64, 1)
        self.conv8_11 = nn.Conv2d(64, 64, 1)
        self.conv8_12 = nn.Conv2d(64, 64, 1)
        self.conv8_13 = nn.Conv2d(64, 64, 1)
        self.conv8_14 = nn.Conv2d(64, 64, 1)
        self.pam_attention_1_1 = PAM_CAM_Layer(64, True)
        self.cam_attention_1_1 = PAM_CAM_Layer(64, False)
        self.semanticModule_1_1 = semanticModule(128)
        self.conv_sem_1_1 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.conv_sem_1_2 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.conv_sem_1_3 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.conv_sem_1_4 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.pam_attention_1_2 = PAM_CAM_Layer(64)
        self.cam_attention_1_2 = PAM_CAM_Layer(64, False)
        self.pam_attention_1_3 = PAM_CAM_Layer(64)
        self.cam_attention_1_3 = PAM_CAM_Layer(64, False)
        self.pam_attention_1_4 = PAM_CAM_Layer(64)
        self.cam_attention_1_4 = PAM_CAM_Layer(64, False)
        self.pam_attention_2_1 = PAM_CAM_Layer(64)
        self.cam_attention_2_1 = PAM_CAM_Layer(64, False)
        self.semanticModule_2_1 = semanticModule(128)
        self.conv_sem_2_1 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.conv_sem_2_2 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.conv_sem_2_3 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.conv_sem_2_4 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.pam_attention_2_2 = PAM_CAM_Layer(64)
        self.cam_attention_2_2 = PAM_CAM_Layer(64, False)
        self.pam_attention_2_3 = PAM_CAM_Layer(64)
        self.cam_attention_2_3 = PAM_CAM_Layer(64, False)
        self.pam_attention_2_4 = PAM_CAM_Layer(64)
        self.cam_attention_2_4 = PAM_CAM_Layer(64, False)
        self.fuse1 = MultiConv(256, 64, False)

    def forward(self, down4, down3, down2, down1):
        fuse1 = self.fuse1(torch.cat((down4, down3, down2, down1), 1))

        semVector_1_1, semanticModule_1_1 = self.semanticModule_1_1(torch.cat((down4, fuse1), 1))
        attn_pam4 = self.pam_attention_1_4(torch.cat((down4, fuse1), 1))
        attn_cam4 = self.cam_attention_1_4(torch.cat((down4, fuse1), 1))
        attention1_4 = self.conv8_1((attn_cam4 + attn_pam4) * self.conv_sem_1_1(semanticModule_1_1))

        semVector_1_2, semanticModule_1_2 = self.semanticModule_1_1(torch.cat((down3, fuse1), 1))
        attn_pam3 = self.pam_attention_1_3(torch.cat((down3, fuse1), 1))
        attn_cam3 = self.cam_attention_1_3(torch.cat((down3, fuse1), 1))
        attention1_3 = self.conv8_2((attn_cam3 + attn_pam3) * self.conv_sem_1_2(semanticModule_1_2))

        semVector_1_3, semanticModule_1_3 = self.semanticModule_1_1(torch.cat((down2, fuse1), 1))
        attn_pam2 = self.pam_attention_1_2(torch.cat((down2, fuse1), 1))
        attn_cam2 = self.cam_attention_1_2(torch.cat((down2, fuse1), 1))
        attention1_2 = self.conv8_3((attn_cam2 + attn_pam2) * self.conv_sem_1_3(semanticModule_1_3))

        semVector_1_4, semanticModule_1_4 = self.semanticModule_1_1(torch.cat((down1, fuse1), 1))
        attn_pam1 = self.pam_attention_1_1(torch.cat((down1, fuse1), 1))
        attn_cam1 = self.cam_attention_1_1(torch.cat((down1, fuse1), 1))
        attention1_1 = self.conv8_4((attn_cam1 + attn_pam1) * self.conv_sem_1_4(semanticModule_1_4))

        semVector_2_1, semanticModule_2_1 = self.semanticModule_2_1(torch.cat((down4, attention1_4 * fuse1), 1))
        refine4_1 = self.pam_attention_2_4(torch.cat((down4, attention1_4 * fuse1), 1))
        refine4_2 = self.cam_attention_2_4(torch.cat((down4, attention1_4 * fuse1), 1))
        refine4 = self.conv8_11((refine4_1 + refine4_2) * self.conv_sem_2_1(semanticModule_2_1))

        semVector_2_2, semanticModule_2_2 = self.semanticModule_2_1(torch.cat((down3, attention1_3 * fuse1), 1))
        refine3_1 = self.pam_attention_2_3(torch.cat((down3, attention1_3 * fuse1), 1))
        refine3_2 = self.cam_attention_2_3(torch.cat((down3, attention1_3 * fuse1), 1))
        refine3 = self.conv8_12((refine3_1 + refine3_2) * self.conv_sem_2_2(semanticModule_2_2))

        semVector_2_3, semanticModule_2_3 = self.semanticModule_2_1(torch.cat((down2, attention1_2 * fuse1), 1))
        refine2_1 = self.pam_attention_2_2(torch.cat((down2, attention1_2 * fuse1), 1))
        refine2_2 = self.cam_attention_2_2(torch.cat((down2, attention1_2 * fuse1), 1))
        refine2 = self.conv8_13((refine2_1 + refine2_2) * self.conv_sem_2_3(semanticModule_2_3))

        semVector_2_4, semanticModule_2_4 = self.semanticModule_2_1(torch.cat((down1, attention1_1 * fuse1), 1))
        refine1_1 = self.pam_attention_2_1(torch.cat((down1, attention1_1 * fuse1), 1))
        refine1_2 = self.cam_attention_2_1(torch.cat((down1, attention1_1 * fuse1), 1))
        refine1 = self.conv8_14((refine1_1 + refine1_2) * self.conv_sem_2_4(semanticModule_2_4))

        sem = (semVector_1_1, semVector_2_1, semVector_1_2, semVector_2_2, semVector_1_3, semVector_2_3,
               semVector_1_4, semVector_2_4)
        inp = (torch.cat((down1, fuse1), 1), torch.cat((down2, fuse1), 1), torch.cat((down3, fuse1), 1),
               torch.cat((down4, fuse1), 1), torch.cat((down1, attention1_1 * fuse1), 1),
               torch.cat((down2, attention1_2 * fuse1), 1), torch.cat((down3, attention1_3 * fuse1), 1),
               torch.cat((down4, attention1_4 * fuse1), 1))
        out = (semanticModule_1_4, semanticModule_1_3, semanticModule_1_2, semanticModule_1_1,
               semanticModule_2_4, semanticModule_2_3, semanticModule_2_2, semanticModule_2_1)
        return (refine4, refine3, refine2, refine1), sem, inp, out


def official_loss_terms(sem, inp, out):
    """``main.py``: ``0.25 · Σ lossSemantic + 0.1 · Σ lossRec`` (the cross-entropy terms left out)."""
    mse = nn.MSELoss()
    semantic = [mse(sem[2 * i], sem[2 * i + 1]) for i in range(4)]
    rec = [mse(i, o) for i, o in zip(inp, out)]
    return 0.25 * sum(semantic) + 0.1 * sum(rec)


def guided_state_dict_mapping(scales=4):
    """Our ``MultiScaleGuidedAttention`` parameter prefixes -> the official ones, for scales ordered
    ``(down4, down3, down2, down1)``."""
    level = {0: 4, 1: 3, 2: 2, 3: 1}
    mapping = {"fuse.": "fuse1.fuse_attn."}
    for step in (1, 2):
        ours = f"steps.{step - 1}."
        mapping[ours + "semantic."] = f"semanticModule_{step}_1."
        for s in range(scales):
            mapping[ours + f"position.{s}."] = f"pam_attention_{step}_{level[s]}."
            mapping[ours + f"channel.{s}."] = f"cam_attention_{step}_{level[s]}."
            mapping[ours + f"semantic_conv.{s}."] = f"conv_sem_{step}_{s + 1}."
            mapping[ours + f"out_conv.{s}."] = f"conv8_{s + 1}." if step == 1 else f"conv8_{s + 11}."
    return mapping
