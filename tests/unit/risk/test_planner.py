"""Liquidation planner: the table of DESIGN §3, LIQ-01 / LIQ-02, idempotent ids, properties."""

import copy
import hashlib
import inspect
import typing
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from orchestrator.risk import (
    AccountNotLiquidatable,
    CollateralLot,
    LiquidationCooldown,
    PlanKind,
    PlanReason,
    Position,
    StalePrice,
    check_user_action,
    is_liquidatable,
    maintenance_margin_usd_e18,
    notional_usd_e18,
    plan_liquidation,
    position_prices,
    position_risk,
)
from orchestrator.risk.planner import plan_at_prices, plan_id
from tests.unit.risk.constants import (
    ALICE_ETH_2X_LONG_AT_2000,
    ALICE_ETH_10X_LONG_AT_2000,
    E8,
    ETH_USD_IM10_MM5,
    NOW,
    PRICES_AT_2000,
    UNIT,
    USD,
    params,
    ticks,
    usdc,
)

# Market: IM 10%, MM 5%, no buffer, fee 1% (cap 1e9 USD), step_max 100%, full_ratio 50%,
# dust 100 USD, cooldown 60 s.  Position: 10 ETH long at 2,000 with 2,000 USDC (10x).
P = ETH_USD_IM10_MM5
CAPPED = params(P, step_max_ppm=250_000)
DUST = Position("0xdust", 0, UNIT // 10, 2_000 * E8, usdc(20))  # 0.1 ETH, 10x


def at(mark_usd: int) -> dict[str, int]:
    return {**PRICES_AT_2000, "ETH": mark_usd * E8}


def plan(position: Position, mark_usd: int, p: Any = P, **kw: Any) -> Any:
    return plan_at_prices(position, at(mark_usd), p, 0, tick_id="ETH:1", now_chain_s=NOW, **kw)


TABLE = [
    # At 1,894: E = 2,000 + 10 * (1,894 - 2,000) = 940; N = 18,940; MM = 947 (5%); IM = 1,894.
    # E >= MM * 50% = 473.5, so partial. Closing f: fee = 1% * 18,940 f = 189.4 f;
    # 940 - 189.4 f >= 1,894 (1 - f)  <=>  1,704.6 f >= 954  <=>  f >= 0.5596620908...
    # -> f = 559,663 ppm; closes 5.59663 ETH (notional 10,600.01722), fee 106.0001722;
    # E_after = 940 - 106.0001722 = 833.9998278 >= IM_after = 10% * 4.40337 * 1,894 = 833.998278
    ("partial-to-im", ALICE_ETH_10X_LONG_AT_2000, 1_894, P, PlanKind.PARTIAL,
     PlanReason.TO_INITIAL_MARGIN, 559_663, 5_596_630_000_000_000_000, 106_000_172_200_000_000_000,
     833_999_827_800_000_000_000, 0),
    # Same, step_max 25%: f = 250,000; closes 2.5 ETH (4,735), fee 47.35; E_after = 892.65
    # (still below IM_after = 1,420.5: a further step after the cooldown).
    ("capped-step", ALICE_ETH_10X_LONG_AT_2000, 1_894, CAPPED, PlanKind.PARTIAL,
     PlanReason.STEP_CAPPED, 250_000, 2_500_000_000_000_000_000, 47_350_000_000_000_000_000,
     892_650_000_000_000_000_000, 0),
    # At 1,840: E = 400 < MM * 50% = 920 * 0.5 = 460 -> full; fee 1% * 18,400 = 184; E_after 216.
    ("full-below-ratio", ALICE_ETH_10X_LONG_AT_2000, 1_840, P, PlanKind.FULL,
     PlanReason.BELOW_FULL_RATIO, 1_000_000, 10 * UNIT, 184 * USD, 216 * USD, 0),
    # 0.1 ETH at 1,894: E = 20 - 10.6 = 9.4 < MM = 9.47; partial would leave ~0.044 ETH
    # (~83 USD < dust 100) -> full; fee 1.894; E_after = 9.4 - 1.894 = 7.506.
    ("dust-full", DUST, 1_894, P, PlanKind.FULL, PlanReason.REMAINDER_DUST, 1_000_000,
     UNIT // 10, 1_894_000_000_000_000_000, 7_506_000_000_000_000_000, 0),
    # LIQ-01: 10x long, price -45% in one tick (2,000 -> 1,100): E = 2,000 - 9,000 = -7,000.
    # Full; the 110 fee cannot be paid and is waived; shortfall 7,000 to the insurance fund.
    ("gap-through-bankruptcy", ALICE_ETH_10X_LONG_AT_2000, 1_100, P, PlanKind.FULL,
     PlanReason.BELOW_FULL_RATIO, 1_000_000, 10 * UNIT, 0, -7_000 * USD, 7_000 * USD),
]


@pytest.mark.parametrize(("name", "position", "mark", "p", "kind", "reason", "f", "closed", "fee",
                          "equity_after", "shortfall"), TABLE, ids=[r[0] for r in TABLE])
def test_planner_table(name: str, position: Position, mark: int, p: Any, kind: PlanKind,
                       reason: PlanReason, f: int, closed: int, fee: int, equity_after: int,
                       shortfall: int) -> None:
    got = plan(position, mark, p)
    assert (got.kind, got.reason, got.close_fraction_ppm) == (kind, reason, f)
    assert (got.close_size_e18, got.fee_usd_e18) == (closed, fee)
    assert (got.equity_after_usd_e18, got.shortfall_usd_e18) == (equity_after, shortfall)
    assert got.remaining_size_e18 == position.size_e18 - closed
    if reason is PlanReason.TO_INITIAL_MARGIN:
        assert got.equity_after_usd_e18 >= got.initial_margin_after_usd_e18
        smaller = plan(replace(position), mark, params(p, step_max_ppm=f - 1))
        assert smaller.equity_after_usd_e18 < smaller.initial_margin_after_usd_e18
    assert (got.next_step_at_s is None) is (kind is PlanKind.FULL)


def test_liq_01_shortfall_recorded_fee_waived() -> None:
    got = plan(ALICE_ETH_10X_LONG_AT_2000, 1_100)
    assert got.fee_waived_usd_e18 == 110 * USD  # 1% of 11,000, not charged to the fund
    assert got.equity_before_usd_e18 == -7_000 * USD and got.remaining_size_e18 == 0


def test_liq_02_isolation_sibling_is_bit_identical() -> None:
    """A (10x) and B (2x): same owner, asset and oracle; a crash liquidates A only."""
    a, b = ALICE_ETH_10X_LONG_AT_2000, ALICE_ETH_2X_LONG_AT_2000
    b_copy = copy.deepcopy(b)
    crash = at(1_100)
    before = (position_risk(b, crash, P, 0), position_prices(b, crash, P, 0))
    got = plan(a, 1_100)
    assert got.position_key == a.key and got.shortfall_usd_e18 == 7_000 * USD
    assert b == b_copy
    assert (position_risk(b, crash, P, 0), position_prices(b, crash, P, 0)) == before
    assert not is_liquidatable(b, crash, P, 0)


def test_plan_id_is_idempotent_per_position_version_and_tick() -> None:
    first, again = plan(ALICE_ETH_10X_LONG_AT_2000, 1_894), plan(ALICE_ETH_10X_LONG_AT_2000, 1_894)
    assert first == again
    assert first.plan_id == plan_id(ALICE_ETH_10X_LONG_AT_2000.key, 3, "ETH:1")
    assert first.plan_id != plan_id(ALICE_ETH_10X_LONG_AT_2000.key, 4, "ETH:1")
    assert first.plan_id != plan_id(ALICE_ETH_10X_LONG_AT_2000.key, 3, "ETH:2")
    assert first.plan_id != plan_id(ALICE_ETH_2X_LONG_AT_2000.key, 3, "ETH:1")
    # golden value: the executor and other implementations derive the same id
    canonical = b'["bulkhead/liquidation-plan/v1","0xab",1,"ETH:7"]'
    assert plan_id("0xab", 1, "ETH:7") == "0x" + hashlib.sha256(canonical).hexdigest()


def test_cooldown_applies_to_partial_steps_only() -> None:
    with pytest.raises(LiquidationCooldown) as err:
        plan(ALICE_ETH_10X_LONG_AT_2000, 1_894, last_step_at_s=NOW - 59)
    assert err.value.ready_at_s == NOW + 1
    assert plan(ALICE_ETH_10X_LONG_AT_2000, 1_894, last_step_at_s=NOW - 60).kind is PlanKind.PARTIAL
    full = plan(ALICE_ETH_10X_LONG_AT_2000, 1_840, last_step_at_s=NOW - 1)
    assert full.kind is PlanKind.FULL


def test_not_liquidatable_is_refused() -> None:
    with pytest.raises(AccountNotLiquidatable):
        plan(ALICE_ETH_10X_LONG_AT_2000, 1_900)  # E = 1,000 >= MM = 950


def test_plan_liquidation_validates_prices_for_the_liquidation_class() -> None:
    ok = plan_liquidation(ALICE_ETH_10X_LONG_AT_2000, ticks(at(1_894), at=NOW - 100), NOW, P, 0)
    assert ok.tick_id == f"ETH:{NOW - 100}"
    with pytest.raises(StalePrice):
        plan_liquidation(ALICE_ETH_10X_LONG_AT_2000, ticks(at(1_894), at=NOW - 121), NOW, P, 0)


@given(size=st.integers(10**15, 10**24), side=st.sampled_from([1, -1]),
       entry=st.integers(100 * E8, 10_000 * E8), move_ppm=st.integers(-600_000, 600_000),
       ratio_ppm=st.one_of(st.integers(-1_500_000, 499_999), st.integers(500_000, 999_999)),
       fees=st.integers(0, 10**19),
       step_max=st.one_of(st.integers(1, 1_000_000), st.just(1_000_000)),
       fee_cap=st.one_of(st.integers(0, 10**22), st.just(10**30)))
def test_plan_properties(size: int, side: int, entry: int, move_ppm: int, ratio_ppm: int,
                         fees: int, step_max: int, fee_cap: int) -> None:
    p = params(P, step_max_ppm=step_max, fee_cap_usd_e18=fee_cap)
    s = side * size
    mark = entry * (10**6 + move_ppm) // 10**6
    prices = {**PRICES_AT_2000, "ETH": mark}
    # collateral such that E is about ratio * MM: below MM, often far below (full, shortfall)
    mm = maintenance_margin_usd_e18(notional_usd_e18(s, mark), p.mmr_ppm, 0)
    pnl = s * (mark - entry) // 10**8
    collateral = max(mm * ratio_ppm // 10**6 - pnl + fees, 0)
    position = Position("0xprop", 2, s, entry, (CollateralLot("USDC", collateral),), fees)
    assume(is_liquidatable(position, prices, p, 0))
    got = plan_at_prices(position, prices, p, 0, tick_id="t", now_chain_s=NOW)
    event(f"{got.kind.value}/{got.reason.value}")
    # fee: charged <= due; due = min(ceil(1% of closed notional), cap), never below exact
    due = got.fee_usd_e18 + got.fee_waived_usd_e18
    exact_fee = Fraction(got.closed_notional_usd_e18 * p.liq_fee_ppm, 10**6)
    assert due == min(-(-got.closed_notional_usd_e18 * p.liq_fee_ppm // 10**6), fee_cap)
    assert due >= min(exact_fee, fee_cap)
    assert got.fee_usd_e18 <= max(got.equity_before_usd_e18 + 1, 0)
    # closing rounds up: at least f of the size; sides never flip
    assert abs(got.close_size_e18) * 10**6 >= size * got.close_fraction_ppm
    assert got.remaining_size_e18 * s >= 0
    # equity after never exceeds exact math (realized + unrealized floored, fee rounded up)
    exact_after = collateral - fees + Fraction(s * (mark - entry), 10**8) - got.fee_usd_e18
    assert got.equity_after_usd_e18 <= exact_after
    if got.kind is PlanKind.PARTIAL:
        assert got.close_fraction_ppm <= step_max and got.shortfall_usd_e18 == 0
        assert got.equity_before_usd_e18 * 10**6 >= got.maintenance_before_usd_e18 * 500_000
        if got.reason is PlanReason.TO_INITIAL_MARGIN:
            assert got.equity_after_usd_e18 >= got.initial_margin_after_usd_e18
            if got.close_fraction_ppm > 1:
                less = plan_at_prices(position, prices, params(
                    p, step_max_ppm=got.close_fraction_ppm - 1), 0, tick_id="t", now_chain_s=NOW)
                assert less.equity_after_usd_e18 < less.initial_margin_after_usd_e18
    else:
        assert got.remaining_size_e18 == 0
        assert got.shortfall_usd_e18 == max(-got.equity_after_usd_e18, 0)
        assert got.shortfall_usd_e18 == 0 or got.fee_usd_e18 == 0  # a fee never adds bad debt


def test_pure_functions_take_exactly_one_position() -> None:
    """I6 by construction: nothing that values, prices or plans a position can see another."""
    for fn in (plan_liquidation, plan_at_prices, position_risk, position_prices,
               check_user_action, is_liquidatable):
        hints = typing.get_type_hints(fn)
        annotated = [name for name in inspect.signature(fn).parameters
                     if hints.get(name) is Position]
        assert len(annotated) == 1, fn.__name__
        assert all("Position]" not in str(h) for h in hints.values()), fn.__name__


sides = st.sampled_from([1, -1])


@given(a_side=sides, b_side=sides, a_lev=st.integers(2, 50), b_lev=st.integers(1, 50),
       crash_ppm=st.integers(300_000, 1_700_000))
def test_isolation_planning_a_neither_reads_nor_changes_b(a_side: int, b_side: int, a_lev: int,
                                                          b_lev: int, crash_ppm: int) -> None:
    a = Position("0x" + "0a" * 32, 1, a_side * 10 * UNIT, 2_000 * E8, usdc(20_000 // a_lev))
    b = Position("0x" + "0b" * 32, 1, b_side * 10 * UNIT, 2_000 * E8, usdc(20_000 // b_lev))
    prices = {**PRICES_AT_2000, "ETH": 2_000 * E8 * crash_ppm // 10**6}
    b_before = (copy.deepcopy(b), position_risk(b, prices, P, 0), position_prices(b, prices, P, 0))
    assume(is_liquidatable(a, prices, P, 0))
    alone = plan_at_prices(a, prices, P, 0, tick_id="x", now_chain_s=NOW)
    if is_liquidatable(b, prices, P, 0):
        plan_at_prices(b, prices, P, 0, tick_id="x", now_chain_s=NOW)
    again = plan_at_prices(a, prices, P, 0, tick_id="x", now_chain_s=NOW)
    assert alone == again  # no hidden state carried from planning another position
    assert (b, position_risk(b, prices, P, 0), position_prices(b, prices, P, 0)) == b_before
