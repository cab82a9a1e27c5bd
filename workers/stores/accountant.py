"""The accountant's memory in Redis (I/O): acknowledged deficits, orphans acted on, and the
last pass's books for ``/metrics`` and ``bulkhead admin lanes``. Losing it (``FLUSHALL``) costs
at most one repeated pause of a lane that is already paused or that the owner resumed: the
venue's ``lanePaused`` is the record."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from orchestrator.venues.lanes import LaneBook
from workers.stores import keys

__all__ = ["RedisAccountantState", "book_row", "last_books"]


def book_row(book: LaneBook, at_ms: int) -> dict[str, Any]:
    """A book as JSON-safe values (amounts as decimal strings: they can pass 2^53)."""
    lane = book.lane
    return {"chain": lane.chain, "vault": lane.vault, "asset": lane.asset,
            "decimals": lane.decimals, "held": str(book.held),
            "outstanding": str(book.outstanding), "ceiling": str(book.ceiling),
            "deficit": str(book.deficit), "headroom": str(book.headroom), "paused": book.paused,
            "orphaned_credits": len(book.orphans), "at_ms": at_ms}


def last_books(client: redis.Redis) -> list[dict[str, Any]]:
    """The rows the accountant published last (empty before its first pass)."""
    raw: dict[Any, Any] = client.hgetall(keys.accountant_books())
    rows = [json.loads(v) for v in raw.values()]
    return sorted(rows, key=lambda r: (r["chain"], r["vault"], r["asset"]))


class RedisAccountantState:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def acknowledged(self) -> Mapping[str, int]:
        raw: dict[Any, Any] = self._redis.hgetall(keys.accountant_acks())
        return {_text(k): int(v) for k, v in raw.items()}

    def acted_orphans(self) -> set[str]:
        raw: set[Any] = self._redis.smembers(keys.accountant_orphans())
        return {_text(v) for v in raw}

    def record(self, lane_id: str, deficit: int, orphans: Sequence[str]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        if deficit:
            pipe.hset(keys.accountant_acks(), lane_id, str(deficit))
        else:
            pipe.hdel(keys.accountant_acks(), lane_id)
        if orphans:
            pipe.sadd(keys.accountant_orphans(), *orphans)
        pipe.execute()

    def publish(self, books: Sequence[LaneBook], at_ms: int) -> None:
        if books:
            self._redis.hset(keys.accountant_books(), mapping={
                b.lane_id: json.dumps(book_row(b, at_ms)) for b in books})


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
