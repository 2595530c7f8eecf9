"""Test specs of Combiner-Fixed and Combiner-Axial: awkward lengths and segmentations (one segment, segments of one
token, lengths 1, 63 and 500), every summary, both directions, the official own-segment summary, an explicit
``summary_key``, random cases, futures, bad segmentations and options."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.combiner.functional import AXIAL, FIXED, ROW_SUMMARIES
from attnzoo.ops.combiner.pooling import SUMMARIES
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    case_future_mask,
    flag_error_inputs,
    int_error_inputs,
    qkv_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def _divisor(rnd: random.Random, length: int) -> int:
    return rnd.choice([d for d in range(1, length + 1) if length % d == 0])


def _random_case(rnd: random.Random) -> dict[str, Any]:
    length, causal = rnd.randint(1, 24), rnd.random() < 0.6
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (length,), "head_dim": rnd.randint(1, 9),
            "segment_length": _divisor(rnd, length), "is_causal": causal,
            "summarize_own_segment": not causal and rnd.random() < 0.3}


def _options(case: Case) -> dict[str, Any]:
    return {"segment_length": case["segment_length"], "is_causal": case.get("is_causal", True),
            "summarize_own_segment": case.get("summarize_own_segment", False)}


def _fixed_options(case: Case) -> dict[str, Any]:
    return {**_options(case), "summary": case.get("summary", "identity-max")}


def _axial_options(case: Case) -> dict[str, Any]:
    return {**_options(case), "row_summary": case.get("row_summary", "none")}


def _axial_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """:func:`attnzoo.testing.qkv_inputs`, and a random ``summary_key`` when the case asks for one."""
    inputs = qkv_inputs(case, dtype, device, generator)
    if case.get("summary_key"):
        inputs["summary_key"] = random_tensor(inputs["key"].shape, dtype, device, generator)
    return inputs


def _segment_errors(case: Case) -> list[ErrorInput]:
    """Segmentations that do not fit the 63-token sequence of ``case``, and the own summary when causal."""
    return [bad_option("segment_length", 5, ValueError, " a divisor of the sequence length N=63", case=case),
            bad_option("segment_length", 64, ValueError, " at most the sequence length N=63", case=case),
            bad_option("summarize_own_segment", True, ValueError, " False with is_causal=True",
                       extra={"is_causal": True}, case=case),
            *int_error_inputs("segment_length", case=case),
            *scale_error_inputs(case=case), *flag_error_inputs("is_causal", "summarize_own_segment", case=case)]


FIXED_CASES = [
    {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "segment_length": 1},
    # the dtype-claims test runs this case in half precision, where rounding the inputs can swap two near-tied
    # maxima of a segment and send max pooling's gradient to another token (a discontinuity of max, not an
    # error): mean pooling here; max is the default of every case that names no summary
    {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "segment_length": 7, "is_causal": False,
     "summary": "identity-mean"},
    {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "segment_length": 20},
    {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "segment_length": 25, "is_causal": False,
     "summarize_own_segment": True, "summary": "identity-mean"},
    {"batch": 2, "heads": 1, "grid": (64,), "head_dim": 8, "segment_length": 64},
    {"batch": 2, "heads": 2, "grid": (64,), "head_dim": 8, "segment_length": 1, "summary": "relu-sum"},
    {"batch": 2, "heads": 2, "grid": (48,), "head_dim": 8, "segment_length": 6, "is_causal": False,
     "summary": "relu-max"},
    {"batch": 1, "heads": 3, "grid": (40,), "head_dim": 4, "segment_length": 8, "summary": "identity-sum"},
    {"batch": 1, "heads": 1, "grid": (30,), "head_dim": 5, "segment_length": 5, "summary": "relu-mean"},
]

register_spec(OpTestSpec(
    variant=FIXED,
    cases=FIXED_CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (12,), "head_dim": 3, "segment_length": 3},
    make_inputs=qkv_inputs,
    options=_fixed_options,
    random_case=lambda rnd: {**_random_case(rnd), "summary": rnd.choice(SUMMARIES)},
    future_mask=case_future_mask(True),
    layer_input_shape=(2, 64, 32),
    # the workload (Combiner-Fixed forward+backward, fp32, batch 1) at 4k tokens, s = sqrt(N)
    benchmark_case={"batch": 1, "heads": 4, "grid": (4096,), "head_dim": 64, "segment_length": 64},
    error_inputs=[*_segment_errors(FIXED_CASES[1]),
                  bad_option("summary", "deepset-max", ValueError, f" one of {SUMMARIES}"),
                  bad_option("summary", None, ValueError, f" one of {SUMMARIES}")],
    layer_error_inputs=[bad_layer_option("segment_length", 0, ValueError, " an int >= 1"),
                        bad_layer_option("segment_length", 8.0, expected=" an int >= 1"),
                        bad_layer_option("summary", "max", ValueError, f" one of {SUMMARIES}"),
                        bad_layer_option("summarize_own_segment", True, ValueError, " False with is_causal=True"),
                        bad_layer_option("is_causal", "no", expected=" a bool"),
                        bad_layer_option("qkv_bias", "no", expected=" a bool")],
))

AXIAL_CASES = [
    {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "segment_length": 1},
    {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "segment_length": 9, "is_causal": False},
    {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "segment_length": 20, "row_summary": "wsum"},
    {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "segment_length": 25, "is_causal": False,
     "summarize_own_segment": True},
    {"batch": 2, "heads": 1, "grid": (64,), "head_dim": 8, "segment_length": 64},
    {"batch": 2, "heads": 2, "grid": (64,), "head_dim": 8, "segment_length": 1, "row_summary": "wsum"},
    {"batch": 2, "heads": 2, "grid": (48,), "head_dim": 8, "segment_length": 6, "summary_key": True},
    {"batch": 1, "heads": 3, "grid": (40,), "head_dim": 4, "segment_length": 8, "is_causal": False,
     "summary_key": True},
]

register_spec(OpTestSpec(
    variant=AXIAL,
    cases=AXIAL_CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (12,), "head_dim": 3, "segment_length": 4, "row_summary": "wsum"},
    make_inputs=_axial_inputs,
    options=_axial_options,
    random_case=lambda rnd: {**_random_case(rnd), "row_summary": rnd.choice(ROW_SUMMARIES)},
    future_mask=case_future_mask(True),
    layer_input_shape=(2, 64, 32),
    benchmark_case={"batch": 1, "heads": 4, "grid": (4096,), "head_dim": 64, "segment_length": 64},
    error_inputs=[*_segment_errors(AXIAL_CASES[1]),
                  bad_option("row_summary", "proj", ValueError, f" one of {ROW_SUMMARIES}"),
                  ErrorInput("summary_key with row_summary='wsum'", ValueError,
                             r"row_summary='wsum' with a summary_key: expected row_summary='none'",
                             options={"row_summary": "wsum"}, case=AXIAL_CASES[6]),
                  ErrorInput("summary_key of another length", ValueError,
                             r"summary_key has shape \(2, 2, 24, 8\); expected \(2, 2, 48, 8\)",
                             inputs=lambda i: {**i, "summary_key": i["summary_key"][:, :, :24]}, case=AXIAL_CASES[6]),
                  ErrorInput("summary_key in float32", TypeError, r"summary_key.dtype=torch.float32; expected",
                             inputs=lambda i: {**i, "summary_key": i["summary_key"].float()}, case=AXIAL_CASES[6])],
    layer_error_inputs=[bad_layer_option("segment_length", 0, ValueError, " an int >= 1"),
                        bad_layer_option("row_summary", "max", ValueError, " one of ('none', 'wsum', 'proj'"),
                        bad_layer_option("summarize_own_segment", True, ValueError, " False with is_causal=True"),
                        bad_layer_option("is_causal", "no", expected=" a bool")],
))
