"""``attnzoo bench --op NAME``: one variant on one's own shape and options, with both dense SDPA baselines."""

from __future__ import annotations

import json

import pytest

from attnzoo.bench.op import DENSE_SDPA, FLASH_SDPA, parse_opt
from attnzoo.cli import main

FAST = ["--quick", "--no-progress", "--impl", "tiled"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["bench", *argv, *FAST]) == 0
    return capsys.readouterr().out


def test_sliding_window_on_own_shape_reports_both_baselines(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    out = _run(capsys, "--op", "sliding_window_attention", "--batch", "1", "--heads", "2", "--length", "48",
               "--head-dim", "8", "--opt", "window=8", "--opt", "is_causal=True", "--backward", "--out",
               str(tmp_path))
    assert "dense-sdpa" in out and "flash-sdpa" in out and "is_causal=True, no mask" in out
    doc = json.loads((tmp_path / "op_sliding_window_attention_cpu.json").read_text())
    rows = {row["impl"]: row for row in doc["rows"]}
    assert set(rows) == {DENSE_SDPA, FLASH_SDPA, "tiled"}
    tiled = rows["tiled"]
    assert tiled["shape"]["grid"] == [48] and tiled["shape"]["options"]["window"] == 8
    for mode in ("forward", "forward_backward"):
        assert tiled["modes"][mode]["status"] == "ok", tiled["modes"][mode]
        assert set(tiled["speedups"][mode]) == {DENSE_SDPA, FLASH_SDPA}
        assert all(v is not None and v > 0 for v in tiled["speedups"][mode].values())
    assert tiled["max_abs_error"] < 1e-4
    assert rows[FLASH_SDPA]["max_abs_error"] is None  # a baseline computes another function


def test_neighborhood_2d_on_own_grid_forward_only(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, "--op", "neighborhood_attention_2d", "--grid", "6", "8", "--heads", "1", "--head-dim", "4",
               "--opt", "kernel_size=3")
    assert "grid=(6, 8)" in out and "kernel_size': 3" in out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert any(line.startswith("| dense-sdpa |") for line in lines)
    assert any(line.startswith("| flash-sdpa |") for line in lines)
    assert any(line.startswith("| tiled | ") and "failed" not in line for line in lines)
    assert "fwd+bwd ms" not in out  # no --backward: forward only


def test_unknown_option_is_refused_naming_it() -> None:
    with pytest.raises(SystemExit, match=r"--opt windw=8: sliding_window_attention has no option 'windw'.*window"):
        main(["bench", "--op", "sliding_window_attention", "--length", "16", "--opt", "windw=8"])


def test_bad_option_value_is_refused_by_the_op_before_timing() -> None:
    with pytest.raises(SystemExit, match=r"window=0"):
        main(["bench", "--op", "sliding_window_attention", "--length", "16", "--opt", "window=0"])


@pytest.mark.parametrize("argv, message", [
    (["--op", "neighborhood_attention_2d", "--length", "16"], r"--length 16: .* 2 token axes"),
    (["--op", "nope"], r"no variant named 'nope'"),
    (["--op", "sliding_window_attention", "--impl", "fast"], r"--impl 'fast': not an implementation"),
    (["--op", "sliding_window_attention", "--opt", "window"], r"--opt 'window': expected KEY=VALUE"),
    (["--batch", "2"], r"--batch need --op"),
])
def test_bad_flags_name_themselves(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        main(["bench", *argv])


def test_opt_values_are_python_literals_or_words() -> None:
    assert parse_opt("is_causal=True") == ("is_causal", True)
    assert parse_opt("dilation=(1, 2)") == ("dilation", (1, 2))
    assert parse_opt("feature_map=elu") == ("feature_map", "elu")


def test_bf16_and_compiled_rows(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    """``--dtype bfloat16`` builds bf16 inputs (errors against the float64 oracle at bf16 size), and
    ``--compile`` adds a compiled row per implementation beside the eager one."""
    _run(capsys, "--op", "sliding_window_attention", "--batch", "1", "--heads", "2", "--length", "40",
         "--head-dim", "8", "--opt", "window=8", "--dtype", "bfloat16", "--compile", "--out", str(tmp_path))
    rows = {row["impl"]: row for row in json.loads((tmp_path / "op_sliding_window_attention_cpu.json").read_text())
            ["rows"]}
    assert {"tiled", "tiled+compile", "tiled (float32)"} <= set(rows)
    for impl in ("tiled", "tiled+compile"):
        assert rows[impl]["modes"]["forward"]["status"] == "ok", rows[impl]["modes"]["forward"]
        assert 1e-5 < rows[impl]["max_abs_error"] < 5e-2  # bf16 round-off, not float32's


def test_dtype_and_compile_need_op(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="--dtype, --compile need --op|--compile, --dtype need --op"):
        main(["bench", "--dtype", "bfloat16", "--compile"])
