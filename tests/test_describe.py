"""``attnzoo.describe`` / ``attnzoo list NAME``: every variant's layer arguments with their effective defaults;
``create`` refuses an unknown keyword listing the accepted ones."""

from __future__ import annotations

import inspect

import pytest

import attnzoo
from attnzoo.cli import main
from attnzoo.docs import layer_parameters


@pytest.mark.parametrize("variant", attnzoo.variants(), ids=lambda v: v.name)
def test_describe_shows_layer_arguments_defaults_op_and_implementations(variant) -> None:
    text = attnzoo.describe(variant.name)
    assert text.startswith(variant.name) and variant.paper.arxiv in text
    assert str(inspect.signature(variant.op)) in text and str(variant.layout) in text
    assert all(f"\n    {name} " in text for name in variant.implementations)
    params = dict((name, default) for name, _, default in layer_parameters(variant))
    for name, value in variant.layer_defaults.items():
        assert params[name] == repr(value)  # the registry's defaults are the effective ones
    if variant.layer is not None:
        signature = inspect.signature(variant.layer.__init__)
        assert set(params) == {n for n in signature.parameters if n != "self"}


def test_list_name_prints_the_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "sliding_window_attention"]) == 0
    out = capsys.readouterr().out
    assert "window" in out and "16" in out and "ARGUMENT" in out
    with pytest.raises(SystemExit, match="no variant named 'nope'"):
        main(["list", "nope"])


def test_list_shows_each_layers_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "layer: attnzoo.create('sliding_window_attention', dim=32, num_heads=4, window=16" in out


def test_create_refuses_unknown_keyword_listing_accepted() -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'windw'.*accepts dim, num_heads, window"):
        attnzoo.create("sliding_window_attention", windw=8)
    layer = attnzoo.create("sliding_window_attention", window=4)
    assert layer.window == 4


def test_describe_unknown_name_lists_registered() -> None:
    with pytest.raises(KeyError, match="registered"):
        attnzoo.describe("nope")
