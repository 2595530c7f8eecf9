"""The registry: lookup, layer creation, declared capabilities and dispatch with reasons."""

from __future__ import annotations

import pytest
import torch

import attnzoo
from attnzoo.ops.native import unavailable_reason as native_unavailable
from attnzoo.registry import CallFacts, NotSupportedError, select_implementation


def test_every_variant_has_metadata_and_a_reference() -> None:
    for variant in attnzoo.variants():
        assert variant.paper.title and variant.paper.year > 1990
        assert variant.paper.number is None or 1 <= variant.paper.number <= 61
        assert "reference" in variant.implementations and str(variant.layout).startswith("(B, ")
        assert variant.family in attnzoo.registry.FAMILIES
        for impl in variant.implementations.values():
            assert impl.capabilities.describe().startswith("devices=")


def test_lookup_errors_list_what_exists() -> None:
    with pytest.raises(KeyError, match="no variant named 'nope'; registered:.*neighborhood_attention_2d"):
        attnzoo.get_variant("nope")
    with pytest.raises(ValueError, match="family='nope' has no variants; families:.*local"):
        attnzoo.variants(family="nope")


def test_create_applies_overrides() -> None:
    layer = attnzoo.create("neighborhood_attention_1d", dim=8, num_heads=2, kernel_size=3)
    assert layer.rpb.shape == (2, 5)


def test_auto_picks_the_native_kernel_on_cpu_and_explains() -> None:
    facts = CallFacts(device="cpu", dtype=torch.float32, needs_grad=True, head_dim=32)
    fast = "native" if native_unavailable() is None else "tiled"
    assert select_implementation("neighborhood_attention_2d", "auto", facts).name == fast
    text = attnzoo.explain("neighborhood_attention_2d", facts)
    assert f"{fast}: CHOSEN" in text and "flex: cannot run: backward on device=cpu" in text
    half = CallFacts(device="cpu", dtype=torch.bfloat16, needs_grad=True, head_dim=32)
    assert select_implementation("neighborhood_attention_2d", "auto", half).name == fast  # computed in float32
    cuda = CallFacts(device="cuda", dtype=torch.float32, needs_grad=True, head_dim=32)
    assert "native: cannot run: device=cuda" in attnzoo.explain("neighborhood_attention_2d", cuda)


def test_without_the_native_library_auto_takes_the_tiled_kernel_and_says_why(monkeypatch) -> None:
    from attnzoo.ops.native import build

    monkeypatch.setattr(build, "_load", lambda: (None, "no C++ compiler: none of $ATTNZOO_CXX, c++, g++ is on PATH"))
    facts = CallFacts(device="cpu", dtype=torch.float32, needs_grad=True, head_dim=32)
    assert select_implementation("neighborhood_attention_2d", "auto", facts).name == "tiled"
    assert "native: cannot run: native kernels unavailable: no C++ compiler" in \
        attnzoo.explain("neighborhood_attention_2d", facts)
    with pytest.raises(NotSupportedError, match="native kernels unavailable: no C\\+\\+ compiler"):
        select_implementation("neighborhood_attention_2d", "native", facts)


def test_not_supported_error_lists_every_reason() -> None:
    facts = CallFacts(device="mps", dtype=torch.float32, needs_grad=True, head_dim=32)
    with pytest.raises(NotSupportedError) as error:
        select_implementation("neighborhood_attention_1d", "auto", facts)
    message = str(error.value)
    for name in ("tiled", "reference"):
        assert f"{name}: device=mps" in message


def test_unknown_impl_names_the_choices() -> None:
    facts = CallFacts(device="cpu", dtype=torch.float32, needs_grad=False, head_dim=8)
    with pytest.raises(ValueError, match=r"impl='fast' is not an implementation.*'tiled', 'flex', 'reference'\]"):
        select_implementation("neighborhood_attention_1d", "fast", facts)


def test_auto_passes_the_tiled_kernel_over_when_the_neighborhood_covers_most_of_the_grid(monkeypatch) -> None:
    from attnzoo.ops import neighborhood_attention_2d
    from attnzoo.ops.native import build
    from attnzoo.registry import CallFacts, explain, select_implementation

    monkeypatch.setattr(build, "_load", lambda: (None, "no C++ compiler"))  # without the native kernel: tiled's turn
    q = torch.randn(1, 2, 7, 7, 8)
    dense = CallFacts.of([q], coverage=25 / 49)
    assert select_implementation("neighborhood_attention_2d", "auto", dense).name == "reference"
    assert "sees 51% of the keys" in explain("neighborhood_attention_2d", dense)
    assert select_implementation("neighborhood_attention_2d", "auto", CallFacts.of([q], coverage=0.05)).name == \
        "tiled"
    assert select_implementation("neighborhood_attention_2d", "tiled", dense).name == "tiled"  # by name: runs
    torch.testing.assert_close(neighborhood_attention_2d(q, q, q, kernel_size=5),
                               neighborhood_attention_2d(q, q, q, kernel_size=5, impl="tiled"))


def test_auto_takes_the_kernelized_fft_only_from_4096_tokens() -> None:
    from attnzoo.registry import explain

    q = torch.randn(1, 2, 8, 4)
    short, long = CallFacts.of([q], bias=True, length=1024), CallFacts.of([q], bias=True, length=4096)
    assert select_implementation("kernelized_rpe_attention", "auto", short).name == "reference"
    assert "length 1024 is below 4096" in explain("kernelized_rpe_attention", short)
    assert select_implementation("kernelized_rpe_attention", "auto", long).name == "fft"
    assert select_implementation("kernelized_rpe_attention", "fft", short).name == "fft"
