"""The backbone leaderboard (attnzoo.compare.leaderboard): the table from fixture JSONs, the plot file, the
``attnzoo compare`` section hook and ``attnzoo leaderboard backbones``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnzoo.cli import main
from attnzoo.compare.leaderboard import (
    PLOT_NAME,
    backbone_sections,
    command_templates,
    find_runs,
    leaderboard_table,
    read_run,
)
from attnzoo.compare.report import quality_task_sections


def _write_run(root: Path, suite: str, model: str, accuracy: float, rate: float,
               conditions: dict | None = None) -> Path:
    folder = root / suite / model
    folder.mkdir(parents=True)
    doc = {"task": "fashion-mnist-models",
           "command": f"attnzoo eval fashion-mnist --models {model} --steps 300 --out {root}/{suite}/{model}",
           "rows": [{"mixer": model, "params": 2_797_034, "steps": 300, "train_time_s": 44.9,
                     "train_items_per_s": rate, "test_accuracy": accuracy, "infer_images_per_s": 2207.0}]}
    path = folder / "fashion-mnist-models.json"
    path.write_text(json.dumps(doc))
    if conditions is not None:
        (folder / "run_conditions.json").write_text(json.dumps(conditions))
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "quality"
    _write_run(root, "backbones_short", "resnet18", 0.8881, 855.3, {"quiet": True})
    _write_run(root, "backbones_short", "resnet18_efficient_channel_attention", 0.8851, 871.6)
    _write_run(root, "backbones_short", "davit", 0.8650, 279.0,
               {"quiet": False, "threads": 1, "load_average_start": [2.25, 1.5, 1.0]})
    (root / "other_task").mkdir()  # not a backbones* suite: ignored
    return root


def test_table_rows_ordered_by_accuracy_with_difference_from_plain_resnet(results: Path) -> None:
    runs = find_runs(results)
    assert [r.model for r in runs] == ["resnet18", "resnet18_efficient_channel_attention", "davit"]
    lines = leaderboard_table(runs).splitlines()
    assert lines[0].startswith("| suite | model | params (M) | test accuracy | vs ResNet-18 | train img/s")
    assert lines[2] == ("| backbones_short | resnet18 | 2.80 | 88.8% |  | 855 | 2207 | 300 | 45 | quiet |")
    assert lines[3] == ("| backbones_short | resnet18_efficient_channel_attention | 2.80 | 88.5% | -0.3 pt | 872 "
                        "| 2207 | 300 | 45 | not recorded |")
    assert lines[4].endswith("| 86.5% |  | 279 | 2207 | 300 | 45 | loaded (load 2.2 at start, 1 thread) |")
    assert runs[2].loaded and not runs[0].loaded and not runs[1].loaded


def test_measured_by_line_is_the_shared_command_template(results: Path) -> None:
    templates = command_templates(find_runs(results))
    assert templates == [f"attnzoo eval fashion-mnist --models <model> --steps 300 --out "
                         f"{results}/backbones_short/<model>"]


def test_section_has_the_table_measured_by_line_and_a_written_plot(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    (section,) = backbone_sections(out, results)
    assert "| resnet18_efficient_channel_attention |" in section.body
    assert "- measured by: `attnzoo eval fashion-mnist --models <model>" in section.body
    assert section.images == (PLOT_NAME,)
    plot = out / PLOT_NAME
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_no_runs_no_section(tmp_path: Path) -> None:
    assert backbone_sections(tmp_path / "out", tmp_path / "empty") == []
    assert not (tmp_path / "out").exists()


def test_compare_report_adds_the_section_only_when_runs_exist(results: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert quality_task_sections([], tmp_path / "report") == []
    (tmp_path / "benchmarks").mkdir()
    results.rename(tmp_path / "benchmarks" / "quality")
    titles = [s.title for s in quality_task_sections([], tmp_path / "report")]
    assert titles == ["Backbones: Fashion-MNIST leaderboard"]


def test_json_of_another_task_or_missing_field_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _write_run(tmp_path, "backbones_x", "resnet18", 0.9, 100.0)
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "task": "fashion-mnist"}))
    with pytest.raises(ValueError, match=r"fashion-mnist-models.json: task 'fashion-mnist'; expected"):
        read_run(path)
    del doc["rows"][0]["test_accuracy"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"expected key 'test_accuracy'"):
        read_run(path)


def test_cli_writes_table_and_plot(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "board"
    assert main(["leaderboard", "backbones", "--results", str(results), "--out", str(out)]) == 0
    report = (out / "backbones.md").read_text()
    assert "## Backbones: Fashion-MNIST leaderboard" in report and "![" in report
    assert (out / PLOT_NAME).stat().st_size > 0
    assert str(out / "backbones.md") in capsys.readouterr().out


def test_cli_without_runs_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"attnzoo leaderboard backbones: --results '.*empty': no backbone run"):
        main(["leaderboard", "backbones", "--results", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])


def test_every_committed_backbone_run_reads_and_says_how_it_was_measured() -> None:
    """The committed suites parse (so ``attnzoo compare``'s section cannot fail on them), every run is one model
    per folder with its ``run_conditions.json``, and the plain ResNet-18 every module row is set against is there."""
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "quality"
    runs = find_runs(results)
    assert runs, f"no committed backbone run under {results}"
    for run in runs:
        assert run.conditions is not None, f"{run.suite}/{run.model} has no run_conditions.json"
        assert f"--models {run.model} " in run.command and f"/{run.suite}/{run.model} " in run.command
    for suite in {r.suite for r in runs}:
        assert any(r.model == "resnet18" for r in runs if r.suite == suite), suite
