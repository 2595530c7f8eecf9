"""attnzoo eval kv without the model: its settings are checked, the windows cover the text evenly, the report's
tables hold one row per measurement, and the command is wired. (The run itself loads SmolLM2: the committed
benchmarks/quality/kv/ came from `attnzoo eval kv --quick`.)"""

from __future__ import annotations

import pytest
import torch

from attnzoo.cli import _parser
from attnzoo.kv.evaluation import KVEvalConfig, _windows, fixed_policies, markdown, write


@pytest.mark.parametrize(("options", "message"), [
    ({"contexts": (0,)}, "contexts=0"), ({"ratios": (2.5,)}, "ratios=2.5"), ({"taus": (1.5,)}, "tau=1.5"),
    ({"modes": ("stream",)}, "modes=\\('stream',\\)"), ({"modes": ()}, "non-empty"), ({"windows": 0}, "windows=0"),
])
def test_bad_settings_are_refused(options: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        KVEvalConfig(**options)


def test_windows_span_the_text_and_refuse_short_texts() -> None:
    tokens = torch.arange(100)
    windows = _windows(tokens, 30, 3)
    assert [int(w[0, 0]) for w in windows] == [0, 35, 70] and all(w.shape == (1, 30) for w in windows)
    with pytest.raises(ValueError, match="has 100 tokens; a window needs 101"):
        _windows(tokens, 101, 1)


def test_ratios_become_keep_ratios() -> None:
    assert {p.keep_ratio for p in fixed_policies(4).values()} == {0.25}


def test_report_tables_and_files(tmp_path: object) -> None:
    config = KVEvalConfig(contexts=(8,), ratios=(1, 2), taus=(0.9,), scored=2, windows=1)
    rows = [{"mode": m, "context": 8, "policy": p, "ratio": 2, "kept_fraction": 0.5, "perplexity": 3.0,
             "kv_bytes_per_token": 10.0} for m in config.modes for p in ("h2o", "full")]
    report = {"command": "attnzoo eval kv", "config": config.__dict__, "model": "m", "text": "t", "rows": rows}
    text = markdown(report)
    assert text.count("| h2o | 2 | 0.500 | 3.000 | 10 |") == 2 and "## context 8, decode" in text
    json_path, md_path, *_ = write(report, tmp_path)
    assert json_path.exists() and md_path.read_text() == text


def test_the_command_is_wired() -> None:
    args = _parser().parse_args(["eval", "kv", "--quick", "--out", "x"])
    assert args.quick and args.out == "x" and args.handler.__name__ == "_eval_kv"
