"""Pins the drop-in features of the (B, N, C) causal sequence ops (``lmu_memory``, ``base_conv``) on their
references: packed sequences (``cu_seqlens``) equal separate calls concatenated; key padding equals zeroing the
padded tokens' input to the memory / convolution (BaseConv's gate and residual keep the token's own x); every
implementation agrees; the LMU refuses states with packed sequences."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from attnzoo.ops.base_conv import base_conv
from attnzoo.ops.lmu import lmu_memory

CU = torch.tensor([0, 5, 6, 17])
LMU_IMPLS = ["reference", "chunked", "fft", "recurrent"]
CONV_IMPLS = ["reference", "direct", "fft"]


def _x(b: int = 1, n: int = 17, c: int = 3) -> torch.Tensor:
    return torch.randn(b, n, c, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _conv_params(c: int = 3, k: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"kernel": torch.randn(c, k, dtype=torch.float64, generator=g),
            "proj_weight": torch.randn(c, c, dtype=torch.float64, generator=g),
            "proj_bias": torch.randn(c, dtype=torch.float64, generator=g),
            "conv_bias": torch.randn(c, dtype=torch.float64, generator=g)}


def _pieces(x: torch.Tensor) -> list[torch.Tensor]:
    bounds = CU.tolist()
    return [x[:, a:b] for a, b in pairwise(bounds)]


@pytest.mark.parametrize("impl", LMU_IMPLS)
def test_lmu_varlen_is_separate_calls(impl: str) -> None:
    x = _x()
    expected = torch.cat([lmu_memory(p, 4, 6.0, impl="reference") for p in _pieces(x)], dim=1)
    torch.testing.assert_close(lmu_memory(x, 4, 6.0, impl=impl, cu_seqlens=CU), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", CONV_IMPLS)
def test_base_conv_varlen_is_separate_calls(impl: str) -> None:
    x, params = _x(), _conv_params()
    expected = torch.cat([base_conv(p, **params, use_act=True, impl="reference") for p in _pieces(x)], dim=1)
    out = base_conv(x, **params, use_act=True, impl=impl, cu_seqlens=CU)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", LMU_IMPLS)
def test_lmu_key_padding_is_zero_input(impl: str) -> None:
    x = _x(2)
    pad = torch.rand(2, 17, generator=torch.Generator().manual_seed(2)) < 0.4
    x_nan = torch.where(pad[..., None], float("nan"), x)  # padding's values never leak
    state = torch.randn(2, 3, 4, dtype=torch.float64)
    expected, final = lmu_memory(torch.where(pad[..., None], 0, x), 4, 6.0, state, True, impl="reference")
    out, out_final = lmu_memory(x_nan, 4, 6.0, state, True, impl=impl, key_padding_mask=pad)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(out_final, final, atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", CONV_IMPLS)
def test_base_conv_key_padding_zeroes_only_the_convolution_input(impl: str) -> None:
    x, params = _x(2), _conv_params()
    pad = torch.rand(2, 17, generator=torch.Generator().manual_seed(2)) < 0.4
    zeroed = torch.where(pad[..., None], 0, x)
    conv = base_conv(zeroed, params["kernel"], torch.zeros(3, 3, dtype=torch.float64),
                     torch.ones(3, dtype=torch.float64), params["conv_bias"], impl="reference") - zeroed
    gate = torch.nn.functional.silu(x @ params["proj_weight"].T + params["proj_bias"])
    expected = torch.nn.functional.silu(conv) * gate + x  # gate and residual from the token's own x
    out = base_conv(x, **params, use_act=True, impl=impl, key_padding_mask=pad)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    assert not torch.equal(out[pad], base_conv(zeroed, **params, use_act=True)[pad])  # padded outputs still use x


def test_key_padding_and_varlen_together() -> None:
    x = _x()
    pad = torch.zeros(1, 17, dtype=torch.bool)
    pad[0, [1, 5, 9, 16]] = True
    zeroed = torch.where(pad[..., None], 0, x)
    expected = torch.cat([lmu_memory(p, 3, 4.0) for p in _pieces(zeroed)], dim=1)
    torch.testing.assert_close(lmu_memory(x, 3, 4.0, cu_seqlens=CU, key_padding_mask=pad), expected,
                               atol=1e-12, rtol=0)


def test_lmu_refuses_states_with_packed_sequences() -> None:
    x = _x()
    with pytest.raises(ValueError, match="initial_state=None and output_final_state=False"):
        lmu_memory(x, 3, 4.0, output_final_state=True, cu_seqlens=CU)
    with pytest.raises(ValueError, match="initial_state=None and output_final_state=False"):
        lmu_memory(x, 3, 4.0, torch.zeros(1, 3, 3, dtype=torch.float64), cu_seqlens=CU)


@pytest.mark.parametrize("op", ["lmu", "conv"])
def test_bad_dropin_inputs_raise(op: str) -> None:
    def call(x: torch.Tensor, **kw: torch.Tensor) -> torch.Tensor:
        return lmu_memory(x, 3, 4.0, **kw) if op == "lmu" else base_conv(x, **_conv_params(), **kw)

    with pytest.raises(ValueError, match="packed layout"):
        call(_x(2), cu_seqlens=CU)
    with pytest.raises(ValueError, match="strictly increasing"):
        call(_x(), cu_seqlens=torch.tensor([0, 5, 16]))
    with pytest.raises(ValueError, match="key_padding_mask has shape"):
        call(_x(), key_padding_mask=torch.zeros(1, 16, dtype=torch.bool))


@pytest.mark.parametrize("variant", ["lmu_memory", "base_conv"])
def test_layers_pass_padding_and_packing(variant: str) -> None:
    """LMUMixer and BaseConv pass key_padding_mask / cu_seqlens to their ops: packed equals separate calls (BaseConv;
    LMU's batch norm mixes positions in training, so compare in eval), no padding is the plain call."""
    import attnzoo

    layer = attnzoo.create(variant, dim=8).double().eval()
    x = torch.randn(1, 12, 8, dtype=torch.float64)
    packed = layer(x, cu_seqlens=torch.tensor([0, 5, 12]))
    torch.testing.assert_close(packed, torch.cat([layer(x[:, :5]), layer(x[:, 5:])], dim=1), atol=1e-10, rtol=0)
    none = torch.zeros(1, 12, dtype=torch.bool)
    torch.testing.assert_close(layer(x, key_padding_mask=none), layer(x), atol=1e-12, rtol=0)
