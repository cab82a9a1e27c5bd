"""Every worker (and the beat) says it is alive, so a role with no live consumer is visible.

On ``worker_ready`` (and ``beat_init``) a daemon thread writes ``alive:<worker name>`` (Redis,
expiring after ``TTL_S``) every ``EVERY_S`` seconds; the API's ``/readyz`` and ``bulkhead run``'s
supervisor read them (:func:`expected_workers` is the list a complete deployment has). A key that
expired means the worker is gone: its role stops consuming until a supervisor restarts it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis
import structlog

from shared.settings import Settings
from workers.stores import keys

__all__ = ["EVERY_S", "TTL_S", "alive_workers", "expected_workers", "start_heartbeat"]

log = structlog.get_logger(__name__)
EVERY_S = 2.0
TTL_S = 10


def expected_workers(cfg: Settings) -> list[str]:
    """The worker names (``<role>-<name>``) a complete deployment runs, and the beat."""
    names = ["watcher-main", "relayer-main", "reconciler-main", "risk-main", "accountant-main",
             "beat"]
    names += [f"attester-{m.name}" for m in cfg.attesters.members]
    return sorted(names)


def alive_workers(client: redis.Redis) -> set[str]:
    found = set()
    for raw in client.scan_iter(match=keys.alive("*"), count=500):
        name = raw.decode() if isinstance(raw, bytes) else raw
        found.add(name.removeprefix(keys.alive("")).split("@", 1)[0])
    return found


def start_heartbeat(url: str, worker: str) -> threading.Thread:
    """Write ``alive:<worker>`` until the process exits (daemon thread)."""
    client = redis.Redis.from_url(url)

    def beat() -> None:
        while True:
            try:
                client.set(keys.alive(worker), os.getpid(), ex=TTL_S)
            except redis.RedisError as exc:
                log.warning("heartbeat_failed", worker=worker, error=str(exc))
            time.sleep(EVERY_S)

    thread = threading.Thread(target=beat, name="bulkhead-heartbeat", daemon=True)
    thread.start()
    return thread


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    from workers.celery_app import process_settings

    start_heartbeat(str(process_settings().redis_url), str(getattr(sender, "hostname", "?")))


def on_beat_init(**_: Any) -> None:
    from workers.celery_app import process_settings

    start_heartbeat(str(process_settings().redis_url), "beat")
