"""attnzoo.quant against torchao (a peer: ``pip install --no-deps torchao==0.18.0``; skipped without it):
int8 symmetric per output channel and int4 asymmetric per group of 32, through torchao's affine primitives
(``choose_qparams_affine`` / ``quantize_affine`` / ``dequantize_affine``) and its ``Int8WeightOnlyConfig``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

torchao = pytest.importorskip("torchao", reason="torchao is not installed (pip install --no-deps torchao==0.18.0)")
from torchao.quantization.quant_primitives import (  # noqa: E402
    MappingType,
    choose_qparams_affine,
    dequantize_affine,
    quantize_affine,
)

from attnzoo.quant import Granularity, UniformQuantizer  # noqa: E402


@pytest.mark.parametrize("mapping, bits, block, ours", [
    (MappingType.SYMMETRIC, 8, (1, 96), UniformQuantizer(8, granularity=Granularity.per_row())),
    (MappingType.ASYMMETRIC, 4, (1, 32), UniformQuantizer(4, symmetric=False, granularity=Granularity.per_group(32))),
], ids=["int8-per-channel", "int4-per-group-32"])
def test_torchao_affine_primitives_give_our_parameters_and_codes(mapping, bits, block, ours) -> None:
    torch.manual_seed(0)
    w = torch.randn(48, 96) * 0.05
    qmin, qmax = (ours.code_min, ours.code_max)
    scale, zero = choose_qparams_affine(w, mapping, block, torch.int32, qmin, qmax, eps=1e-12)
    params = ours.fit(w)
    torch.testing.assert_close(scale.reshape(params.scale.shape), params.scale, rtol=1e-6, atol=0)
    if params.zero_point is not None:
        assert torch.equal(zero.reshape(params.zero_point.shape).float(), params.zero_point)
    codes = quantize_affine(w, block, scale, zero, torch.int32, qmin, qmax)  # symmetric: zero is all 0
    # torchao multiplies by 1 / scale where we divide: the same codes but at rare rounding ties
    assert (codes == ours.encode(w).codes).float().mean() > 0.999
    theirs = dequantize_affine(codes, block, scale, zero, torch.int32, qmin, qmax)
    torch.testing.assert_close(theirs, ours.decode(ours.encode(w)), rtol=0, atol=float(params.scale.max()) * 1.001)


def test_torchao_int8_weight_only_layer_is_as_accurate_as_ours() -> None:
    """torchao's Int8WeightOnlyConfig uses the full range (scale = max|w| / 127.5, codes -128..127); ours the
    restricted one (max|w| / 127): the errors against float agree within 2%."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    torch.manual_seed(1)
    layer = nn.Linear(256, 128)
    theirs = copy.deepcopy(nn.Sequential(layer))
    quantize_(theirs, Int8WeightOnlyConfig())
    x = torch.randn(32, 256)
    with torch.no_grad():
        exact = layer(x)
        ours = nn.functional.linear(x, UniformQuantizer(8, granularity=Granularity.per_row()).quantize(layer.weight),
                                    layer.bias)
        err_ours = float((ours - exact).norm() / exact.norm())
        err_theirs = float((theirs(x) - exact).norm() / exact.norm())
    assert 0 < err_ours < 0.01 and err_theirs == pytest.approx(err_ours, rel=0.02)
