"""Test spec of pointer attention: awkward shapes (one input position, 300 of them, more queries than one chunk
holds, different encoder and decoder widths), allowed-target masks, logits, random cases, error inputs.

The op takes ``decoder`` / ``encoder`` / ``w1`` / ``w2`` / ``v`` (and ``mask``), not query/key/value, so the
contract's generic query/key/value bad-input test does not apply; the same checks are this spec's
``error_inputs``. The variant has no registered layer (it is not a token mixer), hence no
``layer_input_shape`` (empty) and no layer error inputs; :class:`attnzoo.layers.pointer.PointerAttention` is
tested in ``tests/test_pointer.py``.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, flag_error_inputs, random_tensor, register_spec


def pointer_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``decoder`` ``(batch, queries, dim)``, ``encoder`` ``(batch, keys, enc_dim or dim)``, ``w1``, ``w2``, ``v``
    (scaled by ``1/√fan_in`` so that the tanh is not saturated) and, if ``case["mask"]``, a random ``(batch,
    queries, keys)`` mask allowing about 60% of the positions and at least one per row."""
    b, nq, nk, a = case["batch"], case["queries"], case["keys"], case["attn_dim"]
    dd = case["dim"]
    de = case.get("enc_dim") or dd
    inputs = {"decoder": random_tensor((b, nq, dd), dtype, device, generator),
              "encoder": random_tensor((b, nk, de), dtype, device, generator),
              "w1": (random_tensor((de, a), torch.float64, "cpu", generator) / math.sqrt(de)).to(device=device, dtype=dtype),
              "w2": (random_tensor((dd, a), torch.float64, "cpu", generator) / math.sqrt(dd)).to(device=device, dtype=dtype),
              "v": random_tensor((a,), dtype, device, generator)}
    if case.get("mask"):
        mask = torch.rand(b, nq, nk, generator=generator) < 0.6
        keep = torch.randint(nk, (b, nq, 1), generator=generator)
        inputs["mask"] = mask.scatter(-1, keep, True).to(device)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"return_logits": case.get("return_logits", False)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    """A random shape; a mask with probability 0.5; logits (only without a mask: masked logits are -inf, which a
    tolerance scaled by the largest entry cannot compare) with probability 0.3."""
    mask = rnd.random() < 0.5
    return {"batch": rnd.randint(1, 3), "queries": rnd.randint(1, 20), "keys": rnd.randint(1, 20),
            "dim": rnd.randint(1, 9), "enc_dim": rnd.choice([0, rnd.randint(1, 9)]), "attn_dim": rnd.randint(1, 9),
            "mask": mask, "return_logits": not mask and rnd.random() < 0.3}


CASES = [
    {"batch": 1, "queries": 1, "keys": 1, "dim": 8, "attn_dim": 4},
    {"batch": 3, "queries": 63, "keys": 17, "dim": 60, "attn_dim": 8, "mask": True},
    {"batch": 2, "queries": 10, "keys": 10, "dim": 16, "enc_dim": 12, "attn_dim": 32},
    {"batch": 2, "queries": 5, "keys": 300, "dim": 8, "attn_dim": 8, "return_logits": True},
    # 150 queries of 3 x 40 x 24 tanh elements: two chunks of chunked.CHUNK_ELEMENTS, the second shorter
    {"batch": 3, "queries": 150, "keys": 40, "dim": 8, "attn_dim": 24, "mask": True},
    {"batch": 2, "queries": 7, "keys": 5, "dim": 4, "attn_dim": 1, "return_logits": True},
]
MASKED = CASES[1]


def _replace(name: str, make: Any) -> Any:  # noqa: ANN401
    """An ``ErrorInput.inputs`` function replacing input ``name`` by ``make(inputs)``."""
    return lambda inputs: {**inputs, name: make(inputs)}


def _empty_row(inputs: Inputs) -> torch.Tensor:
    mask = inputs["mask"].clone()
    mask[1, 2] = False
    return mask


ERROR_INPUTS = [
    ErrorInput("decoder 4-D", ValueError, r"decoder has shape \(1, 1, 1, 8\) \(4-D\); expected 3-D \(B, N, D\)",
               inputs=_replace("decoder", lambda i: i["decoder"][None])),
    ErrorInput("encoder of another batch", ValueError, r"encoder has shape \(2, 1, 8\); expected the decoder's batch 1",
               inputs=_replace("encoder", lambda i: torch.cat([i["encoder"]] * 2))),
    ErrorInput("no encoder positions", ValueError, r"encoder has shape \(1, 0, 8\): no input positions",
               inputs=_replace("encoder", lambda i: i["encoder"][:, :0])),
    ErrorInput("integer decoder", TypeError, r"decoder.dtype=torch.int64; expected a floating dtype",
               inputs=_replace("decoder", lambda i: i["decoder"].long())),
    ErrorInput("float32 encoder", TypeError, r"encoder.dtype=torch.float32; expected the decoder's dtype",
               inputs=_replace("encoder", lambda i: i["encoder"].float())),
    ErrorInput("w1 1-D", ValueError, r"w1 has shape \(8,\); expected \(De, A\) = \(8, A\), 2-D",
               inputs=_replace("w1", lambda i: i["w1"][:, 0])),
    ErrorInput("w1 of another width", ValueError, r"w1 has shape \(7, 4\); expected \(8, 4\)",
               inputs=_replace("w1", lambda i: i["w1"][:7])),
    ErrorInput("w2 of another attention dim", ValueError, r"w2 has shape \(8, 3\); expected \(8, 4\)",
               inputs=_replace("w2", lambda i: i["w2"][:, :3])),
    ErrorInput("v of another attention dim", ValueError, r"v has shape \(5,\); expected \(4,\)",
               inputs=_replace("v", lambda i: torch.cat([i["v"], i["v"][:1]]))),
    ErrorInput("float32 v", TypeError, r"v.dtype=torch.float32; expected the decoder's dtype torch.float64",
               inputs=_replace("v", lambda i: i["v"].float())),
    ErrorInput("mask not a tensor", TypeError, r"mask must be a torch.Tensor or None, got list",
               inputs=_replace("mask", lambda i: [[[True]]])),
    ErrorInput("float mask", TypeError, r"mask.dtype=torch.float64; expected torch.bool",
               inputs=_replace("mask", lambda i: i["mask"].double()), case=MASKED),
    ErrorInput("mask without its batch dim", ValueError, r"mask has shape \(63, 17\); expected \(B, Nq, Nk\) = "
               r"\(3, 63, 17\)", inputs=_replace("mask", lambda i: i["mask"][0]), case=MASKED),
    ErrorInput("mask with a row allowing nothing", ValueError, r"mask\[1, 2\] allows no input position",
               inputs=_replace("mask", _empty_row), case=MASKED),
    ErrorInput("unknown impl", ValueError, r"impl='fastest' is not an implementation of pointer_attention",
               options={"impl": "fastest"}),
    *flag_error_inputs("return_logits"),
]

register_spec(OpTestSpec(
    variant="pointer_attention",
    cases=CASES,
    # no mask here: the contract differentiates with respect to every input of the tiny case (the bool mask cannot
    # be one); tests/test_pointer.py gradchecks a masked call
    tiny_case={"batch": 1, "queries": 3, "keys": 4, "dim": 3, "attn_dim": 3},
    make_inputs=pointer_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("decoder", "encoder", "mask"),
    # a Pointer Network's batch (the paper's 128 sequences, hidden 256, here 50 inputs and output steps)
    benchmark_case={"batch": 128, "queries": 50, "keys": 50, "dim": 256, "attn_dim": 256, "mask": True},
    layer_input_shape=(),
    error_inputs=ERROR_INPUTS,
))
