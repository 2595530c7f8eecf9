"""attnzoo.quant packing and packed storage: round trips and exact byte counts for every width, base-3 ternary,
PackedLinear equal to the fake-quantized layer bit for bit, and the bytes a packed model reports."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attnzoo.quant import (
    FloatQuantizer,
    Granularity,
    PackedLinear,
    QuantLinear,
    TernaryQuantizer,
    UniformQuantizer,
    pack,
    storage_bytes,
    weight_only,
)
from attnzoo.quant.packing import pack_base3, pack_codes, packed_bytes, unpack_base3, unpack_codes


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([1, 2, 4, 8, 16]), st.data())
def test_pack_round_trips_with_exact_bytes(width, data) -> None:
    codes = data.draw(st.lists(st.integers(0, 2 ** width - 1), min_size=0, max_size=300))
    t = torch.tensor(codes, dtype=torch.int32)
    packed = pack_codes(t, width)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(len(codes) * width / 8)
    assert packed.numel() == packed_bytes(len(codes), width)
    assert unpack_codes(packed, width, len(codes)).tolist() == codes


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=0, max_size=300))
def test_base3_packs_five_ternary_codes_per_byte(codes) -> None:
    packed = pack_base3(torch.tensor(codes, dtype=torch.int32))
    assert packed.numel() == math.ceil(len(codes) / 5)
    assert unpack_base3(packed, len(codes)).tolist() == codes


def test_int4_layout_is_low_nibble_first() -> None:
    assert pack_codes(torch.tensor([1, 2, 15, 0, 7]), 4).tolist() == [0x21, 0x0F, 0x07]


def test_packing_errors() -> None:
    with pytest.raises(ValueError, match=r"codes range over \[0, 16\]; expected integers in \[0, 15\]"):
        pack_codes(torch.tensor([0, 16]), 4)
    with pytest.raises(ValueError, match="width=3"):
        pack_codes(torch.tensor([0]), 3)
    with pytest.raises(TypeError, match="integer torch.Tensor"):
        pack_codes(torch.tensor([0.5]), 8)
    with pytest.raises(ValueError, match="expected a flat uint8 tensor of 2 bytes for 4 codes of 4 bits"):
        unpack_codes(torch.zeros(3, dtype=torch.uint8), 4, 4)


FORMATS = [(UniformQuantizer(8, granularity=Granularity.per_row()), 1.0),
           (UniformQuantizer(4, symmetric=False, granularity=Granularity.per_group(16)), 0.5),
           (UniformQuantizer(3, granularity=Granularity.per_row()), 0.5),  # 3-bit codes in 4-bit containers
           (FloatQuantizer(4, exponent_bits=2, granularity=Granularity.per_row()), 0.5),
           (FloatQuantizer(8, exponent_bits=4), 1.0),
           (TernaryQuantizer("absmedian"), 0.25),
           (UniformQuantizer(12), 2.0)]


@pytest.mark.parametrize("quantizer, bytes_per_weight", FORMATS, ids=lambda v: repr(v)[:40])
def test_packed_linear_equals_the_fake_quantized_layer_and_reports_its_bytes(quantizer, bytes_per_weight) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    fake = QuantLinear.from_module(linear, weight_quantizer=quantizer)
    packed = PackedLinear.from_quant_linear(fake)
    x = torch.randn(5, 64)
    assert torch.equal(packed(x), fake(x))
    assert torch.equal(packed.codes(), fake.encode_weight().codes)
    sizes = packed.nbytes()
    assert sizes["codes"] == 64 * 48 * bytes_per_weight
    assert sizes["params"] == sum(t.numel() * 4 for t in (packed.scale, packed.zero_point) if t is not None)
    assert sizes["bias"] == 48 * 4 and sizes["total"] == sum(v for k, v in sizes.items() if k != "total")


def test_base3_ternary_storage_and_a_packed_models_bytes() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(100, 60, bias=False), nn.ReLU(), nn.Linear(60, 10))
    q = weight_only(TernaryQuantizer(), pattern="0", skip=[])
    from attnzoo.quant import quantize
    quantized = quantize(model, q)
    x = torch.randn(3, 100)
    for base3, code_bytes in ((False, 100 * 60 // 4), (True, 100 * 60 // 5)):
        packed = pack(quantized, ternary_base3=base3)
        assert torch.equal(packed(x), quantized(x))
        sizes = storage_bytes(packed)
        assert sizes["packed"] == code_bytes + 4  # codes + one float32 scale
        assert sizes["other"] == (60 * 10 + 10) * 4  # the float layer
    assert storage_bytes(model)["total"] == (100 * 60 + 60 * 10 + 10) * 4
    with pytest.raises(ValueError, match="ternary_base3=True needs a TernaryQuantizer"):
        PackedLinear(QuantLinear.from_module(nn.Linear(4, 4), weight_quantizer=UniformQuantizer(8)).encode_weight(),
                     ternary_base3=True)
