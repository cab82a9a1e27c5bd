"""BufferRule / vol_state_from_prices: the params-free estimator agrees with the RiskParams one."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.risk import InvalidRiskParams
from orchestrator.risk.volatility import (
    BufferRule,
    VolState,
    buffer_from_variance,
    buffer_ppm,
    sigma_ppb_up,
    vol_state_from_prices,
    vol_state_from_ticks,
)
from tests.unit.risk.constants import E8, params, tick

VOL = params(imr_ppm=100_000, mmr_ppm=25_000, buffer_max_ppm=50_000)


@given(st.lists(st.tuples(st.integers(1, 10**13), st.integers(0, 600)), max_size=40))
def test_rule_of_params_gives_the_same_state_and_buffer(steps: list[tuple[int, int]]) -> None:
    t, points = 0, []
    for price, gap in steps:
        t += gap
        points.append((price, t))
    rule = BufferRule.of(VOL)
    by_rule = vol_state_from_prices(points, rule)
    by_params = vol_state_from_ticks([tick("ETH", p, s) for p, s in points], VOL)
    assert by_rule == by_params
    assert rule.buffer_ppm(by_rule) == buffer_ppm(by_params, VOL)


def test_sigma_ppb_is_rounded_up_exactly() -> None:
    assert sigma_ppb_up(VolState(0.0)) == 0
    assert sigma_ppb_up(VolState(1e-8)) in (100_000, 100_001)  # 1e-4 per sqrt(s)
    s = sigma_ppb_up(VolState(2.4948165e-8))
    assert (s - 1) ** 2 < 2.4948165e-8 * 1e18 <= s**2
    assert sigma_ppb_up(VolState(math.inf)) == -1


def test_buffer_from_variance_clamps() -> None:
    assert buffer_from_variance(1.0, k_ppm=3_000_000, horizon_s=600, max_ppm=50_000) == 50_000
    assert buffer_from_variance(0.0, k_ppm=3_000_000, horizon_s=600, max_ppm=50_000) == 0
    assert buffer_from_variance(math.nan, k_ppm=1, horizon_s=1, max_ppm=7) == 7
    # sigma 1e-4, k 3, horizon 600 s: 3e6 * 1e-4 * sqrt(600) = 7348.47 -> 7349
    assert buffer_from_variance(1e-8, k_ppm=3_000_000, horizon_s=600, max_ppm=50_000) == 7_349


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"lambda_ppm": 0}, "lambda_ppm"),
    ({"lambda_ppm": 1_000_000}, "lambda_ppm"),
    ({"max_ppm": 1_000_000}, "max_ppm"),
    ({"k_ppm": -1}, "k_ppm"),
    ({"horizon_s": 1.5}, "horizon_s"),
])
def test_bad_rule_names_the_field(kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
    base = {"k_ppm": 3_000_000, "horizon_s": 600, "max_ppm": 50_000, "lambda_ppm": 940_000}
    with pytest.raises(InvalidRiskParams) as info:
        BufferRule(**{**base, **kwargs})
    assert info.value.field == field


def test_calm_then_crash_widens_to_the_cap() -> None:
    rule = BufferRule(3_000_000, 600, 50_000, 940_000)
    calm = [(3_000 * E8 + (i % 2) * 15_000, i) for i in range(50)]  # +-0.5 bp a second
    assert rule.buffer_ppm(vol_state_from_prices(calm, rule)) < 1_000
    crashed = [*calm, (1_650 * E8, 51)]
    assert rule.buffer_ppm(vol_state_from_prices(crashed, rule)) == 50_000
