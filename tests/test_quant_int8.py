"""attnzoo.quant.int8: torch's CPU int8 kernels give the exact integer product, and the W8A8 / weight-only
layers equal the fake-quantized float computation up to float32 rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.quant import Granularity, Int8Linear, UniformQuantizer, int8_linear, weight_only_int8_linear
from attnzoo.quant.int8 import quantize_int8_rows

ROWS = UniformQuantizer(8, granularity=Granularity.per_row())


@pytest.mark.parametrize("m, k, n", [(1, 7, 5), (33, 384, 96), (4, 100, 17)])
def test_int_mm_is_the_exact_integer_product_and_w8a8_equals_fake_quantization(m, k, n) -> None:
    torch.manual_seed(m + k + n)
    x, w, b = torch.randn(m, k), torch.randn(n, k) * 0.1, torch.randn(n)
    codes, scale = quantize_int8_rows(w)
    x_codes, _ = quantize_int8_rows(x)
    assert torch.equal(torch._int_mm(x_codes, codes.t()).long(), x_codes.long() @ codes.long().t())
    y = int8_linear(x, codes, scale, b)
    reference = F.linear(ROWS.quantize(x).double(), ROWS.quantize(w).double(), b.double())
    torch.testing.assert_close(y.double(), reference, rtol=1e-5, atol=1e-5)
    y16 = weight_only_int8_linear(x, codes, scale, b)
    torch.testing.assert_close(y16.double(), F.linear(x.double(), ROWS.quantize(w).double(), b.double()),
                               rtol=1e-5, atol=1e-4)


def test_int8_linear_layer_is_close_to_float_and_checks_its_input() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    x = torch.randn(2, 9, 64)
    for mode in ("dynamic", "weight_only"):
        layer = Int8Linear.from_linear(linear, mode)
        out = layer(x)
        assert out.shape == (2, 9, 32)
        assert (out - linear(x)).abs().max() < 0.02 * linear(x).abs().max()
    with pytest.raises(ValueError, match=r"last axis must be in_features = 64"):
        layer(torch.randn(3, 63))
    with pytest.raises(ValueError, match="mode='int4'"):
        Int8Linear.from_linear(linear, "int4")
    with pytest.raises(ValueError, match="expected int8"):
        int8_linear(x, torch.zeros(32, 64), torch.ones(32))
    with pytest.raises(TypeError, match="x.dtype=torch.float64"):
        weight_only_int8_linear(x.double(), *quantize_int8_rows(linear.weight.detach()))
