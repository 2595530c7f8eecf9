"""Building token mixers by name (attnzoo.models.mixers), the dense softmax mixer and the shared block."""

from __future__ import annotations

import pytest
import torch

from attnzoo.models import Block, CausalSoftmaxAttention, SoftmaxAttention, mixer_factory, usable_mixers
from attnzoo.models.mixers import GRID_LAYOUT, SEQUENCE_LAYOUT
from attnzoo.registry import get_variant, variants

VIT_LAYOUTS = (SEQUENCE_LAYOUT, GRID_LAYOUT)


def test_usable_mixers_follow_the_registry() -> None:
    causal = usable_mixers((SEQUENCE_LAYOUT,), causal=True)
    every = usable_mixers(VIT_LAYOUTS, causal=False)
    assert causal[0] == every[0] == "softmax"
    # "softmax" names the registered softmax_attention variant (its alias), listed once under that name
    dense = get_variant("softmax")
    assert dense.name == "softmax_attention" and dense.layer is SoftmaxAttention
    assert set(causal[1:]) == {v.name for v in variants()
                               if v.layer_layout == SEQUENCE_LAYOUT and v.causal} - {dense.name}
    assert set(every[1:]) == {v.name for v in variants() if v.layer_layout in VIT_LAYOUTS} - {dense.name}
    assert len(set(every)) == len(every)
    assert "softmax" not in usable_mixers((GRID_LAYOUT,), causal=False)
    assert SEQUENCE_LAYOUT.token_axes == 1 and GRID_LAYOUT.token_axes == 2
    assert str(SEQUENCE_LAYOUT) == "(B, N, C)" and str(GRID_LAYOUT) == "(B, H, W, C)"


def test_unknown_mixer_lists_the_mixers_usable_by_that_model() -> None:
    with pytest.raises(KeyError, match="no variant named 'nope'; usable mixers: softmax") as info:
        mixer_factory("nope", 16, causal=True)
    assert "fourier_karat" not in str(info.value) and "halo_attention" not in str(info.value)
    with pytest.raises(KeyError, match="halo_attention"):
        mixer_factory("nope", 16, layouts=VIT_LAYOUTS, causal=False)


@pytest.mark.parametrize(("mixer", "kwargs", "match"), [
    ("halo_attention", {}, "layout"),
    ("fourier_karat", {}, "not causal"),
    ("kernelized_rpe_attention", {}, "is_causal"),
    ("softmax", {"is_causal": False}, "is_causal"),
])
def test_causal_sequence_path_keeps_its_checks(mixer: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mixer_factory(mixer, 16, kwargs)  # the defaults are the causal language model's


def test_non_causal_path_builds_bidirectional_softmax_and_keeps_variant_defaults() -> None:
    assert mixer_factory("softmax", 16, causal=False)().is_causal is False
    assert mixer_factory("softmax", 16)().is_causal is True
    assert mixer_factory("linear_attention", 16, layouts=VIT_LAYOUTS, causal=False)().is_causal is True


def test_size_options_come_from_the_grid_unless_given() -> None:
    grid = (6, 5)
    build = mixer_factory("agent_attention", 16, layouts=VIT_LAYOUTS, causal=False, grid=grid)
    assert build.options["resolution"] == grid and build().resolution == grid
    for mixer, option in [("fourier_karat", "seq_len"), ("base_conv", "l_max"),
                          ("kernelized_rpe_attention", "max_len")]:
        assert mixer_factory(mixer, 16, layouts=VIT_LAYOUTS, causal=False, grid=grid).options[option] == 30
        given = mixer_factory(mixer, 16, {option: 40}, layouts=VIT_LAYOUTS, causal=False, grid=grid)
        assert given.options[option] == 40
    assert {name for v in variants() for name in v.size_options} == {"resolution", "seq_len", "l_max", "max_len"}
    assert "resolution" not in mixer_factory("softmax", 16, causal=False, grid=grid).options
    no_grid = mixer_factory("base_conv", 16)  # the language model's call: no grid, the registry default stays
    assert no_grid.options["l_max"] == get_variant("base_conv").layer_defaults["l_max"]


def test_conflicting_dim_raises() -> None:
    with pytest.raises(ValueError, match="dim=32 differs from the model's dim=16"):
        mixer_factory("softmax", 16, {"dim": 32})


def test_bidirectional_softmax_matches_explicit_attention() -> None:
    layer = SoftmaxAttention(16, num_heads=2, is_causal=False).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    q, k, v = layer.qkv(x).view(2, 7, 3, 2, 8).permute(2, 0, 3, 1, 4)
    expected = layer.proj(((q @ k.transpose(-1, -2) / 8 ** 0.5).softmax(-1) @ v).transpose(1, 2).reshape(2, 7, 16))
    torch.testing.assert_close(layer(x), expected)
    assert CausalSoftmaxAttention(16).is_causal is True
    with pytest.raises(ValueError, match=r"expected 3-D \(B, N, C=16\)"):
        layer(torch.randn(2, 3, 3, 16, dtype=torch.float64))


def test_block_refuses_a_mixer_that_changes_the_shape() -> None:
    block = Block(16, mixer_factory("halo_attention", 16, {"block_size": 4, "halo_size": 1, "stride": 2},
                                    layouts=(GRID_LAYOUT,), causal=False)())
    with pytest.raises(ValueError, match="must keep the shape"):
        block(torch.randn(1, 8, 8, 16))
    with pytest.raises(ValueError, match="mlp_ratio=-1"):
        Block(16, torch.nn.Identity(), mlp_ratio=-1)
