"""Shared test settings: deterministic seeds, a hypothesis profile sized for CI's 2 cores, device list."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _bench_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI caches benchmark rows by default: tests write theirs to a fresh folder, never the user's cache."""
    monkeypatch.setenv("ATTNZOO_CACHE", str(tmp_path_factory.mktemp("bench-cache")))
