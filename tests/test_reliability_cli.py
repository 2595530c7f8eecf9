"""Hostile-input reliability of the ``attnzoo`` command line: every argument is checked before the first
measurement or training step (nothing here measures or trains: those entry points are patched to fail)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import torch

import attnzoo.bench
import attnzoo.compare.run
import attnzoo.tasks.harness
from attnzoo import cli


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any benchmark measurement or training step fails the test."""
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured or trained before the arguments were checked")

    monkeypatch.setattr(attnzoo.bench, "run_cases", forbidden)
    monkeypatch.setattr(attnzoo.tasks.harness, "train", forbidden)
    monkeypatch.setattr(attnzoo.compare.run, "run_plan", forbidden)  # its worker processes would not see a patch


TINY_EVAL = ["eval", "mqar", "--mixers", "softmax", "--seq-len", "16", "--num-kv-pairs", "2", "--vocab-size", "64",
             "--steps", "2", "--no-progress"]


@pytest.mark.usefixtures("nothing_runs")
@pytest.mark.parametrize(("command", "peers"), [(["bench", "--family", "local"], ("natten", "local-attention")),
                                               (["compare", "--no-quality"], ("natten", "fla naive (reference)"))])
def test_unknown_impl_names_it_and_the_known_ones(tmp_path: Path, command: list[str], peers: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--quick", "--impl", "tiled", "--impl", "nope", "--out", str(tmp_path), "--no-progress"])
    message = str(info.value)
    assert "--impl 'nope': unknown implementation" in message and "'tiled'" not in message
    for known in ("tiled", "chunked", "reference", "dense-sdpa", *peers):
        assert known in message


@pytest.mark.usefixtures("nothing_runs")
@pytest.mark.parametrize(("flags", "message"), [
    (["--mixers", "softmax,nope"], "--mixers 'nope': no variant named 'nope'"),
    (["--mixers", ","], "--mixers ',': expected comma-separated names"),
    (["--tasks", "mqar,nope"], "--tasks 'mqar,nope': unknown \\['nope'\\]"),
    (["--families", "local,nope"], "--families 'local,nope': unknown family 'nope'"),
    (["--budget", "soon"], "--budget 'soon': expected a duration such as 90s, 15m"),
    (["--budget", "1s"], "--budget 1s: below the smallest useful run"),
    (["--budget", "5m", "--full"], "--full and --budget 5m: give one of them"),
    (["--workers", "0"], "--workers 0: expected an integer >= 1"),
    (["--workers", "64"], "--workers 64 x --threads-per-job 1 = 64 threads on"),
    (["--threads-per-job", "0"], "--threads-per-job 0: expected an integer >= 1"),
    (["--mqar-lr", "-1"], "TrainConfig lr=-1.0: expected a finite number > 0"),
    (["--mqar-lr", "nan"], "TrainConfig lr=nan: expected a finite number > 0"),
    (["--mqar-batch-size", "0"], "MQARTask batch_size=0: expected an integer >= 1"),
    (["--mqar-steps", "0"], "TrainConfig steps=0: expected an integer >= 1"),
])
def test_compare_checks_quality_settings_before_measuring(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=f"attnzoo compare: .*{message}"):
        cli.main(["compare", *flags, "--out", str(tmp_path), "--no-progress"])


def _file_in_the_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "out"


def _read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)  # as a read-only folder does (even for root)
    return tmp_path / "out"


@pytest.mark.usefixtures("nothing_runs")
@pytest.mark.parametrize("blocked", [_file_in_the_way, _read_only])
@pytest.mark.parametrize("command", [TINY_EVAL, ["bench", "--quick"], ["compare", "--quick"]])
def test_unwritable_out_is_refused_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blocked,
                                            command: list[str]) -> None:
    out = blocked(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match=rf"--out '{out}' is not a writable folder \(.+\); expected a folder"):
        cli.main([*command, "--out", str(out)])


@pytest.mark.usefixtures("nothing_runs")
@pytest.mark.parametrize(("device", "cuda", "message"), [
    ("tpu9", True, "'tpu9' is not a device"),
    ("meta", True, "'meta': expected 'cpu' or 'cuda\\[:N\\]'"),
    ("cuda", False, "'cuda': CUDA is not available on this machine"),
    ("cuda:3", True, "'cuda:3': this machine has 1 CUDA device"),
])
@pytest.mark.parametrize("command", [TINY_EVAL, ["bench", "--quick"], ["compare", "--quick"]])
def test_device_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                             command: list[str], device: str, cuda: bool, message: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))
    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--device", device, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert re.search(f"argument --device: {message}", capsys.readouterr().err)


@pytest.mark.usefixtures("nothing_runs")
def test_compare_refuses_an_unwritable_seed_file_before_measuring(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    seed = tmp_path / "file" / "seed.json"
    with pytest.raises(SystemExit, match=rf"--write-seed '{tmp_path / 'file'}' is not a writable folder"):
        cli.main(["compare", "--write-seed", str(seed), "--out", str(tmp_path / "out"), "--no-progress"])
