"""Attester tasks (queue ``attest.<name>``), one worker process per attester and key."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from orchestrator.errors import RetryableError
from workers.celery_app import app
from workers.runtime import services

logger = get_task_logger(__name__)


@app.task(name="bulkhead.attest.attest_lock", bind=True, acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=1, retry_backoff_max=10,
          retry_jitter=False, max_retries=12)
def attest_lock(self, chain: str, height: int, key: str) -> str | None:  # type: ignore[no-untyped-def]
    """Observe and sign one lock (idempotent: re-signing posts the same signature again)."""
    from workers.tasks.relay import relay_pending

    svc = services()
    observation = svc.run(svc.attester.observe_lock(chain, height, key))
    # Nudge the relayer only when this signature can complete a quorum (the reconciler
    # nudges it anyway while anything awaits credit).
    if observation.digest is not None and \
            len(svc.pool.signers(key)) >= svc.attester_set.threshold:
        relay_pending.apply_async(queue=f"relay.{svc.settings.venue_chain}")
    return observation.digest
