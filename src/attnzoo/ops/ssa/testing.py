"""Test spec of SSA: awkward lengths and segmentations (one-token segments, one segment, a shorter last segment,
lengths 1, 63 and 500), both directions, subsampling ratios from 1 (every key) to 8, with and without the
``-log pi`` weights. The subsample is an option: :func:`attnzoo.ops.ssa.sampling.ssa_sample` drawn from a
generator seeded by the case's ``seed``, the same for every implementation. Bad samples, segment sizes and
options."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import torch

from attnzoo.ops.ssa.functional import VARIANT_NAME
from attnzoo.ops.ssa.sampling import SSASample, ssa_sample
from attnzoo.testing import (
    Case,
    ErrorInput,
    OpTestSpec,
    bad_layer_option,
    case_future_mask,
    flag_error_inputs,
    qkv_inputs,
    register_spec,
    scale_error_inputs,
)


def case_sample(case: Case) -> SSASample:
    """The case's subsample: its segment size, ``ratio`` (default 4), causality, ``local_segments`` (default 1)
    and ``locality`` (default 1), from ``torch.Generator().manual_seed(case.get("seed", 0))``."""
    return ssa_sample(case["grid"][0], case["segment_size"], case.get("ratio", 4.0), case.get("is_causal", False),
                      case.get("local_segments", 1), case.get("locality", 1.0),
                      generator=torch.Generator().manual_seed(case.get("seed", 0)))


def _options(case: Case) -> dict[str, Any]:
    return {"sample": case_sample(case), "is_causal": case.get("is_causal", False),
            "importance_weighting": case.get("weighted", False)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    length = rnd.randint(1, 40)
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (length,), "head_dim": rnd.randint(1, 9),
            "segment_size": rnd.randint(1, length), "ratio": rnd.choice([1.0, 1.5, 2.0, 4.0, 8.0]),
            "is_causal": rnd.random() < 0.6, "local_segments": rnd.randint(0, 2),
            "locality": rnd.choice([0.0, 1.0, 2.0]), "weighted": rnd.random() < 0.5, "seed": rnd.randint(0, 2**31)}


CASES = [
    {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "segment_size": 1, "ratio": 1.0},
    {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "segment_size": 8, "ratio": 2.0, "weighted": True},
    {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "segment_size": 20, "is_causal": True},
    {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "segment_size": 32, "ratio": 8.0, "local_segments": 0,
     "locality": 2.0, "weighted": True},
    {"batch": 2, "heads": 1, "grid": (64,), "head_dim": 8, "segment_size": 64, "is_causal": True},
    {"batch": 2, "heads": 2, "grid": (48,), "head_dim": 8, "segment_size": 1, "ratio": 3.0, "local_segments": 0,
     "is_causal": True, "weighted": True},
    {"batch": 1, "heads": 3, "grid": (40,), "head_dim": 4, "segment_size": 8, "ratio": 1.0, "is_causal": True},
    {"batch": 2, "heads": 2, "grid": (90,), "head_dim": 6, "segment_size": 7, "ratio": 4.0, "local_segments": 2,
     "locality": 0.0, "seed": 3},
]
SAMPLED = CASES[1]  # 63 tokens in 8 segments of 8 (the last of 7), non-causal, half the keys, weighted
_GOOD = case_sample(SAMPLED)


def _bad_sample(description: str, error: type[Exception], match: str, **fields: Any) -> ErrorInput:
    return ErrorInput(description, error, match, options={"sample": replace(_GOOD, **fields)}, case=SAMPLED)


def _with(row: int, slot: int, value: int) -> torch.Tensor:
    index = _GOOD.key_index.clone()
    index[row, slot] = value
    return index


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (12,), "head_dim": 3, "segment_size": 3, "ratio": 2.0,
               "local_segments": 0, "is_causal": True, "weighted": True},
    make_inputs=qkv_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=case_future_mask(False),
    layer_input_shape=(2, 64, 32),
    # a training step's attention at 4k tokens, a quarter of the keys per query segment, causal
    benchmark_case={"batch": 1, "heads": 4, "grid": (4096,), "head_dim": 64, "segment_size": 64, "ratio": 4.0,
                    "is_causal": True},
    error_inputs=[
        *scale_error_inputs(case=SAMPLED), *flag_error_inputs("is_causal", "importance_weighting", case=SAMPLED),
        ErrorInput("sample not an SSASample", TypeError, r"sample must be an SSASample \(attnzoo.ops.ssa_sample\), "
                   "got Tensor", options={"sample": _GOOD.key_index}, case=SAMPLED),
        _bad_sample("segment longer than the sequence", ValueError,
                    r"sample.segment_size=64: expected at most the sequence length N=63", segment_size=64),
        _bad_sample("segment size 0", ValueError, r"sample.segment_size=0: expected an int >= 1", segment_size=0),
        _bad_sample("key_index for another segment size", ValueError, r"sample.key_index has shape \(8, \d+\); "
                    r"expected \(ceil\(N / segment_size\), K\) = \(16, K >= 1\) for N=63, segment_size=4",
                    segment_size=4),
        _bad_sample("key_index int32", TypeError, r"sample.key_index must be an int64 torch.Tensor",
                    key_index=_GOOD.key_index.int()),
        _bad_sample("key_index out of range", ValueError, r"sample.key_index has entries outside \[-1, 63\)",
                    key_index=_with(0, 0, 63)),
        _bad_sample("a key twice", ValueError, r"sample.key_index\[2\] holds a key twice",
                    key_index=_with(2, 1, int(_GOOD.key_index[2, 0]))),
        _bad_sample("own segment incomplete", ValueError, r"sample.key_index\[3\] lacks keys of its own segment "
                    r"\(positions 24 to 31\)", key_index=_GOOD.key_index.masked_fill(
                        (_GOOD.key_index == 26) & (torch.arange(8)[:, None] == 3), -1)),
        _bad_sample("inclusion of another shape", ValueError, r"sample.inclusion has shape \(8, 1\); expected "
                    r"key_index's shape", inclusion=_GOOD.inclusion[:, :1]),
        _bad_sample("inclusion above 1", ValueError, r"sample.inclusion has \d+ values outside \(0, 1\] at sampled "
                    "keys", inclusion=_GOOD.inclusion * 2),
        _bad_sample("inclusion 0", ValueError, r"sample.inclusion has \d+ values outside \(0, 1\]",
                    inclusion=_GOOD.inclusion * 0),
        _bad_sample("inclusion int64", TypeError, r"sample.inclusion must be a floating torch.Tensor, got torch.int64",
                    inclusion=_GOOD.key_index),
    ],
    layer_error_inputs=[
        bad_layer_option("segment_size", 0, ValueError, " an int >= 1"),
        bad_layer_option("subsample_ratio", 0.5, ValueError, " a finite real number >= 1.0"),
        bad_layer_option("subsample_ratio", "4", expected=" a finite real number >= 1.0"),
        bad_layer_option("local_segments", -1, ValueError, " an int >= 0"),
        bad_layer_option("locality", -1.0, ValueError, " a finite real number >= 0.0"),
        bad_layer_option("is_causal", "no", expected=" a bool"),
        bad_layer_option("importance_weighting", 1, expected=" a bool"),
    ],
))
