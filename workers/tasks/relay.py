"""Relayer task (queue ``relay.<venue chain>``): stream every ready lock to the venue, batched."""

from __future__ import annotations

from shared.errors import RetryableError
from workers.celery_app import app
from workers.dispatch import ran_recently
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
        if not ran_recently("relay-held", 4.0):  # held credits: at most every 2 s
            credited += len(svc.run(svc.relay.release_held()).credited)
        # Stream what is ready until nothing is ready, in flight or announced: new quorums go
        # out with the next venue block while earlier batches are still being mined.
        svc.redis.delete(keys.relay_dirty())
        report = svc.run(svc.relay.stream(
            more=lambda: bool(svc.redis.getdel(keys.relay_dirty()))))
        credited += len(report.credited)
    return credited
