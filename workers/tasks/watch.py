"""Watcher tasks (queue ``watch.<chain>``): poll one chain, fan finalized locks out to attesters."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from orchestrator.errors import RetryableError
from orchestrator.lock_store import awaits_credit
from orchestrator.locks import LockState
from workers.celery_app import app
from workers.locks import only_one_running
from workers.runtime import services

logger = get_task_logger(__name__)
HINT_TTL_S = 60  # a hint nobody picked up in time is dropped; the reconciler asks again


@app.task(name="bulkhead.watch.poll_chain", bind=True, acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def poll_chain(self, chain: str) -> int:  # type: ignore[no-untyped-def]
    """One watcher poll; returns how many locks became final. Overlapping polls are skipped."""
    svc = services()
    with only_one_running(svc.redis, f"watch:{chain}", ttl_s=60) as held:
        if not held:
            return 0
        report = svc.run(svc.watcher(chain).poll())
    final = [key for key, state in report.advanced if state == LockState.FINALIZED]
    for key in final:
        record = svc.store.get(key)
        if record is not None and awaits_credit(record):
            ask_attesters(chain, record.event.height, key)
    return len(final)


def ask_attesters(chain: str, height: int, key: str, only: set[str] | None = None) -> None:
    """Hint every attester (or ``only`` these) to look at lock ``key``; each checks for itself."""
    from workers.tasks.attest import attest_lock

    for member in services().settings.attesters.members:
        if only is None or member.name in only:
            attest_lock.apply_async(args=(chain, height, key), queue=f"attest.{member.name}",
                                    expires=HINT_TTL_S)
