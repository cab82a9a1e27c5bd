"""When the reconciler last re-asked attesters about a lock or settlement (Redis, ms).

Only paces re-asking; losing it means asking again sooner, never a lost or doubled credit.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from workers.stores import keys

__all__ = ["RedisAskLog"]

ASK_TTL_MS = 60_000


class RedisAskLog:
    def __init__(self, client: redis.Redis, prefix: str = keys.PREFIX) -> None:
        self._redis, self._p = client, prefix

    def last(self, item: str) -> int | None:
        raw = self._redis.get(keys.asked(item, self._p))
        return None if raw is None else int(raw)

    def mark(self, items: Iterable[str], now_ms: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for item in items:
            pipe.set(keys.asked(item, self._p), now_ms, px=ASK_TTL_MS)
        pipe.execute()
