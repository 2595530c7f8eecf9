"""attnzoo.quant observers: the official running min-max update (Qualcomm-AI-research/outlier-free-transformers
``RunningMinMaxEstimator`` at 1e59744, transcribed), numpy's percentiles bit for bit, and shape errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnzoo.quant import Granularity, MinMaxObserver, PercentileObserver, RunningMinMaxObserver, UniformQuantizer


class OfficialRunningMinMax:
    """``RunningMinMaxEstimator.forward`` (per tensor, with and without percentile), as in the official code."""

    def __init__(self, momentum=0.9, percentile=None):
        self.momentum, self.percentile = momentum, percentile
        self.current_xmin = self.current_xmax = None

    def __call__(self, x):
        if self.percentile:
            x_min, x_max = np.percentile(x.numpy(), (100 - self.percentile, self.percentile))
            x_min, x_max = torch.tensor(x_min), torch.tensor(x_max)
        else:
            x_min, x_max = torch.min(x).detach(), torch.max(x).detach()
        if self.current_xmin is None:
            self.current_xmin, self.current_xmax = x_min, x_max
        else:
            self.current_xmin = (1 - self.momentum) * x_min + self.momentum * self.current_xmin
            self.current_xmax = (1 - self.momentum) * x_max + self.momentum * self.current_xmax
        return self.current_xmin, self.current_xmax


@pytest.mark.parametrize("percentile", [None, 99.0, 99.999])
def test_running_observers_equal_the_official_estimator(percentile) -> None:
    torch.manual_seed(0)
    ours = RunningMinMaxObserver(momentum=0.9) if percentile is None else PercentileObserver(percentile=percentile)
    official = OfficialRunningMinMax(0.9, percentile)
    for _ in range(5):
        x = torch.randn(7, 333, dtype=torch.float64) * 3
        ours.update(x)
        low, high = official(x)
    assert torch.equal(ours.range()[0], low) and torch.equal(ours.range()[1], high)
    assert ours.batches == 5


def test_percentile_matches_numpy_per_channel_and_min_max_is_global() -> None:
    torch.manual_seed(1)
    x = torch.randn(50, 17, 6, dtype=torch.float64)
    obs = PercentileObserver(Granularity.per_channel(-1), percentile=97.3, momentum=None)
    obs.update(x)
    expected = np.percentile(x.numpy().reshape(-1, 6), [100 - 97.3, 97.3], axis=0)
    assert np.array_equal(obs.low.numpy(), expected[0]) and np.array_equal(obs.high.numpy(), expected[1])
    mm = MinMaxObserver()
    for scale in (1.0, 5.0, 2.0):
        mm.update(x * scale)
    assert mm.low == (x * 5).min() and mm.high == (x * 5).max()
    params = UniformQuantizer(8, symmetric=False).params_from_range(*mm.range())
    assert params.scale == pytest.approx(float((x * 5).max() - (x * 5).min()) / 255)


def test_observer_errors() -> None:
    obs = RunningMinMaxObserver(Granularity.per_channel(-1))
    with pytest.raises(ValueError, match="calibration ran no batch"):
        obs.range()
    obs.update(torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"shape \(4, 7\).*parameters have shape \(7,\).*first batch \(shape "
                                         r"\(4, 8\)\) fixed \(8,\)"):
        obs.update(torch.randn(4, 7))
    with pytest.raises(ValueError, match="per-row / per-group parameters follow each tensor"):
        MinMaxObserver(Granularity.per_row())
    with pytest.raises(ValueError, match="momentum=1.5"):
        RunningMinMaxObserver(momentum=1.5)
    with pytest.raises(ValueError, match="percentile=20"):
        PercentileObserver(percentile=20)
    with pytest.raises(TypeError, match="x.dtype=torch.int64"):
        MinMaxObserver().update(torch.arange(3))
