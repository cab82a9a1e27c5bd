"""Accountant task (queue ``account``, driven by beat every ``accountant.interval_s``): one
pass of :class:`orchestrator.watch.accountant.Accountant` over every registered lane; a lane
whose venue credit the vault does not back is paused at once (fault ACCT-01)."""

from __future__ import annotations

import time

from shared.errors import RetryableError
from workers.celery_app import app
from workers.dispatch import ran_recently
from workers.mutex import only_one_running
from workers.runtime import services


@app.task(name="bulkhead.account.check", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def check() -> int:
    """One accountant pass; returns how many lanes it found in breach."""
    svc = services()
    interval = svc.settings.accountant.interval_s
    with only_one_running(svc.redis, "account", ttl_s=60) as held:
        if not held or ran_recently("account", interval):
            return 0
        result = svc.run(svc.accountant.run(time.time_ns() // 1_000_000))
    return len(result.acted)
