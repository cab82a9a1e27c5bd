"""EWMA volatility buffer: hand-computed values, determinism, time normalisation, clamping."""

import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.risk import PriceInvalid, PriceTick
from orchestrator.risk.volatility import (
    VolState,
    buffer_ppm,
    ewma_update,
    initial_vol_state,
    sigma_per_sqrt_s,
    vol_state_from_ticks,
    volatility_buffer_ppm,
)
from tests.unit.risk.constants import E8, params, tick

# k = 3, horizon 1 h, lambda 0.94, sigma0 = 1.42e-4 per sqrt(s) (about 80% a year), cap 5%.
VOL = params(imr_ppm=100_000, mmr_ppm=25_000, buffer_max_ppm=50_000)


def test_before_any_return_the_buffer_comes_from_sigma0() -> None:
    # 3e6 * 1.42e-4 * sqrt(3600) = 3e6 * 1.42e-4 * 60 = 25,560 ppm in real numbers; the double
    # nearest (1.42e-4)**2 is a hair above 2.0164e-8, and the exact round-up sees it: 25,561.
    state = initial_vol_state(VOL)
    assert Fraction(state.variance_per_s) > Fraction(20_164, 10**12)
    assert buffer_ppm(state, VOL) == 25_561


def test_one_return_hand_computed() -> None:
    # 2,000 -> 2,002 after 10 s: r = ln(1.001) = 9.995003e-4, r^2/10 = 9.990009e-8
    # var = 0.94 * (1.42e-4)^2 + 0.06 * 9.990009e-8 = 1.895416e-8 + 5.994005e-9 = 2.4948165e-8
    # sigma = 1.5794988e-4;  3e6 * sigma * 60 = 28,430.98 -> rounded up to 28,431 ppm
    state = vol_state_from_ticks([tick("ETH", 2_000 * E8, 0), tick("ETH", 2_002 * E8, 10)], VOL)
    assert state.returns == 1
    assert math.isclose(state.variance_per_s, 2.4948165e-8, rel_tol=1e-7)
    assert buffer_ppm(state, VOL) == 28_431


def test_calm_tightens_and_stress_widens_up_to_the_cap() -> None:
    calm = [tick("ETH", 2_000 * E8, t) for t in range(0, 600, 2)]
    stress = [tick("ETH", (2_000 + (40 if i % 2 else -40)) * E8, 2 * i) for i in range(300)]
    assert volatility_buffer_ppm(calm, VOL) < 200  # decays from 25,560 toward 0
    assert volatility_buffer_ppm(stress, VOL) == VOL.buffer_max_ppm
    quiet = params(VOL, vol_sigma0_ppb=0)
    assert volatility_buffer_ppm(calm, quiet) == 0


def test_repeated_and_out_of_order_ticks_are_ignored() -> None:
    ticks = [tick("ETH", 2_000 * E8, 0), tick("ETH", 2_002 * E8, 10)]
    state = vol_state_from_ticks(ticks, VOL)
    assert vol_state_from_ticks([tick("ETH", 2_500 * E8, 10)], VOL, state) == state
    assert vol_state_from_ticks([tick("ETH", 2_500 * E8, 3)], VOL, state) == state


def test_non_positive_price_is_refused() -> None:
    with pytest.raises(PriceInvalid):
        ewma_update(initial_vol_state(VOL), 0, 1, VOL.vol_lambda_ppm)


def test_non_finite_variance_maps_to_the_cap() -> None:
    assert buffer_ppm(VolState(float("inf")), VOL) == VOL.buffer_max_ppm
    assert buffer_ppm(VolState(float("nan")), VOL) == VOL.buffer_max_ppm


@pytest.mark.parametrize("dt", [1, 5, 60])
def test_time_normalised_sigma_does_not_depend_on_tick_spacing(dt: int) -> None:
    sigma = 2e-4  # per sqrt(second); each return is +-sigma * sqrt(dt)
    price, ticks = 2_000.0, []
    for i in range(400):
        ticks.append(PriceTick("ETH", round(price * E8), i * dt, str(i)))
        price *= math.exp(sigma * math.sqrt(dt) * (1 if i % 2 else -1))
    got = sigma_per_sqrt_s(vol_state_from_ticks(ticks, VOL))
    assert abs(got - sigma) / sigma < 1e-3


def test_deterministic_across_processes() -> None:
    ticks = [tick("ETH", (2_000 * E8) + ((i * 7_919) % 5_000) * 10**5, 3 * i) for i in range(200)]
    here = volatility_buffer_ppm(ticks, VOL)
    code = ("from tests.unit.risk.constants import E8, params, tick\n"
            "from orchestrator.risk.volatility import volatility_buffer_ppm\n"
            "VOL = params(imr_ppm=100_000, mmr_ppm=25_000, buffer_max_ppm=50_000)\n"
            "ticks = [tick('ETH', (2_000 * E8) + ((i * 7_919) % 5_000) * 10**5, 3 * i)"
            " for i in range(200)]\n"
            "print(volatility_buffer_ppm(ticks, VOL))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"}, cwd=Path(__file__).parents[3])
    assert int(out.stdout) == here == volatility_buffer_ppm(list(ticks), VOL)


@given(st.lists(st.tuples(st.integers(1, 10**13), st.integers(0, 600)), max_size=60))
def test_buffer_is_rounded_up_and_clamped(steps: list[tuple[int, int]]) -> None:
    t, ticks = 0, []
    for price, gap in steps:
        t += gap
        ticks.append(tick("ETH", price, t))
    state = vol_state_from_ticks(ticks, VOL)
    got = buffer_ppm(state, VOL)
    assert 0 <= got <= VOL.buffer_max_ppm
    # exact: got is the smallest integer with got**2 >= k**2 * var * horizon (or the cap)
    square = Fraction(VOL.buffer_k_ppm) ** 2 * Fraction(state.variance_per_s) * \
        VOL.buffer_horizon_s
    if got < VOL.buffer_max_ppm:
        assert got**2 >= square and (got == 0 or (got - 1) ** 2 < square)
    else:
        assert square >= (got - 1) ** 2
    assert got == volatility_buffer_ppm(ticks, VOL)  # same ticks, same buffer
