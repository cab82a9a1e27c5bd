"""Automated top-up planner (DESIGN §3 "Automated rebalancing"): pure integer rules, no I/O.

An owner registers on the venue a rule for a target position: a reserve position of the same
owner (free collateral: credited locks on a position with no open trade), a threshold margin
ratio ``E / MM`` (ppm, above 1e6) and a cap on the value moved in total. When the target's
``E * 1e6 < MM * threshold_ppm`` at prices valid for liquidations, the venue's ``topUp`` moves
one WHOLE reserve lock into the target. This module decides which locks to move; the venue
re-checks everything on chain (the rule, the reserve being flat, the threshold, the cap).

Rules, with their rounding (each favours the protocol)
------------------------------------------------------
    value counted against the cap   v = ceil(amount18 * price_e8 / 1e8)          # UP (no haircut)
    equity a lock adds (lower bound) c = floor(floor(amount18 * price_e8 / 1e8)
                                           * (1e6 - haircut_ppm) / 1e6)          # DOWN
    act iff                          MM > 0 and E * 1e6 < MM * threshold_ppm

``c`` is the lock's own collateral value. On chain a moved lock joins the target's entry for
its (chain, asset) lane, valued as one sum, and ``floor(x + y) >= floor(x) + floor(y)``, so the
real gain is at least ``c``: the planner never overstates a rescue. ``MM`` depends on the
notional only, so moving collateral leaves it unchanged.

Plan (greedy, deterministic): while the target is below its threshold, among the reserve locks
whose value fits the rule's remaining budget, move the cheapest (by ``v``, then lock key) that
alone restores the threshold; if none does, move the one adding the most equity (then the
cheapest, then lock key) and look again. No plan when the reserve has an open trade, a
liquidation is pending on the target, or nothing fits. After the moves land, the same inputs
read back from the chain give no plan: the target is above the threshold, or the moved locks
are gone from the reserve, or the budget is spent (idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.risk.errors import InvalidRiskParams
from orchestrator.risk.margin import PRICE_SCALE, ceil_div, collateral_value_usd_e18
from orchestrator.risk.params import PPM

__all__ = [
    "ReserveLock",
    "TargetState",
    "TopUpMove",
    "TopUpPlan",
    "TopUpRule",
        "below_threshold",
    "plan_top_up",
]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(ok: bool, field: str, value: object, reason: str) -> None:
    if not ok:
        raise InvalidRiskParams(field, value, reason)


@dataclass(frozen=True, slots=True)
class TopUpRule:
    """A target position's rule as the venue stores it (``topUpRuleOf``).

    Invariants: ``threshold_ppm > 1e6``, ``max_usd_e18 > 0``, ``0 <= used_usd_e18 <=
    max_usd_e18``; ``source_key`` is the reserve position (bytes32 hex).
    """

    source_key: str
    threshold_ppm: int
    max_usd_e18: int
    used_usd_e18: int = 0

    def __post_init__(self) -> None:
        for name in ("threshold_ppm", "max_usd_e18", "used_usd_e18"):
            _require(_is_int(getattr(self, name)), f"topup.{name}", getattr(self, name),
                     "must be an int")
        _require(self.threshold_ppm > PPM, "topup.threshold_ppm", self.threshold_ppm,
                 "must be above 1000000 (a ratio E/MM above 1)")
        _require(self.max_usd_e18 > 0, "topup.max_usd_e18", self.max_usd_e18, "must be > 0")
        _require(0 <= self.used_usd_e18 <= self.max_usd_e18, "topup.used_usd_e18",
                 self.used_usd_e18, "must be in 0..max_usd_e18")

    @property
    def remaining_usd_e18(self) -> int:
        """What the rule may still move."""
        return self.max_usd_e18 - self.used_usd_e18


@dataclass(frozen=True, slots=True)
class ReserveLock:
    """One credited lock on the reserve: its 18-decimal amount and its lane's price (valid for
    liquidations) and haircut."""

    lock_key: str
    amount18: int
    price_e8: int
    haircut_ppm: int

    def __post_init__(self) -> None:
        for name in ("amount18", "price_e8", "haircut_ppm"):
            _require(_is_int(getattr(self, name)), f"reserve.{name}", getattr(self, name),
                     "must be an int")
        _require(self.amount18 > 0, "reserve.amount18", self.amount18, "must be > 0")
        _require(self.price_e8 > 0, "reserve.price_e8", self.price_e8, "must be > 0")
        _require(0 <= self.haircut_ppm < PPM, "reserve.haircut_ppm", self.haircut_ppm,
                 "must be in 0..999999")

    @property
    def value_usd_e18(self) -> int:
        """``ceil(amount18 * price_e8 / 1e8)``: what the move counts against the cap (UP)."""
        return ceil_div(self.amount18 * self.price_e8, PRICE_SCALE)

    @property
    def credit_usd_e18(self) -> int:
        """The lock's haircut collateral value (DOWN): a lower bound of the equity it adds."""
        return collateral_value_usd_e18(self.amount18, self.price_e8, self.haircut_ppm)


@dataclass(frozen=True, slots=True)
class TargetState:
    """The target's equity and maintenance margin (usd_e18) at liquidation-valid prices."""

    equity_usd_e18: int
    maintenance_usd_e18: int
    liquidation_pending: bool = False

    def __post_init__(self) -> None:
        for name in ("equity_usd_e18", "maintenance_usd_e18"):
            _require(_is_int(getattr(self, name)), f"target.{name}", getattr(self, name),
                     "must be an int")
        _require(self.maintenance_usd_e18 >= 0, "target.maintenance_usd_e18",
                 self.maintenance_usd_e18, "must be >= 0")


@dataclass(frozen=True, slots=True)
class TopUpMove:
    """Move ``lock_key`` (whole) from the reserve to the target."""

    lock_key: str
    value_usd_e18: int
    credit_usd_e18: int


@dataclass(frozen=True, slots=True)
class TopUpPlan:
    """Moves in order; ``equity_after_usd_e18`` is a lower bound of E after all of them and
    ``restores`` whether that bound is at or above the threshold."""

    moves: tuple[TopUpMove, ...]
    equity_after_usd_e18: int
    restores: bool


def below_threshold(equity_usd_e18: int, maintenance_usd_e18: int, threshold_ppm: int) -> bool:
    """``MM > 0 and E * 1e6 < MM * threshold_ppm`` (cross-multiplied: no division, exact)."""
    return (maintenance_usd_e18 > 0
            and equity_usd_e18 * PPM < maintenance_usd_e18 * threshold_ppm)


def plan_top_up(target: TargetState, rule: TopUpRule, reserve: Sequence[ReserveLock], *,
                reserve_open: bool = False) -> TopUpPlan | None:
    """Which reserve locks to move into the target, in order; None when nothing is to be done.

    Args:
        target: the target's E and MM at liquidation-valid prices, and whether a liquidation
            is pending on it (the venue refuses top-ups then).
        rule: the target's rule (threshold, cap, what it moved so far).
        reserve: the reserve position's credited locks with valid prices (locks without one
            are left out by the caller: the venue would refuse them).
        reserve_open: the reserve has an open trade (its collateral is not free).

    Raises:
        InvalidRiskParams: two reserve locks share a key.
    """
    keys = [lock.lock_key for lock in reserve]
    _require(len(set(keys)) == len(keys), "reserve.lock_key", keys, "lock keys repeat")
    equity, mm, threshold = target.equity_usd_e18, target.maintenance_usd_e18, rule.threshold_ppm
    if reserve_open or target.liquidation_pending or not below_threshold(equity, mm, threshold):
        return None
    budget = rule.remaining_usd_e18
    left = [lock for lock in reserve if lock.credit_usd_e18 > 0]
    moves: list[TopUpMove] = []
    while below_threshold(equity, mm, threshold):
        fits = [lock for lock in left if lock.value_usd_e18 <= budget]
        if not fits:
            break
        restoring = [lock for lock in fits
                     if not below_threshold(equity + lock.credit_usd_e18, mm, threshold)]
        if restoring:
            pick = min(restoring, key=lambda lock: (lock.value_usd_e18, lock.lock_key))
        else:
            pick = min(fits, key=lambda lock: (-lock.credit_usd_e18, lock.value_usd_e18,
                                               lock.lock_key))
        moves.append(TopUpMove(pick.lock_key, pick.value_usd_e18, pick.credit_usd_e18))
        budget -= pick.value_usd_e18
        equity += pick.credit_usd_e18
        left.remove(pick)
    if not moves:
        return None
    return TopUpPlan(tuple(moves), equity, not below_threshold(equity, mm, threshold))
