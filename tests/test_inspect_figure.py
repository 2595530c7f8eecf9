"""``attnzoo inspect`` and the compare report's attention picture, on models trained for two steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attnzoo.cli import main
from attnzoo.compare.report import quality_task_sections
from attnzoo.inspect.figure import fashion_runs
from attnzoo.tasks.fashion_mnist import FashionMNISTTask
from attnzoo.tasks.harness import train_and_score
from attnzoo.train import TrainConfig

pytest.importorskip("matplotlib")
MIXERS = ("softmax", "selective_scan_2d")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compare-like run folder: ``runs/<setting>/<mixer>/checkpoints`` of two tiny trained ViTs."""
    root = tmp_path_factory.mktemp("compare")
    task = FashionMNISTTask(batch_size=4, test_examples=8, dim=16, depth=2, num_heads=2)
    try:
        task.prepare()
    except (FileNotFoundError, OSError) as error:
        pytest.skip(f"Fashion-MNIST is not installed: {error}")
    config = TrainConfig(steps=2, warmup_steps=0, log_interval=1, progress=False, device="cpu")
    for mixer in MIXERS:
        options = task.mixer_options(mixer) | ({"d_state": 1} if mixer == "selective_scan_2d" else {})
        train_and_score(task, mixer, options, config, root / "runs" / "fashion-mnist" / mixer)
    return root


def test_runs_are_found_with_their_settings(run_dir: Path) -> None:
    runs = fashion_runs(run_dir)
    assert [r.mixer for r in runs] == sorted(MIXERS)
    assert {r.mixer: r.settings["mixer_kwargs"] for r in runs}["selective_scan_2d"] == {"d_state": 1}


def test_inspect_command_draws_one_panel_per_mixer(run_dir: Path, tmp_path: Path) -> None:
    assert main(["inspect", str(run_dir), "--out", str(tmp_path), "--image", "3"]) == 0
    assert (tmp_path / "attention.png").stat().st_size > 0
    data = json.loads((tmp_path / "attention.json").read_text())
    assert data["image_index"] == 3 and set(data["mixers"]) == set(MIXERS)
    heat = torch.tensor(data["mixers"]["softmax"])
    assert heat.shape == (7, 7) and abs(heat.sum().item() - 1) < 1e-5
    assert data["mixers"]["selective_scan_2d"].startswith("no attention map: selective_scan_2d: a linear")


def test_inspect_command_refuses_bad_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no Fashion-MNIST checkpoint" in capsys.readouterr().err


def test_compare_report_shows_the_attention_picture(run_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no committed backbone runs under ./benchmarks/quality: their section would follow
    rows = [{"task": "fashion-mnist", "setting": "fashion-mnist", "family": "full", "mixer": m, "params": 1,
             "steps": 2, "train_time_s": 1.0, "train_items_per_s": 1.0, "test_accuracy": 0.1, "mixer_kwargs": {}}
            for m in MIXERS]
    sections = quality_task_sections(rows, run_dir)
    titles = [s.title for s in sections]
    assert titles[-1] == "Attention on one Fashion-MNIST image" and sections[-1].images == ("attention.png",)
    assert (run_dir / "attention.png").exists()
    assert quality_task_sections(rows, run_dir / "runs" / "fashion-mnist" / "softmax" / "nothing")[-1].title \
        .startswith("Quality")
