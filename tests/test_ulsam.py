"""ULSAM (arXiv 2006.15102) beyond the registry contract: the official module (``Nandan91/ULSAM`` ``ulsam.py`` at
commit 33308a900164403ded681f5678254356508250d8, transcribed below without its
``torch.set_default_tensor_type(torch.cuda.FloatTensor)`` line) with copied weights in training and eval mode,
the catalog's invariants: 5C + 3g parameters, maps that are non-negative and sum to 1 per subspace, the uniform
map of a zero pointwise convolution, subspaces that permute with their modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnzoo
from attnzoo.layers import SubspaceAttention


class OfficialSubSpace(nn.Module):
    """``SubSpace`` of the official ``ulsam.py``, line for line."""

    def __init__(self, nin: int) -> None:
        super().__init__()
        self.conv_dws = nn.Conv2d(nin, nin, kernel_size=1, stride=1, padding=0, groups=nin)
        self.bn_dws = nn.BatchNorm2d(nin, momentum=0.9)
        self.relu_dws = nn.ReLU(inplace=False)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.conv_point = nn.Conv2d(nin, 1, kernel_size=1, stride=1, padding=0, groups=1)
        self.bn_point = nn.BatchNorm2d(1, momentum=0.9)
        self.relu_point = nn.ReLU(inplace=False)
        self.softmax = nn.Softmax(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_dws(x)
        out = self.bn_dws(out)
        out = self.relu_dws(out)
        out = self.maxpool(out)
        out = self.conv_point(out)
        out = self.bn_point(out)
        out = self.relu_point(out)
        m, n, p, q = out.shape
        out = self.softmax(out.view(m, n, -1))
        out = out.view(m, n, p, q)
        out = out.expand(x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        out = torch.mul(out, x)
        out = out + x
        return out


class OfficialULSAM(nn.Module):
    """``ULSAM`` of the official ``ulsam.py`` (``nout``, ``h``, ``w`` are stored and unused there)."""

    def __init__(self, nin: int, nout: int, h: int, w: int, num_splits: int) -> None:
        super().__init__()
        assert nin % num_splits == 0
        self.nin, self.nout, self.h, self.w, self.num_splits = nin, nout, h, w, num_splits
        self.subspaces = nn.ModuleList([SubSpace(int(self.nin / self.num_splits)) for i in range(self.num_splits)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sub_feat = torch.chunk(x, self.num_splits, dim=1)
        out = []
        for idx, _ in enumerate(self.subspaces):
            out.append(self.subspaces[idx](sub_feat[idx]))
        return torch.cat(out, dim=1)


SubSpace = OfficialSubSpace


def stacked_state(official: OfficialULSAM) -> dict[str, torch.Tensor]:
    """The official module's per-subspace parameters and buffers, stacked into :class:`SubspaceAttention`'s."""
    subs = official.subspaces
    pairs = {"dw": "conv_dws", "dw_norm": "bn_dws", "pw": "conv_point", "pw_norm": "bn_point"}
    state = {}
    for ours, theirs in pairs.items():
        for key in getattr(subs[0], theirs).state_dict():
            parts = [getattr(s, theirs).state_dict()[key] for s in subs]
            # side by side along the output channels (the pointwise weights: (g, G, 1, 1), one group each)
            state[f"{ours}.{key}"] = parts[0] if key == "num_batches_tracked" else torch.cat(parts)
    return state


def _randomise(module: nn.Module) -> None:
    """Random weights and running statistics everywhere (not the inits, which hide mistakes)."""
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            t.copy_(torch.rand_like(t) + 0.5 if name.endswith("running_var") else torch.randn_like(t))


@pytest.mark.parametrize(("channels", "splits", "grid"), [(64, 4, (9, 7)), (12, 3, (5, 5)), (6, 6, (4, 11)),
                                                          (5, 1, (3, 3))])
@pytest.mark.parametrize("impl", ["grouped", "reference"])
def test_official_module_with_copied_weights_in_training_and_eval(channels: int, splits: int, grid: tuple,
                                                                  impl: str) -> None:
    torch.manual_seed(0)
    official = OfficialULSAM(channels, channels, *grid, splits).double()
    _randomise(official)
    ours = SubspaceAttention(channels, splits, impl=impl).double()
    ours.load_state_dict(stacked_state(official))
    for training in (True, False, True):
        official.train(training)
        ours.train(training)
        x = torch.randn(3, channels, *grid, dtype=torch.float64, requires_grad=True)
        expected, out = official(x), ours(x)
        torch.testing.assert_close(out, expected)
        g = torch.randn_like(out)
        torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(expected, x, g)[0])
        for name, value in stacked_state(official).items():  # running statistics move alike
            torch.testing.assert_close(ours.state_dict()[name], value, msg=name)


@pytest.mark.parametrize(("dim", "g"), [(64, 4), (60, 5), (7, 1), (16, 16)])
def test_parameter_count_is_5c_plus_3g(dim: int, g: int) -> None:
    layer = SubspaceAttention(dim, g)
    assert sum(p.numel() for p in layer.parameters()) == 5 * dim + 3 * g
    official = OfficialULSAM(dim, dim, 8, 8, g)
    assert sum(p.numel() for p in official.parameters()) == 5 * dim + 3 * g


def _maps(layer: nn.Module, x: torch.Tensor, g: int) -> torch.Tensor:
    """The attention maps ``A = out / x - 1`` ``(B, g, G, H, W)`` (x has no zero)."""
    b, c, h, w = x.shape
    return (layer(x) / x - 1).view(b, g, c // g, h, w)


@pytest.mark.parametrize("impl", ["grouped", "reference"])
def test_each_subspace_map_is_a_distribution_over_the_positions_shared_by_its_channels(impl: str) -> None:
    layer = attnzoo.create("ulsam", dim=24, num_subspaces=3, impl=impl).double().eval()
    _randomise(layer)
    x = torch.randn(2, 24, 6, 5, dtype=torch.float64)
    maps = _maps(layer, x, 3)
    assert (maps >= -1e-12).all()
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(2, 3, 8, dtype=torch.float64))
    torch.testing.assert_close(maps, maps[:, :, :1].expand_as(maps))


def test_a_zero_pointwise_convolution_gives_the_uniform_map() -> None:
    layer = SubspaceAttention(8, 2).double().eval()
    with torch.no_grad():
        layer.pw.weight.zero_()
        layer.pw.bias.zero_()
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x * (1 + 1 / 15))


def test_permuting_whole_subspaces_with_their_modules_permutes_the_output() -> None:
    torch.manual_seed(1)
    official = OfficialULSAM(12, 12, 5, 5, 3).double().eval()
    _randomise(official)
    x = torch.randn(2, 12, 5, 5, dtype=torch.float64)
    order = [2, 0, 1]
    permuted = OfficialULSAM(12, 12, 5, 5, 3).double().eval()
    permuted.subspaces = nn.ModuleList([official.subspaces[i] for i in order])
    ours = SubspaceAttention(12, 3).double().eval()
    ours.load_state_dict(stacked_state(permuted))
    channels = torch.cat([torch.arange(4 * i, 4 * i + 4) for i in order])
    torch.testing.assert_close(ours(x[:, channels]), official(x)[:, channels])
