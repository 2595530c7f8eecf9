"""Needle in a haystack on held-out Austen text: does a KV policy keep a planted fact?

A haystack of Austen tokens has the needle sentence ``" The secret code is NNNN."`` inserted at a sentence
boundary (a token ending in ``.``, ``!`` or ``?``; the start and the end count) nearest ``depth`` (``0``: first,
``1``: last) of it. The protocol is kvpress' "compress the context, then answer": the haystack-with-needle is
prefilled under the policy (compressed to its budget after the prefill), then the question
``"\\n\\nQuestion: What is the secret code?\\nAnswer: The secret code is"`` is read in one call, then the answer is
decoded greedily one token at a time (the policy evicting after each call). Exact match
(:func:`exact_match`): the first word of the decoded text, trailing punctuation stripped, is the code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from attnzoo.kv.measure import policy_applied
from attnzoo.kv.policies import KVPolicy
from attnzoo.validation import check_int

__all__ = ["NEEDLE", "QUESTION", "NeedlePrompt", "answer_needle", "build_needle_prompt", "exact_match",
           "needle_codes", "run_needle"]

NEEDLE = " The secret code is {code}."
QUESTION = "\n\nQuestion: What is the secret code?\nAnswer: The secret code is"
_ENDS = (".", "!", "?")


class Tokenizer(Protocol):
    """What the prompt construction needs: a transformers tokenizer has both."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...  # noqa: D102

    def decode(self, ids: list[int]) -> str: ...  # noqa: D102


@dataclass(frozen=True)
class NeedlePrompt:
    """One trial: ``context`` ``(1, n)`` the haystack with the needle at token ``needle_start`` (``needle_length``
    tokens), ``question`` ``(1, q)``, ``answer`` the code, ``answer_tokens`` how many tokens its encoding takes."""

    context: torch.Tensor
    question: torch.Tensor
    answer: str
    needle_start: int
    needle_length: int
    answer_tokens: int

    @property
    def depth(self) -> float:
        """Where the needle landed: its start over the haystack's length (the context less the needle)."""
        haystack = self.context.shape[1] - self.needle_length
        return self.needle_start / haystack if haystack else 0.0


def _check_depth(depth: float) -> float:
    if isinstance(depth, bool) or not isinstance(depth, (int, float)) or not 0 <= depth <= 1:
        raise ValueError(f"depth={depth!r}: expected a real number in [0, 1] (0: the needle first, 1: last)")
    return float(depth)


def build_needle_prompt(tokenizer: Tokenizer, haystack: list[int] | torch.Tensor, context: int, depth: float,
                        code: str) -> NeedlePrompt:
    """The haystack's first ``context − len(needle)`` tokens with the needle sentence for ``code`` inserted at the
    sentence boundary nearest ``depth`` of them; ``ValueError`` for a ``depth`` outside ``[0, 1]``, a non-positive
    ``context``, one too short for the needle, or a haystack too short."""
    check_int("context", context)
    depth = _check_depth(depth)
    if not code or not code.isdigit():
        raise ValueError(f"code={code!r}: expected a non-empty string of digits")
    needle = tokenizer.encode(NEEDLE.format(code=code), add_special_tokens=False)
    length = context - len(needle)
    if length < 1:
        raise ValueError(f"context={context}: the needle alone takes {len(needle)} tokens; expected a longer context")
    ids = [int(t) for t in (haystack.tolist() if isinstance(haystack, torch.Tensor) else haystack)]
    if len(ids) < length:
        raise ValueError(f"the haystack has {len(ids)} tokens; context={context} needs {length} besides the needle")
    ids = ids[:length]
    target = round(depth * length)
    boundaries = [0, length] + [i + 1 for i in range(length - 1) if tokenizer.decode([ids[i]]).rstrip().endswith(_ENDS)]
    start = min(boundaries, key=lambda b: (abs(b - target), b))
    question = tokenizer.encode(QUESTION, add_special_tokens=False)
    answer_tokens = len(tokenizer.encode(" " + code, add_special_tokens=False))
    tokens = torch.tensor(ids[:start] + needle + ids[start:])[None]
    return NeedlePrompt(tokens, torch.tensor(question)[None], code, start, len(needle), answer_tokens)


def exact_match(generated: str, answer: str) -> bool:
    """Whether the first word of ``generated`` (trailing ``.,;:!?`` stripped) is ``answer``."""
    words = generated.split()
    return bool(words) and words[0].rstrip(".,;:!?") == answer


def needle_codes(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct four-digit codes, reproducible from ``seed``."""
    check_int("count", count)
    return [str(c) for c in random.Random(seed).sample(range(1000, 10000), count)]


def answer_needle(model: Any, prompt: NeedlePrompt, policy: KVPolicy | None,  # noqa: ANN401
                  new_tokens: int | None = None) -> tuple[list[int], int]:
    """Greedy answer ids (``new_tokens``, default the answer's token count plus one) of a transformers causal LM
    under ``policy`` (``None``: the model's own cache, full attention), and the KV bytes held after the prefill
    (``0`` without a policy)."""
    new_tokens = prompt.answer_tokens + 1 if new_tokens is None else check_int("new_tokens", new_tokens)
    with policy_applied(model, policy) as new_cache:
        cache = new_cache()
        model(prompt.context, cache=cache, use_cache=True)
        nbytes = cache.packed_nbytes() if policy is not None else 0
        logits = model(prompt.question, cache=cache, use_cache=True).logits
        out = [int(logits[0, -1].argmax())]
        for _ in range(new_tokens - 1):
            logits = model(torch.tensor([[out[-1]]]), cache=cache, use_cache=True).logits
            out.append(int(logits[0, -1].argmax()))
    return out, nbytes


def run_needle(model: Any, tokenizer: Tokenizer, tokens: torch.Tensor, context: int,  # noqa: ANN401
               depths: tuple[float, ...], trials: int, policies: list[tuple[str, Any, KVPolicy]],
               progress: bool = True, seed: int = 0) -> list[dict]:
    """Exact-match accuracy of each policy (``policies``: ``(name, setting, policy)``) over ``trials`` haystacks
    (spread evenly over ``tokens``, one code each) x ``depths``: one row per policy with the per-depth accuracy."""
    from tqdm.auto import tqdm

    check_int("trials", trials)
    if not depths:
        raise ValueError("depths=(): expected at least one needle depth in [0, 1]")
    for depth in depths:
        _check_depth(depth)
    if tokens.numel() < context:
        raise ValueError(f"the held-out text has {tokens.numel()} tokens; a needle context needs {context}")
    starts = torch.linspace(0, tokens.numel() - context, trials).long().tolist()
    codes = needle_codes(trials * len(depths), seed)
    prompts = [build_needle_prompt(tokenizer, tokens[s:s + context], context, d, codes[i * len(depths) + j])
               for i, s in enumerate(starts) for j, d in enumerate(depths)]
    rows = []
    for name, setting, policy in tqdm(policies, desc=f"needle {context}", disable=not progress):
        hits, nbytes = [], 0.0
        for prompt in prompts:
            ids, held = answer_needle(model, prompt, policy)
            hits.append(exact_match(tokenizer.decode(ids), prompt.answer))
            nbytes += held / len(prompts)
        by_depth = {str(d): sum(hits[j::len(depths)]) / trials for j, d in enumerate(depths)}
        rows.append({"context": context, "policy": name, "setting": setting,
                     "accuracy": sum(hits) / len(hits), "accuracy_by_depth": by_depth,
                     "kv_bytes_per_token": nbytes / context, "trials": len(hits)})
    return rows
