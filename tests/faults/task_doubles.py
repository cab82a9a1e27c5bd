"""Test-only tasks, loaded into a worker with ``BULKHEAD_EXTRA_TASKS=tests.faults.task_doubles``:
one that kills whatever process runs it, one that counts how often it ran."""

from __future__ import annotations

import os

from workers.celery_app import app
from workers.runtime import services

COUNTER = "bh:test:count"


@app.task(name="bulkhead.test.die", acks_late=True)
def die() -> None:
    """Kill the process running it, as a segfault or the OOM killer would."""
    os._exit(3)


@app.task(name="bulkhead.test.count", acks_late=True)
def count(n: int) -> int:
    return int(services().redis.incr(COUNTER, n))
