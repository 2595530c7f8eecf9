"""The heads benchmark suite: decoding steps of MHA / GQA / MQA / DiffQKV with their cache bytes, run through the
runner (one tiny prefix, so the test takes a second)."""

from __future__ import annotations

import pytest
import torch

from attnzoo.bench import Settings, run_cases
from attnzoo.bench.suites.heads import CONFIGS, DecodeSpec, heads_cases
from attnzoo.ops.diffqkv.heads import kv_cache_bytes_per_token


def test_quick_subset_holds_every_heads_variant_and_every_decode_config() -> None:
    cases = heads_cases("quick")
    names = {case.workload.name for case in cases}
    assert {f"decode {config} after 1024 b1" for config in CONFIGS} <= names
    assert {case.workload.variant for case in cases} >= {"diffqkv_attention", "grouped_query_attention"}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_decode_step_rows_agree_with_the_reference_and_state_the_cache_bytes(config: str) -> None:
    spec = DecodeSpec(config, 64)
    doc = run_cases(spec.cases(), Settings(min_repeats=1, max_repeats=2, target_s=0.01), progress=False)
    k_heads, v_heads = CONFIGS[config]
    for row in doc["rows"]:
        assert row["status"] == "ok" and row["max_abs_error"] < 1e-4, row
        assert row["shape"]["kv_bytes_per_token"] == kv_cache_bytes_per_token(k_heads, 64, v_heads, 64, torch.float32)
        assert row["modes"]["forward_backward"]["status"] == "skipped"
    assert doc["rows"][0]["baseline"] and {row["impl"] for row in doc["rows"]} == {"sdpa, K/V repeated", "sdpa",
                                                                                    "grouped"}
