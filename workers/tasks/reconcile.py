"""The reconciler (queue ``reconcile``, driven by the single beat): re-derive pending work.

Celery does not promptly redeliver a task whose whole worker died, and a FLUSHALL drops the
queues: every run re-asks attesters that have not signed a final lock, and nudges the relayer
when any lock awaits credit. Work pending longer than ``bridge.stuck_after_s`` raises an alarm
(a ``stuck_lock_alarm`` error log line). The host clock here only paces re-asking and alarms;
it never decides what is accepted.
"""

from __future__ import annotations

import time

import structlog

from workers.celery_app import app
from workers.runtime import services

log = structlog.get_logger(__name__)


@app.task(name="bulkhead.reconcile.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> dict[str, int]:
    from workers.tasks.relay import relay_pending
    from workers.tasks.watch import ask_attesters

    svc = services()
    now = time.time_ns() // 1_000_000
    stuck_after_ms = int(svc.settings.bridge.stuck_after_s * 1000)
    reask_after_ms = int(svc.settings.bridge.reask_after_s * 1000)
    names = {m.name: m.address.lower() for m in svc.settings.attesters.members}
    pending = svc.store.awaiting_credit()
    reasked = stuck = 0
    for record in pending:
        since = record.transitions[-1].at_ms
        if now - since > stuck_after_ms:
            stuck += 1
            log.error("stuck_lock_alarm", lock=record.key, state=record.state.value,
                      pending_ms=now - since)
        last_ask = svc.redis.get(f"bh:asked:{record.key}")
        if last_ask is not None and now - int(last_ask) < reask_after_ms:
            continue
        signed = svc.pool.signers(record.key)
        missing = {n for n, addr in names.items() if addr not in signed}
        if missing:
            ask_attesters(record.event.chain, record.event.height, [record.key], only=missing)
            svc.redis.set(f"bh:asked:{record.key}", now, px=60_000)
            reasked += 1
    if pending:
        relay_pending.apply_async(queue=f"relay.{svc.settings.venue_chain}")
    settlements = reconcile_settlements(now, reask_after_ms)
    return {"pending": len(pending), "reasked": reasked, "stuck": stuck,
            "settlements": settlements}


def reconcile_settlements(now: int, reask_after_ms: int) -> int:
    """Re-ask attesters for pending settlements and nudge the settlement relayer."""
    from bridges.settler import pool_key
    from workers.tasks.settle import ask_settlement, relay_settlements

    svc = services()
    parts = svc.settlements
    pending = parts.store.pending()
    for record in pending:
        since_key = f"bh:asked:{record.id_hex}"
        last = svc.redis.get(since_key)
        if last is not None and now - int(last) < reask_after_ms:
            continue
        signed = svc.pool.signers(pool_key(record.id_hex))
        done = {n for n, m in ((m.name, m) for m in svc.settings.attesters.members)
                if m.address.lower() in signed} | parts.store.approvals(record.id_hex)
        names = {m.name for m in svc.settings.attesters.members}
        if names - done:
            ask_settlement(record.id_hex, record.event.height, names - done)
        proposal = parts.store.proposal(record.id_hex)
        if proposal is not None:
            chosen = {m.name for m in svc.settings.attesters.members
                      if m.solana_pubkey in proposal["signers"]}
            ask_settlement(record.id_hex, record.event.height, chosen, task="sign")
        svc.redis.set(since_key, now, px=60_000)
    if pending:
        relay_settlements.apply_async(queue=f"relay.{svc.settings.venue_chain}")
    return len(pending)
