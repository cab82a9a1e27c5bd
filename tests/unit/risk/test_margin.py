"""Integer margin rules: hand-computed values, and rounding that never favours the user (I10)."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.risk import (
    CollateralLot,
    InvalidPosition,
    InvalidRiskParams,
    MissingPrice,
    Position,
    Risk,
    collateral_value_usd_e18,
    initial_margin_usd_e18,
    is_liquidatable,
    liquidatable_at,
    maintenance_margin_usd_e18,
    notional_usd_e18,
    position_risk,
    riskier_than,
    unrealized_pnl_usd_e18,
)
from tests.unit.risk.constants import (
    ALICE_ETH_10X_LONG_AT_2000,
    E8,
    ETH_USD,
    PRICES_AT_2000,
    UNIT,
    USD,
)

sizes = st.integers(-(10**28), 10**28)
prices = st.integers(1, 10**14)
amounts = st.integers(0, 10**28)
haircuts = st.integers(0, 999_999)
rates = st.integers(1, 1_000_000)


def test_alice_10x_long_table() -> None:
    # C = 2,000; at 1,900: pnl = 10 * (1,900 - 2,000) = -1,000 -> E = 1,000;
    # N = 19,000; IM = 5% = 950; MM = (2.5% + 0.5%) = 570.
    risk = position_risk(ALICE_ETH_10X_LONG_AT_2000, {**PRICES_AT_2000, "ETH": 1_900 * E8},
                         ETH_USD, 5_000)
    assert risk == Risk(collateral_usd_e18=2_000 * USD, unrealized_pnl_usd_e18=-1_000 * USD,
                        equity_usd_e18=1_000 * USD, notional_usd_e18=19_000 * USD,
                        initial_margin_usd_e18=950 * USD, maintenance_margin_usd_e18=570 * USD)
    assert risk.meets_initial_margin() and not risk.is_liquidatable()


def test_haircut_and_rounding_down_of_collateral() -> None:
    # 1.5 ETH at 2,000.00000001 with 20% haircut: floor(1.5e18 * 200000000001 / 1e8)
    # = 3,000.000000015e18 -> * 0.8 = 2,400.000000012e18 (exact); 7 wei at 1.5 USD -> 10 -> 8.
    assert collateral_value_usd_e18(15 * UNIT // 10, 200_000_000_001, 200_000) == \
        2_400_000_000_012_000_000_000
    assert collateral_value_usd_e18(7, 150_000_000, 200_000) == 8  # floor(10.5)=10, *0.8 = 8
    assert collateral_value_usd_e18(3, 1, 0) == 0


def test_pnl_floors_toward_minus_infinity() -> None:
    assert unrealized_pnl_usd_e18(1, 1, 2) == 0  # +1e-8 -> 0
    assert unrealized_pnl_usd_e18(-1, 1, 2) == -1  # -1e-8 -> -1 (not 0: truncation would be 0)
    assert unrealized_pnl_usd_e18(1, 2, 1) == -1


def test_notional_and_margins_round_up() -> None:
    assert notional_usd_e18(-1, 1) == 1  # 1e-8 -> 1
    assert initial_margin_usd_e18(1, 1) == 1
    assert maintenance_margin_usd_e18(10, 50_000, 0) == 1  # 0.5 -> 1


@given(amount=amounts, price=prices, haircut=haircuts)
def test_collateral_value_never_above_exact(amount: int, price: int, haircut: int) -> None:
    exact = Fraction(amount * price, 10**8) * Fraction(10**6 - haircut, 10**6)
    value = collateral_value_usd_e18(amount, price, haircut)
    assert exact - 2 < value <= exact


@given(size=sizes, entry=prices, mark=prices)
def test_pnl_and_notional_round_against_the_user(size: int, entry: int, mark: int) -> None:
    pnl_exact = Fraction(size * (mark - entry), 10**8)
    assert pnl_exact - 1 < unrealized_pnl_usd_e18(size, entry, mark) <= pnl_exact
    n_exact = Fraction(abs(size) * mark, 10**8)
    assert n_exact <= notional_usd_e18(size, mark) < n_exact + 1


@given(notional=st.integers(0, 10**40), imr=rates, mmr=rates, buffer=st.integers(0, 10**6))
def test_requirements_never_below_exact(notional: int, imr: int, mmr: int, buffer: int) -> None:
    assert initial_margin_usd_e18(notional, imr) >= Fraction(notional * imr, 10**6)
    assert maintenance_margin_usd_e18(notional, mmr, buffer) >= Fraction(
        notional * (mmr + buffer), 10**6)


lots = st.lists(st.tuples(st.sampled_from(["USDC", "ETH", "BTC"]), amounts), max_size=4)


@given(size=sizes, entry=prices, mark=prices, lots=lots, fees=st.integers(-(10**24), 10**24),
       buffer=st.integers(0, 20_000), btc=prices)
def test_integer_rule_liquidates_whenever_exact_math_does(size: int, entry: int, mark: int,
                                                          lots: list[tuple[str, int]], fees: int,
                                                          buffer: int, btc: int) -> None:
    position = Position("0xp", 0, size, entry, tuple(CollateralLot(a, x) for a, x in lots), fees)
    snapshot = {"ETH": mark, "USDC": E8, "BTC": btc}
    risk = position_risk(position, snapshot, ETH_USD, buffer)
    c_exact = sum(Fraction(x * snapshot[a], 10**8) * Fraction(
        10**6 - ETH_USD.collateral[a].haircut_ppm, 10**6) for a, x in lots)
    e_exact = c_exact + Fraction(size * (mark - entry), 10**8) - fees
    n_exact = Fraction(abs(size) * mark, 10**8)
    im_exact = n_exact * Fraction(ETH_USD.imr_ppm, 10**6)
    mm_exact = n_exact * Fraction(ETH_USD.mmr_ppm + buffer, 10**6)
    assert risk.equity_usd_e18 <= e_exact
    assert risk.initial_margin_usd_e18 >= im_exact
    assert risk.maintenance_margin_usd_e18 >= mm_exact
    if mm_exact > 0 and e_exact < mm_exact:
        assert risk.is_liquidatable()  # never later than exact math
    if risk.meets_initial_margin():
        assert e_exact >= im_exact  # never more permissive than exact math
    net = risk.collateral_usd_e18 - fees
    assert liquidatable_at(size, entry, net, ETH_USD.mmr_ppm + buffer, mark) == \
        risk.is_liquidatable() == is_liquidatable(position, snapshot, ETH_USD, buffer)


risks = st.builds(lambda e, mm: Risk(0, 0, e, 0, mm, mm), st.integers(-(10**30), 10**30),
                  st.integers(1, 10**30))


@given(a=risks, b=risks)
def test_riskier_than_agrees_with_exact_ratios(a: Risk, b: Risk) -> None:
    ratio_a = Fraction(a.equity_usd_e18, a.maintenance_margin_usd_e18)
    ratio_b = Fraction(b.equity_usd_e18, b.maintenance_margin_usd_e18)
    assert riskier_than(a, b) == (ratio_a < ratio_b)


def test_empty_position_is_never_liquidatable() -> None:
    flat = Position("0xflat", 0, 0, 0, (), 10**30)
    assert not is_liquidatable(flat, PRICES_AT_2000, ETH_USD, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"size_e18": 1.5}, "size_e18"), ({"version": -1}, "version"),
     ({"entry_e8": 0}, "entry_e8"), ({"accrued_fees_usd_e18": True}, "accrued_fees_usd_e18"),
     ({"collateral": (CollateralLot("USDC", -1),)}, "collateral[0]"),
     ({"collateral": [CollateralLot("USDC", 1)]}, "collateral")],
)
def test_malformed_positions_are_refused(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"key": "0xk", "version": 0, "size_e18": UNIT, "entry_e8": E8,
                               "collateral": ()}
    with pytest.raises(InvalidPosition) as err:
        Position(**{**base, **kwargs})  # type: ignore[arg-type]
    assert err.value.field == field


def test_unknown_collateral_missing_price_and_bad_buffer_are_refused() -> None:
    doge = Position("0xd", 0, UNIT, E8, (CollateralLot("DOGE", 1),))
    with pytest.raises(InvalidPosition):
        position_risk(doge, PRICES_AT_2000, ETH_USD, 0)
    with pytest.raises(MissingPrice):
        position_risk(ALICE_ETH_10X_LONG_AT_2000, {"ETH": 2_000 * E8}, ETH_USD, 0)
    with pytest.raises(InvalidRiskParams):
        position_risk(ALICE_ETH_10X_LONG_AT_2000, PRICES_AT_2000, ETH_USD, 20_001)
