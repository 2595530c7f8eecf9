"""The benchmark row cache: a rerun reuses every row whose key matches and measures nothing; a changed source,
machine kind or ``fresh`` measures again; corrupt entries are re-measured with a warning; an unwritable folder
fails before any measurement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attnzoo import cli
from attnzoo.bench import Case, Settings, run_cases, runner
from attnzoo.bench import cache as cache_module
from attnzoo.bench.cache import (
    MEASURED_NOW,
    RowCache,
    is_ours,
    mechanism_folders,
    row_key,
)
from attnzoo.bench.ours import DENSE_SDPA
from attnzoo.bench.store import key_digest
from attnzoo.bench.suites import SUITES
from attnzoo.bench.suites.local import NeighborhoodSpec
from attnzoo.bench.table import FULL_COLUMNS, LEADERBOARD_COLUMNS, markdown_table

FAST = Settings(min_repeats=2, max_repeats=3, target_s=0.0, cold_compile=False)
TINY = NeighborhoodSpec((6, 6), 3, 1, heads=2, head_dim=8)


def _cases() -> list[Case]:
    return [c for c in TINY.cases() if c.impl in (DENSE_SDPA, "tiled")]


@pytest.fixture()
def measured(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The impl of every case measured (the runner's ``measure_case`` counted); no GEMM peak timing."""
    calls: list[str] = []
    real = runner.measure_case

    def counting(case, settings, references):
        calls.append(case.impl)
        return real(case, settings, references)

    monkeypatch.setattr(runner, "measure_case", counting)
    monkeypatch.setattr(runner, "gemm_peak_gflops", lambda: 100.0)
    return calls


def _run(folder: Path, **kwargs) -> dict:
    return run_cases(_cases(), FAST, progress=False, cache=RowCache(folder, **kwargs))


def _provenance(doc: dict) -> dict[str, str]:
    return {row["impl"]: row["provenance"] for row in doc["rows"]}


def test_second_run_reuses_every_row(tmp_path: Path, measured: list[str]) -> None:
    first = _run(tmp_path)
    assert measured == [DENSE_SDPA, "tiled"]
    assert set(_provenance(first).values()) == {MEASURED_NOW}
    assert len(list(tmp_path.glob("*.json"))) == 2 and not list(tmp_path.glob(".*"))  # no temp files left
    second = _run(tmp_path)
    assert measured == [DENSE_SDPA, "tiled"]  # nothing measured again
    assert all(p.startswith("reused from ") and p.endswith(first["machine"]["cpu"])
               for p in _provenance(second).values())
    assert second["machine"]["cache"]["rows_reused"] == 2 and second["machine"]["cache"]["rows_measured"] == 0
    for a, b in zip(first["rows"], second["rows"]):
        assert a["modes"]["forward"]["median_ms"] == b["modes"]["forward"]["median_ms"]
        assert a["max_abs_error"] == b["max_abs_error"]
    tiled = {row["impl"]: row for row in second["rows"]}["tiled"]
    assert tiled["modes"]["forward"]["speedup"] is not None  # derived figures recomputed in the new run
    for columns in (FULL_COLUMNS, LEADERBOARD_COLUMNS):
        table = markdown_table(second["rows"], columns)
        assert "| measured |" in table.splitlines()[0] and "reused from " in table


def test_changed_source_hash_measures_again(tmp_path: Path, measured: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _run(tmp_path)
    real = cache_module.source_hash
    monkeypatch.setattr(cache_module, "source_hash", lambda mechanisms=(): real(mechanisms) + "-edited")
    doc = _run(tmp_path)
    assert measured == [DENSE_SDPA, "tiled"] * 2
    assert set(_provenance(doc).values()) == {MEASURED_NOW}


def test_source_hash_covers_the_mechanism_folder() -> None:
    tiled, dense = (next(c for c in _cases() if c.impl == impl) for impl in ("tiled", DENSE_SDPA))
    assert is_ours(tiled) and not is_ours(dense)
    assert mechanism_folders(tiled) == ["native", "neighborhood"]  # the variant's folders, its native one's included
    assert cache_module.source_hash(["neighborhood"]) != cache_module.source_hash([])


def test_native_rows_depend_on_the_kernel_sources() -> None:
    """A native implementation's rows are keyed by the kernel's C++ too: an edited kernel is measured again."""
    assert "native" in cache_module.variant_folders("neighborhood_attention_2d")
    assert "neighborhood" in cache_module.variant_folders("neighborhood_attention_2d")
    kernel = cache_module._source_files(cache_module.PACKAGE / "ops" / "native")
    assert {"kernels.cpp", "driver.cpp", "local_attention.h"} <= {path.name for path in kernel}


def test_fresh_measures_everything_again(tmp_path: Path, measured: list[str]) -> None:
    _run(tmp_path)
    doc = _run(tmp_path, fresh=True)
    assert measured == [DENSE_SDPA, "tiled"] * 2
    assert set(_provenance(doc).values()) == {MEASURED_NOW}
    _run(tmp_path)  # the fresh rows replaced the old entries
    assert measured == [DENSE_SDPA, "tiled"] * 2


@pytest.mark.parametrize("content", ["{not json", '{"key": {}, "row": {}}', "[]", ""])
def test_corrupt_entry_is_measured_again_with_a_warning(tmp_path: Path, measured: list[str], content: str) -> None:
    _run(tmp_path)
    entry = min(tmp_path.glob("*.json"))
    entry.write_text(content)
    with pytest.warns(UserWarning, match=f"ignoring the unreadable cache entry {entry}"):
        doc = _run(tmp_path)
    assert len(measured) == 3 and sorted(_provenance(doc).values()).count(MEASURED_NOW) == 1
    json.loads(entry.read_text())  # rewritten with the new row


def test_unwritable_folder_fails_before_measuring(tmp_path: Path, measured: list[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="a-file.*not a writable folder.*--no-cache"):
        RowCache(blocker)
    with pytest.raises(ValueError, match="not a writable folder"):
        RowCache(blocker / "below")
    monkeypatch.setitem(SUITES, "local", lambda subset, impls, device="cpu": _cases())
    with pytest.raises(SystemExit, match="attnzoo bench: --cache .*a-file.* not a writable folder"):
        cli.main(["bench", "--family", "local", "--quick", "--out", str(tmp_path / "out"), "--no-progress",
                  "--cache", str(blocker)])
    assert measured == []
    assert cli.main(["bench", "--family", "local", "--quick", "--out", str(tmp_path / "out"), "--no-progress",
                     "--no-cache"]) == 0
    assert measured == [DENSE_SDPA, "tiled"]


def test_another_isa_misses(tmp_path: Path, measured: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    case = _cases()[1]
    here = cache_module.machine_kind()
    other = {**here, "isa": "AVX2" if here["isa"] != "AVX2" else "AVX-512"}
    key = row_key(case, {}, "src", here)
    assert key_digest(key) != key_digest(row_key(case, {}, "src", other))
    _run(tmp_path)
    monkeypatch.setattr(cache_module, "vector_isa", lambda: {"isa": other["isa"], "isa_levels": [other["isa"]],
                                                             "torch_cpu_capability": here["torch_cpu_capability"]})
    assert set(_provenance(_run(tmp_path)).values()) == {MEASURED_NOW}
    assert measured == [DENSE_SDPA, "tiled"] * 2


def test_key_depends_on_threads_settings_and_shape(tmp_path: Path) -> None:
    case = _cases()[1]
    cache = RowCache(tmp_path)
    base = cache.key(case, {"min_repeats": 2})
    assert cache.key(case, {"min_repeats": 3}) != base
    other_shape = next(c for c in NeighborhoodSpec((8, 8), 3, 1, heads=2, head_dim=8).cases() if c.impl == "tiled")
    assert cache.key(other_shape, {"min_repeats": 2}) != base
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert cache.key(case, {"min_repeats": 2}) != base
    finally:
        torch.set_num_threads(threads)


def test_failed_rows_are_not_cached(tmp_path: Path, measured: list[str]) -> None:
    def broken(inputs: dict, prepared: object) -> torch.Tensor:
        raise RuntimeError("boom")

    cases = [Case(TINY.workload(), "broken", broken)]
    for _ in range(2):
        doc = run_cases(cases, FAST, progress=False, cache=RowCache(tmp_path))
        assert doc["rows"][0]["status"] == "failed"
    assert measured == ["broken", "broken"] and not list(tmp_path.glob("*.json"))


def test_cli_cache_flag_and_default(tmp_path: Path, measured: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SUITES, "local", lambda subset, impls, device="cpu": _cases())
    monkeypatch.setenv(cache_module.CACHE_ENV, str(tmp_path / "env-cache"))
    out = tmp_path / "out"
    argv = ["bench", "--family", "local", "--quick", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0 and len(list((tmp_path / "env-cache").glob("*.json"))) == 2
    assert cli.main(argv + ["--cache", str(tmp_path / "flag-cache")]) == 0  # another folder: measured again
    assert cli.main(argv + ["--cache", str(tmp_path / "flag-cache")]) == 0
    assert measured == [DENSE_SDPA, "tiled"] * 2
    doc = json.loads((out / "local_cpu_quick.json").read_text())
    assert all(row["provenance"].startswith("reused from ") for row in doc["rows"])
    assert "reused from " in (out / "local_cpu_quick.md").read_text()
    assert cli.main(argv + ["--fresh"]) == 0
    assert measured == [DENSE_SDPA, "tiled"] * 3
    with pytest.raises(SystemExit, match="--no-cache and --fresh"):
        cli.main(argv + ["--no-cache", "--fresh"])
