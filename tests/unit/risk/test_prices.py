"""Liquidation and bankruptcy prices: hand-computed tables and rounding toward earlier action."""

from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from orchestrator.risk import (
    CollateralLot,
    InvalidPosition,
    Position,
    PriceMethod,
    Side,
    is_liquidatable,
    position_prices,
    position_risk,
)
from tests.unit.risk.constants import E8, ETH_USD, PRICES_AT_2000, UNIT, usdc

# 1 ETH at entry 2,000 USD; collateral C = 2,000 / L USDC at 1 USD; MM 2.5% (+ buffer).
# long:  p_liq = (e - C) / (1 - m)   rounded UP     p_bk = e - C
# short: p_liq = (e + C) / (1 + m)   rounded DOWN   p_bk = e + C
TABLE = [
    # (leverage, side, buffer_ppm, liquidation_price_e8, bankruptcy_price_e8)
    (2, 1, 0, 102_564_102_565, 100_000_000_000),  # 1000/0.975 = 1025.641025641025.. -> up
    (5, 1, 0, 164_102_564_103, 160_000_000_000),  # 1600/0.975 = 1641.025641025641.. -> up
    (10, 1, 0, 184_615_384_616, 180_000_000_000),  # 1800/0.975 = 1846.153846153846.. -> up
    (20, 1, 0, 194_871_794_872, 190_000_000_000),  # 1900/0.975 = 1948.717948717948.. -> up
    (2, -1, 0, 292_682_926_829, 300_000_000_000),  # 3000/1.025 = 2926.829268292682.. -> down
    (5, -1, 0, 234_146_341_463, 240_000_000_000),  # 2400/1.025 = 2341.463414634146.. -> down
    (10, -1, 0, 214_634_146_341, 220_000_000_000),  # 2200/1.025 = 2146.341463414634.. -> down
    (20, -1, 0, 204_878_048_780, 210_000_000_000),  # 2100/1.025 = 2048.780487804878.. -> down
    (10, 1, 5_000, 185_567_010_310, 180_000_000_000),  # 1800/0.97 = 1855.670103092783.. -> up
    (10, -1, 5_000, 213_592_233_009, 220_000_000_000),  # 2200/1.03 = 2135.922330097087.. -> down
]


@pytest.mark.parametrize(
    ("leverage", "side", "buffer", "liq", "bk"), TABLE,
    ids=[f"{'long' if r[1] > 0 else 'short'}-{r[0]}x-buf{r[2]}" for r in TABLE])
def test_formula_table(leverage: int, side: int, buffer: int, liq: int, bk: int) -> None:
    position = Position("0xt", 0, side * UNIT, 2_000 * E8, usdc(2_000 // leverage))
    got = position_prices(position, PRICES_AT_2000, ETH_USD, buffer)
    assert got.method is PriceMethod.CLOSED_FORM
    assert (got.liquidation_price_e8, got.bankruptcy_price_e8) == (liq, bk)
    assert got.liquidation_side is got.bankruptcy_side is (Side.BELOW if side > 0 else Side.ABOVE)
    # the reported price is the last safe tick; one tick further liquidates
    further = liq - side
    assert not is_liquidatable(position, {**PRICES_AT_2000, "ETH": liq}, ETH_USD, buffer)
    assert is_liquidatable(position, {**PRICES_AT_2000, "ETH": further}, ETH_USD, buffer)
    risk = position_risk(position, {**PRICES_AT_2000, "ETH": bk}, ETH_USD, buffer)
    assert risk.equity_usd_e18 == 0  # E == 0 exactly at these round bankruptcy prices
    numeric = position_prices(position, PRICES_AT_2000, ETH_USD, buffer,
                              method=PriceMethod.NUMERIC)
    assert (numeric.liquidation_price_e8, numeric.bankruptcy_price_e8) == (liq, bk)


def test_fully_collateralised_long_has_no_liquidation_or_bankruptcy_price() -> None:
    one_x = Position("0x1", 0, UNIT, 2_000 * E8, usdc(2_000))
    got = position_prices(one_x, PRICES_AT_2000, ETH_USD, 0)
    assert got.liquidation_price_e8 is None and got.bankruptcy_price_e8 is None


def test_short_underwater_at_every_price_reports_zero() -> None:
    # no collateral, owes 3,000: E(p) = -3,000 + (2,000 - p) < 0 for every p >= 0
    broke = Position("0x0", 0, -UNIT, 2_000 * E8, (), accrued_fees_usd_e18=3_000 * 10**18)
    got = position_prices(broke, PRICES_AT_2000, ETH_USD, 0)
    assert got.liquidation_price_e8 == 0 and got.bankruptcy_price_e8 == 0


def exact_threshold(size: int, entry: int, net: int, m: int) -> Fraction:
    """p* where exact E == exact MM (no rounding), for collateral independent of the mark."""
    if size > 0:
        return Fraction(size * entry * 10**6 - net * 10**14, size * (10**6 - m))
    return Fraction(net * 10**14 - size * entry * 10**6, -size * (10**6 + m))


@given(size=st.integers(-(10**26), 10**26).filter(lambda s: abs(s) >= 10**6),
       entry=st.integers(10**6, 10**13), lev_ppm=st.integers(20_000, 2_000_000),
       buffer=st.integers(0, 20_000), fees=st.integers(0, 10**20), steps=st.integers(1, 10**6))
def test_closed_form_rounds_toward_earlier_liquidation(size: int, entry: int, lev_ppm: int,
                                                       buffer: int, fees: int, steps: int) -> None:
    collateral = abs(size) * entry // 10**8 * lev_ppm // 10**6
    position = Position("0xq", 0, size, entry, (CollateralLot("USDC", collateral),), fees)
    got = position_prices(position, PRICES_AT_2000, ETH_USD, buffer)
    net = collateral - fees
    star = exact_threshold(size, entry, net, ETH_USD.mmr_ppm + buffer)
    liq = got.liquidation_price_e8

    def liquidatable(p: int) -> bool:
        return is_liquidatable(position, {**PRICES_AT_2000, "ETH": p}, ETH_USD, buffer)

    if size > 0:
        if liq is None:
            assert star <= 1 and not liquidatable(1)
            return
        assert liq >= star  # rounded up (earlier) for a long
        assert not liquidatable(liq) and not liquidatable(liq + steps)
        if abs(size) >= 10**9:
            assert liquidatable(liq - 1)
    else:
        assert liq is not None and liq <= max(star, 0)  # rounded down (earlier) for a short
        assert liq == 0 or not liquidatable(liq)
        assert liq < steps or not liquidatable(liq - steps + 1)
        if abs(size) >= 10**9:
            assert liquidatable(liq + 1)


@given(size=st.integers(-(10**26), 10**26).filter(bool), entry=st.integers(1, 10**13),
       collateral=st.integers(0, 10**26), fees=st.integers(-(10**20), 10**20))
def test_bankruptcy_price_is_exact_and_rounded_toward_earlier(size: int, entry: int,
                                                               collateral: int, fees: int) -> None:
    position = Position("0xb", 0, size, entry, (CollateralLot("USDC", collateral),), fees)
    bk = position_prices(position, PRICES_AT_2000, ETH_USD, 0).bankruptcy_price_e8
    x = Fraction(entry) - Fraction((collateral - fees) * 10**8, size)  # E == 0 exactly here

    def equity(p: int) -> int:
        return position_risk(position, {**PRICES_AT_2000, "ETH": p}, ETH_USD, 0).equity_usd_e18

    if size > 0:
        if bk is None:
            assert x <= 1
            return
        assert bk >= x and equity(bk) >= 0 and equity(bk - 1) < 0
    else:
        assert bk is not None and bk <= max(x, 0)
        assert bk == 0 or equity(bk) >= 0
        assert equity(bk + 1) < 0


@given(size=st.integers(-(10**24), 10**24).filter(lambda s: abs(s) >= 10**12),
       entry=st.integers(10**8, 10**12), lev_ppm=st.integers(30_000, 1_500_000),
       buffer=st.integers(0, 20_000))
def test_numeric_agrees_with_closed_form_on_stable_collateral(size: int, entry: int, lev_ppm: int,
                                                               buffer: int) -> None:
    collateral = abs(size) * entry // 10**8 * lev_ppm // 10**6
    position = Position("0xn", 0, size, entry, (CollateralLot("USDC", collateral),))
    closed = position_prices(position, PRICES_AT_2000, ETH_USD, buffer)
    numeric = position_prices(position, PRICES_AT_2000, ETH_USD, buffer,
                              method=PriceMethod.NUMERIC)
    assume(closed.liquidation_price_e8 is None or closed.liquidation_price_e8 < 2**90)
    assert numeric.method is PriceMethod.NUMERIC
    assert numeric.liquidation_price_e8 == closed.liquidation_price_e8
    assert numeric.bankruptcy_price_e8 == closed.bankruptcy_price_e8


def test_several_non_stable_assets_are_solved_numerically() -> None:
    # 1 ETH long at 2,000 backed by 0.1 ETH (20% haircut) + 0.002 BTC (15%) + 50 USDC.
    position = Position("0xm", 0, UNIT, 2_000 * E8, (
        CollateralLot("ETH", UNIT // 10), CollateralLot("BTC", 2 * UNIT // 1_000),
        CollateralLot("USDC", 50 * UNIT)))
    got = position_prices(position, PRICES_AT_2000, ETH_USD, 0)
    assert got.method is PriceMethod.NUMERIC and got.liquidation_side is Side.BELOW
    # E(p) = 0.08 p + 102 + 50 + (p - 2,000);  MM = 0.025 p  ->  p* = 1848/1.055 = 1751.66..
    assert got.liquidation_price_e8 == 175_165_876_778  # 1751.658767772511.. rounded up
    assert got.bankruptcy_price_e8 == 171_111_111_112  # 1848/1.08 = 1711.111.. rounded up
    liq = got.liquidation_price_e8
    assert not is_liquidatable(position, {**PRICES_AT_2000, "ETH": liq}, ETH_USD, 0)
    assert is_liquidatable(position, {**PRICES_AT_2000, "ETH": liq - 1}, ETH_USD, 0)
    with pytest.raises(InvalidPosition):
        position_prices(position, PRICES_AT_2000, ETH_USD, 0, method=PriceMethod.CLOSED_FORM)


def test_short_over_hedged_by_base_collateral_liquidates_on_a_fall() -> None:
    # short 1 ETH at 2,000 with 2 ETH collateral (20% haircut: 1.6 ETH counted):
    # E(p) = 1.6 p - (p - 2,000) = 0.6 p + 2,000 ... grows with p; MM = 0.025 p:
    # E < MM iff 0.575 p < -2,000: never at a positive price.
    position = Position("0xh", 0, -UNIT, 2_000 * E8, (CollateralLot("ETH", 2 * UNIT),))
    got = position_prices(position, PRICES_AT_2000, ETH_USD, 0)
    assert got.method is PriceMethod.NUMERIC
    assert got.liquidation_side is Side.BELOW and got.liquidation_price_e8 is None
