"""Hostile input to every functional op and every layer: wrong-typed flags and scalars, wrong channel counts,
dtypes, ranks and constructor options each raise an error naming the argument, the value and what is expected;
nothing is coerced (``is_causal="False"`` used to mean causal, ``scale="0.5"`` was accepted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from attnzoo.layers.agent import AgentAttention
from attnzoo.layers.base_conv import BaseConv
from attnzoo.layers.halo import HaloAttention
from attnzoo.layers.karat import FourierKArAtAttention
from attnzoo.layers.kernelized import KernelizedRPEAttention
from attnzoo.layers.linear import LightningAttention, LinearAttention
from attnzoo.layers.lmu import LMUMixer
from attnzoo.layers.neighborhood import NeighborhoodAttention1D, NeighborhoodAttention2D, NeighborhoodAttention3D
from attnzoo.layers.sliding_window import ShiftedSparseAttention, SinkFocusedAttention, SlidingWindowAttention
from attnzoo.layers.soft import SoftAttention
from attnzoo.layers.window import WindowAttention2D
from attnzoo.ops.agent.functional import agent_attention
from attnzoo.ops.base_conv.functional import base_conv
from attnzoo.ops.halo.functional import halo_attention
from attnzoo.ops.karat.functional import fourier_karat
from attnzoo.ops.kernelized.functional import kernelized_rpe_attention
from attnzoo.ops.lightning.functional import lightning_attention
from attnzoo.ops.linear.feature_linear import linear_attention
from attnzoo.ops.lmu.functional import lmu_memory
from attnzoo.ops.neighborhood.functional import (
    neighborhood_attention_1d,
    neighborhood_attention_2d,
    neighborhood_attention_3d,
)
from attnzoo.ops.sliding_window.functional import (
    shifted_sparse_attention,
    sink_focused_attention,
    sliding_window_attention,
)
from attnzoo.ops.soft.functional import soft_attention
from attnzoo.ops.window.functional import window_attention_2d
from attnzoo.validation import ArgumentTypeError


def _t(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


def _qkv(*shape: int) -> dict[str, torch.Tensor]:
    return {"query": _t(*shape), "key": _t(*shape), "value": _t(*shape)}


OPS: dict[str, tuple[Callable[..., Any], Callable[[], dict[str, Any]]]] = {
    "neighborhood_attention_1d": (neighborhood_attention_1d, lambda: {**_qkv(1, 2, 8, 4), "kernel_size": 3}),
    "neighborhood_attention_2d": (neighborhood_attention_2d, lambda: {**_qkv(1, 2, 6, 6, 4), "kernel_size": 3}),
    "neighborhood_attention_3d": (neighborhood_attention_3d, lambda: {**_qkv(1, 2, 4, 4, 4, 4), "kernel_size": 3}),
    "halo_attention": (halo_attention, lambda: {**_qkv(1, 2, 8, 8, 4), "block_size": 4, "halo_size": 1}),
    "window_attention_2d": (window_attention_2d, lambda: {**_qkv(1, 2, 8, 8, 4), "window_size": 4}),
    "sliding_window_attention": (sliding_window_attention, lambda: {**_qkv(1, 2, 12, 4), "window": 3}),
    "shifted_sparse_attention": (shifted_sparse_attention, lambda: {**_qkv(1, 2, 12, 4), "group_size": 4}),
    "sink_focused_attention": (sink_focused_attention, lambda: {**_qkv(1, 2, 12, 4), "group_size": 4}),
    "lightning_attention": (lightning_attention, lambda: _qkv(1, 2, 12, 4)),
    "linear_attention": (linear_attention, lambda: _qkv(1, 2, 12, 4)),
    "kernelized_rpe_attention": (kernelized_rpe_attention, lambda: _qkv(1, 2, 12, 4)),
    "soft_attention": (soft_attention, lambda: {"query": _t(1, 2, 12, 4), "value": _t(1, 2, 12, 4),
                                                "landmarks": _t(1, 2, 3, 4)}),
    "agent_attention": (agent_attention, lambda: {**_qkv(1, 2, 12, 4), "agents": _t(1, 2, 3, 4)}),
    "fourier_karat": (fourier_karat, lambda: {**_qkv(1, 2, 6, 4), "cos_coef": _t(2, 2, 6, 3),
                                              "sin_coef": _t(2, 2, 6, 3), "proj": _t(2, 6, 2)}),
    "lmu_memory": (lmu_memory, lambda: {"x": _t(1, 12, 2), "order": 4, "theta": 8.0}),
    "base_conv": (base_conv, lambda: {"x": _t(1, 12, 3), "kernel": _t(3, 2), "proj_weight": _t(3, 3)}),
}

SCALED = ["neighborhood_attention_1d", "neighborhood_attention_2d", "neighborhood_attention_3d", "halo_attention",
          "window_attention_2d", "sliding_window_attention", "shifted_sparse_attention", "sink_focused_attention",
          "soft_attention", "agent_attention", "fourier_karat"]
TYPE, VALUE = ArgumentTypeError, ValueError


def _case(op: str, name: str, value: object, error: type[Exception]) -> tuple[str, dict[str, object], type, str]:
    """A bad value of one argument: the message must start with ``name=repr(value): expected``."""
    import re

    return op, {name: value}, error, rf"{re.escape(name)}={re.escape(repr(value))}: expected"


FLAG_CASES = [
    *(_case(op, "scale", bad, error) for op in SCALED for bad, error in
      (("0.5", TYPE), (torch.tensor(0.5), TYPE), (True, TYPE), (0.0, VALUE), (-1, VALUE), (float("nan"), VALUE))),
    *(_case(op, "is_causal", bad, TYPE) for op in ("sliding_window_attention", "kernelized_rpe_attention",
                                                    "linear_attention", "neighborhood_attention_1d")
      for bad in ("False", None, 1, np.bool_(True))),
    *(_case(op, "normalize", bad, TYPE) for op in ("linear_attention", "kernelized_rpe_attention")
      for bad in ("no", 2, None)),
    *(_case(op, "output_final_state", bad, TYPE) for op in ("linear_attention", "lightning_attention", "lmu_memory")
      for bad in ("yes", 1)),
    *(_case(op, "block_size", bad, error) for op in ("linear_attention", "lightning_attention",
                                                     "kernelized_rpe_attention")
      for bad, error in ((2.0, TYPE), ("64", TYPE), (0, VALUE))),
    _case("halo_attention", "mask_padding", 1, TYPE),
    _case("halo_attention", "stride", 1.5, TYPE),
    _case("halo_attention", "block_size", "4", TYPE),
    _case("base_conv", "use_act", "yes", TYPE),
    _case("soft_attention", "newton_iters", 2.0, TYPE),
    _case("soft_attention", "regularizer", "0.01", TYPE),
    _case("soft_attention", "regularizer", float("inf"), VALUE),
    _case("lmu_memory", "order", 4.0, TYPE),
    _case("lmu_memory", "theta", "8", TYPE),
    _case("lmu_memory", "theta", torch.tensor(8.0), TYPE),
    _case("linear_attention", "eps", "1e-6", TYPE),
    _case("kernelized_rpe_attention", "num_features", 3.0, TYPE),
    _case("kernelized_rpe_attention", "seed", 0.5, TYPE),
    _case("sliding_window_attention", "window", 3.0, TYPE),
    _case("shifted_sparse_attention", "group_size", "4", TYPE),
]


@pytest.mark.parametrize(("op", "override", "error", "match"), FLAG_CASES,
                         ids=[f"{op}-{next(iter(o))}={next(iter(o.values()))!r}" for op, o, _, _ in FLAG_CASES])
def test_op_rejects_bad_flags_and_scalars(op: str, override: dict, error: type, match: str) -> None:
    fn, build = OPS[op]
    with pytest.raises(error, match=match):
        fn(**{**build(), **override})


def test_linear_attention_softmax_kernel_seed_is_checked() -> None:
    fn, build = OPS["linear_attention"]
    with pytest.raises(TYPE, match=r"seed='0': expected an int >= 0"):
        fn(**build(), feature_map="softmax_kernel", seed="0")


def test_type_errors_are_also_value_errors() -> None:
    """Earlier versions raised ``ValueError`` for some wrong-typed flags and ``TypeError`` for others."""
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


# --- layers ----------------------------------------------------------------------------------------------------------

LAYERS: dict[str, tuple[Callable[..., torch.nn.Module], dict[str, Any], tuple[int, ...]]] = {
    "AgentAttention": (AgentAttention, {"dim": 8, "num_heads": 2, "resolution": (4, 4), "agent_num": 4}, (1, 4, 4)),
    "BaseConv": (BaseConv, {"dim": 8}, (1, 6)),
    "FourierKArAtAttention": (FourierKArAtAttention, {"dim": 8, "num_heads": 2, "seq_len": 6}, (1, 6)),
    "HaloAttention": (HaloAttention, {"dim": 8, "num_heads": 2, "block_size": 4, "halo_size": 1}, (1, 8, 8)),
    "KernelizedRPEAttention": (KernelizedRPEAttention, {"dim": 8, "num_heads": 2, "max_len": 16}, (1, 6)),
    "LightningAttention": (LightningAttention, {"dim": 8, "num_heads": 2}, (1, 6)),
    "LinearAttention": (LinearAttention, {"dim": 8, "num_heads": 2}, (1, 6)),
    "LMUMixer": (LMUMixer, {"dim": 8, "memory_size": 4}, (2, 6)),
    "NeighborhoodAttention1D": (NeighborhoodAttention1D, {"dim": 8, "num_heads": 2, "kernel_size": 3}, (1, 6)),
    "NeighborhoodAttention2D": (NeighborhoodAttention2D, {"dim": 8, "num_heads": 2, "kernel_size": 3}, (1, 5, 5)),
    "NeighborhoodAttention3D": (NeighborhoodAttention3D, {"dim": 8, "num_heads": 2, "kernel_size": 3}, (1, 3, 3, 3)),
    "ShiftedSparseAttention": (ShiftedSparseAttention, {"dim": 8, "num_heads": 2, "group_size": 3}, (1, 6)),
    "SinkFocusedAttention": (SinkFocusedAttention, {"dim": 8, "num_heads": 2, "group_size": 3, "num_sink_tokens": 1},
                             (1, 6)),
    "SlidingWindowAttention": (SlidingWindowAttention, {"dim": 8, "num_heads": 2, "window": 3}, (1, 6)),
    "SoftAttention": (SoftAttention, {"dim": 8, "num_heads": 2}, (1, 4, 4)),
    "WindowAttention2D": (WindowAttention2D, {"dim": 8, "num_heads": 2, "window_size": 2}, (1, 4, 4)),
}


def _layer(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    cls, kwargs, grid = LAYERS[name]
    return cls(**kwargs), (*grid, kwargs["dim"])


INPUT_CASES = [
    ("channels", lambda s: torch.randn(*s[:-1], 7), ValueError, r"input has shape .*, 7 channels; expected .*C=8\)"),
    ("dtype", lambda s: torch.randn(*s, dtype=torch.float64), TypeError,
     r"input dtype torch.float64 differs from the layer's parameter dtype torch.float32"),
    ("rank", lambda s: torch.randn(1, *s), ValueError, rf"input has shape .*; expected \d-D \("),
    ("integer", lambda s: torch.zeros(*s, dtype=torch.long), TypeError, r"input dtype torch.int64; expected a floating"),
    ("not a tensor", lambda s: np.zeros(s, dtype=np.float32), TypeError, r"input must be a torch.Tensor"),
]


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize(("what", "make", "error", "match"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_layer_rejects_bad_input(layer: str, what: str, make: Callable, error: type, match: str) -> None:
    module, shape = _layer(layer)
    module(torch.randn(*shape))  # the valid input runs
    with pytest.raises(error, match=match):
        module(make(shape))


@pytest.mark.parametrize("layer", ["SlidingWindowAttention", "ShiftedSparseAttention", "LinearAttention"])
def test_layer_accepts_low_precision_input_under_autocast(layer: str) -> None:
    module, shape = _layer(layer)
    x = torch.randn(*shape, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="differs from the layer's parameter dtype"):
        module(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x).shape == shape


CONSTRUCTOR_CASES = [
    *((layer, {"num_heads": 0}, ValueError, r"num_heads=0: expected an int >= 1")
      for layer, (_, kwargs, _) in LAYERS.items() if "num_heads" in kwargs),
    *((layer, {"dim": 9}, ValueError, r"dim=9 must be divisible by num_heads=2")
      for layer, (_, kwargs, _) in LAYERS.items() if "num_heads" in kwargs),
    *((layer, {"dim": 8.0}, TYPE, r"dim=8.0: expected an int >= 1") for layer in LAYERS),
    ("HaloAttention", {"stride": 1.5}, TYPE, r"stride=1.5: expected an int >= 1"),
    ("HaloAttention", {"stride": 3}, ValueError, r"stride=3: must divide block_size=4"),
    ("HaloAttention", {"mask_padding": "yes"}, TYPE, r"mask_padding='yes': expected a bool"),
    ("NeighborhoodAttention2D", {"kernel_size": 3.0}, TYPE, r"kernel_size=3.0: expected an int"),
    ("NeighborhoodAttention2D", {"is_causal": "no"}, TYPE, r"is_causal='no': expected a bool"),
    ("NeighborhoodAttention1D", {"scale": "0.1"}, TYPE, r"scale='0.1': expected a finite real number"),
    ("WindowAttention2D", {"shift_size": 0.5}, TYPE, r"shift_size=0.5: expected an int"),
    ("LightningAttention", {"block_size": 2.0}, TYPE, r"block_size=2.0: expected an int >= 1"),
    ("LinearAttention", {"is_causal": "False"}, TYPE, r"is_causal='False': expected a bool"),
    ("LinearAttention", {"num_features": 1.5, "feature_map": "softmax_kernel"}, TYPE, r"num_features=1.5"),
    ("LMUMixer", {"theta": "128"}, TYPE, r"theta='128': expected a finite real number > 0"),
    ("LMUMixer", {"memory_size": 0}, ValueError, r"memory_size=0: expected an int >= 1"),
    ("SoftAttention", {"sr_ratio": 2.0}, TYPE, r"sr_ratio=2.0: expected an int >= 1"),
    ("FourierKArAtAttention", {"seq_len": 6.0}, TYPE, r"seq_len=6.0: expected an int >= 1"),
    ("AgentAttention", {"agent_num": 4.0}, TYPE, r"agent_num=4.0: expected an int >= 1"),
    ("AgentAttention", {"resolution": (4, 4.0)}, TYPE, r"resolution=\(4, 4.0\): expected"),
    ("KernelizedRPEAttention", {"max_len": 1.5}, TYPE, r"max_len=1.5: expected an int >= 1"),
    ("BaseConv", {"use_act": 1}, TYPE, r"use_act=1: expected a bool"),
    ("SlidingWindowAttention", {"qkv_bias": "no"}, TYPE, r"qkv_bias='no': expected a bool"),
]


@pytest.mark.parametrize(("layer", "override", "error", "match"), CONSTRUCTOR_CASES,
                         ids=[f"{c[0]}-{next(iter(c[1]))}" for c in CONSTRUCTOR_CASES])
def test_layer_rejects_bad_options(layer: str, override: dict, error: type, match: str) -> None:
    cls, kwargs, _ = LAYERS[layer]
    with pytest.raises(error, match=match):
        cls(**{**kwargs, **override})
