"""The risk worker's top-up step: read rules, decide with the pure planner, submit (I/O).

Per position key with a registered rule (DESIGN §3 "Automated rebalancing"): read the target's
trade and margin and the reserve's trade and credited locks from the venue, price each reserve
lock with the oracle (a price invalid for liquidations leaves that lock out, as the venue
would refuse it), plan with :func:`orchestrator.risk.topup.plan_top_up` and send ``topUp`` for
each planned lock in order. The venue re-checks every condition on chain; a refusal that means
"already done or no longer needed" (the lock moved, the threshold is met, the budget is spent)
ends that position's moves for this run and is not an error. A second run after the moves
finds nothing to do, so the step is idempotent and safe to run on every risk tick before the
liquidation screen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from chains.evm.venue_codec import TopUpRuleState
from orchestrator.risk.topup import (
    ReserveLock,
    TargetState,
    TopUpPlan,
    TopUpRule,
    plan_top_up,
)
from shared.errors import ChainError, TxRejected

__all__ = ["RuleIndex", "TopUpKeeper", "TopUpView", "rule_of"]

log = structlog.get_logger(__name__)
# Venue refusals that mean the move is no longer wanted or already happened.
_NO_OP = ("NoTopUpRule", "PositionOpen", "NotCredited", "LockNotInPosition", "NoOpenTrade",
          "LiquidationPending", "TopUpNotNeeded", "TopUpAboveMax", "TooManyLocks")


@dataclass(frozen=True)
class TopUpView:
    """What the keeper read for one target position, and its plan (None: nothing to do)."""

    position_key: str
    rule: TopUpRule
    target: TargetState
    reserve_open: bool
    reserve: tuple[ReserveLock, ...]
    plan: TopUpPlan | None


def rule_of(state: TopUpRuleState) -> TopUpRule:
    """The risk core's rule from the venue's stored one."""
    return TopUpRule(state.source_key, state.threshold_ppm, state.max_usd_e18, state.used_usd_e18)


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


class TopUpKeeper:
    def __init__(self, venue: Any, oracle: Any, *,
                 chain_time: Callable[[], Awaitable[int]]) -> None:
        """``venue`` a VenueClient (any funded key may send ``topUp``), ``oracle`` an
        :class:`~chains.evm.oracle.OracleClient` (read-only is enough), ``chain_time`` an
        async callable -> the venue chain's time."""
        self.venue, self.oracle, self.chain_time = venue, oracle, chain_time

    async def view(self, key: bytes, now: int) -> TopUpView | None:
        """Rule, target state, reserve locks and plan of ``key``; None without a rule or an
        open trade (the venue would refuse)."""
        state = await self.venue.topup_rule_of(key)
        if state is None:
            return None
        rule = rule_of(state)
        pos = await self.venue.position_of(key)
        if not pos.is_open:
            return None
        market, _buffer = await self.venue.market_of(pos.market)
        pending = (pos.last_liquidation != 0
                   and now < pos.last_liquidation + market.cooldown_s)
        margin = await self.venue.margin_of(key)
        target = TargetState(margin.equity_usd_e18, margin.maintenance_usd_e18, pending)
        source = bytes.fromhex(rule.source_key[2:])
        reserve_open = (await self.venue.position_of(source)).is_open
        reserve = () if reserve_open else await self._reserve(source, now, market.max_age_liq_s)
        plan = plan_top_up(target, rule, reserve, reserve_open=reserve_open)
        return TopUpView(_hex(key), rule, target, reserve_open, reserve, plan)

    async def _reserve(self, source: bytes, now: int, max_age_s: int) -> tuple[ReserveLock, ...]:
        """The reserve's credited locks whose lane price is valid for liquidations now."""
        out = []
        for lock_key in await self.venue.position_locks(source):
            credit = await self.venue.lock_credit(lock_key)
            if credit.remaining == 0:
                continue
            cfg = await self.venue.collateral_config_of(credit.src_chain_id, credit.src_asset)
            if cfg.oracle_id == bytes(32):
                continue  # unpriced lane: the venue refuses to value it
            quote = await self.oracle.price_of(cfg.oracle_id, max_age_s)
            if quote is None:
                continue  # no mark for liquidations: the venue cannot value it either
            price, at = quote
            # INVARIANT (I9): the venue's rule for a liquidation-class collateral price.
            if not (0 <= now - at <= max_age_s and cfg.min_price_e8 < price < cfg.max_price_e8):
                continue
            amount18 = credit.remaining * 10 ** (18 - credit.decimals)
            out.append(ReserveLock(_hex(lock_key), amount18, price, cfg.haircut_ppm))
        return tuple(out)

    async def run(self, keys: Iterable[bytes]) -> list[dict[str, Any]]:
        """Top up every position among ``keys`` whose rule calls for it; one row per lock sent
        (``outcome`` ``moved`` or ``no-op`` with the venue's reason).

        Any other refusal (e.g. a price the venue finds stale) ends that position's moves with
        an ``outcome`` ``refused`` row and a warning; other positions still run.

        Raises:
            RpcUnavailable: a node could not be reached (the task layer retries; moves already
                mined stay, and the next run plans from the chain again).
        """
        now = await self.chain_time()
        rows: list[dict[str, Any]] = []
        for key in keys:
            try:
                view = await self.view(key, now)
            except ChainError as exc:  # e.g. a lane the venue cannot price: skip, report
                log.warning("topup_read_failed", position=_hex(key), error=str(exc))
                continue
            if view is None or view.plan is None:
                continue
            rows += await self._execute(key, view.plan)
        return rows

    async def _execute(self, key: bytes, plan: TopUpPlan) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for move in plan.moves:
            try:
                done = await self.venue.top_up(key, bytes.fromhex(move.lock_key[2:]))
            except TxRejected as exc:
                noop = exc.reason.startswith(_NO_OP)
                (log.info if noop else log.warning)(
                    "topup_noop" if noop else "topup_refused", position=_hex(key),
                    lock=move.lock_key, reason=exc.reason)
                rows.append({"position": _hex(key), "lock": move.lock_key,
                             "outcome": "no-op" if noop else "refused", "reason": exc.reason})
                break
            log.info("topped_up", position=done.position_key, source=done.source_key,
                     lock=done.lock_key, amount18=str(done.amount18),
                     value_usd_e18=str(done.value_usd_e18), tx=done.tx_id)
            rows.append({"position": done.position_key, "lock": done.lock_key,
                         "outcome": "moved", "source": done.source_key, "tx": done.tx_id,
                         "amount18": str(done.amount18),
                         "value_usd_e18": str(done.value_usd_e18)})
        return rows


class RuleIndex:
    """Positions with a live top-up rule, from the venue's ``TopUpRuleSet`` /
    ``TopUpRuleCleared`` logs scanned forward from the deployment height (rebuilt from the chain
    after a restart), so a tick reads rules only for positions that have one."""

    def __init__(self, venue: Any, *, start_height: int, max_block_range: int) -> None:
        """``venue`` a read-only ``VenueClient``."""
        self.venue = venue
        self.cursor, self.max_range = start_height, max(1, max_block_range)
        self.keys: set[str] = set()

    async def refresh(self) -> set[str]:
        """Scan new blocks; returns the keys (0x-hex, lower case) with a rule now.

        Raises:
            RpcUnavailable, ChainError: from the venue client (the cursor stays where it was).
        """
        head = await self.venue.block_number()
        while self.cursor <= head:
            end = min(head, self.cursor + self.max_range - 1)
            for key, has_rule in await self.venue.topup_rule_changes(self.cursor, end):
                (self.keys.add if has_rule else self.keys.discard)(key)
            self.cursor = end + 1
        return set(self.keys)
