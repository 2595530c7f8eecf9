"""The CNN-module benchmark suite (``attnzoo bench --family cnn``): every module of the family beside the 3x3
convolution it augments, the convolution the baseline; run through the runner on the quick (tiny) workloads."""

from __future__ import annotations

import attnzoo
from attnzoo.bench import Settings, run_cases
from attnzoo.bench.suites import SUITES
from attnzoo.bench.suites.cnn import CONV, cnn_cases


def test_every_module_and_implementation_beside_its_convolution() -> None:
    assert SUITES["cnn"] is cnn_cases
    cases = cnn_cases("full")
    for variant in attnzoo.variants("cnn"):
        mine = [case for case in cases if case.workload.variant == variant.name]
        assert [case.impl for case in mine if case.baseline] == [CONV]
        assert {case.impl for case in mine} == {CONV, *variant.implementations}
        assert mine[0].workload.shape["channels"] == 64 and tuple(mine[0].workload.shape["grid"]) == (56, 56)
    assert {case.impl for case in cnn_cases("quick", ["reference"])} == {CONV, "reference"}


def test_quick_rows_run_and_agree_with_their_references() -> None:
    doc = run_cases(cnn_cases("quick"), Settings(min_repeats=1, max_repeats=2, target_s=0.01), progress=False)
    assert {row["variant"] for row in doc["rows"]} == {v.name for v in attnzoo.variants("cnn")}
    for row in doc["rows"]:
        assert row["status"] == "ok" and row["modes"]["forward_backward"]["status"] == "ok", row
        assert row["max_abs_error"] < 1e-5, (row["workload"], row["impl"], row["max_abs_error"])
