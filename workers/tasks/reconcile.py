"""The reconciler (queue ``reconcile``, driven by the single beat): re-derive pending work.

The decisions are :func:`bridges.reconcile.plan_reconcile`'s; this task reads the stores,
dispatches the re-asks and nudges, and raises the ``stuck_lock_alarm`` (an error log line) for
work pending longer than ``bridge.stuck_after_s``.
"""

from __future__ import annotations

import time

import structlog

from bridges.reconcile import plan_reconcile
from bridges.settler import pool_key
from workers.celery_app import app
from workers.dispatch import (
    ask_range,
    ask_settlement,
    ask_settlement_range,
    nudge_relay,
    nudge_settlement_relay,
)
from workers.runtime import services
from workers.stores.asks import RedisAskLog

log = structlog.get_logger(__name__)


@app.task(name="bulkhead.reconcile.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> dict[str, int]:
    svc = services()
    s = svc.settings
    asks = RedisAskLog(svc.redis)
    members = s.attesters.members
    addresses = {m.name: m.address.lower() for m in members}

    def settlement_done(settlement_id: str) -> set[str]:
        signed = svc.pool.signers(pool_key(settlement_id))
        return ({n for n, addr in addresses.items() if addr in signed}
                | svc.settlement_store.approvals(settlement_id))

    def proposal_signers(settlement_id: str) -> list[str] | None:
        proposal = svc.settlement_store.proposal(settlement_id)
        return None if proposal is None else list(proposal["signers"])

    now = time.time_ns() // 1_000_000
    pending_locks = svc.store.awaiting_credit()
    pending_settlements = svc.settlement_store.pending()
    plan = plan_reconcile(
        now, pending_locks=pending_locks, pending_settlements=pending_settlements,
        attesters=addresses, solana_pubkeys={m.name: m.solana_pubkey for m in members},
        settlement_done=settlement_done,
        proposal_signers=proposal_signers, last_asked=asks.last,
        reask_after_ms=int(s.bridge.reask_after_s * 1000),
        stuck_after_ms=int(s.bridge.stuck_after_s * 1000),
        max_range={k: c.max_block_range for k, c in s.chains.items()},
        venue_chain=s.venue_chain)
    for stuck in plan.stuck:
        log.error("stuck_lock_alarm", lock=stuck.key, state=stuck.state,
                  pending_ms=stuck.pending_ms)
    for ask in plan.lock_asks:
        ask_range(ask.chain, ask.start, ask.end)
    if plan.relay_keys:
        svc.pool.mark_ready(plan.relay_keys)
    for rask in plan.settlement_ranges:
        ask_settlement_range(rask.start, rask.end)
    for sask in plan.settlement_asks:
        ask_settlement(sask.settlement_id, sask.height, sask.attesters, step=sask.step)
    asks.mark(plan.asked, now)
    if plan.relay_locks:
        nudge_relay()
    if plan.relay_settlements:
        nudge_settlement_relay()
    return {"pending": len(pending_locks), "reasked": len(plan.lock_asks),
            "stuck": len(plan.stuck), "settlements": len(pending_settlements)}
