"""RG-SA (paper 43, RGT): dense attention when every token is a representative, one representative, the
layer and the HAI block against the official ``RG_SA`` and ``Block`` (transcribed) with copied weights, the
official recursion rule, the padding of maps that do not divide, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers import RecursiveGeneralizationAttention, RGTBlock
from attnzoo.layers.recursive_generalization import official_levels
from attnzoo.ops import recursive_generalization_attention, softmax_attention

IMPLS = ["gemm", "reference"]


def _tensors(*shapes: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


@pytest.mark.parametrize("impl", IMPLS)
def test_every_token_a_representative_is_dense_attention(impl: str) -> None:
    """The limit of the issue: the representative set equal to all tokens (``M = N``, the keys and values of
    every token) is dense softmax attention."""
    q, k, v = _tensors((2, 3, 50, 8), (2, 3, 50, 8), (2, 3, 50, 6))
    expected = softmax_attention(q, k, v, impl="reference")
    torch.testing.assert_close(recursive_generalization_attention(q, k, v, impl=impl), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(expected, F.scaled_dot_product_attention(q, k, v), atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_one_representative_gives_every_query_its_value(impl: str) -> None:
    q, k, v = _tensors((2, 2, 30, 4), (2, 2, 1, 4), (2, 2, 1, 5))
    out = recursive_generalization_attention(q, k, v, impl=impl)
    torch.testing.assert_close(out, v.expand_as(out), atol=1e-12, rtol=0)


def test_layer_with_one_representative_gives_every_pixel_the_same_output() -> None:
    """The catalog's degenerate case ``N' = 1``: every query reads ``proj(v₀ + cpe(v₀))``."""
    torch.manual_seed(0)
    layer = RecursiveGeneralizationAttention(16, 2, levels=2).double()  # 16 x 16 -> 4 x 4 -> 1 x 1
    out = layer(_tensors((2, 16, 16, 16))[0])
    torch.testing.assert_close(out, out[:, :1, :1].expand_as(out), atol=1e-12, rtol=0)


# ---- official RG_SA / MLP / Gate / Block (zhengchen1999/RGT basicsr/archs/rgt_arch.py at 01b4379, transcribed:
# dropout layers and DropPath at rate 0 removed, Block keeps only its RG-SA branch, idx odd) -----------------------

class OfficialRGSA(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None, c_ratio=0.5):  # noqa: ANN001, ANN204
        super().__init__()
        assert dim % num_heads == 0, f"dim {dim} should be divided by num_heads {num_heads}."
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.cr = int(dim * c_ratio)  # scaled channel dimension
        self.scale = qk_scale or (head_dim * c_ratio) ** -0.5
        # RGM
        self.reduction1 = nn.Conv2d(dim, dim, kernel_size=4, stride=4, groups=dim)
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self.conv = nn.Conv2d(dim, self.cr, kernel_size=1, stride=1)
        self.norm_act = nn.Sequential(
            nn.LayerNorm(self.cr),
            nn.GELU())
        # CA
        self.q = nn.Linear(dim, self.cr, bias=qkv_bias)
        self.k = nn.Linear(self.cr, self.cr, bias=qkv_bias)
        self.v = nn.Linear(self.cr, dim, bias=qkv_bias)
        # CPE
        self.cpe = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, H, W):  # noqa: ANN001, ANN201, N803
        B, N, C = x.shape  # noqa: N806
        _scale = 1
        # reduction
        _x = x.permute(0, 2, 1).reshape(B, C, H, W).contiguous()
        if self.training:
            _time = max(int(math.log(H//4, 4)), int(math.log(W//4, 4)))
        else:
            _time = max(int(math.log(H//16, 4)), int(math.log(W//16, 4)))
            if _time < 2: _time = 2 # testing _time must equal or larger than training _time (2)  # noqa: E701
        _scale = 4 ** _time
        # Recursion xT
        for _ in range(_time):
            _x = self.reduction1(_x)
        _x = self.conv(self.dwconv(_x)).reshape(B, self.cr, -1).permute(0, 2, 1).contiguous()  # shape=(B, N', C')
        _x = self.norm_act(_x)
        # q, k, v, where q_shape=(B, N, C'), k_shape=(B, N', C'), v_shape=(B, N', C)
        q = self.q(x).reshape(B, N, self.num_heads, int(self.cr / self.num_heads)).permute(0, 2, 1, 3)
        k = self.k(_x).reshape(B, -1, self.num_heads, int(self.cr / self.num_heads)).permute(0, 2, 1, 3)
        v = self.v(_x).reshape(B, -1, self.num_heads, int(C / self.num_heads)).permute(0, 2, 1, 3)
        # corss-attention
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        # CPE
        # v_shape=(B, H, N', C//H)
        v = v + self.cpe(v.transpose(1, 2).reshape(B, -1, C).transpose(1, 2).contiguous().view(B, C, H // _scale, W // _scale)).view(B, C, -1).view(B, self.num_heads, int(C / self.num_heads), -1).transpose(-1, -2)  # noqa: E501
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        return x


class OfficialGate(nn.Module):
    def __init__(self, dim):  # noqa: ANN001, ANN204
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim) # DW Conv

    def forward(self, x, H, W):  # noqa: ANN001, ANN201, N803
        # Split
        x1, x2 = x.chunk(2, dim = -1)
        B, N, C = x.shape  # noqa: N806
        x2 = self.conv(self.norm(x2).transpose(1, 2).contiguous().view(B, C//2, H, W)).flatten(2).transpose(-1, -2).contiguous()  # noqa: E501
        return x1 * x2


class OfficialMLP(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU):  # noqa: ANN001, ANN204
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.sg = OfficialGate(hidden_features//2)
        self.fc2 = nn.Linear(hidden_features//2, out_features)

    def forward(self, x, H, W):  # noqa: ANN001, ANN201, N803
        x = self.fc1(x)
        x = self.act(x)
        x = self.sg(x, H, W)
        x = self.fc2(x)
        return x


class OfficialBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False, qk_scale=None, act_layer=nn.GELU,  # noqa: ANN001, ANN204
                 norm_layer=nn.LayerNorm, c_ratio=0.5, layerscale_value=1e-4):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = OfficialRGSA(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, c_ratio=c_ratio)
        mlp_hidden_dim = int(dim * mlp_ratio)
        self.mlp = OfficialMLP(in_features=dim, hidden_features=mlp_hidden_dim, out_features=dim, act_layer=act_layer)
        self.norm2 = norm_layer(dim)
        # HAI
        self.gamma = nn.Parameter(layerscale_value * torch.ones((dim)), requires_grad=True)

    def forward(self, x, x_size):  # noqa: ANN001, ANN201
        H , W = x_size  # noqa: N806
        res = x
        x = x + self.attn(self.norm1(x), H, W)
        x = x + self.mlp(self.norm2(x), H, W)
        # HAI
        x = x + (res * self.gamma)
        return x


def _randomise(module: nn.Module) -> None:
    """Every parameter random (LayerNorm weights around 1), so that no copied weight goes unused unnoticed."""
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if "norm" in name and name.endswith("weight") and p.dim() == 1
                    else 0.3 * torch.randn_like(p))


def _gated_mlp_state(mlp: dict) -> dict:
    """The official ``MLP``'s state (``sg.norm``, ``sg.conv``) under our ``GatedMLP`` names (``norm``, ``conv``)."""
    return {key.replace("sg.", ""): value for key, value in mlp.items()}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("grid", "training"), [((64, 64), True), ((64, 64), False), ((32, 32), True),
                                                ((32, 32), False), ((16, 48), True), ((16, 48), False)])
def test_layer_matches_the_official_rg_sa(impl: str, grid: tuple[int, int], training: bool) -> None:
    """The official rule for ``T`` (``levels=None``) in both modes (64 x 64: T = 2 in both; 32 x 32: 1 in
    training, 2 in evaluation; 16 x 48: 1 and 2), the official state dict loaded as is; outputs and gradients."""
    official = OfficialRGSA(16, num_heads=2, qkv_bias=True).double().train(training)
    _randomise(official)
    layer = RecursiveGeneralizationAttention(16, 2, impl=impl).double().train(training)
    layer.load_state_dict(official.state_dict())
    x = _tensors((2, *grid, 16))[0].requires_grad_()
    ours, theirs = layer(x), official(x.flatten(1, 2), *grid).unflatten(1, grid)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    cotangent = _tensors(ours.shape, seed=1)[0]
    ours_grads = torch.autograd.grad(ours, [x, *layer.parameters()], cotangent)
    theirs_grads = torch.autograd.grad(theirs, [x, *official.parameters()], cotangent)
    for mine, reference in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(mine, reference, atol=1e-10, rtol=0)


def test_hai_block_matches_the_official_block() -> None:
    """RGT's ``Block`` with RG-SA (odd index) and HAI, ``mlp_ratio`` 2 as in the x2 configs, a random ``γ``."""
    official = OfficialBlock(16, 2, mlp_ratio=2.0, qkv_bias=True).double().train()
    _randomise(official)
    block = RGTBlock(16, RecursiveGeneralizationAttention(16, 2), mlp_ratio=2.0).double().train()
    state = official.state_dict()
    mlp = {key[4:]: value for key, value in state.items() if key.startswith("mlp.")}
    block.load_state_dict({**{k: v for k, v in state.items() if not k.startswith("mlp.")},
                           **{f"mlp.{k}": v for k, v in _gated_mlp_state(mlp).items()}})
    x = _tensors((2, 32, 32, 16))[0]
    torch.testing.assert_close(block(x), official(x.flatten(1, 2), (32, 32)).unflatten(1, (32, 32)),
                               atol=1e-12, rtol=0)


def test_hai_with_zero_gamma_is_a_plain_pre_norm_block() -> None:
    torch.manual_seed(0)
    block = RGTBlock(16, RecursiveGeneralizationAttention(16, 2, levels=1), layerscale_value=0.0).double()
    x = _tensors((1, 8, 8, 16))[0]
    y = x + block.attn(block.norm1(x))
    torch.testing.assert_close(block(x), y + block.mlp(block.norm2(y)), atol=1e-12, rtol=0)
    block.gamma.data.fill_(0.5)
    torch.testing.assert_close(block(x), y + block.mlp(block.norm2(y)) + 0.5 * x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("side", [4, 15, 16, 63, 64, 100, 255, 256, 1000, 1024])
def test_official_levels_rule(side: int) -> None:
    """The integer rule equals the official ``int(math.log(H // 4, 4))`` / ``... // 16`` floored at 2."""
    train = max(int(math.log(side // 4, 4)), int(math.log(64 // 4, 4)))
    assert official_levels((side, 64), training=True) == train
    if side >= 16:
        test = max(int(math.log(side // 16, 4)), int(math.log(64 // 16, 4)), 2)
        assert official_levels((side, 64), training=False) == test


def test_official_rule_refuses_maps_where_its_log_is_undefined() -> None:
    with pytest.raises(ValueError, match=r"levels=None \(the official rule\) needs H, W >= 4 in training"):
        official_levels((3, 64), training=True)
    layer = RecursiveGeneralizationAttention(16, 2).eval()
    with pytest.raises(ValueError, match=r"needs H, W >= 16 in evaluation .* got a 8x8 map: pass levels=T"):
        layer(torch.randn(1, 8, 8, 16))


def test_maps_that_do_not_divide_are_zero_padded_per_level() -> None:
    """10 x 13 with one level: the representatives of the map zero-padded to 12 x 16; the official convolution
    would drop the last 2 rows and 1 column instead (equal on divisible maps, the official test above)."""
    torch.manual_seed(0)
    layer = RecursiveGeneralizationAttention(16, 2, levels=1).double()
    x = _tensors((2, 10, 13, 16))[0]
    padded = F.pad(x, (0, 0, 0, 3, 0, 2))
    torch.testing.assert_close(layer.representatives(x), layer.representatives(padded), atol=1e-12, rtol=0)
    assert layer.representatives(x).shape == (2, 3, 4, 8)
    assert layer(x).shape == x.shape


def test_fixed_levels_hold_in_both_modes_and_too_many_are_refused() -> None:
    layer = RecursiveGeneralizationAttention(16, 2, levels=1)
    assert layer.train().recursion_levels((32, 32)) == layer.eval().recursion_levels((32, 32)) == 1
    with pytest.raises(ValueError, match=r"levels=3: with reduction 4 a 7x7 map is one token after 2 levels; "
                                         r"expected levels <= 2"):
        RecursiveGeneralizationAttention(16, 2, levels=3)(torch.randn(1, 7, 7, 16))
    assert RecursiveGeneralizationAttention(16, 2, levels=0).representatives(torch.randn(1, 5, 6, 16)).shape == \
        (1, 5, 6, 8)


def test_bad_input_names_the_argument() -> None:
    q = torch.randn(1, 2, 10, 4)
    with pytest.raises(ValueError, match=r"key has shape \(1, 2, 3, 5\); expected the representative keys"):
        recursive_generalization_attention(q, torch.randn(1, 2, 3, 5), torch.randn(1, 2, 3, 4))
    with pytest.raises(ValueError, match="c_ratio=0.25: the reduced width int"):
        RecursiveGeneralizationAttention(16, 8, c_ratio=0.25)
    with pytest.raises(ValueError, match=r"hidden=15: the gate splits the hidden channels in two halves"):
        RGTBlock(10, nn.Identity(), mlp_ratio=1.5)
    with pytest.raises(TypeError, match=r"mixer='rg_sa': expected an nn.Module"):
        RGTBlock(16, "rg_sa")
