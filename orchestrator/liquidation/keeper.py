"""The risk worker's keeper: snapshot, screen, re-check exactly, plan, execute once (I/O).

Flow per tick (DESIGN §3), over any :class:`~orchestrator.venues.VenueAdapter`:

1. one bulk snapshot of every position (``read_positions``: one pass, one height);
2. the vectorized screen (:func:`orchestrator.liquidation.snapshot.screen_candidates`, numpy)
   proposes candidates — it never misses one the integer rule would liquidate;
3. each candidate only is read again (a fresh snapshot) and re-checked with the exact integer
   core (``position_risk``); the liquidatable ones get the smallest restoring step or a full
   close (``plan_at_prices``);
4. ``execute`` submits one plan; the venue re-checks ``E < MM`` on its own oracle.

The plan id — (position, its last step, the price tick) — makes a trigger execute once: a
second submission finds the venue's state changed and is refused with a typed no-op
(:class:`~orchestrator.venues.LiquidationRefused` with ``no_op``), which ``execute`` reports as
success, so the Celery task may be redelivered safely.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from orchestrator.liquidation.snapshot import PositionSnapshot, screen_candidates
from orchestrator.risk import RiskError, position_risk
from orchestrator.risk.errors import AccountNotLiquidatable, LiquidationCooldown
from orchestrator.risk.planner import LiquidationPlan, plan_at_prices
from orchestrator.venues.errors import LiquidationRefused
from orchestrator.venues.protocol import VenueAdapter
from shared.errors import ChainError, UnsupportedOperation

__all__ = ["Keeper", "KeeperTick", "PlannedLiquidation", "ScreenStats"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PlannedLiquidation:
    """A plan and how far under water its position is: ``equity_usd_e18`` over
    ``maintenance_usd_e18`` orders batches, most under water first."""

    plan: LiquidationPlan
    position_key: str
    equity_usd_e18: int = 0
    maintenance_usd_e18: int = 1

    def underwater_key(self) -> tuple[int, int]:
        """Sort key: E/MM ascending, compared exactly (E * 1e12 // MM, floored), then size."""
        return (self.equity_usd_e18 * 10**12 // max(self.maintenance_usd_e18, 1),
                -self.maintenance_usd_e18)


@dataclass(frozen=True, slots=True)
class ScreenStats:
    """One tick's figures: open positions screened, candidates the screen proposed, how many
    the exact re-check confirmed, and the time of the vectorized screen and of the bulk read
    (microseconds of the host's monotonic clock: a measurement, never a decision)."""

    positions: int = 0
    candidates: int = 0
    liquidatable: int = 0
    duration_us: int = 0
    snapshot_us: int = 0


@dataclass(frozen=True, slots=True)
class KeeperTick:
    plans: list[PlannedLiquidation] = field(default_factory=list)
    stats: ScreenStats = field(default_factory=ScreenStats)


def _key_hex(key: bytes | str) -> str:
    if isinstance(key, (bytes, bytearray)):
        return "0x" + bytes(key).hex()
    return key.lower()


class Keeper:
    def __init__(self, venue: VenueAdapter) -> None:
        """``venue`` reads positions and submits liquidations (with the risk role's key)."""
        self.venue = venue

    async def snapshots(self, keys: Iterable[bytes | str]) -> list[PositionSnapshot]:
        """Open positions among ``keys`` in one pass (the adapter's ``read_positions``)."""
        return await self.venue.read_positions([_key_hex(k) for k in keys])

    async def snapshot(self, key: bytes | str) -> PositionSnapshot | None:
        """One open position, or None when it has no open trade."""
        found = await self.snapshots([key])
        return found[0] if found else None

    async def plan(self, keys: Iterable[bytes | str]) -> KeeperTick:
        """Plans for every liquidatable position among ``keys``, with the tick's figures."""
        started = time.perf_counter_ns()
        snaps = await self.snapshots(keys)
        screened = time.perf_counter_ns()
        result = screen_candidates(snaps)
        duration_us = (time.perf_counter_ns() - screened) // 1_000
        plans: list[PlannedLiquidation] = []
        if result.candidates:
            # INVARIANT: the screen only proposes; the exact integers decide, on a fresh read.
            fresh = await self.snapshots(snaps[i].key for i in result.candidates)
            now = await self.venue.chain_time()
            plans = [p for snap in fresh if (p := self._exact(snap, now)) is not None]
            # Under congestion the most under-water positions must land first.
            plans.sort(key=PlannedLiquidation.underwater_key)
        stats = ScreenStats(positions=len(snaps), candidates=len(result.candidates),
                            liquidatable=len(plans), duration_us=duration_us,
                            snapshot_us=(screened - started) // 1_000)
        log.info("risk_screen", venue=self.venue.name, positions=stats.positions,
                 candidates=stats.candidates, liquidatable=stats.liquidatable,
                 duration_us=stats.duration_us, snapshot_us=stats.snapshot_us,
                 forced=result.forced)
        return KeeperTick(plans, stats)

    def _exact(self, snap: PositionSnapshot, now: int) -> PlannedLiquidation | None:
        stuck = _at_bound(snap)
        if stuck is not None:  # I9: the venue refuses it too; never plan on a clamped feed
            log.warning("price_at_bound", position=snap.key, feed=stuck)
            return None
        try:
            risk = position_risk(snap.position, snap.prices_e8, snap.params, snap.buffer_ppm)
            if not risk.is_liquidatable():
                return None
            plan = plan_at_prices(snap.position, snap.prices_e8, snap.params, snap.buffer_ppm,
                                  tick_id=snap.tick_id, now_chain_s=now,
                                  last_step_at_s=snap.last_liquidation or None)
        except (AccountNotLiquidatable, LiquidationCooldown):
            return None
        except RiskError as exc:  # one malformed position never blocks the others (I6)
            log.error("position_not_planned", position=snap.key, error=str(exc))
            return None
        return PlannedLiquidation(plan, snap.key, risk.equity_usd_e18,
                                  risk.maintenance_margin_usd_e18)

    async def execute(self, position_key: str, fraction_ppm: int) -> dict[str, Any]:
        """Submit one plan; the venue's refusal because the trigger was already handled (state
        changed, cooldown) is success for an idempotent task."""
        try:
            outcome = await self.venue.submit_liquidation(position_key, fraction_ppm)
        except LiquidationRefused as exc:
            if exc.no_op:
                log.info("liquidation_noop", position=position_key, reason=exc.reason)
                return {"position": position_key, "outcome": "no-op", "reason": exc.reason}
            raise
        log.info("liquidated", position=position_key, tx=outcome.tx_id, full=outcome.full,
                 settlements=len(outcome.settlements))
        return {"position": position_key, "outcome": "full" if outcome.full else "partial",
                "tx": outcome.tx_id, "settlements": len(outcome.settlements),
                "shortfall": str(outcome.shortfall_usd_e18)}


    @staticmethod
    def _spread(chunk: list[tuple[str, str, int]], result: Any
                ) -> list[dict[str, Any] | BaseException]:
        return [result] * len(chunk) if isinstance(result, BaseException) else list(result)

    async def execute_batch(self, plans: Sequence[tuple[str, str, int]], *,
                            per_tx: int = 40) -> list[dict[str, Any] | BaseException]:
        """Submit ``(plan id, position key, fraction ppm)`` plans, in the order given, ``per_tx``
        per ``liquidateBatch`` transaction; the transactions go out back to back (one nonce
        each) and their receipts are awaited together, so a thousand plans cost a few blocks.
        One result per plan: a dict (``full``, ``partial`` or ``no-op``) or the error of the
        transaction that carried it (the venue re-checks every item on chain, so resending a
        plan whose transaction failed is safe). A venue without batches gets one transaction
        per plan, concurrently.
        """
        chunks = [list(plans[i:i + per_tx]) for i in range(0, len(plans), per_tx)]
        results = await asyncio.gather(*(self._execute_chunk(c) for c in chunks),
                                       return_exceptions=True)
        out: list[dict[str, Any] | BaseException] = []
        for chunk, result in zip(chunks, results, strict=True):
            if isinstance(result, BaseException):
                out += [result] * len(chunk)
            else:
                out += result
        return out

    async def _execute_chunk(self, chunk: list[tuple[str, str, int]]
                             ) -> list[dict[str, Any] | BaseException]:
        try:
            found = await self.venue.submit_liquidations([(k, f) for _, k, f in chunk])
        except ChainError as exc:
            if "block gas limit" not in str(exc) or len(chunk) == 1:
                raise
            # The chain lowered its gas limit under us: the same plans, in halves.
            half = len(chunk) // 2
            log.warning("liquidation_batch_split", plans=len(chunk), reason=str(exc))
            first, second = await asyncio.gather(self._execute_chunk(chunk[:half]),
                                                 self._execute_chunk(chunk[half:]),
                                                 return_exceptions=True)
            return [*self._spread(chunk[:half], first), *self._spread(chunk[half:], second)]
        except UnsupportedOperation:
            singles = await asyncio.gather(*(self.execute(k, f) for _, k, f in chunk),
                                           return_exceptions=True)
            return [r if isinstance(r, BaseException) else {**r, "plan_id": pid}
                    for (pid, _, _), r in zip(chunk, singles, strict=True)]
        out: list[dict[str, Any] | BaseException] = []
        for (plan_id, key, _), result in zip(chunk, found, strict=True):
            if isinstance(result, LiquidationRefused):
                if not result.no_op:
                    log.warning("liquidation_skipped", position=key, reason=result.reason,
                                tx=result.tx_id)
                out.append({"position": key, "plan_id": plan_id, "outcome": "no-op",
                            "reason": result.reason})
                continue
            log.info("liquidated", position=key, plan_id=plan_id, tx=result.tx_id,
                     full=result.full, settlements=len(result.settlements))
            out.append({"position": key, "plan_id": plan_id,
                        "outcome": "full" if result.full else "partial", "tx": result.tx_id,
                        "settlements": len(result.settlements),
                        "shortfall": str(result.shortfall_usd_e18)})
        return out


def _at_bound(snap: PositionSnapshot) -> str | None:
    """The first feed of the snapshot whose price sits on (or beyond) its bound, if any."""
    for asset, price in snap.prices_e8.items():
        bounds = snap.params.price_bounds_e8(asset)
        if bounds is not None and not bounds[0] < price < bounds[1]:
            return asset
    return None
