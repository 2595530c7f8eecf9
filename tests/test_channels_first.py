"""``create(name, channels_first=True)``: every spatial layer takes and returns (B, C, *grid), computing exactly
what the channels-last layer computes."""

from __future__ import annotations

import pytest
import torch

import attnzoo
from attnzoo.testing import specs

SPATIAL = [s for s in specs() if s.registered.layer is not None and s.registered.layer_layout.token_axes >= 2
           and not s.registered.layer_layout.channels_first]
CNN = [s.variant for s in specs() if s.registered.layer is not None and s.registered.layer_layout.channels_first]


@pytest.mark.parametrize("spec", SPATIAL, ids=[s.variant for s in SPATIAL])
def test_channels_first_equals_channels_last(spec) -> None:  # noqa: ANN001
    last = attnzoo.create(spec.variant)
    first = attnzoo.create(spec.variant, channels_first=True)
    first.layer.load_state_dict(last.state_dict())
    x = torch.randn(spec.layer_input_shape)
    torch.testing.assert_close(first(x.movedim(-1, 1)), last(x).movedim(-1, 1), atol=1e-6, rtol=0)


def test_channels_first_is_refused_for_sequence_layers_and_non_bools() -> None:
    with pytest.raises(ValueError, match=r"takes \(B, N, C\), not a spatial grid"):
        attnzoo.create("sliding_window_attention", channels_first=True)
    with pytest.raises(TypeError, match="channels_first='yes': expected a bool"):
        attnzoo.create("halo_attention", channels_first="yes")


@pytest.mark.parametrize("variant", CNN)
def test_channels_first_is_refused_for_cnn_modules_which_already_are(variant: str) -> None:
    with pytest.raises(ValueError, match=r"already takes \(B, C, H, W\)"):
        attnzoo.create(variant, channels_first=True)


def test_a_channels_first_tensor_into_a_channels_last_layer_is_named() -> None:
    layer = attnzoo.create("halo_attention", dim=16, num_heads=2)
    with pytest.raises(ValueError, match="16 channels|channels last"):
        layer(torch.randn(2, 16, 8, 12))
