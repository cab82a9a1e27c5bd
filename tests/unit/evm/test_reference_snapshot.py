"""The reference venue's records -> the core's snapshot (pure part of the adapter)."""

from __future__ import annotations

import pytest

from chains.evm.venue_codec import CollateralConfig, MarketParams, PositionState
from orchestrator.risk import MissingPrice, position_risk
from orchestrator.venues import PositionSnapshot, PriceQuote, RiskTuning
from orchestrator.venues.reference import position_snapshot

E8, E18 = 10**8, 10**18
ETH, USDC = bytes([1]) * 32, bytes([2]) * 32
ETH_HEX, USDC_HEX = "0x" + ETH.hex(), "0x" + USDC.hex()
KEY = bytes([9]) * 32
MARKET = MarketParams(ETH, 100_000, 50_000, 500, 10_000, 1_000 * E18, 60, 600, 1, 10**20,
                      250_000, 500_000, 10 * E18, 30, 50_000)
USDC_LANE = CollateralConfig(USDC, 0, 1, 10**20)
WETH_LANE = CollateralConfig(ETH, 100_000, 1, 10**20)
QUOTES = {ETH_HEX: PriceQuote(ETH_HEX, 1_999_99999999, 1_000),
          USDC_HEX: PriceQuote(USDC_HEX, E8, 990)}
LONG = PositionState(ETH, 2 * E18, 3_000 * E8, -3 * E18, 0)


def build(lanes: list[tuple[CollateralConfig, int]]) -> PositionSnapshot:
    return position_snapshot(KEY, LONG, MARKET, 20_000, lanes, QUOTES, venue_name="evm-b:0xV",
                             tuning=RiskTuning(), height=5)


def test_one_lot_per_lane_each_floored_like_the_venue() -> None:
    snap = build([(USDC_LANE, 333 * E18 + 1), (WETH_LANE, E18 // 3), (USDC_LANE, 7)])
    lots = [(lot.asset, lot.amount18) for lot in snap.position.collateral]
    assert lots == [(ETH_HEX, E18 // 3), (USDC_HEX, 333 * E18 + 1), (USDC_HEX, 7)]
    risk = position_risk(snap.position, snap.prices_e8, snap.params, snap.buffer_ppm)
    venue_c = sum((a * p // E8) * (10**6 - h) // 10**6 for a, p, h in (
        (333 * E18 + 1, E8, 0), (E18 // 3, 1_999_99999999, 100_000), (7, E8, 0)))
    assert risk.collateral_usd_e18 == venue_c
    assert snap.params.collateral[ETH_HEX].stable is False
    assert snap.params.collateral[USDC_HEX].stable is True


def test_ledger_version_tick_and_height() -> None:
    snap = build([(USDC_LANE, 1_000 * E18)])
    assert snap.position.accrued_fees_usd_e18 == 3 * E18
    assert snap.position.version == 0 and snap.last_liquidation == 0
    assert snap.publish_time == 1_000 and snap.tick_id == "1000"
    assert (snap.height, snap.buffer_ppm, snap.market) == (5, 20_000, ETH_HEX)


def test_empty_lanes_are_skipped_and_no_collateral_is_still_valued() -> None:
    snap = build([(USDC_LANE, 0)])
    assert snap.position.collateral == ()
    risk = position_risk(snap.position, snap.prices_e8, snap.params, snap.buffer_ppm)
    assert risk.collateral_usd_e18 == 0 and risk.is_liquidatable()


def test_a_missing_price_or_an_unpriced_lane_is_refused() -> None:
    with pytest.raises(MissingPrice):
        position_snapshot(KEY, LONG, MARKET, 0, [(USDC_LANE, E18)], {ETH_HEX: QUOTES[ETH_HEX]},
                          venue_name="v", tuning=RiskTuning())
    with pytest.raises(MissingPrice):
        build([(CollateralConfig(bytes(32), 0, 0, 0), E18)])
