"""The Celery composition root: settings are read here, once, at the worker's process edge.

Queues by role and chain (DESIGN §4): ``watch.<chain>``, ``attest.<attester>``,
``relay.<venue chain>``, ``reconcile``. Tasks are thin and idempotent on keys derived from
their inputs; ``acks_late`` with prefetch 1 means a task whose worker died is redelivered, and
the reconciler re-derives anything Celery does not redeliver.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

import workers.log_context  # noqa: F401  (structlog JSON logs + task context via Celery signals)
from orchestrator.settings import Settings, load_settings
from workers.queues import queues_for

__all__ = ["app", "beat_schedule", "queues_for"]

VISIBILITY_TIMEOUT_S = 600  # well above the longest task (a credit batch waits <= 60 s)
RECONCILE_EVERY_S = 2.0
RISK_TICK_S = 1.0
# No task carries an `expires`: Celery stamps it with the sender's host clock, so a worker
# with a skewed clock would silently drop work (TIME-01). Backlogs are bounded instead by
# the reconciler's queue-length check and by skipping polls that ran moments ago (Redis TIME).

settings: Settings = load_settings()

app = Celery("bulkhead", broker=str(settings.redis_url), include=[
    "workers.tasks.watch", "workers.tasks.attest", "workers.tasks.relay",
    "workers.tasks.reconcile", "workers.tasks.settle", "workers.tasks.risk",
])


def beat_schedule(cfg: Settings) -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {
        f"poll-{key}": {"task": "bulkhead.watch.poll_chain", "args": (key,),
                        "schedule": chain.poll_interval_s,
                        "options": {"queue": f"watch.{key}"}}
        for key, chain in cfg.chains.items() if chain.vaults
    }
    schedule["poll-venue"] = {"task": "bulkhead.settle.poll_venue",
                              "schedule": cfg.chain(cfg.venue_chain).poll_interval_s,
                              "options": {"queue": f"watch.{cfg.venue_chain}"}}
    schedule["risk-tick"] = {"task": "bulkhead.risk.tick", "schedule": RISK_TICK_S,
                             "options": {"queue": "risk"}}
    schedule["reconcile"] = {"task": "bulkhead.reconcile.reconcile", "schedule": RECONCILE_EVERY_S,
                             "options": {"queue": "reconcile"}}
    return schedule


app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_acks_on_failure_or_timeout=True,
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue="reconcile",
    worker_hijack_root_logger=False,
    beat_schedule=beat_schedule(settings),
    timezone="UTC",
)
