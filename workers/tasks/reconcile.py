"""The reconciler (queue ``reconcile``, driven by the single beat): re-derive pending work.

Celery does not promptly redeliver a task whose whole worker died, and a FLUSHALL drops the
queues: every run re-asks attesters that have not signed a final lock, and nudges the relayer
when any lock awaits credit. Work pending longer than ``STUCK_AFTER_MS`` raises an alarm.
"""

from __future__ import annotations

import time

import structlog

from workers.celery_app import app
from workers.runtime import services

log = structlog.get_logger(__name__)
STUCK_AFTER_MS = 60_000
REASK_AFTER_MS = 3_000


@app.task(name="bulkhead.reconcile.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> dict[str, int]:
    from workers.tasks.relay import relay_pending
    from workers.tasks.watch import ask_attesters

    svc = services()
    now = time.time_ns() // 1_000_000
    names = {m.name: m.address.lower() for m in svc.settings.attesters.members}
    pending = svc.store.awaiting_credit()
    reasked = stuck = 0
    for record in pending:
        since = record.transitions[-1].at_ms
        if now - since > STUCK_AFTER_MS:
            stuck += 1
            log.error("stuck_lock_alarm", lock=record.key, state=record.state.value,
                      pending_ms=now - since)
        last_ask = svc.redis.get(f"bh:asked:{record.key}")
        if last_ask is not None and now - int(last_ask) < REASK_AFTER_MS:
            continue
        signed = svc.pool.signers(record.key)
        missing = {n for n, addr in names.items() if addr not in signed}
        if missing:
            ask_attesters(record.event.chain, record.event.height, record.key, only=missing)
            svc.redis.set(f"bh:asked:{record.key}", now, px=60_000)
            reasked += 1
    if pending:
        relay_pending.apply_async(queue=f"relay.{svc.settings.venue_chain}")
    return {"pending": len(pending), "reasked": reasked, "stuck": stuck}
