"""Automated top-up planner (DESIGN §3 "Automated rebalancing"): table and properties."""

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.risk import InvalidRiskParams, collateral_value_usd_e18
from orchestrator.risk.topup import (
    ReserveLock,
    TargetState,
    TopUpMove,
    TopUpRule,
    below_threshold,
    plan_top_up,
)
from tests.unit.risk.constants import E8, USD

PPM = 10**6
RESERVE = "0x" + "5e" * 32
RULE_1_5X_MAX_1000 = TopUpRule(RESERVE, 1_500_000, 1_000 * USD)
# E 297, MM 265 (ratio 1.12): the threshold 1.5 wants E >= 397.5.
TARGET_AT_1_12 = TargetState(297 * USD, 265 * USD)


def usdc_lock(name: str, usd: int, haircut_ppm: int = 0) -> ReserveLock:
    return ReserveLock("0x" + name * 32, usd * USD, E8, haircut_ppm)


L100, L200, L900 = usdc_lock("01", 100), usdc_lock("02", 200), usdc_lock("09", 900)


@pytest.mark.parametrize(
    ("target", "rule", "reserve", "reserve_open", "moves"),
    [
        pytest.param(TARGET_AT_1_12, RULE_1_5X_MAX_1000, (L100, L200, L900), False, ["02"],
                     id="cheapest-restoring-lock"),
        pytest.param(TARGET_AT_1_12, RULE_1_5X_MAX_1000, (L100,), False, ["01"],
                     id="no-lock-restores-moves-what-helps"),
        pytest.param(TargetState(0, 265 * USD), RULE_1_5X_MAX_1000, (L100, L200), False,
                     ["02", "01"], id="several-locks-largest-first"),
        pytest.param(TargetState(400 * USD, 265 * USD), RULE_1_5X_MAX_1000, (L100,), False, [],
                     id="above-threshold"),
        pytest.param(TargetState(397 * USD + 5 * USD // 10, 265 * USD), RULE_1_5X_MAX_1000,
                     (L100,), False, [], id="exactly-at-threshold-is-healthy"),
        pytest.param(TargetState(5 * USD, 0), RULE_1_5X_MAX_1000, (L100,), False, [],
                     id="no-trade-no-maintenance"),
        pytest.param(TARGET_AT_1_12, RULE_1_5X_MAX_1000, (L100,), True, [],
                     id="reserve-has-an-open-trade"),
        pytest.param(TargetState(297 * USD, 265 * USD, liquidation_pending=True),
                     RULE_1_5X_MAX_1000, (L100,), False, [], id="liquidation-pending"),
        pytest.param(TARGET_AT_1_12, TopUpRule(RESERVE, 1_500_000, 1_000 * USD, 850 * USD),
                     (L200, L100), False, ["01"], id="budget-left-150-takes-the-100"),
        pytest.param(TARGET_AT_1_12, TopUpRule(RESERVE, 1_500_000, 150 * USD), (L200,), False,
                     [], id="over-max"),
        pytest.param(TargetState(-50 * USD, 265 * USD), RULE_1_5X_MAX_1000, (L900,), False,
                     ["09"], id="already-liquidatable-may-be-rescued"),
        pytest.param(TARGET_AT_1_12, RULE_1_5X_MAX_1000, (), False, [], id="empty-reserve"),
    ],
)
def test_plan_table(target: TargetState, rule: TopUpRule, reserve: tuple[ReserveLock, ...],
                    reserve_open: bool, moves: list[str]) -> None:
    plan = plan_top_up(target, rule, reserve, reserve_open=reserve_open)
    got = [m.lock_key[2:4] for m in plan.moves] if plan else []
    assert got == moves


def test_plan_values_and_rounding() -> None:
    # 0.1 WETH + 1 wei at 3000.00000001 with a 10 % haircut: the cap value rounds up, the
    # equity it adds rounds down
    weth = ReserveLock("0x" + "ee" * 32, USD // 10 + 1, 300_000_000_001, 100_000)
    exact = Fraction((USD // 10 + 1) * 300_000_000_001, E8)
    assert weth.value_usd_e18 == 300_000_000_001_000_003_001 == -(-exact // 1)
    assert weth.credit_usd_e18 == 270_000_000_000_900_002_700 == (exact // 1) * 9 // 10
    plan = plan_top_up(TARGET_AT_1_12, RULE_1_5X_MAX_1000, (weth,))
    assert plan is not None
    assert plan.moves == (TopUpMove(weth.lock_key, weth.value_usd_e18, weth.credit_usd_e18),)
    assert plan.equity_after_usd_e18 == 297 * USD + weth.credit_usd_e18 and plan.restores
    # dust worth nothing as collateral still counts 1 wei on the cap, and is never moved
    dust = ReserveLock("0x" + "d0" * 32, 3, 1, 0)
    assert (dust.value_usd_e18, dust.credit_usd_e18) == (1, 0)
    assert plan_top_up(TARGET_AT_1_12, RULE_1_5X_MAX_1000, (dust,)) is None


def test_refusals() -> None:
    with pytest.raises(InvalidRiskParams):
        TopUpRule(RESERVE, PPM, USD)  # a ratio of 1 is liquidation itself
    with pytest.raises(InvalidRiskParams):
        TopUpRule(RESERVE, 1_500_000, 0)
    with pytest.raises(InvalidRiskParams):
        TopUpRule(RESERVE, 1_500_000, USD, 2 * USD)
    with pytest.raises(InvalidRiskParams):
        TopUpRule(RESERVE, 1.5, USD)  # type: ignore[arg-type]
    with pytest.raises(InvalidRiskParams):
        ReserveLock("0x01", 0, E8, 0)
    with pytest.raises(InvalidRiskParams):
        ReserveLock("0x01", USD, E8, PPM)
    with pytest.raises(InvalidRiskParams):
        TargetState(USD, -1)
    with pytest.raises(InvalidRiskParams):
        plan_top_up(TARGET_AT_1_12, RULE_1_5X_MAX_1000, (L100, L100))


# ----- properties --------------------------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=10**24)
prices = st.integers(min_value=1, max_value=10**14)
haircuts = st.integers(min_value=0, max_value=PPM - 1)
locks = st.lists(st.tuples(amounts, prices, haircuts), max_size=8).map(
    lambda rows: tuple(ReserveLock(f"0x{i:064x}", a, p, h) for i, (a, p, h) in enumerate(rows)))
targets = st.builds(TargetState, st.integers(-(10**24), 10**24), st.integers(0, 10**24))
rules = st.builds(lambda t, m, u: TopUpRule(RESERVE, t, m, min(u, m)),
                  st.integers(PPM + 1, 5 * PPM), st.integers(1, 10**25), st.integers(0, 10**25))


@given(st.integers(-(10**30), 10**30), st.integers(0, 10**30), st.integers(PPM + 1, 2**32 - 1))
def test_below_threshold_agrees_with_exact_ratio(e: int, mm: int, t: int) -> None:
    expected = mm > 0 and Fraction(e, mm) < Fraction(t, PPM)
    assert below_threshold(e, mm, t) == expected


@given(amounts, prices, haircuts)
def test_lock_value_rounds_up_and_credit_down(amount18: int, price: int, haircut: int) -> None:
    lock = ReserveLock("0x01", amount18, price, haircut)
    gross = Fraction(amount18 * price, E8)
    assert lock.value_usd_e18 >= gross > lock.value_usd_e18 - 1
    assert lock.credit_usd_e18 <= gross * Fraction(PPM - haircut, PPM)


@given(amounts, amounts, prices, haircuts)
def test_credit_is_a_lower_bound_of_what_joining_a_lane_adds(a: int, b: int, price: int,
                                                             haircut: int) -> None:
    """On chain the moved amount joins the lane's entry, valued as one sum."""
    gain = (collateral_value_usd_e18(a + b, price, haircut)
            - collateral_value_usd_e18(a, price, haircut))
    assert gain >= ReserveLock("0x01", b, price, haircut).credit_usd_e18


@given(targets, rules, locks, st.booleans())
def test_plan_invariants(target: TargetState, rule: TopUpRule, reserve: tuple[ReserveLock, ...],
                         reserve_open: bool) -> None:
    plan = plan_top_up(target, rule, reserve, reserve_open=reserve_open)
    needed = below_threshold(target.equity_usd_e18, target.maintenance_usd_e18,
                             rule.threshold_ppm)
    if plan is None:
        return
    assert needed and not reserve_open and not target.liquidation_pending
    by_key = {lock.lock_key: lock for lock in reserve}
    keys = [m.lock_key for m in plan.moves]
    assert len(set(keys)) == len(keys) and set(keys) <= set(by_key)
    assert sum(m.value_usd_e18 for m in plan.moves) <= rule.remaining_usd_e18
    after = target.equity_usd_e18 + sum(m.credit_usd_e18 for m in plan.moves)
    assert plan.equity_after_usd_e18 == after
    assert plan.restores == (
        not below_threshold(after, target.maintenance_usd_e18, rule.threshold_ppm))
    # every move but the last leaves the target below its threshold (no move is wasted)
    e = target.equity_usd_e18
    for move in plan.moves[:-1]:
        e += move.credit_usd_e18
        assert below_threshold(e, target.maintenance_usd_e18, rule.threshold_ppm)


@given(targets, rules, locks)
def test_plan_is_idempotent_once_applied(target: TargetState, rule: TopUpRule,
                                         reserve: tuple[ReserveLock, ...]) -> None:
    """What the chain shows after the moves (E up, budget used, locks gone) plans nothing."""
    plan = plan_top_up(target, rule, reserve)
    if plan is None:
        return
    moved = {m.lock_key for m in plan.moves}
    used = rule.used_usd_e18 + sum(m.value_usd_e18 for m in plan.moves)
    again = plan_top_up(replace(target, equity_usd_e18=plan.equity_after_usd_e18),
                        replace(rule, used_usd_e18=used),
                        tuple(lock for lock in reserve if lock.lock_key not in moved))
    assert again is None


@given(targets, rules, locks)
def test_single_move_is_the_cheapest_that_restores(target: TargetState, rule: TopUpRule,
                                                   reserve: tuple[ReserveLock, ...]) -> None:
    plan = plan_top_up(target, rule, reserve)
    mm, t = target.maintenance_usd_e18, rule.threshold_ppm
    restoring = [lock for lock in reserve
                 if lock.value_usd_e18 <= rule.remaining_usd_e18 and lock.credit_usd_e18 > 0
                 and not below_threshold(target.equity_usd_e18 + lock.credit_usd_e18, mm, t)]
    if plan is None or not restoring:
        return
    assert len(plan.moves) == 1
    assert plan.moves[0].value_usd_e18 == min(lock.value_usd_e18 for lock in restoring)
