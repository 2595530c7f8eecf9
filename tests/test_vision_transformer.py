"""The Vision Transformer (attnzoo.models.vision_transformer) with every mixer of the registry it can take."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnzoo.models import VisionTransformer, usable_mixers
from attnzoo.models.mixers import GRID_LAYOUT, SEQUENCE_LAYOUT
from attnzoo.registry import variants

LAYOUTS = (SEQUENCE_LAYOUT, GRID_LAYOUT)
MIXERS = usable_mixers(LAYOUTS, causal=False)  # softmax, then every grid and sequence variant of the registry
REFUSED = [v.name for v in variants() if v.layer is not None and v.layer_layout not in LAYOUTS]


def _tiny(mixer: str, **kwargs: object) -> VisionTransformer:
    """16x16 images, patch 2 -> an 8x8 token grid (64 tokens), width 16, one block."""
    torch.manual_seed(0)
    options = {"image_size": 16, "patch_size": 2, "num_classes": 5, "dim": 16, "depth": 1, **kwargs}
    return VisionTransformer(mixer=mixer, **options)


def test_every_spatial_and_sequence_variant_is_covered() -> None:
    assert "softmax" in MIXERS and "neighborhood_attention_2d" in MIXERS and "fourier_karat" in MIXERS
    assert "neighborhood_attention_3d" in REFUSED


@pytest.mark.parametrize("mixer", MIXERS)
def test_logits_are_finite_and_every_parameter_gets_a_gradient(mixer: str) -> None:
    model = _tiny(mixer).train()
    images = torch.rand(3, 1, 16, 16)
    logits = model(images)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"


@pytest.mark.parametrize("mixer", MIXERS)
def test_one_images_logits_do_not_depend_on_another_image(mixer: str) -> None:
    model = _tiny(mixer).double().eval()  # eval: lmu_memory's BatchNorm uses running statistics
    images = torch.rand(2, 16, 16, dtype=torch.float64)  # (B, H, W) for one channel
    changed = images.clone()
    changed[1] = torch.rand(16, 16, dtype=torch.float64)
    with torch.no_grad():
        before, after = model(images), model(changed)
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=1e-12)
    assert not torch.allclose(after[1], before[1])


@pytest.mark.parametrize("mixer", REFUSED)
def test_mixers_of_other_layouts_are_refused(mixer: str) -> None:
    with pytest.raises(ValueError, match="layout"):
        _tiny(mixer)


def test_default_model_takes_fashion_mnist_and_patch_2() -> None:
    model = VisionTransformer()
    assert model.grid == (7, 7) and model.flatten_tokens  # softmax attends over the flattened grid
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    fine = VisionTransformer(patch_size=2, mixer="neighborhood_attention_2d", depth=1)
    assert fine.grid == (14, 14) and not fine.flatten_tokens
    assert fine(torch.rand(2, 28, 28)).shape == (2, 10)
    agent = VisionTransformer(patch_size=2, mixer="agent_attention", depth=1)
    assert agent.blocks[0].mixer.resolution == (14, 14)


def test_bad_inputs_and_options_raise_clear_errors() -> None:
    model = _tiny("softmax")
    with pytest.raises(ValueError, match=r"images has shape \(2, 3, 16, 16\); expected \(B, 1, 16, 16\)"):
        model(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"images has shape \(2, 1, 28, 28\)"):
        model(torch.rand(2, 1, 28, 28))
    with pytest.raises(TypeError, match="floating"):
        model(torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="patch_size=3 does not divide image_size=16"):
        _tiny("softmax", patch_size=3)
    with pytest.raises(ValueError, match="depth=0"):
        _tiny("softmax", depth=0)
    with pytest.raises(KeyError, match="no variant named 'nope'; usable mixers: softmax.*window_attention_2d"):
        _tiny("nope")


@pytest.mark.parametrize(("mixer", "kwargs", "match"), [
    ("halo_attention", {"block_size": 3}, "divisible by block_size=3"),
    ("neighborhood_attention_2d", {"kernel_size": 9}, "kernel_size=.* needs kernel\\*dilation <= length"),
    ("shifted_sparse_attention", {"group_size": 48}, "group_size=48: expected a divisor"),
    ("agent_attention", {"resolution": (4, 4)}, r"\(H, W\) = \(4, 4\)"),
])
def test_layer_constraints_surface_as_the_layers_errors(mixer: str, kwargs: dict, match: str) -> None:
    model = _tiny(mixer, mixer_kwargs=kwargs)
    with pytest.raises(ValueError, match=match):
        model(torch.rand(1, 1, 16, 16))


def test_a_few_steps_learn_a_brightness_rule() -> None:
    """Class ``c`` images are noise plus ``c / 5``: a few steps of AdamW must cut the loss well down."""
    model = _tiny("softmax", mixer_kwargs={"num_heads": 2})
    labels = torch.arange(32) % 5
    images = 0.5 * torch.rand(32, 1, 16, 16) + labels.view(-1, 1, 1, 1) / 5
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_shifted_windows_alternate_as_in_swin() -> None:
    model = VisionTransformer(image_size=16, patch_size=2, dim=16, depth=4, mixer="window_attention_2d",
                              mixer_kwargs={"num_heads": 2, "window_size": 4, "shift_size": 2})
    assert [block.mixer.shift_size for block in model.blocks] == [0, 2, 0, 2]
