"""A Redis lock per key so one chain's poll, or the relayer's batch, runs once at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

__all__ = ["only_one_running"]


@contextmanager
def only_one_running(client: redis.Redis, key: str, *, ttl_s: float = 120.0) -> Iterator[bool]:
    """Yields True if this caller holds the lock (and releases it after), False if another does.

    The TTL bounds how long a killed holder blocks others (RT-01/RT-02)."""
    lock = client.lock(f"bh:run:{key}", timeout=ttl_s, blocking=False)
    held = lock.acquire(blocking=False)
    try:
        yield bool(held)
    finally:
        if held:
            try:
                lock.release()
            except redis.exceptions.LockError:
                pass  # expired while we ran; the next holder is already in
