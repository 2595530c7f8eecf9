"""NaN follows the math: a NaN in one key or value makes NaN exactly the queries whose visible keys include it
(the tiled kernel used to poison a whole tile, the dense reference the whole sequence), a NaN query only its
own row; every other output equals the clean result."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from attnzoo.masks import dense_mask
from attnzoo.ops.neighborhood.functional import (
    neighborhood_attention_1d,
    neighborhood_attention_2d,
    neighborhood_pattern,
)
from attnzoo.ops.sliding_window.functional import sliding_window_attention
from attnzoo.ops.sliding_window.patterns import SlidingWindowPattern

Op = Callable[..., torch.Tensor]

CASES: dict[str, tuple[Op, tuple[int, ...], dict, torch.Tensor]] = {
    "na1d": (neighborhood_attention_1d, (40,), {"kernel_size": 5},
             dense_mask(neighborhood_pattern((40,), 5, 1, False).mask_mod(), 40, 40)),
    "na1d_causal_dilated": (neighborhood_attention_1d, (40,), {"kernel_size": 5, "dilation": 2, "is_causal": True},
                            dense_mask(neighborhood_pattern((40,), 5, 2, True).mask_mod(), 40, 40)),
    "na2d": (neighborhood_attention_2d, (9, 10), {"kernel_size": 3},
             dense_mask(neighborhood_pattern((9, 10), 3, 1, False).mask_mod(), 90, 90)),
    "sliding_window": (sliding_window_attention, (48,), {"window": 5},
                       dense_mask(SlidingWindowPattern(48, 5, True).mask_mod(), 48, 48)),
    "sliding_window_sinks": (sliding_window_attention, (48,), {"window": 5, "num_sink_tokens": 2},
                             dense_mask(SlidingWindowPattern(48, 5, True, 2).mask_mod(), 48, 48)),
}
PLANTED = {"na1d": 17, "na1d_causal_dilated": 17, "na2d": 44, "sliding_window": 20, "sliding_window_sinks": 1}


def _inputs(grid: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.randn(2, 2, *grid, 6, dtype=torch.float64) for _ in range(3))


def _run(case: str, impl: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    op, _, options, _ = CASES[case]
    out = op(q, k, v, impl=impl, **options)
    return out.flatten(2, -2)  # (B, H, N, Dv)


@pytest.mark.parametrize("impl", ["tiled", "reference"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("where", ["key", "value"])
def test_a_nan_key_or_value_reaches_exactly_the_queries_that_see_it(case: str, impl: str, where: str) -> None:
    _, grid, _, mask = CASES[case]
    q, k, v = _inputs(grid)
    clean = _run(case, impl, q, k, v)
    token = PLANTED[case]
    poisoned = {"key": k, "value": v}[where].clone().flatten(2, -2)
    poisoned[1, 0, token, 2] = float("nan")
    poisoned = poisoned.view_as(k if where == "key" else v)
    out = _run(case, impl, q, poisoned if where == "key" else k, poisoned if where == "value" else v)
    sees = mask[:, token]
    assert sees.any() and not sees.all()
    nan = out.isnan()
    expected = torch.zeros_like(nan)
    if where == "key":  # the score is NaN: the whole row
        expected[1, 0, sees] = True
    else:  # only the planted channel
        expected[1, 0, sees, 2] = True
    assert torch.equal(nan, expected)
    torch.testing.assert_close(out[~expected], clean[~expected], atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", ["tiled", "reference"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_nan_query_reaches_only_its_own_row(case: str, impl: str) -> None:
    _, grid, _, _ = CASES[case]
    q, k, v = _inputs(grid)
    token = PLANTED[case]
    flat = q.clone().flatten(2, -2)
    flat[0, 1, token, 0] = float("nan")
    nan = _run(case, impl, flat.view_as(q), k, v).isnan().any(-1)
    expected = torch.zeros_like(nan)
    expected[0, 1, token] = True
    assert torch.equal(nan, expected)


def test_infinite_values_follow_the_math_too() -> None:
    """+inf in a visible value gives +inf, not NaN, in the queries that see it; nothing elsewhere."""
    q, k, v = _inputs((40,))
    v[0, 0, 17, 1] = float("inf")
    mask = CASES["na1d"][3]
    for impl in ("tiled", "reference"):
        out = neighborhood_attention_1d(q, k, v, 5, impl=impl)
        assert torch.equal(out.isinf(), torch.zeros_like(out, dtype=torch.bool).index_put_(
            (torch.tensor(0), torch.tensor(0), mask[:, 17].nonzero().squeeze(1), torch.tensor(1)), torch.tensor(True)))
        assert not out.isnan().any()


def test_gradients_stay_finite_away_from_the_nan() -> None:
    """The exact route is differentiable: a loss over the queries that do not see the NaN has finite gradients
    towards those queries (rows that see it still get ``0 · NaN`` from autograd's chain rule, as anywhere)."""
    q, k, v = (t.requires_grad_() for t in _inputs((40,)))
    with torch.no_grad():
        v[0, 0, 17, 2] = float("nan")
    out = neighborhood_attention_1d(q, k, v, 5, impl="tiled")
    far = ~CASES["na1d"][3][:, 17]
    out[:, :, far].sum().backward()
    assert torch.isfinite(q.grad[:, :, far]).all()
