"""DHVT's dynamic aggregation feed-forward network, DAFF (Lu et al. 2022, arXiv 2210.05958, Sec. 3.2), on
``(B, N, C)`` tokens: the MLP of a DHVT block, transcribed from the official ``DAFF`` (``vision_transformer.py``
of ArieSeirack/DHVT, commit 0e40e9fe) and compared with it on copied weights (``tests/test_head_tokens.py``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.validation import check_flag, check_int, check_real


class DynamicAggregationFFN(ShowsOptions, nn.Module):
    """DAFF: ``(B, N, C)`` -> ``(B, N, C)``, a convolutional FFN over the patch tokens laid out on their grid, and
    a squeeze-excitation of the class token by the patch tokens.

    With ``class_token=True`` (the official module) the first token is the class token and the other ``N − 1``
    form a square grid; with ``class_token=False`` (for models without one, as attnzoo's mean-pooling ViT) all
    ``N`` tokens form the grid and there is no squeeze-excitation (it only scales the class token; the official
    code has no such mode). On the grid ``x`` ``(B, C, H, W)``, hidden width ``D = mlp_ratio · C``:

    1. ``h = GELU(BN(Conv1x1(C -> D)(x)))``;
    2. ``h = h + GELU(BN(DWConv kxk(h)))`` (depthwise, padding ``(k − 1) / 2``);
    3. ``y = BN(Conv1x1(D -> C)(h))``, the new patch tokens;
    4. class token: ``cls ⊙ Linear(C/4 -> C)(GELU(Linear(C -> C/4)(mean over the grid of y)))`` (no sigmoid, as
       the official code; reduction 4).

    The batch norms are ``nn.BatchNorm2d`` (batch statistics in training, running ones in eval). Dropout of the
    official signature is unused there and not implemented. Time ``O(N C D + N D k²)``.
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, kernel_size: int = 3, class_token: bool = True) -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        self.mlp_ratio = check_real("mlp_ratio", mlp_ratio)
        self.kernel_size = check_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size}: expected an odd size (padding (k - 1) / 2 keeps the grid)")
        self.class_token = check_flag("class_token", class_token)
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"mlp_ratio={mlp_ratio} gives int(dim * mlp_ratio) = {hidden} hidden channels for "
                             f"dim={dim}; expected at least 1")
        if class_token and dim < 4:
            raise ValueError(f"dim={dim}: the class token's squeeze-excitation has dim // 4 units; expected dim >= 4")
        self.conv1 = nn.Conv2d(dim, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel_size, padding=(kernel_size - 1) // 2, groups=hidden)
        self.conv3 = nn.Conv2d(hidden, dim, 1)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(hidden), nn.BatchNorm2d(hidden), nn.BatchNorm2d(dim)
        if class_token:
            self.compress = nn.Linear(dim, dim // 4)
            self.excitation = nn.Linear(dim // 4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, N, C)``, ``N − 1`` (class token) or ``N`` patch tokens of a square grid, row-major."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        cls, tokens = (x[:, :1], x[:, 1:]) if self.class_token else (None, x)
        side = math.isqrt(tokens.shape[1])
        if side * side != tokens.shape[1] or side == 0:
            what = "N - 1 patch tokens after the class token" if self.class_token else "N patch tokens"
            raise ValueError(f"input has {x.shape[1]} tokens: expected {what} forming a non-empty square grid, "
                             f"got {tokens.shape[1]}")
        grid = tokens.unflatten(1, (side, side)).permute(0, 3, 1, 2)  # (B, C, H, W)
        hidden = nn.functional.gelu(self.bn1(self.conv1(grid)))
        hidden = hidden + nn.functional.gelu(self.bn2(self.conv2(hidden)))
        out = self.bn3(self.conv3(hidden)).flatten(2).transpose(1, 2)  # (B, H W, C)
        if cls is None:
            return out
        weight = self.excitation(nn.functional.gelu(self.compress(out.mean(1, keepdim=True))))
        return torch.cat([cls * weight, out], dim=1)
