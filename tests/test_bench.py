"""The benchmark runner on tiny cases: every column is filled, ratios agree with the times, skipped and failed
cases keep their reasons. No timing is asserted."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import sys

import pytest
import torch

import attnzoo
from attnzoo.bench import Case, Settings, load, run_cases, save
from attnzoo.bench.case import BACKWARD_FLOP_FACTOR
from attnzoo.bench.machine import vector_isa
from attnzoo.bench.memory import peak_allocated_bytes
from attnzoo.bench.ours import DENSE_SCORE_LIMIT, DENSE_SDPA, dense_sdpa_case, registry_case
from attnzoo.bench.peers import local_attention_case, natten_case
from attnzoo.bench.report import machine_section
from attnzoo.bench.suites import SUITES
from attnzoo.bench.suites.local import NeighborhoodSpec, SlidingWindowSpec, local_cases
from attnzoo.bench.suites.registry import benchmark_case, registry_cases, variant_cases
from attnzoo.bench.table import LEADERBOARD_COLUMNS, markdown_table
from attnzoo.bench.timing import percentile
from attnzoo.registry import NotSupportedError
from attnzoo.testing import get_spec

FAST = Settings(min_repeats=2, max_repeats=3, target_s=0.0, cold_compile=False)
TINY = NeighborhoodSpec((6, 6), 3, 1, heads=2, head_dim=8)


def _tiny_cases() -> list[Case]:
    workload = TINY.workload()
    cases = [c for c in TINY.cases() if c.impl in (DENSE_SDPA, "tiled")]

    def broken(inputs: dict, prepared: object) -> torch.Tensor:
        raise RuntimeError("boom")

    return [*cases, Case(workload, "absent", broken, skip="not installed here"),
            Case(workload, "broken", broken)]


@pytest.fixture(scope="module")
def run() -> dict:
    return run_cases(_tiny_cases(), FAST, progress=False)


def _rows(run: dict) -> dict[str, dict]:
    return {row["impl"]: row for row in run["rows"]}


def test_every_column_is_filled(run: dict) -> None:
    assert {"cpu", "cores", "torch", "threads"} <= set(run["machine"])
    assert run["gemm_peak_gflops"] > 0
    rows = _rows(run)
    assert list(rows) == [DENSE_SDPA, "tiled", "absent", "broken"]
    for impl in (DENSE_SDPA, "tiled"):
        row = rows[impl]
        assert row["status"] == "ok" and row["setup_ms"] is not None
        assert row["max_abs_error"] < 1e-5
        for mode in row["modes"].values():
            assert mode["status"] == "ok"
            assert all(mode[key] is not None for key in ("first_call_ms", "median_ms", "p10_ms", "p90_ms", "peak_mb",
                                                         "gflops", "pct_gemm_peak", "speedup", "memory_ratio"))
            assert mode["p10_ms"] <= mode["median_ms"] <= mode["p90_ms"]
            assert mode["repeats"] >= FAST.min_repeats


def test_ratios_are_consistent(run: dict) -> None:
    rows = _rows(run)
    base, tiled = rows[DENSE_SDPA], rows["tiled"]
    for name, mode in tiled["modes"].items():
        reference = base["modes"][name]
        assert base["modes"][name]["speedup"] == pytest.approx(1.0)
        assert mode["speedup"] == pytest.approx(reference["median_ms"] / mode["median_ms"])
        assert mode["memory_ratio"] == pytest.approx(mode["peak_mb"] / reference["peak_mb"])
        factor = BACKWARD_FLOP_FACTOR if name == "forward_backward" else 1.0
        assert mode["gflops"] == pytest.approx(factor * tiled["flops_forward"] / mode["median_ms"] / 1e6)
        assert mode["pct_gemm_peak"] == pytest.approx(100 * mode["gflops"] / run["gemm_peak_gflops"])
    assert tiled["flops_forward"] == 4 * 1 * 2 * 36 * 9 * 8


def test_skipped_and_failed_cases_keep_their_reasons(run: dict) -> None:
    rows = _rows(run)
    absent, broken = rows["absent"], rows["broken"]
    assert absent["status"] == "skipped" and absent["reason"] == "not installed here"
    assert all(m["status"] == "skipped" and m["reason"] == "not installed here" for m in absent["modes"].values())
    assert broken["status"] == "failed" and "boom" in broken["reason"]
    table = markdown_table(run["rows"])
    assert "not installed here" in table and "RuntimeError: boom" in table and "skip [" in table
    assert "speed-up vs dense" in markdown_table(run["rows"], LEADERBOARD_COLUMNS)


def test_json_round_trip(run: dict, tmp_path) -> None:
    save(run, tmp_path / "run.json")
    assert load(tmp_path / "run.json") == run


def test_declared_and_peer_skip_reasons() -> None:
    workload = TINY.workload()
    flex = registry_case(workload, "flex", lambda x, _: x["query"])
    assert flex.skip is None and "backward" in flex.backward_skip
    missing = registry_case(dataclasses.replace(workload, variant="no_such_variant"), "tiled", lambda x, _: x)
    assert "not registered" in missing.skip
    huge = dataclasses.replace(workload, score_entries=DENSE_SCORE_LIMIT * 2)
    assert "score entries" in dense_sdpa_case(huge, None).skip
    assert natten_case(workload, 2, 3).backward_skip
    sliding = SlidingWindowSpec(100, 64).workload()
    assert local_attention_case(sliding, 64, None).skip  # 100 is not a multiple of 64, or not installed


def test_suites_cover_every_implementation() -> None:
    quick = local_cases("quick")
    assert {c.impl for c in quick} == {DENSE_SDPA, "native", "tiled", "windowed", "flex", "natten", "local-attention"}
    assert all(c.baseline == (c.impl == DENSE_SDPA) for c in quick)
    assert {c.impl for c in local_cases("quick", ["tiled"])} == {DENSE_SDPA, "tiled"}
    full = local_cases("full")
    assert {c.workload.name for c in full} >= {"na2d 64x64 k7 b1", "na2d 128x128 k7 b4", "na1d 16384 k127 b1",
                                               "swa 16384 w256 b1", "na3d 16x16x16 k3 b1", "na3d 16x16x16 k5 b1",
                                               "swin 56x56 w7 s3 b1", "swin 56x56 w7 s3 b4"}
    with pytest.raises(ValueError, match="subset"):
        local_cases("huge")


def test_peak_memory_sees_torch_allocations() -> None:
    assert peak_allocated_bytes(lambda: torch.ones(1 << 20) + 1) >= 4 * (1 << 20)


def test_percentile() -> None:
    values = [float(v) for v in range(11)]
    assert percentile(values, 0.1) == 1.0 and percentile(values, 0.5) == 5.0
    assert math.isclose(percentile([1.0, 2.0], 0.5), 1.5)


def test_registry_suite_covers_every_variant() -> None:
    registered = attnzoo.variants()
    for subset in ("quick", "full"):
        cases = registry_cases(subset)
        for variant in registered:
            mine = [c for c in cases if c.workload.variant == variant.name]
            assert {c.impl for c in mine} == set(variant.implementations), (subset, variant.name)
            assert [c.impl for c in mine if c.baseline] == ["reference"]
            assert all(c.workload.family == variant.family and c.workload.device == "cpu" for c in mine)
    assert {c.impl for c in registry_cases("quick", ["tiled"])} == {"reference", "tiled"}
    assert {c.workload.variant for c in SUITES["all"]("quick", None, device="cpu")} == {v.name for v in registered}
    with pytest.raises(ValueError, match="subset"):
        registry_cases("huge")


def test_registry_suite_skips_with_reasons() -> None:
    cases = {(c.workload.variant, c.impl): c for c in registry_cases("full")}
    flex = cases[("window_attention_2d", "flex")]
    assert flex.skip is None and flex.backward_skip.startswith("NotSupportedError: flex: backward on device=cpu")
    assert "compiles per shape" in {(c.workload.variant, c.impl): c for c in registry_cases("quick")}[
        ("window_attention_2d", "flex")].skip


def test_benchmark_case_defaults_to_the_largest_case() -> None:
    spec = get_spec("neighborhood_attention_1d")
    assert benchmark_case(spec)["grid"] == (500,)
    chosen = {"batch": 1, "heads": 1, "grid": (7,), "head_dim": 8, "kernel_size": 3}
    assert benchmark_case(dataclasses.replace(spec, benchmark_case=chosen)) is chosen
    name = registry_cases("full", family="local")[0].workload.name
    assert name.startswith(attnzoo.variants("local")[0].name)


def test_registry_suite_runs_a_variant() -> None:
    """Every implementation of one variant on its tiny case: timed both ways, errors against the float64
    reference at float32 round-off; a call raising NotSupportedError is a skipped row with the reason."""
    variant = attnzoo.get_variant("lightning_attention")
    cases = variant_cases(variant, "quick")

    def refused(inputs: dict, prepared: object) -> torch.Tensor:
        raise NotSupportedError("lightning_attention: no implementation can run this call:\n  x: is_causal=False")

    cases.append(dataclasses.replace(cases[0], impl="refused", forward=refused, baseline=False))
    rows = _rows(run_cases(cases, FAST, progress=False))
    assert set(rows) == {*variant.implementations, "refused"}
    for impl in variant.implementations:
        assert rows[impl]["status"] == "ok" and rows[impl]["max_abs_error"] < 1e-5
        assert all(m["status"] == "ok" and m["gflops"] is None for m in rows[impl]["modes"].values())
        assert rows[impl]["modes"]["forward"]["speedup"] is not None
    assert rows["refused"]["status"] == "skipped" and "is_causal=False" in rows["refused"]["reason"]


def test_every_suite_takes_a_device() -> None:
    for name, suite in SUITES.items():
        assert inspect.signature(suite).parameters["device"].default == "cpu", name
    assert {c.workload.device for c in local_cases("quick", device="cpu")} == {"cpu"}
    assert all(c.workload.device == "cpu" for c in SUITES["linear"]("quick", None, device="cpu"))


def test_peak_memory_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    assert peak_allocated_bytes(lambda: torch.ones(1 << 16) + 1) > 0
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    print("still", file=sys.stderr, flush=True)
    os.write(2, b"fd 2 restored\n")
    assert capfd.readouterr().err == "still\nfd 2 restored\n"


def test_peak_memory_restores_stderr_after_an_exception(capfd: pytest.CaptureFixture[str]) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        peak_allocated_bytes(boom)
    capfd.readouterr()
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_machine_names_its_vector_isa(run: dict) -> None:
    machine = run["machine"]
    assert machine["isa"] in ("AMX", "AVX-512", "AVX2", "none detected")
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert vector_isa(frozenset({"avx2", "avx512f", "amx_tile"}))["isa_levels"] == ["AMX", "AVX-512", "AVX2"]
    assert vector_isa(frozenset({"sse2", "avx2"}))["isa"] == "AVX2"
    assert vector_isa(frozenset())["isa"] == "none detected"
    body = machine_section(run).body
    assert f"vector ISA: {machine['isa']}" in body and machine["torch_cpu_capability"] in body
