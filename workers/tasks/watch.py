"""Watcher task (queue ``watch.<chain>``): poll one chain, hint attesters about the ranges of
locks that became final."""

from __future__ import annotations

from bridges.reconcile import ranges
from shared.errors import RetryableError
from shared.lock_store import awaits_credit
from shared.locks import LockState
from workers.celery_app import app
from workers.dispatch import ask_range, ran_recently
from workers.mutex import only_one_running
from workers.runtime import services


@app.task(name="bulkhead.watch.poll_chain", bind=True, acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def poll_chain(self, chain: str) -> int:  # type: ignore[no-untyped-def]
    """One watcher poll; returns how many locks became final. Overlapping polls are skipped."""
    svc = services()
    with only_one_running(svc.redis, f"watch:{chain}", ttl_s=60) as held:
        if not held or ran_recently(f"watch:{chain}", svc.settings.chain(chain).poll_interval_s):
            return 0
        report = svc.run(svc.watcher(chain).poll())
    final = [key for key, state in report.advanced if state == LockState.FINALIZED]
    heights = [r.event.height for r in svc.store.get_many(final) if awaits_credit(r)]
    # Attest by range: one task per attester covers every lock that became final here.
    for ask in ranges(chain, heights, svc.settings.chain(chain).max_block_range):
        ask_range(chain, ask.start, ask.end)
    return len(final)
