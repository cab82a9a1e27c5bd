"""Liquidation plan for one position (DESIGN §3, I6, I8, LIQ-01, LIQ-02). Pure.

Rules, all in the integers of :mod:`orchestrator.risk.margin`:

1. Only a position the exact rule calls liquidatable (``MM > 0 and E < MM``) at prices valid
   for the LIQUIDATION class gets a plan; otherwise :class:`AccountNotLiquidatable`.
2. FULL when ``E * 1e6 < MM * full_ratio_ppm`` (compared cross-multiplied, no rounding);
   such a step ignores the cooldown.
3. Otherwise PARTIAL: the smallest fraction ``f`` (integer ppm, so the exact fraction rounded
   UP) with ``E_after(f) >= IM_after(f)``, at most ``step_max_ppm``; a partial step is refused
   with :class:`LiquidationCooldown` until ``cooldown_s`` of chain time passed since the last one.
   If ``f`` reaches 1e6, or the remainder's notional is below ``dust_usd_e18``, it is FULL
   (still subject to the cooldown). ``f`` is found by bisection: ``E_after - IM_after`` grows
   with ``f`` because ``liq_fee_ppm < mmr_ppm <= imr_ppm`` (each ppm closed frees more IM than
   it costs in fee), up to a few wei of rounding on dust-sized positions.
4. Closing ``f`` of size ``s`` at mark ``p`` (entry ``e``), with ``C' = C - accrued fees``::

       closed       = sign(s) * ceil(|s| * f / 1e6)          # rounded up: closes more
       remaining    = s - closed
       realized     = floor(closed * (p - e) / 1e8)           # floored, like unrealized pnl
       fee_due      = min(ceil(N(closed) * liq_fee_ppm / 1e6), fee_cap_usd_e18)
       before_fee   = C' + realized + floor(remaining * (p - e) / 1e8)
       fee          = min(fee_due, max(before_fee, 0))        # taken from equity only
       E_after      = before_fee - fee
       IM_after     = ceil(N(remaining) * imr_ppm / 1e6)
       shortfall    = max(-E_after, 0)                        # FULL only: insurance fund

   The fee is never added to a loss: what the position cannot pay is waived and reported
   (``fee_waived_usd_e18``); the shortfall is the position's own loss beyond its collateral, and
   it is charged to the insurance fund, never to another position.
5. ``plan_id = sha256(canonical JSON ["bulkhead/liquidation-plan/v1", key, version, tick_id])``:
   the same position version at the same tick always yields the same id (I2, I8).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.risk.errors import AccountNotLiquidatable, LiquidationCooldown
from orchestrator.risk.margin import (
    PRICE_SCALE,
    Position,
    ceil_div,
    initial_margin_usd_e18,
    maintenance_margin_usd_e18,
    notional_usd_e18,
    position_risk,
    unrealized_pnl_usd_e18,
)
from orchestrator.risk.oracle import PriceTick, valid_prices
from orchestrator.risk.params import PPM, OpClass, RiskParams

__all__ = [
    "LiquidationPlan",
    "PlanKind",
    "PlanReason",
    "plan_at_prices",
    "plan_id",
    "plan_liquidation",
]

_PLAN_DOMAIN = "bulkhead/liquidation-plan/v1"


class PlanKind(StrEnum):
    PARTIAL = "partial"
    FULL = "full"


class PlanReason(StrEnum):
    TO_INITIAL_MARGIN = "to_initial_margin"  # partial: smallest fraction restoring E >= IM
    STEP_CAPPED = "step_capped"  # partial: step_max reached before IM
    BELOW_FULL_RATIO = "below_full_ratio"  # full: E < MM * full_ratio
    REMAINDER_DUST = "remainder_dust"  # full: the remainder would be dust
    WHOLE_POSITION = "whole_position"  # full: only closing everything restores IM


@dataclass(frozen=True, slots=True)
class LiquidationPlan:
    """What to do to one position at one tick. Amounts in usd_e18, sizes in base units * 1e18."""

    plan_id: str
    position_key: str
    position_version: int
    tick_id: str
    kind: PlanKind
    reason: PlanReason
    mark_e8: int
    close_fraction_ppm: int
    close_size_e18: int  # signed like the position: the amount that is reduced
    remaining_size_e18: int
    closed_notional_usd_e18: int
    realized_pnl_usd_e18: int
    fee_usd_e18: int  # charged, taken from equity
    fee_waived_usd_e18: int  # due but not covered by equity
    equity_before_usd_e18: int
    maintenance_before_usd_e18: int
    equity_after_usd_e18: int
    initial_margin_after_usd_e18: int
    maintenance_after_usd_e18: int
    shortfall_usd_e18: int  # >= 0; drawn from the insurance fund (FULL only)
    next_step_at_s: int | None  # chain time from which a further partial step may run


@dataclass(frozen=True, slots=True)
class _Step:
    fraction_ppm: int
    closed: int
    remaining: int
    closed_notional: int
    realized: int
    fee_due: int
    fee: int
    equity_after: int
    im_after: int
    mm_after: int
    remaining_notional: int


_StepFn = Callable[[int], _Step]


def plan_id(position_key: str, position_version: int, tick_id: str) -> str:
    """``0x`` + sha256 of the canonical JSON of (domain, key, version, tick id)."""
    encoded = json.dumps([_PLAN_DOMAIN, position_key, position_version, tick_id],
                         separators=(",", ":"), ensure_ascii=True)
    return "0x" + hashlib.sha256(encoded.encode("ascii")).hexdigest()


def plan_liquidation(position: Position, ticks: Mapping[str, PriceTick], now_chain_s: int,
                     params: RiskParams, buffer_ppm: int, *,
                     last_step_at_s: int | None = None) -> LiquidationPlan:
    """Validate the prices for the LIQUIDATION class and plan (see the module docstring).

    Args:
        position: the one position planned; nothing else is read or changed (I6).
        ticks: ``{asset: PriceTick}``; the mark tick's ``tick_id`` enters the plan id.
        now_chain_s: the venue chain's clock (staleness and cooldown are judged on it).
        params: the market's parameters; ``buffer_ppm`` its current volatility buffer.
        last_step_at_s: chain time of this position's last partial step, if any.

    Raises:
        PriceInvalid: a needed price is missing, stale, future-dated or at a bound.
        AccountNotLiquidatable: ``E >= MM`` (or ``MM == 0``) at these prices.
        LiquidationCooldown: a partial step is due but the cooldown has not passed.
    """
    assets = sorted({params.base_asset, *position.assets()})
    prices = valid_prices(ticks, assets, now_chain_s, OpClass.LIQUIDATION, params)
    return plan_at_prices(position, prices, params, buffer_ppm,
                          tick_id=ticks[params.base_asset].tick_id, now_chain_s=now_chain_s,
                          last_step_at_s=last_step_at_s)


def plan_at_prices(position: Position, prices_e8: Mapping[str, int], params: RiskParams,
                   buffer_ppm: int, *, tick_id: str, now_chain_s: int,
                   last_step_at_s: int | None = None) -> LiquidationPlan:
    """The plan at already-validated ``prices_e8`` (the pure core of :func:`plan_liquidation`).

    Raises:
        AccountNotLiquidatable, LiquidationCooldown: as :func:`plan_liquidation`.
    """
    risk = position_risk(position, prices_e8, params, buffer_ppm)
    equity, mm = risk.equity_usd_e18, risk.maintenance_margin_usd_e18
    if not risk.is_liquidatable():
        raise AccountNotLiquidatable(position.key, equity, mm)
    mark = prices_e8[params.base_asset]
    net = risk.collateral_usd_e18 - position.accrued_fees_usd_e18

    def step(f: int) -> _Step:
        return _close(position, net, mark, f, params, buffer_ppm)

    if equity * PPM < mm * params.full_ratio_ppm:
        chosen, kind, reason = step(PPM), PlanKind.FULL, PlanReason.BELOW_FULL_RATIO
    else:
        if last_step_at_s is not None and now_chain_s < last_step_at_s + params.cooldown_s:
            raise LiquidationCooldown(position.key, last_step_at_s + params.cooldown_s)
        chosen, reason = _smallest_restoring(step, params.step_max_ppm)
        kind = PlanKind.PARTIAL
        if chosen.fraction_ppm == PPM:
            kind, reason = PlanKind.FULL, PlanReason.WHOLE_POSITION
        elif chosen.remaining_notional < params.dust_usd_e18:
            chosen, kind, reason = step(PPM), PlanKind.FULL, PlanReason.REMAINDER_DUST
    return LiquidationPlan(
        plan_id=plan_id(position.key, position.version, tick_id),
        position_key=position.key, position_version=position.version, tick_id=tick_id,
        kind=kind, reason=reason, mark_e8=mark,
        close_fraction_ppm=chosen.fraction_ppm, close_size_e18=chosen.closed,
        remaining_size_e18=chosen.remaining, closed_notional_usd_e18=chosen.closed_notional,
        realized_pnl_usd_e18=chosen.realized, fee_usd_e18=chosen.fee,
        fee_waived_usd_e18=chosen.fee_due - chosen.fee,
        equity_before_usd_e18=equity, maintenance_before_usd_e18=mm,
        equity_after_usd_e18=chosen.equity_after,
        initial_margin_after_usd_e18=chosen.im_after, maintenance_after_usd_e18=chosen.mm_after,
        shortfall_usd_e18=max(-chosen.equity_after, 0) if kind is PlanKind.FULL else 0,
        next_step_at_s=now_chain_s + params.cooldown_s if kind is PlanKind.PARTIAL else None,
    )


def _smallest_restoring(step: _StepFn, step_max_ppm: int) -> tuple[_Step, PlanReason]:
    """Smallest ``f`` in ``[1, step_max_ppm]`` with ``E_after >= IM_after`` (bisection)."""
    capped = step(step_max_ppm)
    if not _restores(capped):
        return capped, PlanReason.STEP_CAPPED
    lo, hi, best = 0, step_max_ppm, capped  # INVARIANT: f = lo does not restore, f = hi does
    while hi - lo > 1:
        mid = (lo + hi) // 2
        candidate = step(mid)
        if _restores(candidate):
            hi, best = mid, candidate
        else:
            lo = mid
    return best, PlanReason.TO_INITIAL_MARGIN


def _restores(s: _Step) -> bool:
    return s.equity_after >= s.im_after


def _close(position: Position, net: int, mark: int, f: int, params: RiskParams,
           buffer_ppm: int) -> _Step:
    s, e = position.size_e18, position.entry_e8
    closed_abs = ceil_div(abs(s) * f, PPM)
    closed = closed_abs if s > 0 else -closed_abs
    remaining = s - closed
    realized = closed * (mark - e) // PRICE_SCALE
    closed_notional = notional_usd_e18(closed, mark)
    fee_due = min(ceil_div(closed_notional * params.liq_fee_ppm, PPM), params.fee_cap_usd_e18)
    before_fee = net + realized + unrealized_pnl_usd_e18(remaining, e, mark)
    fee = min(fee_due, max(before_fee, 0))
    remaining_notional = notional_usd_e18(remaining, mark)
    return _Step(
        fraction_ppm=f, closed=closed, remaining=remaining, closed_notional=closed_notional,
        realized=realized, fee_due=fee_due, fee=fee, equity_after=before_fee - fee,
        im_after=initial_margin_usd_e18(remaining_notional, params.imr_ppm),
        mm_after=maintenance_margin_usd_e18(remaining_notional, params.mmr_ppm, buffer_ppm),
        remaining_notional=remaining_notional,
    )
