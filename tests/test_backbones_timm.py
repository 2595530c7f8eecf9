"""The backbones against timm 1.0.31 where timm has the architecture: timm's own classes (loaded from the installed
source by ``tests/timm_source.py``, as ``import timm`` needs torchvision), built from the same config, the weights
copied into ours, equal outputs and input gradients in float64.

Compared: a whole DaViT stage (``DaVitStage``: downsampling, spatial and channel blocks), a whole GC ViT stage
(``GlobalContextVitStage``: ``Downsample2d``, the stage's global query generator ``FeatureBlock``, local and
global blocks), ConViT's two block kinds (``Block`` with GPSA and with MHSA), and the whole models: timm's
``DaVit``, ``GlobalContextVit`` and ``SHViT`` with their stride-4 (SHViT: 16) stems replaced by our stride-2 one
(the scaling our models make; everything else timm's, heads included) and ``ConVit`` unchanged at our 28x28
configuration. timm 1.0.31 has no VAN: VAN's block is compared with the official ``models/van.py`` ``Block``,
transcribed.

Not compared, and why: HaloNet as a whole or by block (timm builds it in ``byoanet`` through ``byobnet``'s config
interpreter, ``ByobNet`` with ``ByoModelCfg``/``ByoBlockCfg``, and its ``SelfAttnBlock`` makes every convolution
through ``LayerFn`` = ``ConvNormAct`` -> ``create_conv2d`` (padding, mixed and cond convolutions) and
``BatchNormAct2d`` from the ``create_norm_act`` registry: a chain of about ten timm modules whose relative
imports would each have to be stood in for; the halo layer itself is compared with timm's ``HaloAttn`` in
``tests/test_halo.py``); DHVT, SG-Former and VAN (not in timm 1.0.31).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from timm_source import load_timm, to_2tuple
from torch import nn

import attnzoo


def _seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _randomise(module: nn.Module, seed: int = 0) -> None:
    """Every parameter (norm weights and biases included) redrawn, so no zero-init hides a mismatch."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


def _assert_same_function(ours: nn.Module, theirs: nn.Module, x: torch.Tensor, *, to_ours=_same, from_ours=_same,
                          atol: float = 1e-10) -> None:
    """Equal outputs, and equal gradients of the input, for ``theirs(x)`` and ``from_ours(ours(to_ours(x)))``."""
    x_theirs = x.clone().requires_grad_()
    x_ours = x.clone().requires_grad_()
    expected, actual = theirs(x_theirs), from_ours(ours(to_ours(x_ours)))
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)
    cotangent = _seeded(*expected.shape, seed=7)
    (g_theirs,) = torch.autograd.grad(expected, x_theirs, cotangent)
    (g_ours,) = torch.autograd.grad(actual, x_ours, cotangent)
    torch.testing.assert_close(g_ours, g_theirs, atol=atol, rtol=0)


def _timm_layers() -> dict:
    helpers = load_timm("layers/helpers.py", ["make_divisible"])
    mlp = load_timm("layers/mlp.py", ["Mlp"], {"to_2tuple": to_2tuple, "partial": partial})
    norm = load_timm("layers/norm.py", ["LayerNorm2d"], {"is_fast_norm": lambda: False, "fast_layer_norm": None})
    return {**helpers, **mlp, **norm}


# ---- DaViT ------------------------------------------------------------------------------------------------------

def test_davit_stage_matches_timm_davit_stage() -> None:
    """timm ``DaVitStage(64 -> 96, depth 2, 3 heads, window 7)`` on a 2-image 13 x 13 map (odd: the downsampling
    pads, the 7x7 grid is one window); timm's state dict loads into ours unchanged (strict: same names)."""
    layers = _timm_layers()
    ns = load_timm("models/davit.py", ["ConvPosEnc", "Downsample", "ChannelAttentionV2", "ChannelAttention",
                                       "ChannelBlock", "window_partition", "window_reverse", "WindowAttention",
                                       "SpatialBlock", "DaVitStage"],
                   {"to_2tuple": to_2tuple, "use_fused_attn": lambda: False, "Mlp": layers["Mlp"],
                    "LayerNorm2d": layers["LayerNorm2d"], "DropPath": None, "checkpoint_seq": None})
    theirs = ns["DaVitStage"](64, 96, depth=2, downsample=True, num_heads=3, window_size=7, mlp_ratio=4.0,
                              qkv_bias=True, norm_layer=partial(layers["LayerNorm2d"], eps=1e-5)).double()
    from attnzoo.models.backbones.davit import DaViTStage

    ours = DaViTStage(64, 96, 2, 3, (7, 7), 4.0, downsample=True).double()
    _randomise(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    _assert_same_function(ours, theirs, _seeded(2, 64, 13, 13))


def test_davit_spatial_block_matches_timm_on_several_windows() -> None:
    """A spatial block over a 14 x 10 map in 7 x 7 windows (padded to 14 x 14) and a channel block."""
    layers = _timm_layers()
    ns = load_timm("models/davit.py", ["ConvPosEnc", "ChannelAttentionV2", "ChannelAttention", "ChannelBlock",
                                       "window_partition", "window_reverse", "WindowAttention", "SpatialBlock"],
                   {"to_2tuple": to_2tuple, "use_fused_attn": lambda: False, "Mlp": layers["Mlp"], "DropPath": None})
    model = attnzoo.create_model("davit", dims=(32,), depths=(1,), num_heads=(4,))
    spatial, channel = (m.double() for m in model.stages[0].blocks[0])
    for ours, theirs in ((spatial, ns["SpatialBlock"](32, 4, window_size=7, qkv_bias=True)),
                         (channel, ns["ChannelBlock"](32, 4, qkv_bias=True))):
        theirs.double()
        _randomise(theirs, seed=3)
        ours.load_state_dict(theirs.state_dict(), strict=True)
        _assert_same_function(ours, theirs, _seeded(2, 32, 14, 10))


# ---- GC ViT -----------------------------------------------------------------------------------------------------

def _timm_gcvit_stage_namespace() -> dict:
    layers = _timm_layers()
    se = load_timm("layers/squeeze_excite.py", ["SEModule"],
                   {"make_divisible": layers["make_divisible"],
                    "create_act_layer": lambda layer, inplace=False: nn.Sigmoid() if layer == "sigmoid" else layer()})
    grid = load_timm("layers/grid.py", ["ndgrid"])
    rel = load_timm("layers/pos_embed_rel.py", ["gen_relative_position_index", "RelPosBias"],
                    {"ndgrid": grid["ndgrid"], "to_2tuple": to_2tuple, "trunc_normal_": nn.init.trunc_normal_})
    return load_timm("models/gcvit.py", ["MbConvBlock", "Downsample2d", "FeatureBlock", "WindowAttentionGlobal",
                                         "window_partition", "window_reverse", "GlobalContextVitBlock",
                                         "GlobalContextVitStage"],
                     {"get_attn": lambda name: se["SEModule"], "RelPosBias": rel["RelPosBias"], "math": math,
                      "partial": partial, "to_2tuple": to_2tuple, "_assert": torch._assert, "Mlp": layers["Mlp"],
                      "LayerNorm2d": layers["LayerNorm2d"], "LayerScale": None, "DropPath": None,
                      "checkpoint": None})


def _mbconv_into_feat_extract(prefix: str, theirs: dict, target: str, ours: dict) -> None:
    """timm ``MbConvBlock`` (conv_dw, se.fc1 / fc2 1x1 convs, conv_pw) -> our ``FeatExtract.conv`` (0, 2.fc.0,
    2.fc.2 linears, 3)."""
    ours[f"{target}.conv.0.weight"] = theirs[f"{prefix}.conv_dw.weight"]
    ours[f"{target}.conv.2.fc.0.weight"] = theirs[f"{prefix}.se.fc1.weight"].flatten(1)
    ours[f"{target}.conv.2.fc.2.weight"] = theirs[f"{prefix}.se.fc2.weight"].flatten(1)
    ours[f"{target}.conv.3.weight"] = theirs[f"{prefix}.conv_pw.weight"]


def _gcvit_state(theirs: dict, depth: int, window: int, heads: int) -> dict:
    """timm ``GlobalContextVitStage`` state dict -> our ``GCViTStage``'s (the bias tables re-indexed ``key -
    query``; the stage's one generator lives in its first global block)."""
    ours: dict = {}
    if "downsample.norm1.weight" in theirs:  # not in a first stage
        for key in ("norm1.weight", "norm1.bias", "reduction.weight", "norm2.weight", "norm2.bias"):
            ours[f"downsample.{key}"] = theirs[f"downsample.{key}"]
        _mbconv_into_feat_extract("downsample.conv_block", theirs, "downsample.conv_block", ours)
    generator_blocks = sorted({k.split(".")[2] for k in theirs if k.startswith("global_block.blocks.conv")})
    for i, name in enumerate(generator_blocks):
        _mbconv_into_feat_extract(f"global_block.blocks.{name}", theirs, f"blocks.1.attn.generator.blocks.{i}", ours)
    for j in range(depth):
        for key in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                    "mlp.fc2.weight", "mlp.fc2.bias", "attn.proj.weight", "attn.proj.bias"):
            ours[f"blocks.{j}.{key}"] = theirs[f"blocks.{j}.{key}"]
        qkv = "kv" if j % 2 else "qkv"
        ours[f"blocks.{j}.attn.{qkv}.weight"] = theirs[f"blocks.{j}.attn.qkv.weight"]
        ours[f"blocks.{j}.attn.{qkv}.bias"] = theirs[f"blocks.{j}.attn.qkv.bias"]
        table = theirs[f"blocks.{j}.attn.rel_pos.relative_position_bias_table"]
        ours[f"blocks.{j}.attn.rpb"] = table.T.reshape(heads, 2 * window - 1, 2 * window - 1).flip(1, 2)
        if j % 2 and j > 1:  # the shared generator appears under every global block
            for key in [k for k in ours if k.startswith("blocks.1.attn.generator.")]:
                ours[key.replace("blocks.1.", f"blocks.{j}.", 1)] = ours[key]
    return ours


def test_gcvit_stage_matches_timm_global_context_vit_stage() -> None:
    """timm ``GlobalContextVitStage(32 -> 64, depth 4, 2 heads, 7 x 7 windows)`` on 2 images of 28 x 28 (14 x 14
    after the downsampler: 4 windows, one pooling step of the global query generator shared by blocks 1 and 3)."""
    ns = _timm_gcvit_stage_namespace()
    layers = _timm_layers()
    theirs = ns["GlobalContextVitStage"](32, depth=4, num_heads=2, feat_size=(28, 28), window_size=(7, 7),
                                         downsample=True, mlp_ratio=3.0, qkv_bias=True,
                                         norm_layer=partial(layers["LayerNorm2d"], eps=1e-5),
                                         norm_layer_cl=partial(nn.LayerNorm, eps=1e-5)).double()
    from attnzoo.models.backbones.gcvit import GCViTStage

    ours = GCViTStage(32, 64, 4, 2, (14, 14), (7, 7), 3.0, downsample=True).double()
    _randomise(theirs, seed=5)
    missing, unexpected = ours.load_state_dict(_gcvit_state(theirs.state_dict(), 4, 7, 2), strict=False)
    assert not unexpected and not missing
    _assert_same_function(ours, theirs, _seeded(2, 32, 28, 28))


# ---- ConViT -----------------------------------------------------------------------------------------------------

def _timm_convit() -> dict:
    layers = _timm_layers()
    return load_timm("models/convit.py", ["GPSA", "MHSA", "Block"],
                     {"Mlp": layers["Mlp"], "LayerNorm": partial(nn.LayerNorm, eps=1e-6), "DropPath": None,
                      "trunc_normal_": nn.init.trunc_normal_})


def test_convit_blocks_match_timm_blocks() -> None:
    """timm ConViT ``Block(use_gpsa=True)`` on the 7 x 7 patch grid (ours takes it as ``(B, 7, 7, C)``; timm's
    ``pos_proj`` bias, a per-head logit constant, is dropped by ours) and ``Block(use_gpsa=False)`` on the 50
    tokens with the class token."""
    ns = _timm_convit()
    model = attnzoo.create_model("convit", dim=32, depth=2, num_heads=4, local_up_to_layer=1).double()
    gpsa_block, mhsa_block = model.blocks
    theirs = ns["Block"](32, 4, qkv_bias=False, use_gpsa=True).double()
    _randomise(theirs, seed=1)
    state = dict(theirs.state_dict())
    state["attn.pos_weight"] = state.pop("attn.pos_proj.weight")
    state.pop("attn.pos_proj.bias")
    gpsa_block.load_state_dict(state, strict=True)
    _assert_same_function(gpsa_block, theirs, _seeded(2, 49, 32), to_ours=lambda t: t.unflatten(1, (7, 7)),
                          from_ours=lambda t: t.flatten(1, 2), atol=1e-9)
    theirs = ns["Block"](32, 4, qkv_bias=False, use_gpsa=False).double()
    _randomise(theirs, seed=2)
    mhsa_block.load_state_dict(theirs.state_dict(), strict=True)
    _assert_same_function(mhsa_block, theirs, _seeded(2, 50, 32))


# ---- VAN: timm 1.0.31 has no VAN; the official code, transcribed ----------------------------------------------------

class OfficialVANMlp(nn.Module):
    """``Mlp`` (with ``DWConv``) of Visual-Attention-Network/VAN-Classification ``models/van.py`` (commit
    72e17fdbc8695b8f0901a64d4109a111010b8950), line for line without dropout and init."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1)
        self.dwconv = nn.Module()
        self.dwconv.dwconv = nn.Conv2d(hidden_features, hidden_features, 3, 1, 1, bias=True, groups=hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_features, in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        x = self.dwconv.dwconv(x)
        x = self.act(x)
        return self.fc2(x)


class OfficialVANBlock(nn.Module):
    """``Block`` of the official ``models/van.py``, line for line without drop path and init (its
    ``SpatialAttention`` is ``tests/test_lka.py``'s transcription)."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        from test_lka import OfficialSpatialAttention

        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = OfficialSpatialAttention(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = OfficialVANMlp(dim, int(dim * mlp_ratio))
        self.layer_scale_1 = nn.Parameter(1e-2 * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(1e-2 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_1.unsqueeze(-1).unsqueeze(-1) * self.attn(self.norm1(x))
        return x + self.layer_scale_2.unsqueeze(-1).unsqueeze(-1) * self.mlp(self.norm2(x))


def test_van_block_matches_the_official_block() -> None:
    """Our VAN's first block against the official ``Block`` (the ``mlp.dwconv.dwconv`` name flattened to
    ``mlp.dwconv``), random weights and layer scales, in training mode (batch statistics, running statistics
    updated alike) and then in eval mode."""
    model = attnzoo.create_model("van", dims=(16,), depths=(1,), mlp_ratios=(8.0,)).double()
    ours, theirs = model.blocks[0][0], OfficialVANBlock(16, 8.0).double()
    _randomise(theirs, seed=4)
    state = {k.replace("mlp.dwconv.dwconv.", "mlp.dwconv."): v for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    _assert_same_function(ours, theirs, _seeded(3, 16, 9, 11))
    torch.testing.assert_close(ours.norm1.running_mean, theirs.norm1.running_mean, atol=1e-12, rtol=0)
    ours.eval()
    theirs.eval()
    _assert_same_function(ours, theirs, _seeded(3, 16, 9, 11, seed=2))


# ---- whole models: timm's model classes, built from the same config, equal logits --------------------------------

def _timm_model_helpers() -> dict:
    """timm's classifier heads (``NormMlpClassifierHead``, ``ClassifierHead`` with ``SelectAdaptivePool2d``), its
    ``calculate_drop_path_rates`` and ``get_norm_layer`` for the two names the models use."""
    import ast
    from enum import Enum

    from timm_source import timm_file

    layers = _timm_layers()
    pool_defs = [node.name for node in ast.parse(timm_file("layers/adaptive_avgmax_pool.py")).body
                 if isinstance(node, (ast.ClassDef, ast.FunctionDef))]
    fmt = load_timm("layers/format.py", ["Format", "get_spatial_dim", "get_channel_dim", "nchw_to"], {"Enum": Enum})
    pool = load_timm("layers/adaptive_avgmax_pool.py", pool_defs, {**fmt, "_int_tuple_2_t": object})

    def get_norm_layer(layer):  # noqa: ANN001, ANN202 - timm.layers.create_norm.get_norm_layer for these names
        return {"layernorm2d": layers["LayerNorm2d"], "layernorm": nn.LayerNorm}.get(layer, layer)

    heads = load_timm("layers/classifier.py", ["_create_pool", "_create_fc", "create_classifier", "ClassifierHead",
                                               "NormMlpClassifierHead"],
                      {"SelectAdaptivePool2d": pool["SelectAdaptivePool2d"], "get_norm_layer": get_norm_layer,
                       "get_act_layer": lambda name: {"tanh": nn.Tanh, "gelu": nn.GELU}[name], "partial": partial})
    drop = load_timm("layers/drop.py", ["calculate_drop_path_rates"], {"List": list})
    return {**layers, **fmt, **heads, **drop, "get_norm_layer": get_norm_layer}


def _stem(in_channels: int, dim: int, norm: nn.Module | None = None) -> nn.Module:
    """Our scaled stem (3x3 stride-2 convolution, then ``norm`` if given) under timm's names ``conv``/``norm``."""
    conv = nn.Conv2d(in_channels, dim, 3, stride=2, padding=1)
    if norm is None:
        return conv
    stem = nn.Sequential()
    stem.add_module("conv", conv)
    stem.add_module("norm", norm)
    return stem


def test_whole_davit_matches_timm_davit() -> None:
    """timm's ``DaVit`` class (3 stages of widths 16/32/64, depths 1/1/2, heads 1/2/4, window 7, 1 channel, 10
    classes) with its stem replaced by ours, the one scaling our DaViT makes (timm's ``Stem`` is a 7x7 stride-4
    convolution and asserts stride 4; ours a 3x3 stride-2 one, same LayerNorm2d) and every other module timm's:
    stages, ``NormMlpClassifierHead``; equal logits and input gradients. At 56x56 (grids 28, 14, 7: multiples of
    the window) rather than 28x28: there the last grid is 4x4, which ours attends as one 4x4 window while timm pads
    it to 7x7 and lets the queries attend to the zero padding (timm does not mask it)."""
    helpers = _timm_model_helpers()
    ns = load_timm("models/davit.py", ["ConvPosEnc", "Stem", "Downsample", "ChannelAttentionV2", "ChannelAttention",
                                       "ChannelBlock", "window_partition", "window_reverse", "WindowAttention",
                                       "SpatialBlock", "DaVitStage", "DaVit"],
                   {**helpers, "to_2tuple": to_2tuple, "use_fused_attn": lambda: False, "DropPath": None,
                    "checkpoint": None, "checkpoint_seq": None, "trunc_normal_": nn.init.trunc_normal_})
    theirs = ns["DaVit"](in_chans=1, depths=(1, 1, 2), embed_dims=(16, 32, 64), num_heads=(1, 2, 4), window_size=7,
                         num_classes=10)
    assert type(theirs.stem).__name__ == "Stem" and theirs.stem.conv.stride == (4, 4)
    theirs.stem = _stem(1, 16, helpers["LayerNorm2d"](16, eps=1e-5))
    theirs.double()
    ours = attnzoo.create_model("davit", image_size=56, dims=(16, 32, 64), depths=(1, 1, 2),
                                num_heads=(1, 2, 4)).double()
    _randomise(theirs, seed=11)
    state = {key.replace("head.norm.", "norm.").replace("head.fc.", "head."): value
             for key, value in theirs.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    _assert_same_function(ours, theirs, _seeded(2, 1, 56, 56), atol=1e-9)


def test_whole_gcvit_matches_timm_global_context_vit() -> None:
    """timm's ``GlobalContextVit`` (embed 32, depths 2/2/2, heads 2/4/8, window 7, MLP ratio 3, 1 channel, 10
    classes) with its stem replaced by ours (timm's ``Stem`` is the 3x3 stride-2 convolution *and* a
    ``Downsample2d``, stride 4; ours only the convolution): timm's stages (local / global blocks, global query
    generators, the last stage's norm) and ``ClassifierHead``; equal logits and input gradients. timm sizes its
    stages from ``img_size // 4``, so it is built for 112 to match our stride-2 stem on 56x56 images (grids 28, 14,
    7: the generator pools twice, once, not at all). Widths from 32: timm's ``SEModule`` rounds its hidden width
    up to a multiple of 8 (``make_divisible``), the official code and ours take ``int(C / 4)``, equal from 32."""
    helpers = _timm_model_helpers()
    ns = load_timm("models/gcvit.py", ["Stem", "GlobalContextVit"],
                   {**_timm_gcvit_stage_namespace(), **helpers, "get_act_layer": lambda name: nn.GELU,
                    "to_ntuple": lambda n: lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x,) * n,
                    "named_apply": None})
    depths, heads = (2, 2, 2), (2, 4, 8)
    theirs = ns["GlobalContextVit"](in_chans=1, num_classes=10, img_size=112, window_size=7, embed_dim=32,
                                    depths=depths, num_heads=heads, mlp_ratio=3.0)
    assert type(theirs.stem).__name__ == "Stem"
    theirs.stem = _stem(1, 32)
    theirs.double()
    ours = attnzoo.create_model("gcvit", image_size=56, dims=(32, 64, 128), depths=depths, num_heads=heads).double()
    _randomise(theirs, seed=5)
    timm_state = theirs.state_dict()
    state = {f"stem.{key}": value for key, value in theirs.stem.state_dict().items()}
    for i, (depth, num_heads) in enumerate(zip(depths, heads)):
        prefix = f"stages.{i}."
        stage = {key[len(prefix):]: value for key, value in timm_state.items() if key.startswith(prefix)}
        state.update({prefix + key: value for key, value in _gcvit_state(stage, depth, 7, num_heads).items()})
    for ours_key, timm_key in (("norm", "stages.2.norm"), ("head", "head.fc")):
        state.update({f"{ours_key}.{p}": timm_state[f"{timm_key}.{p}"] for p in ("weight", "bias")})
    ours.load_state_dict(state, strict=True)
    _assert_same_function(ours, theirs, _seeded(2, 1, 56, 56), atol=1e-9)


def test_whole_convit_matches_timm_convit() -> None:
    """timm's ``ConVit`` at our own 28x28 configuration (patch 4: a 7x7 grid; width 32 = 8 per head x 4 heads;
    depth 3, the first 2 GPSA), every module timm's (``PatchEmbed``, position embedding, class token joining at
    block 2, blocks, norm, head on the class token): equal logits and input gradients. The position embedding is
    ``(1, 49, C)`` in timm and ``(1, 7, 7, C)`` in ours; timm's ``pos_proj`` bias, a per-head constant added to
    every logit of the head (softmax-invariant), has no counterpart in ours."""
    import math

    helpers = _timm_model_helpers()
    patch = load_timm("layers/patch_embed.py", ["PatchEmbed"],
                      {**helpers, "to_2tuple": to_2tuple, "_assert": torch._assert, "math": math,
                       "resample_patch_embed": None})
    ns = load_timm("models/convit.py", ["ConVit"],
                   {**_timm_convit(), **helpers, "PatchEmbed": patch["PatchEmbed"], "HybridEmbed": None,
                    "Any": object, "LayerNorm": partial(nn.LayerNorm, eps=1e-6),
                    "trunc_normal_": nn.init.trunc_normal_})
    theirs = ns["ConVit"](img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=8, depth=3, num_heads=4,
                          local_up_to_layer=2).double()
    ours = attnzoo.create_model("convit", dim=32, depth=3, num_heads=4, local_up_to_layer=2).double()
    _randomise(theirs, seed=9)
    state = dict(theirs.state_dict())
    state["pos_embed"] = state["pos_embed"].unflatten(1, (7, 7))
    for i in range(2):
        state[f"blocks.{i}.attn.pos_weight"] = state.pop(f"blocks.{i}.attn.pos_proj.weight")
        state.pop(f"blocks.{i}.attn.pos_proj.bias")
    ours.load_state_dict(state, strict=True)
    _assert_same_function(ours, theirs, _seeded(2, 1, 28, 28), atol=1e-9)


def _shvit_state(theirs: dict, stages: int) -> dict:
    """timm ``SHViT`` state dict -> ours: the downsampler ``stages.i.downsample.0-4`` is our ``stages.i.0`` (two
    residuals), ``.1`` (PatchMerging, its SE ``fc1``/``fc2`` our ``conv_reduce``/``conv_expand``) and ``.2``;
    ``stages.i.blocks.j`` follows at ``stages.i.(j + 3)`` (``j`` in the first stage, which has no downsampler); the
    attention's parameters sit one level deeper in ours (``mixer.m.layer``); ``head.bn``/``head.l`` are ``head.0``
    and ``head.1``."""
    downsample = {"0": "0.0", "1": "0.1", "2": "1", "3": "2.0", "4": "2.1"}
    ours = {}
    for key, value in theirs.items():
        key = key.replace("head.bn.", "head.0.").replace("head.l.", "head.1.").replace(".se.fc1.", ".se.conv_reduce.")
        key = key.replace(".se.fc2.", ".se.conv_expand.").replace(".mixer.m.", ".mixer.m.layer.")
        parts = key.split(".")
        if parts[0] == "stages" and parts[2] == "downsample":
            key = ".".join(["stages", parts[1], downsample[parts[3]], *parts[4:]])
        elif parts[0] == "stages" and parts[2] == "blocks":
            key = ".".join(["stages", parts[1], str(int(parts[3]) + (3 if int(parts[1]) else 0)), *parts[4:]])
        ours[key] = value
    return ours


def test_whole_shvit_matches_timm_shvit() -> None:
    """timm's ``SHViT`` (widths 32/64/96, depths 1/2/1, attended channels 8/16/24, qk 16, stage types i/s/s as
    every SHViT config's first stage, 1 channel, 10 classes) with its patchify stem (four stride-2 Conv-BNs,
    stride 16) replaced by ours built from timm's own ``Conv2dNorm`` (stride-2 then stride-1 3x3 Conv-BN with a
    ReLU between: stages at 14, 7, 4 on 28x28); everything else timm's (downsamplers with ``PatchMerging`` and
    ``SqueezeExcite``, ``BasicBlock`` s with ``SHSA``'s ``GroupNorm1``, the ``NormLinear`` head); equal logits and
    input gradients, in training mode (batch statistics) and in eval mode (the running statistics both updated)."""
    layers = _timm_layers()
    se = load_timm("layers/squeeze_excite.py", ["SEModule"],
                   {"make_divisible": layers["make_divisible"],
                    "create_act_layer": lambda layer, inplace=False: nn.Sigmoid() if layer == "sigmoid" else layer()})
    norm = load_timm("layers/norm.py", ["GroupNorm1"], {"is_fast_norm": lambda: False, "fast_group_norm": None})
    helpers = _timm_model_helpers()
    ns = load_timm("models/shvit.py", ["Residual", "Conv2dNorm", "NormLinear", "PatchMerging", "FFN", "SHSA",
                                       "BasicBlock", "StageBlock", "SHViT"],
                   {**helpers, "SqueezeExcite": se["SEModule"], "GroupNorm1": norm["GroupNorm1"],
                    "trunc_normal_": nn.init.trunc_normal_, "checkpoint_seq": None, "LayerType": object,
                    "Set": set, "Dict": dict, "Any": object})
    dims, depths, partial_dims, types = (32, 64, 96), (1, 2, 1), (8, 16, 24), ("i", "s", "s")
    theirs = ns["SHViT"](in_chans=1, num_classes=10, embed_dim=dims, partial_dim=partial_dims, qk_dim=(16, 16, 16),
                         depth=depths, types=types)
    assert len(theirs.patch_embed) == 7
    conv = ns["Conv2dNorm"]
    theirs.patch_embed = nn.Sequential(conv(1, 16, 3, 2, 1), nn.ReLU(), conv(16, 32, 3, 1, 1))
    theirs.double()
    ours = attnzoo.create_model("shvit", dims=dims, depths=depths, types=types, partial_dims=partial_dims,
                                qk_dim=16).double()
    _randomise(theirs, seed=6)
    ours.load_state_dict(_shvit_state(theirs.state_dict(), 3), strict=True)
    _assert_same_function(ours, theirs, _seeded(4, 1, 28, 28), atol=1e-9)
    ours.eval()
    theirs.eval()
    _assert_same_function(ours, theirs, _seeded(4, 1, 28, 28, seed=3), atol=1e-9)
