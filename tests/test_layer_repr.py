"""Every registered layer shows the options it was built with in ``repr`` (``extra_repr``)."""

from __future__ import annotations

import pytest

import attnzoo
from attnzoo.testing import specs

SPECS = [s for s in specs() if s.registered.layer is not None]  # variants with a layer


@pytest.mark.parametrize("spec", SPECS, ids=[s.variant for s in SPECS])
def test_repr_shows_the_constructor_options(spec) -> None:  # noqa: ANN001
    variant = spec.registered
    layer = attnzoo.create(spec.variant)
    text = repr(layer)
    for name, value in variant.layer_defaults.items():
        assert f"{name}={value!r}" in text, (name, text)
    assert layer.options == {**layer.options, **variant.layer_defaults}


def test_repr_shows_overrides() -> None:
    layer = attnzoo.create("sliding_window_attention", dim=16, num_heads=2, window=7, is_causal=False)
    assert "dim=16, num_heads=2, window=7, is_causal=False" in repr(layer)
