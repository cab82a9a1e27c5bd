"""The Celery composition root: the worker processes' edge.

Settings are read here, once, and only when the app is first configured: importing this module
(or a task module) reads nothing, so a unit test can import a task without a devnet. The
``bulkhead worker`` command calls :func:`configure` with the settings it already loaded; any
other process (``celery -A workers.celery_app``) loads them on first use of the app.

Queues by role and chain (DESIGN §4): ``watch.<chain>``, ``attest.<attester>``,
``relay.<venue chain>``, ``reconcile``, ``risk``, ``liquidate.<venue chain>``. Tasks are thin and
idempotent on keys derived from their inputs; ``acks_late`` with prefetch 1 means a task whose
worker died is redelivered, and the reconciler re-derives anything Celery does not redeliver.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, task_failure, worker_ready
from kombu.transport import TRANSPORT_ALIASES

import workers.log_context  # noqa: F401  (structlog JSON logs + task context via Celery signals)
from shared.settings import Settings, load_settings
from workers.failures import record_exhausted
from workers.liveness import on_beat_init, on_worker_ready
from workers.queues import queues_for

__all__ = ["app", "beat_schedule", "configure", "process_settings", "queues_for"]

VISIBILITY_TIMEOUT_S = 600  # well above the longest task (a credit batch waits <= 60 s)
RECONCILE_EVERY_S = 2.0
RISK_TICK_S = 1.0
# No task carries an `expires`: Celery stamps it with the sender's host clock, so a worker
# with a skewed clock would silently drop work (TIME-01). Backlogs are bounded instead by
# the reconciler's queue-length check and by skipping polls that ran moments ago (Redis TIME).

# Every worker consumes through the guarded transport (workers/broker.py): no frame, however
# malformed, can take a worker down. ``bhredis://`` is the same Redis, read through it.
TRANSPORT_ALIASES["bhredis"] = "workers.broker:GuardedTransport"

_settings: Settings | None = None
_attester: str | None = None

# BULKHEAD_EXTRA_TASKS: comma-separated modules of extra tasks (a partner's, or a test's
# doubles); read at import because Celery needs its task list before it starts.
EXTRA_TASKS = [m.strip() for m in os.environ.get("BULKHEAD_EXTRA_TASKS", "").split(",")
               if m.strip()]

app = Celery("bulkhead", include=[
    "workers.tasks.watch", "workers.tasks.attest", "workers.tasks.relay",
    "workers.tasks.reconcile", "workers.tasks.settle", "workers.tasks.risk",
    "workers.tasks.account", *EXTRA_TASKS,
])
task_failure.connect(record_exhausted, weak=False)
worker_ready.connect(on_worker_ready, weak=False)
beat_init.connect(on_beat_init, weak=False)


def configure(settings: Settings, *, attester: str | None = None) -> Settings:
    """Fix this process's settings (and, for an attester worker, its name) before the app is
    used. Called by ``bulkhead worker`` at its edge; later calls with the same values are no-ops.
    """
    global _settings, _attester
    _settings = settings
    if attester is not None:
        _attester = attester
    return settings


def process_settings() -> Settings:
    """This process's settings: the configured ones, else loaded once from the environment."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def attester_name() -> str | None:
    """The attester this worker process signs as (``--name``), if it is one."""
    return _attester or os.environ.get("BULKHEAD_ATTESTER")


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
    # One tick per shard per period: the risk workers share them (workers.tasks.risk.tick).
    for i in range(cfg.risk.shards):
        schedule["risk-tick" if i == 0 else f"risk-tick-{i}"] = {
            "task": "bulkhead.risk.tick", "schedule": RISK_TICK_S, "options": {"queue": "risk"}}
    schedule["account"] = {"task": "bulkhead.account.check",
                           "schedule": cfg.accountant.interval_s,
                           "options": {"queue": "account"}}
    schedule["reconcile"] = {"task": "bulkhead.reconcile.reconcile", "schedule": RECONCILE_EVERY_S,
                             "options": {"queue": "reconcile"}}
    return schedule


def _configuration() -> dict[str, Any]:
    """Evaluated lazily by Celery the first time the app's configuration is read."""
    cfg = process_settings()
    return {
        "broker_url": "bhredis://" + str(cfg.redis_url).split("://", 1)[1],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_acks_on_failure_or_timeout": True,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "reconcile",
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(cfg),
        "timezone": "UTC",
    }


app.add_defaults(_configuration)
