"""Attester tasks (queue ``attest.<name>``), one worker process per attester and key."""

from __future__ import annotations

from shared.errors import RetryableError
from workers.celery_app import app
from workers.dispatch import nudge_relay
from workers.runtime import services

ATTESTER_TASK = {"acks_late": True, "autoretry_for": (RetryableError,), "retry_backoff": 1,
                 "retry_backoff_max": 10, "retry_jitter": False, "max_retries": 12}


@app.task(name="bulkhead.attest.attest_lock", bind=True, **ATTESTER_TASK)
def attest_lock(self, chain: str, height: int, key: str) -> str | None:  # type: ignore[no-untyped-def]
    """Observe and sign one lock (idempotent: re-signing posts the same signature again)."""
    return attest_locks.run(chain, height, [key])[0]


@app.task(name="bulkhead.attest.attest_locks", bind=True, **ATTESTER_TASK)
def attest_locks(self, chain: str, height: int, keys: list[str]) -> list[str | None]:  # type: ignore[no-untyped-def]
    """Observe and sign the locks of one height (one chain read for all of them)."""
    svc = services()
    observations = svc.run(svc.attester.observe_locks(chain, height, keys))
    return [o.digest for o in observations]


@app.task(name="bulkhead.attest.attest_range", bind=True, **ATTESTER_TASK)
def attest_range(self, chain: str, start: int, end: int) -> int:  # type: ignore[no-untyped-def]
    """Observe and sign every lock in a finalized range (one read, one write); nudge the
    relayer only when a lock reached the threshold with this write."""
    svc = services()
    run = svc.run(svc.attester.observe_range(chain, start, end))
    if run.ready:
        nudge_relay()
    return run.posted
