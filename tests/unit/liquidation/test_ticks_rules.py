"""The buffer's push rule (hysteresis) and tuning: pure parts of orchestrator.liquidation.buffers."""

from __future__ import annotations

import pytest

from orchestrator.liquidation.buffers import BufferTuning, should_push


@pytest.mark.parametrize(("target", "onchain", "push"), [
    (0, 0, False),
    (500, 0, False),          # calm: within the hysteresis, no transaction
    (1_000, 0, False),        # exactly the hysteresis is not more than it
    (1_001, 0, True),
    (20_000, 21_000, False),
    (20_000, 21_001, True),   # a fall by more than the hysteresis
    (50_000, 49_500, True),   # reaching the cap is always pushed
    (49_500, 50_000, False),  # leaving the cap by less is not
    (0, 400, True),           # reaching zero is always pushed
    (50_000, 50_000, False),
], ids=lambda v: str(v))
def test_should_push(target: int, onchain: int, push: bool) -> None:
    assert should_push(target, onchain, hysteresis_ppm=1_000, max_ppm=50_000) is push


def test_tuning_never_exceeds_the_market_cap() -> None:
    assert BufferTuning().rule(50_000).max_ppm == 50_000
    assert BufferTuning(max_ppm=20_000).rule(50_000).max_ppm == 20_000
    assert BufferTuning(max_ppm=80_000).rule(50_000).max_ppm == 50_000
