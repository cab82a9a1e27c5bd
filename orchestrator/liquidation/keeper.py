"""The risk worker's keeper: screen positions, re-check exactly, plan, execute once (I/O).

Flow per tick (DESIGN §3): every open position is read from the venue; the pure core decides
whether it is liquidatable (the same integer rule the contract applies) and plans the smallest
restoring step or a full close; the plan id — (position, its last step, the price tick) — makes
a trigger execute once: a second attempt finds the venue's state changed and is a no-op.
The venue re-checks E < MM on its own oracle before it liquidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from orchestrator.errors import TxRejected
from orchestrator.liquidation.snapshot import PositionSnapshot, RiskTuning, read_position
from orchestrator.risk import position_risk
from orchestrator.risk.errors import AccountNotLiquidatable, LiquidationCooldown
from orchestrator.risk.planner import LiquidationPlan, plan_at_prices

__all__ = ["Keeper", "PlannedLiquidation"]

log = structlog.get_logger(__name__)
_NO_OP = ("NotLiquidatable", "LiquidationCooldown", "NoOpenTrade", "StepTooLarge")


@dataclass(frozen=True)
class PlannedLiquidation:
    plan: LiquidationPlan
    position_key: str


class Keeper:
    def __init__(self, venue: Any, oracle: Any, *, venue_name: str, chain_time: Any,
                 tuning: RiskTuning | None = None) -> None:
        """``venue`` a VenueClient (with the risk role's key to execute), ``oracle`` a web3
        contract for PriceOracle, ``chain_time`` an async callable -> the venue chain's time."""
        self.venue, self.oracle, self.venue_name = venue, oracle, venue_name
        self.chain_time, self.tuning = chain_time, tuning or RiskTuning()

    async def snapshot(self, key: bytes) -> PositionSnapshot | None:
        return await read_position(self.venue, self.oracle, key, venue_name=self.venue_name,
                                   tuning=self.tuning)

    async def plan(self, keys: Iterable[bytes]) -> list[PlannedLiquidation]:
        """Plans for every liquidatable position among ``keys`` (exact integer re-check)."""
        now = await self.chain_time()
        plans = []
        for key in keys:
            snap = await self.snapshot(key)
            if snap is None:
                continue
            risk = position_risk(snap.position, snap.prices_e8, snap.params, snap.buffer_ppm)
            if not risk.is_liquidatable():
                continue
            try:
                plan = plan_at_prices(snap.position, snap.prices_e8, snap.params,
                                      snap.buffer_ppm, tick_id=str(snap.publish_time),
                                      now_chain_s=now,
                                      last_step_at_s=snap.last_liquidation or None)
            except (AccountNotLiquidatable, LiquidationCooldown):
                continue
            plans.append(PlannedLiquidation(plan, snap.key))
        return plans

    async def execute(self, position_key: str, fraction_ppm: int) -> dict[str, Any]:
        """Submit one plan; the venue's refusal because the trigger was already handled (state
        changed, cooldown) is success for an idempotent task."""
        try:
            outcome = await self.venue.liquidate(bytes.fromhex(position_key[2:]), fraction_ppm)
        except TxRejected as exc:
            if exc.reason.startswith(_NO_OP):
                log.info("liquidation_noop", position=position_key, reason=exc.reason)
                return {"position": position_key, "outcome": "no-op", "reason": exc.reason}
            raise
        full = bool(outcome.liquidated and outcome.liquidated.full)
        log.info("liquidated", position=position_key, tx=outcome.tx_hash, full=full,
                 settlements=len(outcome.settlements))
        return {"position": position_key, "outcome": "full" if full else "partial",
                "tx": outcome.tx_hash, "settlements": len(outcome.settlements),
                "shortfall": str(outcome.shortfall.usd_e18) if outcome.shortfall else "0"}
