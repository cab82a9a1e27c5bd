"""Relayer task (queue ``relay.<venue chain>``): credit every ready lock, batched."""

from __future__ import annotations

from shared.errors import RetryableError
from workers.celery_app import app
from workers.mutex import only_one_running
from workers.runtime import services
from workers.stores import keys


@app.task(name="bulkhead.relay.relay_pending", bind=True, acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=8)
def relay_pending(self) -> int:  # type: ignore[no-untyped-def]
    """Safe to run any number of times: the venue's consumed set makes credits exactly-once.
    A request arriving while a batch is in flight sets a flag the holder loops on."""
    svc = services()
    svc.redis.set(keys.relay_dirty(), 1)
    credited = 0
    with only_one_running(svc.redis, "relay", ttl_s=300) as held:
        if not held:
            return 0
        while svc.redis.getdel(keys.relay_dirty()):
            report = svc.run(svc.relay.relay_pending())
            credited += len(report.credited)
    return credited
