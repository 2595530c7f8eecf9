"""``attnzoo compare`` at scale: the budget planner, the cost book, the quality cache, parallel workers giving
the sequential run's numbers, resuming after an interruption, and the every-family report (tiny settings)."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from attnzoo.compare import costs as costs_module
from attnzoo.compare import engine
from attnzoo.compare.cache import QualityCache
from attnzoo.compare.costs import CostBook
from attnzoo.compare.jobs import QualityJob, QualitySettings, SpeedJob, quality_jobs, representatives
from attnzoo.compare.pace import Pace, trim
from attnzoo.compare.plan import MARGIN, OVERHEAD_S, make_plan, makespan, parse_budget, wall_time
from attnzoo.compare.report import coverage, pick_lines
from attnzoo.compare.run import CompareOptions, compare
from attnzoo.tasks.mqar_eval import MQARTask
from attnzoo.tasks.sweep import leaderboard

TINY = QualitySettings(tasks=("mqar",), mqar=MQARTask(vocab_size=64, train_examples=64, test_examples=16, d_model=16,
                                                     batch_size=4),
                       mqar_lengths=((16, 2), (32, 4)), mqar_steps=3)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400),
                                               ("120", 120), ("2.5m", 150)])
def test_parse_budget(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "15 minutes", "-5m", "m"])
def test_parse_budget_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_budget(text)


def test_makespan_is_longest_first_list_scheduling() -> None:
    assert makespan([3, 5, 3, 4, 3], 2) == 10  # 5 | 4, then 5 | 7, 8 | 7, 8 | 10
    assert makespan([10], 4) == 10 and makespan([], 2) == 0 and makespan([1, 1, 1, 1], 2) == 2


def _jobs() -> list:
    jobs = quality_jobs(["full", "local", "linear"], TINY)
    speed = [SpeedJob(family, "all", f"{family} w", (), tier) for family, tier in
             (("full", 0), ("local", 0), ("linear", 0), ("local", 2), ("linear", 2))]
    return jobs + speed


def test_plan_fills_tiers_in_order_and_keeps_to_the_budget() -> None:
    jobs = _jobs()
    budget = 120.0
    plan = make_plan(jobs, lambda job: (10.0, "test"), budget, 2, lambda job: False)
    chosen = {p.job.label for p in plan.chosen}
    assert plan.wall_s <= budget * (1 - MARGIN) and plan.wall_s == wall_time(plan.chosen, 2)
    assert plan.left_out  # the budget had to cut
    worst_chosen = max(p.job.tier for p in plan.chosen)
    assert all(p.job.tier >= worst_chosen for p in plan.left_out)
    # every tier-0 job (the baseline on every setting, each family's representatives) is in
    assert all(p.job.label in chosen for p in plan.chosen + plan.left_out if p.job.tier == 0)
    # quality first (longest first), then speed
    kinds = [p.job.kind for p in plan.chosen]
    assert kinds == sorted(kinds, key=lambda k: k != "quality")


def test_plan_full_keeps_everything_and_cached_jobs_are_free() -> None:
    jobs = _jobs()
    full = make_plan(jobs, lambda job: (100.0, "test"), None, 1, lambda job: False)
    assert len(full.chosen) == len(jobs) and not full.left_out
    cached = make_plan(jobs, lambda job: (100.0, "test"), 300.0, 1, lambda job: job.tier == 3)
    assert all(p.estimate_s == 0 and p.source == "cached" for p in cached.chosen if p.job.tier == 3)
    assert {p.job.label for p in cached.chosen} >= {j.label for j in jobs if j.tier == 3}


def test_plan_refuses_a_budget_below_the_smallest_useful_run() -> None:
    with pytest.raises(ValueError, match=r"--budget 40s: below the smallest useful run .* give at least 2m"):
        make_plan(_jobs(), lambda job: (20.0, "test"), 40.0, 1, lambda job: False)
    assert OVERHEAD_S < 60


def test_families_take_turns_within_a_tier() -> None:
    plan = make_plan(_jobs(), lambda job: (10.0, "test"), OVERHEAD_S + 70 / (1 - MARGIN), 1, lambda job: False)
    assert {p.job.family for p in plan.chosen} == {"full", "local", "linear"}


def test_representatives_are_declared_or_the_first_variant() -> None:
    assert representatives("full") == ["softmax_attention"]
    assert set(representatives("linear")) == {"lightning_attention", "linear_attention"}


def test_cost_book_estimates_from_measured_then_similar_then_seed(tmp_path: Path, monkeypatch) -> None:
    seed = tmp_path / "seed.json"
    jobs = quality_jobs(["full", "linear"], TINY)
    a, b = jobs[0], next(j for j in jobs if j.setting == jobs[0].setting and j.mixer != jobs[0].mixer)
    seed.write_text(json.dumps({"format": 1, "machine": "build", "calibration_s": 1.0,
                                "costs": {a.cost_key(): {"seconds": 40.0, "work": a.work, "kind": "quality",
                                                         "setting": a.setting, "task": "mqar", "who": a.mixer}}}))
    monkeypatch.setattr(costs_module, "SEED", seed)
    book = CostBook(tmp_path / "costs.json", "here", calibration_s=2.0)
    assert book.estimate(a) == (80.0, "build machine's time x 2.00 (calibration)")
    assert book.estimate(b)[0] == pytest.approx(80.0 * b.work / a.work)
    book.record(a, 5.0)
    assert book.estimate(a) == (5.0, "measured before on this machine")
    assert book.estimate(b) == (pytest.approx(5.0 * b.work / a.work), "scaled from this setting's other mixers on "
                                                                       "this machine")
    assert CostBook(tmp_path / "costs.json", "here", 2.0).estimate(a)[0] == 5.0  # kept on disk
    (tmp_path / "costs.json").write_text("{broken")
    with pytest.warns(UserWarning, match="ignoring the unreadable cost book"):
        CostBook(tmp_path / "costs.json", "here", 2.0)


def _options(tmp_path: Path, **changes) -> CompareOptions:
    cache = tmp_path / "cache"
    base = CompareOptions(out=tmp_path / "out", budget_s=None, families=("full", "linear"), quality=TINY,
                          mixers=("softmax", "linear_attention"), speed=False, workers=1, threads_per_job=1,
                          quality_cache=QualityCache(cache), cost_path=cache / "costs.json", progress=False)
    base.out.mkdir(parents=True, exist_ok=True)
    return replace(base, **changes)


def _numbers(out: Path) -> dict:
    rows = json.loads((out / "quality.json").read_text())["rows"]
    return {(r["setting"], r["mixer"]): (r["test_accuracy"], r["params"]) for r in rows}


def test_two_workers_give_the_sequential_numbers_and_a_rerun_reuses_them(tmp_path: Path) -> None:
    compare(_options(tmp_path / "seq", quality_cache=None))
    sequential = _numbers(tmp_path / "seq" / "out")
    assert len(sequential) == 4  # two lengths x (softmax, linear attention)
    options = _options(tmp_path / "par", workers=2)
    report = compare(options)
    assert _numbers(options.out) == sequential
    text = report.read_text()
    assert "quality rows: 4 (0 reused from the cache, 4 measured now)" in text
    assert "- **linear** (" in text and "for recall `linear_attention`" in text
    compare(options)
    rows = json.loads((options.out / "quality.json").read_text())["rows"]
    assert all(r["provenance"].startswith("reused from ") for r in rows)
    assert _numbers(options.out) == sequential
    plan = json.loads((options.out / "plan.json").read_text())
    assert {job["estimate_from"] for job in plan["jobs"]} == {"cached"}


def test_an_interrupted_run_resumes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.run_quality_job
    calls = []

    def interrupted(job: QualityJob, run_dir: str, threads: int) -> dict:
        calls.append(job.label)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, run_dir, threads)

    monkeypatch.setattr(engine, "run_quality_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare(_options(tmp_path))
    monkeypatch.setattr(engine, "run_quality_job", real)
    compare(_options(tmp_path))
    rows = json.loads((tmp_path / "out" / "quality.json").read_text())["rows"]
    assert sum(r["provenance"].startswith("reused") for r in rows) == 1 and len(rows) == 4


def test_fresh_measures_again(tmp_path: Path) -> None:
    compare(_options(tmp_path, mixers=("softmax",)))
    options = _options(tmp_path, mixers=("softmax",), quality_cache=QualityCache(tmp_path / "cache", fresh=True))
    compare(options)
    rows = json.loads((options.out / "quality.json").read_text())["rows"]
    assert {r["provenance"] for r in rows} == {"measured now"}


def test_corrupt_quality_entry_is_measured_again(tmp_path: Path) -> None:
    compare(_options(tmp_path, mixers=("softmax",)))
    for entry in (tmp_path / "cache").glob("*.json"):
        if entry.name != "costs.json":
            entry.write_text("{not json")
    with pytest.warns(UserWarning, match="ignoring the unreadable cache entry"):
        compare(_options(tmp_path, mixers=("softmax",)))


@pytest.mark.skipif(not engine.submitit_available(), reason="submitit (extra attnzoo[cluster]) not installed")
def test_submitit_engine_gives_the_local_numbers(tmp_path: Path) -> None:
    compare(_options(tmp_path / "local", mixers=("softmax",), quality_cache=None))
    options = _options(tmp_path / "submitit", mixers=("softmax",), quality_cache=None, engine="submitit")
    compare(options)
    assert _numbers(options.out) == _numbers(tmp_path / "local" / "out")


def test_pick_lines_quote_the_numbers_and_name_the_missing() -> None:
    rows = [{"task": "mqar", "family": f, "mixer": m, "seq_len": n, "num_kv_pairs": n // 16, "test_accuracy": acc}
            for f, m, n, acc in (("full", "softmax", 64, 0.99), ("linear", "a", 64, 0.5), ("linear", "b", 64, 0.7))]
    text = pick_lines(rows, None, ["linear", "local"])
    assert "- **linear** (" in text and "for recall `b` (70% MQAR at L=64; softmax 99%)" in text
    assert "- **local** (" in text and "no row of this family ran" in text


def test_leaderboard_marks_lengths_a_mixer_did_not_run() -> None:
    rows = [{"mixer": m, "seq_len": n, "num_kv_pairs": n // 16, "test_accuracy": a, "train_items_per_s": 1.0,
             "params": 10} for m, n, a in (("a", 64, 0.9), ("a", 128, 0.1), ("b", 64, 0.2), ("b", 128, 0.5),
                                           ("c", 64, 0.95))]
    lines = leaderboard(rows).splitlines()
    assert lines[2].startswith("| b |") and lines[3].startswith("| a |") and lines[4].startswith("| c | 95.0% | — |")


def test_coverage_lists_what_the_budget_left_out() -> None:
    plan = make_plan(_jobs(), lambda job: (10.0, "test"), 120.0, 2, lambda job: False)
    text = coverage(plan, engine.Outcome())
    assert "left out by the budget" in text and "`attnzoo compare --full`" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "every job of the chosen families ran" in coverage(
            make_plan(_jobs(), lambda job: (1.0, "t"), None, 2, lambda job: False), engine.Outcome())


def test_pace_projects_at_the_measured_slowdown_and_trim_drops_the_lowest_priority() -> None:
    pace = Pace(budget_s=100.0)
    assert pace.slowdown == 1.0 and pace.fits(90.0)
    pace.finished(10.0, 30.0)
    pace.finished(0.0, 5.0)  # a cached job tells nothing
    assert pace.slowdown == 3.0 and pace.fits(30.0) and not pace.fits(40.0)
    waiting = make_plan(_jobs(), lambda job: (10.0, "test"), None, 1, lambda job: False).quality()
    dropped = trim(waiting, pace, lambda queue: 10.0 * len(queue))
    assert len(waiting) == 3 and all(p.job.tier >= max(w.job.tier for w in waiting) for p in dropped)
    assert Pace(None).fits(1e9)


def test_a_run_slower_than_planned_drops_jobs_to_keep_its_budget(tmp_path: Path) -> None:
    jobs = quality_jobs(["full", "linear"], replace(TINY, mqar_lengths=((16, 2),)), ["softmax", "linear_attention",
                                                                                    "lightning_attention"])
    plan = make_plan(jobs, lambda job: (1e-6, "test"), None, 1, lambda job: False)
    ticks = iter(range(0, 1000, 100))  # a clock that moves 100 s each time the pace looks at it
    outcome = engine.run_plan(plan, out_dir=tmp_path, progress=False,
                              pace=Pace(budget_s=250.0, clock=lambda: float(next(ticks))))
    # before job 1 at t=100 and job 2 at t=200 the rest still fits (each job's real seconds are far below 50);
    # at t=300 the budget is spent: the third job is dropped
    assert len(outcome.quality_rows) == 2 and len(outcome.dropped) == 1 and outcome.slowdown > 100
    assert "dropped while running to stay in the budget" in coverage(plan, outcome)
