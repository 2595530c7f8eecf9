"""The model registry and the papers' backbones (``attnzoo.create_model``): every registered model builds with
its defaults for 28x28 Fashion-MNIST, has 0.5-5 M parameters, maps ``(B, 1, 28, 28)`` (or ``(B, 28, 28)``) to
``(B, 10)`` logits, trains (every parameter gets a finite gradient) and refuses bad input with errors naming it;
the eval task trains and scores them on a tiny budget (``attnzoo eval fashion-mnist --models``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import attnzoo
from attnzoo import cli
from attnzoo.models.backbones.resnet import BATCH_COUPLED
from attnzoo.models.registry import get_model
from attnzoo.registry import get_variant
from attnzoo.tasks import FashionMNISTModelsTask
from attnzoo.tasks.harness import evaluate_mixers
from attnzoo.train import TrainConfig

BACKBONES = ["convit", "davit", "dhvt", "gcvit", "halonet", "resnet18", "sgformer", "shvit", "van"]
"""The backbones of issue 12; ``resnet18_<cnn variant>`` are the ResNet with each CNN module."""


def test_registry_lists_the_backbones_with_their_papers_and_mixers() -> None:
    assert set(BACKBONES) <= set(attnzoo.list_models())
    assert attnzoo.list_models() == sorted(attnzoo.list_models())
    papers = {name: get_model(name).paper.number for name in BACKBONES}
    assert papers == {"convit": 22, "davit": 11, "dhvt": 49, "gcvit": 59, "halonet": 1, "resnet18": None,
                      "sgformer": 56, "shvit": 33, "van": 16}
    cnn = [v.name for v in attnzoo.variants(family="cnn")]
    assert "efficient_channel_attention" in cnn and "large_kernel_attention" in cnn
    plugged = {name for name in cnn if get_variant(name).layer is not None and name not in BATCH_COUPLED}
    assert {name for name in attnzoo.list_models() if name.startswith("resnet18_")} == {
        f"resnet18_{name}" for name in plugged}
    assert "efficient_channel_attention" in plugged and "hyperzzw_conv" not in plugged
    for name in attnzoo.list_models():
        entry = get_model(name)
        assert entry.summary and all(get_variant(m) for m in entry.mixers)


def test_registry_errors_name_the_model_and_the_argument() -> None:
    with pytest.raises(KeyError, match="no model named 'davitt'; registered models: .*davit"):
        attnzoo.create_model("davitt")
    with pytest.raises(TypeError, match="create_model\\('davit'\\): unexpected keyword argument 'dpeths'; DaViT "
                                        "accepts in_channels, num_classes, image_size, dims, depths"):
        attnzoo.create_model("davit", dpeths=(1, 1, 2))
    with pytest.raises(ValueError, match="one entry per stage"):
        attnzoo.create_model("davit", dims=(48, 96), depths=(1, 1, 2))


@pytest.mark.parametrize("name", attnzoo.list_models())
def test_backbone_builds_trains_and_has_a_small_budget(name: str) -> None:
    torch.manual_seed(0)
    model = attnzoo.create_model(name)
    params = sum(p.numel() for p in model.parameters())
    assert 0.5e6 <= params <= 5e6, f"{name}: {params:,} parameters"
    images = torch.randn(3, 1, 28, 28)
    logits = model(images)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{name}: parameters without a finite gradient: {missing}"
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images[:, 0]), model(images))  # grey (B, H, W) images too
        torch.testing.assert_close(model(images[:1]), model(images)[:1], atol=1e-5, rtol=1e-5)  # per example


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_refuses_bad_input(name: str) -> None:
    model = attnzoo.create_model(name)
    with pytest.raises(ValueError, match=r"images has shape \(2, 3, 28, 28\); .* expects \(B, 1, 28, 28\)"):
        model(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"images has shape \(2, 1, 32, 32\)"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(TypeError, match="images.dtype=torch.uint8"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="image_size=2: .* downsamples by"):
        attnzoo.create_model(name, image_size=2)
    with pytest.raises(ValueError, match="in_channels=0"):
        attnzoo.create_model(name, in_channels=0)


def test_stage_grids_the_layers_cannot_take_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="resolution=.*window_size"):  # GC ViT: grid = window * 2**L
        attnzoo.create_model("gcvit", image_size=36)
    with pytest.raises(ValueError, match="block_sizes\\[0\\]=7: stage 0 attends on a 16x16 grid"):
        attnzoo.create_model("halonet", image_size=32)
    with pytest.raises(ValueError, match="stage 0 on its 16x16 grid .*window_size"):
        attnzoo.create_model("sgformer", image_size=32)
    with pytest.raises(ValueError, match="patch_size=3: expected a divisor"):
        attnzoo.create_model("convit", patch_size=3)
    with pytest.raises(ValueError, match="patch_size=8: DHVT's SOPE has convolution stacks"):
        attnzoo.create_model("dhvt", patch_size=8, image_size=32)
    with pytest.raises(ValueError, match="types=.*expected each of"):
        attnzoo.create_model("shvit", types=("i", "s", "x"))
    with pytest.raises(ValueError, match="local_up_to_layer=6: expected less than depth=6"):
        attnzoo.create_model("convit", local_up_to_layer=6)


def test_resnet_places_the_cnn_module_after_the_residual_branchs_last_batch_norm() -> None:
    torch.manual_seed(0)
    eca = attnzoo.create_model("resnet18", attention="eca")  # the variant's alias
    block = eca.stages[1][0]
    assert type(block.attention).__name__ == "EfficientChannelAttention" and block.attention.dim == 64
    x = torch.randn(2, 32, 14, 14)
    branch = block.conv2(block.act(block.conv1(x)))
    torch.testing.assert_close(block(x), block.act(block.attention(branch) + block.shortcut(x)))
    named = attnzoo.create_model("resnet18_efficient_channel_attention")
    assert [type(m).__name__ for m in named.modules()] == [type(m).__name__ for m in eca.modules()]
    plain = attnzoo.create_model("resnet18")
    assert all(isinstance(b.attention, torch.nn.Identity) for stage in plain.stages for b in stage)
    with pytest.raises(ValueError, match="attention='gpsa_attention': expected a registry variant of the 'cnn'"):
        attnzoo.create_model("resnet18", attention="gpsa_attention")
    with pytest.raises(ValueError, match="attention_kwargs=.*without an attention module"):
        attnzoo.create_model("resnet18", attention_kwargs={"kernel_size": 3})


def test_backbones_build_for_other_image_sizes_and_channels() -> None:
    for name, size in [("davit", 32), ("convit", 32), ("dhvt", 32), ("shvit", 32), ("gcvit", 56), ("van", 32),
                       ("resnet18", 32)]:
        model = attnzoo.create_model(name, in_channels=3, num_classes=5, image_size=size)
        assert model(torch.randn(2, 3, size, size)).shape == (2, 5), name


def test_gcvit_stages_share_one_global_query_generator() -> None:
    model = attnzoo.create_model("gcvit", depths=(4, 2, 2))
    first = model.stages[0].blocks
    assert first[1].attn.generator is first[3].attn.generator
    generators = {id(m) for m in model.modules() if type(m).__name__ == "GlobalQueryGenerator"}
    assert len(generators) == 3  # one per stage


def test_models_task_trains_and_scores_each_backbone(tmp_path: Path) -> None:
    task = FashionMNISTModelsTask(batch_size=4, test_examples=16)
    config = TrainConfig(steps=2, lr=1e-3, warmup_steps=1, progress=False, device="cpu")
    rows = evaluate_mixers(task, ("davit", "shvit"), config, tmp_path, progress=False)
    for row in rows:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["mflops"] > 1 and row["infer_images_per_s"] > 0
        assert row["params"] == sum(p.numel() for p in attnzoo.create_model(row["mixer"]).parameters())
    report = (tmp_path / "fashion-mnist-models.md").read_text()
    assert "| model | params |" in report and "mflops" in report
    resumed = evaluate_mixers(task, ("davit",), config, tmp_path, progress=False, resume=True)  # finished: scored
    assert resumed[0]["test_accuracy"] == rows[0]["test_accuracy"]


def test_models_task_refuses_unknown_models_and_fixed_options(tmp_path: Path) -> None:
    task = FashionMNISTModelsTask(batch_size=4, test_examples=16)
    config = TrainConfig(steps=1, warmup_steps=0, progress=False, device="cpu")
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*Registered models: .*davit"):
        evaluate_mixers(task, ("davit", "resnet9000"), config, tmp_path, progress=False)
    with pytest.raises(ValueError, match="options \\['num_classes'\\] are fixed by the task"):
        evaluate_mixers(task, ("davit",), config, tmp_path, progress=False, mixer_kwargs={"davit": {"num_classes": 3}})


def test_eval_cli_takes_models(tmp_path: Path) -> None:
    argv = ["eval", "fashion-mnist", "--models", "convit", "--steps", "1", "--batch-size", "2", "--test-examples",
            "8", "--no-progress", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    doc = json.loads((tmp_path / "fashion-mnist-models.json").read_text())
    assert [r["mixer"] for r in doc["rows"]] == ["convit"] and doc["rows"][0]["steps"] == 1
    with pytest.raises(SystemExit, match="--models 'convit' with --mixers, --dim"):
        cli.main(argv + ["--mixers", "softmax", "--dim", "8"])
