"""The additions to attnzoo eval kv, without SmolLM2: the needle prompt puts the needle where asked and its answer is
checkable, exact match scores it, a policy whose budget covers the sequence answers as full attention does (a tiny
random Llama), the peak KV bytes the measurement reports stay within the budget's bytes, the figures are written
from a small report, and bad arguments are refused naming them. No test asserts a timing."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tiny_llama import tiny_llama  # noqa: E402

from attnzoo.cli import _parser  # noqa: E402
from attnzoo.kv import H2O, SlidingWindow, StreamingLLM, ZipVL  # noqa: E402
from attnzoo.kv.evaluation import KVEvalConfig, markdown, policy_grid  # noqa: E402
from attnzoo.kv.measure import budget_nbytes, decode_once, machine_info, measure_decode  # noqa: E402
from attnzoo.kv.needle import (  # noqa: E402
    NEEDLE,
    answer_needle,
    build_needle_prompt,
    exact_match,
    needle_codes,
    run_needle,
)
from attnzoo.kv.plots import write_plots  # noqa: E402

VOCAB = 128


class CharTokenizer:
    """One token per character (code point mod the vocabulary), enough for prompt construction."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) % VOCAB for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


HAYSTACK = "".join(f"Sentence number {i} is here. " for i in range(60))


@pytest.fixture(scope="module")
def llama() -> torch.nn.Module:
    return tiny_llama(VOCAB, max_positions=512)


@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_needle_sits_at_the_asked_depth_on_a_sentence_boundary(depth: float) -> None:
    tokenizer = CharTokenizer()
    prompt = build_needle_prompt(tokenizer, tokenizer.encode(HAYSTACK), 400, depth, "4817")
    text = tokenizer.decode(prompt.context[0].tolist())
    needle = NEEDLE.format(code="4817")
    assert prompt.context.shape == (1, 400) and text.count(needle) == 1
    assert text.index(needle) == prompt.needle_start
    haystack = 400 - len(needle)
    # sentences here are 30 characters: the nearest boundary is at most 15 away (0 and the end are boundaries)
    assert abs(prompt.needle_start - depth * haystack) <= 15 and abs(prompt.depth - depth) <= 15 / haystack
    assert prompt.needle_start in (0, haystack) or text[prompt.needle_start - 1] == "."
    assert text.replace(needle, "") == HAYSTACK[:haystack]
    assert tokenizer.decode(prompt.question[0].tolist()).endswith("The secret code is")
    assert prompt.answer == "4817" and prompt.answer_tokens == len(" 4817")


def test_exact_match() -> None:
    assert exact_match(" 4817.", "4817") and exact_match("4817 and more", "4817") and exact_match("\n4817,", "4817")
    assert not exact_match(" 48171", "4817") and not exact_match(" 481", "4817") and not exact_match("", "4817")
    assert not exact_match(" code 4817", "4817")


def test_codes_are_distinct_four_digit_and_reproducible() -> None:
    codes = needle_codes(20, seed=3)
    assert codes == needle_codes(20, seed=3) and len(set(codes)) == 20 and all(len(c) == 4 for c in codes)


@pytest.mark.parametrize(("call", "message"), [
    (lambda t: build_needle_prompt(t, t.encode(HAYSTACK), 400, 1.5, "1"), "depth=1.5"),
    (lambda t: build_needle_prompt(t, t.encode(HAYSTACK), 400, -0.1, "1"), "depth=-0.1"),
    (lambda t: build_needle_prompt(t, t.encode(HAYSTACK), 0, 0.5, "1"), "context=0"),
    (lambda t: build_needle_prompt(t, t.encode(HAYSTACK), 10, 0.5, "1"), "context=10"),
    (lambda t: build_needle_prompt(t, t.encode("short."), 400, 0.5, "1"), "haystack has 6 tokens"),
    (lambda t: build_needle_prompt(t, t.encode(HAYSTACK), 400, 0.5, "x1"), "code='x1'"),
    (lambda t: needle_codes(0), "count=0"),
])
def test_bad_needle_arguments_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(CharTokenizer())


@pytest.mark.parametrize("options", [{"needle_depths": (0.5, 1.2)}, {"needle_depths": ()}, {"needle_trials": 0},
                                     {"timing_tokens": 0}, {"timing_repeats": -1}])
def test_bad_eval_settings_are_refused(options: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        KVEvalConfig(**options)


@pytest.mark.parametrize("policy", [H2O(budget=300), SlidingWindow(budget=300), StreamingLLM(budget=300),
                                    H2O(budget=300, recent_fraction=0.0, normalize=True), ZipVL(tau=1.0)])
def test_a_budget_covering_the_sequence_answers_as_full_attention(llama: torch.nn.Module, policy: object) -> None:
    """200 context + the question + 6 answer tokens < 300 (ZipVL at tau = 1 keeps every token)."""
    tokenizer = CharTokenizer()
    prompt = build_needle_prompt(tokenizer, tokenizer.encode(HAYSTACK), 200, 0.5, "4817")
    assert 200 + prompt.question.shape[1] + 6 < 300
    full, _ = answer_needle(llama, prompt, None, new_tokens=6)
    ours, held = answer_needle(llama, prompt, policy, new_tokens=6)
    assert ours == full and held == budget_nbytes(llama.config, 200, itemsize=8)


def test_a_small_budget_evicts_the_needle_from_the_cache(llama: torch.nn.Module) -> None:
    """The needle at depth 0 is out of a 20-token sliding window: the answer can still be anything (random model),
    but the cache held after the prefill is the budget's."""
    tokenizer = CharTokenizer()
    prompt = build_needle_prompt(tokenizer, tokenizer.encode(HAYSTACK), 200, 0.0, "4817")
    _, held = answer_needle(llama, prompt, SlidingWindow(budget=20), new_tokens=2)
    assert held == budget_nbytes(llama.config, 20, itemsize=8)


def test_run_needle_rows(llama: torch.nn.Module) -> None:
    tokenizer = CharTokenizer()
    tokens = torch.tensor(tokenizer.encode(HAYSTACK * 2))
    grid = [("full", 1, H2O(budget=10_000)), ("sliding_window", 4, SlidingWindow(keep_ratio=0.25))]
    rows = run_needle(llama, tokenizer, tokens, 120, (0.0, 1.0), 2, grid, progress=False)
    assert [r["policy"] for r in rows] == ["full", "sliding_window"] and all(r["trials"] == 4 for r in rows)
    assert all(0 <= r["accuracy"] <= 1 and set(r["accuracy_by_depth"]) == {"0.0", "1.0"} for r in rows)
    assert rows[1]["kv_bytes_per_token"] == pytest.approx(rows[0]["kv_bytes_per_token"] / 4)
    with pytest.raises(ValueError, match="trials=0"):
        run_needle(llama, tokenizer, tokens, 120, (0.5,), 0, grid, progress=False)
    with pytest.raises(ValueError, match="depth=2"):
        run_needle(llama, tokenizer, tokens, 120, (2,), 1, grid, progress=False)


@pytest.mark.parametrize("policy", [SlidingWindow(budget=16), StreamingLLM(budget=16), H2O(budget=16),
                                    H2O(keep_ratio=0.25, recent_fraction=0.0, normalize=True)])
def test_peak_kv_bytes_stay_within_the_budget(llama: torch.nn.Module, policy: object) -> None:
    window = torch.randint(0, VOCAB, (1, 80), generator=torch.Generator().manual_seed(0))
    measured = decode_once(llama, window, 64, 12, policy)
    budget = budget_nbytes(llama.config, 16, itemsize=8)
    assert 0 < measured["peak_kv_bytes"] <= budget and measured["seconds"] > 0
    full = decode_once(llama, window, 64, 12, None)
    assert full["peak_kv_bytes"] == budget_nbytes(llama.config, 76, itemsize=8)


def test_measure_decode_rows(llama: torch.nn.Module) -> None:
    window = torch.randint(0, VOCAB, (1, 40), generator=torch.Generator().manual_seed(1))
    grid = [("plain", "-", None), ("full", 1, H2O(budget=1000)), ("zipvl", 0.9, ZipVL(tau=0.9))]
    rows = measure_decode(llama, window, 32, 4, 2, grid, progress=False)
    assert [r["policy"] for r in rows] == ["plain", "full", "zipvl"]
    assert rows[1]["speed_vs_full"] == 1.0 and all(r["tokens_per_s_median"] > 0 for r in rows)
    assert rows[2]["peak_kv_bytes"] <= rows[1]["peak_kv_bytes"]
    with pytest.raises(ValueError, match="repeats=0"):
        measure_decode(llama, window, 32, 4, 0, grid, progress=False)
    with pytest.raises(ValueError, match="named 'full'"):
        measure_decode(llama, window, 32, 4, 1, grid[:1], progress=False)
    with pytest.raises(ValueError, match="tokens=0"):
        decode_once(llama, window, 32, 0, None)
    info = machine_info()
    assert info["threads"] >= 1 and isinstance(info["cpu"], str) and isinstance(info["isa"], str)


def _report() -> dict:
    config = KVEvalConfig(contexts=(8, 16), ratios=(1, 2), taus=(0.9,), scored=2, windows=1, needle_depths=(0.5,),
                          needle_trials=1, timing_tokens=2, timing_repeats=1)
    rows = [{"mode": m, "context": c, "policy": p, "ratio": r, "kept_fraction": 1 / r, "perplexity": 3.0 * r,
             "kv_bytes_per_token": 10.0 / r} for m in config.modes for c in config.contexts
            for p, r in (("full", 1), ("h2o", 2), ("sliding_window", 2))]
    needle = [{"context": c, "policy": p, "setting": r, "accuracy": 1 / r, "accuracy_by_depth": {"0.5": 1 / r},
               "kv_bytes_per_token": 10.0 / r, "trials": 1} for c in config.contexts
              for p, r in (("full", 1), ("h2o", 2), ("zipvl", 0.9))]
    timing = [{"context": c, "policy": p, "setting": 1, "decode_tokens": 2, "repeats": 1, "tokens_per_s_median": 5.0,
               "peak_kv_bytes": 2**20, "peak_rss_rise_bytes_median": None, "speed_vs_full": 1.0}
              for c in config.contexts for p in ("plain", "full")]
    return {"command": "attnzoo eval kv", "config": config.__dict__, "model": "m", "text": "t", "rows": rows,
            "needle": needle, "timing": timing, "machine": {"cpu": "cpu", "isa": "AVX2", "threads": 2}}


def test_plots_are_written(tmp_path: object) -> None:
    paths = write_plots(_report(), tmp_path)
    assert [p.name for p in paths] == ["kv_perplexity.png", "kv_needle.png"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    assert [p.name for p in write_plots({**_report(), "needle": []}, tmp_path / "x")] == ["kv_perplexity.png"]
    with pytest.raises(ValueError, match="no 'full' row"):
        write_plots({**_report(), "needle": _report()["needle"][1:]}, tmp_path / "y")


def test_markdown_shows_needle_timing_and_figures() -> None:
    text = markdown(_report())
    assert "![perplexity against KV bytes per token](kv_perplexity.png)" in text and "(kv_needle.png)" in text
    assert "| h2o | 2 | 5 | 0.50 | 0.50 |" in text and "| plain | 1 | 5.0 | 1.00 | 1.00 | - |" in text
    assert "ISA AVX2, 2 torch thread(s)" in text


def test_grid_and_flags() -> None:
    grid = policy_grid(KVEvalConfig(ratios=(1, 4), taus=(0.9,)), 512)
    assert [(n, s) for n, s, _ in grid][:2] == [("full", 1), ("sliding_window", 4)] and len(grid) == 1 + 4 + 2
    args = _parser().parse_args(["eval", "kv", "--quick", "--no-needle", "--no-timing"])
    assert args.needle is False and args.timing is False
    args = _parser().parse_args(["eval", "kv", "--taus", "0.9,0.99"])
    assert args.needle is True and args.timing is True and args.taus == "0.9,0.99"
    quick = KVEvalConfig.quick()
    assert quick.contexts == (512,) and quick.needle and quick.timing and quick.timing_repeats >= 3
