"""Price validity (ORA-01, I9, I14): bounds, staleness per op class, chain clock only."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.risk import (
    MissingPrice,
    OpClass,
    PriceAtBound,
    PriceFromFuture,
    PriceInvalid,
    StalePrice,
    price_valid,
    valid_prices,
)
from tests.unit.risk.constants import E8, ETH_USD, NOW, tick

USER, LIQ = OpClass.USER_ACTION, OpClass.LIQUIDATION


@pytest.mark.parametrize(
    ("age_s", "user_ok", "liq_ok"),
    [(0, True, True), (30, True, True), (31, False, True), (120, False, True),
     (121, False, False)],
    ids=lambda v: str(v),
)
def test_staleness_table(age_s: int, user_ok: bool, liq_ok: bool) -> None:
    t = tick("ETH", 2_000 * E8, at=NOW - age_s)
    assert price_valid(t, NOW, USER, ETH_USD, strict=False) is user_ok
    assert price_valid(t, NOW, LIQ, ETH_USD, strict=False) is liq_ok
    if not user_ok:
        with pytest.raises(StalePrice) as err:
            price_valid(t, NOW, USER, ETH_USD)
        assert (err.value.age_s, err.value.max_age_s) == (age_s, 30)


@pytest.mark.parametrize(
    ("asset", "price_e8", "valid"),
    [("ETH", ETH_USD.min_price_e8, False), ("ETH", ETH_USD.min_price_e8 + 1, True),
     ("ETH", ETH_USD.max_price_e8, False), ("ETH", ETH_USD.max_price_e8 - 1, True),
     ("ETH", 0, False), ("ETH", -5, False),
     ("USDC", 90_000_000, False), ("USDC", 99_990_000, True), ("USDC", 110_000_000, False)],
)
def test_price_stuck_on_a_bound_is_invalid_for_every_op_class(asset: str, price_e8: int,
                                                              valid: bool) -> None:
    t = tick(asset, price_e8)
    for op in OpClass:
        assert price_valid(t, NOW, op, ETH_USD, strict=False) is valid
    if not valid:
        with pytest.raises(PriceAtBound):
            price_valid(t, NOW, LIQ, ETH_USD)


def test_future_publish_time_beyond_skew_is_refused() -> None:
    assert price_valid(tick("ETH", 2_000 * E8, at=NOW + 2), NOW, USER, ETH_USD)
    with pytest.raises(PriceFromFuture):
        price_valid(tick("ETH", 2_000 * E8, at=NOW + 3), NOW, USER, ETH_USD)


def test_unknown_feed_and_non_integer_values_are_refused() -> None:
    with pytest.raises(PriceInvalid, match="not a feed"):
        price_valid(tick("DOGE", 10 * E8), NOW, USER, ETH_USD)
    with pytest.raises(PriceInvalid, match="integers"):
        price_valid(tick("ETH", 2_000.0 * E8), NOW, USER, ETH_USD)  # type: ignore[arg-type]


def test_valid_prices_requires_a_tick_for_every_asset_under_its_own_name() -> None:
    ticks = {"ETH": tick("ETH", 2_000 * E8), "USDC": tick("ETH", 2_000 * E8)}
    assert valid_prices(ticks, ["ETH"], NOW, USER, ETH_USD) == {"ETH": 2_000 * E8}
    with pytest.raises(MissingPrice):
        valid_prices(ticks, ["ETH", "USDC"], NOW, USER, ETH_USD)
    with pytest.raises(MissingPrice):
        valid_prices(ticks, ["BTC"], NOW, USER, ETH_USD)


def test_host_clock_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """TIME-01: a skewed (here: exploding) host clock changes no decision."""
    def boom() -> float:
        raise AssertionError("host clock read")

    for name in ("time", "monotonic", "time_ns", "perf_counter"):
        monkeypatch.setattr(time, name, boom)
    assert price_valid(tick("ETH", 2_000 * E8, at=NOW - 30), NOW, USER, ETH_USD)
    assert not price_valid(tick("ETH", 2_000 * E8, at=NOW - 31), NOW, USER, ETH_USD, strict=False)


@given(age=st.integers(0, 10_000), now=st.integers(0, 2**40))
def test_validity_depends_only_on_chain_time_age(age: int, now: int) -> None:
    t = tick("ETH", 2_000 * E8, at=now - age)
    assert price_valid(t, now, USER, ETH_USD, strict=False) is (age <= 30)
    assert price_valid(t, now, LIQ, ETH_USD, strict=False) is (age <= 120)
    # a liquidation-valid price is at least as likely as a user-valid one
    assert price_valid(t, now, LIQ, ETH_USD, strict=False) or not price_valid(
        t, now, USER, ETH_USD, strict=False)
