"""The ``attnzoo`` command line: ``list`` shows every variant, ``bench`` and ``compare`` write their files
(on tiny cases, so the tests take seconds)."""

from __future__ import annotations

import json

import pytest

import attnzoo
from attnzoo import cli
from attnzoo.bench import runner
from attnzoo.bench.ours import DENSE_SDPA
from attnzoo.bench.suites import SUITES
from attnzoo.bench.suites import registry as registry_suite
from attnzoo.bench.suites.linear import LightningSpec
from attnzoo.bench.suites.local import NeighborhoodSpec


def test_list_prints_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for variant in attnzoo.variants():
        assert variant.name in out and variant.paper.arxiv in out
        for impl in variant.implementations.values():
            assert impl.capabilities.describe() in out


def test_list_one_family(capsys: pytest.CaptureFixture[str]) -> None:
    family = attnzoo.families()[0]
    assert cli.main(["list", "--family", family]) == 0
    out = capsys.readouterr().out
    assert all(v.name in out for v in attnzoo.variants(family))


@pytest.fixture
def tiny_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local suite replaced by two tiny grids (tiled and the dense baseline), the linear suite by one short
    lightning sequence, and a fixed GEMM peak."""
    def cases(subset: str, impls: object) -> list:
        specs = [NeighborhoodSpec((side, side), 3, 1, heads=2, head_dim=8) for side in (4, 8)]
        return [c for spec in specs for c in spec.cases() if c.impl in (DENSE_SDPA, "tiled")]

    monkeypatch.setitem(SUITES, "local", cases)
    monkeypatch.setitem(SUITES, "linear", lambda subset, impls: [
        c for c in LightningSpec(128, heads=2, head_dim=8).cases() if c.impl in (DENSE_SDPA, "chunked")])
    monkeypatch.setattr(runner, "gemm_peak_gflops", lambda: 100.0)
    # the registry-wide workloads: one tiny variant per family (every variant's would take minutes here)
    tiny = {"local": "sliding_window_attention", "linear": "linear_attention"}
    monkeypatch.setattr(registry_suite, "registry_cases", lambda subset, impls, device, family: (
        registry_suite.variant_cases(attnzoo.get_variant(tiny[family]), "quick", device) if family in tiny else []))


@pytest.mark.usefixtures("tiny_suite")
def test_compare_writes_report_and_plots(tmp_path) -> None:
    out = tmp_path / "tmp"
    assert cli.main(["compare", "--quick", "--no-quality", "--families", "local,linear", "--out", str(out),
                     "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert report.startswith("<!-- command: attnzoo compare --quick")
    assert "Leaderboard" in report and "na2d 8x8 k3 b1" in report and "lightning 128 b1" in report
    assert "- **local** (" in report and "for speed" in report and "What this run covers" in report
    for image in ("speed_local_time.png", "speed_local_memory.png", "speed_linear_time.png"):
        assert (out / image).stat().st_size > 0 and f"({image})" in report
    plan = json.loads((out / "plan.json").read_text())
    assert {job["family"] for job in plan["jobs"]} == {"local", "linear"}


@pytest.mark.usefixtures("tiny_suite")
def test_bench_writes_json_table_and_plots(tmp_path) -> None:
    assert cli.main(["bench", "--family", "local", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "local_cpu_quick.json").read_text())
    assert {row["impl"] for row in doc["rows"]} == {DENSE_SDPA, "tiled"}
    assert "fwd+bwd ms (p10–p90)" in (tmp_path / "local_cpu_quick.md").read_text()
    assert (tmp_path / "local_cpu_quick_time.png").exists() and (tmp_path / "local_cpu_quick_memory.png").exists()


def test_bench_unknown_family(tmp_path) -> None:
    with pytest.raises(SystemExit, match="no benchmark suite"):
        cli.main(["bench", "--family", "nonexistent", "--out", str(tmp_path), "--no-progress"])


def test_bench_all_covers_every_variant(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--family all``: a row for every implementation of every registered variant (only the references
    timed here, to stay quick), the machine section naming the vector ISA."""
    monkeypatch.setattr(runner, "gemm_peak_gflops", lambda: 100.0)
    assert cli.main(["bench", "--family", "all", "--quick", "--impl", "reference", "--out", str(tmp_path),
                     "--no-progress", "--device", "cpu"]) == 0
    doc = json.loads((tmp_path / "all_cpu_quick.json").read_text())
    assert {row["variant"] for row in doc["rows"]} == {v.name for v in attnzoo.variants()}
    assert all(row["impl"] == "reference" and row["status"] == "ok" for row in doc["rows"])
    assert "vector ISA" in (tmp_path / "all_cpu_quick.md").read_text()
