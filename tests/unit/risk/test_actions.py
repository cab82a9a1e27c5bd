"""User actions (I7, ORA-01, LIQ-03): E >= IM after every accepted action, at a fresh price."""

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from orchestrator.risk import (
    CollateralLot,
    InsufficientMargin,
    LiquidationPending,
    Position,
    PriceAtBound,
    StalePrice,
    UserAction,
    check_user_action,
    position_risk,
)
from tests.unit.risk.constants import (
    ALICE_ETH_10X_LONG_AT_2000,
    E8,
    ETH_USD,
    NOW,
    PRICES_AT_2000,
    UNIT,
    USD,
    ticks,
    usdc,
)

FRESH = ticks(PRICES_AT_2000)


def test_open_at_exactly_initial_margin_is_accepted_one_wei_less_refused() -> None:
    # 20x: N = 10 * 2,000 = 20,000; IM = 5% = 1,000 USD.
    at_im = Position("0xo", 0, 10 * UNIT, 2_000 * E8, usdc(1_000))
    risk = check_user_action(UserAction.OPEN, at_im, FRESH, NOW, ETH_USD, 20_000)
    assert risk is not None and risk.equity_usd_e18 == risk.initial_margin_usd_e18 == 1_000 * USD
    assert not risk.is_liquidatable()  # IM >= MM whatever the buffer (params invariant)
    short = replace(at_im, collateral=(CollateralLot("USDC", 1_000 * UNIT - 1),))
    with pytest.raises(InsufficientMargin) as err:
        check_user_action(UserAction.OPEN, short, FRESH, NOW, ETH_USD, 0)
    assert err.value.required_usd_e18 == 1_000 * USD


def test_withdraw_needs_a_user_fresh_price_not_a_liquidation_fresh_one() -> None:
    """ORA-01: a 60 s old price values a liquidation, never a withdrawal."""
    old = ticks(PRICES_AT_2000, at=NOW - 60)
    with pytest.raises(StalePrice):
        check_user_action(UserAction.WITHDRAW, ALICE_ETH_10X_LONG_AT_2000, old, NOW, ETH_USD, 0)


def test_bound_stuck_collateral_price_refuses_remove_margin() -> None:
    stuck = ticks({**PRICES_AT_2000, "USDC": 110_000_000})  # at the USDC max bound
    with pytest.raises(PriceAtBound):
        check_user_action(UserAction.REMOVE_MARGIN, ALICE_ETH_10X_LONG_AT_2000, stuck, NOW,
                          ETH_USD, 0)


def test_liq_03_withdrawal_racing_liquidation() -> None:
    """Re-checked at execution on the newest price; refused while a liquidation is pending."""
    after = replace(ALICE_ETH_10X_LONG_AT_2000, collateral=usdc(1_500))
    assert check_user_action(UserAction.WITHDRAW, after, FRESH, NOW, ETH_USD, 0) is not None
    # at 1,950: E = 1,500 - 10 * 50 = 1,000 >= IM = 5% * 19,500 = 975 -> still accepted
    crashed = ticks({**PRICES_AT_2000, "ETH": 1_950 * E8})
    risk = check_user_action(UserAction.WITHDRAW, after, crashed, NOW, ETH_USD, 0)
    assert risk is not None and risk.equity_usd_e18 == 1_000 * USD
    # at 1,940: E = 1,500 - 600 = 900 < IM = 970 -> refused on the newest price
    worse = ticks({**PRICES_AT_2000, "ETH": 1_940 * E8})
    with pytest.raises(InsufficientMargin):
        check_user_action(UserAction.WITHDRAW, after, worse, NOW, ETH_USD, 0)
    pending = replace(after, liquidation_pending=True)
    for action in (UserAction.WITHDRAW, UserAction.REMOVE_MARGIN, UserAction.OPEN,
                   UserAction.INCREASE):
        with pytest.raises(LiquidationPending):
            check_user_action(action, pending, FRESH, NOW, ETH_USD, 0)


def test_adding_margin_needs_no_price_even_while_pending() -> None:
    pending = replace(ALICE_ETH_10X_LONG_AT_2000, liquidation_pending=True)
    assert check_user_action(UserAction.ADD_MARGIN, pending, {}, NOW, ETH_USD, 0) is None


@given(
    action=st.sampled_from([UserAction.OPEN, UserAction.INCREASE, UserAction.REMOVE_MARGIN,
                            UserAction.WITHDRAW]),
    size=st.integers(-(10**24), 10**24).filter(bool),
    entry=st.integers(100 * E8, 10_000 * E8),
    mark=st.integers(100 * E8, 10_000 * E8),
    slack=st.integers(-(10**20), 10**20),
    eth_amount=st.integers(0, 10**21),
    fees=st.integers(0, 10**21),
    buffer=st.integers(0, ETH_USD.buffer_max_ppm),
    age=st.integers(0, 200),
)
def test_every_accepted_action_leaves_e_at_least_im(action: UserAction, size: int, entry: int,
                                                    mark: int, slack: int, eth_amount: int,
                                                    fees: int, buffer: int, age: int) -> None:
    # collateral around what IM needs, so both outcomes are drawn often
    needed = (abs(size) * mark // 10**8) * ETH_USD.imr_ppm // 10**6 \
        - size * (mark - entry) // 10**8 + fees - eth_amount * mark // 10**8 * 8 // 10
    usdc_amount = max(needed + slack, 0)
    after = Position("0xh", 1, size, entry, (CollateralLot("USDC", usdc_amount),
                                             CollateralLot("ETH", eth_amount)), fees)
    snapshot = {**PRICES_AT_2000, "ETH": mark}
    try:
        risk = check_user_action(action, after, ticks(snapshot, at=NOW - age), NOW, ETH_USD,
                                 buffer)
    except (InsufficientMargin, StalePrice):
        event("refused")
        risk_now = position_risk(after, snapshot, ETH_USD, buffer)
        assert age > 30 or not risk_now.meets_initial_margin()
        return
    event("accepted")
    assert age <= 30 and risk is not None
    assert risk.equity_usd_e18 >= risk.initial_margin_usd_e18
    assert not risk.is_liquidatable()
    # and exact arithmetic agrees the position is at or above IM: rounding never helped the user
    c_exact = usdc_amount + Fraction(eth_amount * mark, 10**8) * Fraction(8, 10)
    e_exact = c_exact + Fraction(size * (mark - entry), 10**8) - fees
    assert e_exact >= Fraction(abs(size) * mark, 10**8) * Fraction(ETH_USD.imr_ppm, 10**6)
