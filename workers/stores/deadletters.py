"""The dead-letter record (Redis): work that will not be retried by itself, kept for operators.

Poison frames the broker delivered, tasks that exhausted their attempts and sends refused past
the fee budget land here with the reason, the queue, the attempt count and the time. The record
is durable (Redis is run with persistence in production; the chains remain the record of the
work itself: the reconciler and the risk tick re-derive every lock, settlement and liquidation),
bounded (the newest ``MAX_RECORDS``; older ones are dropped and counted), and visible through
``bulkhead deadletters``, ``/api/v1/deadletters`` and ``/metrics``. An operator requeues (the
original task and arguments go back on their queue) or drops a record by id.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import redis

from shared.errors import InputError, StoreError
from workers.stores import keys

__all__ = ["MAX_RECORDS", "DeadLetter", "RedisDeadLetters"]

MAX_RECORDS = 1_000
MAX_PAYLOAD = 4_096  # characters of the original body kept for inspection


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    kind: str  # poison | exhausted | fee-budget | crashed
    queue: str
    task: str | None
    reason: str
    attempts: int
    at_ms: int
    args: list[Any] | None = None  # decoded arguments, when the frame was a valid task
    payload: str = ""  # the raw body (truncated), when it was not

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, raw: str) -> DeadLetter:
        return cls(**json.loads(raw))


class RedisDeadLetters:
    def __init__(self, client: redis.Redis, prefix: str = keys.PREFIX) -> None:
        self._redis, self._p = client, prefix

    def _do(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreError(f"dead letters: {exc}") from exc

    def add(self, *, kind: str, queue: str, task: str | None, reason: str, attempts: int,
            args: list[Any] | None = None, payload: str = "") -> DeadLetter:
        letter = DeadLetter(uuid.uuid4().hex[:16], kind, queue, task, reason[:1_000], attempts,
                            time.time_ns() // 1_000_000, args,
                            payload[:MAX_PAYLOAD] if payload else "")
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.deadletters(self._p), letter.id, letter.to_json())
        pipe.zadd(keys.deadletter_order(self._p), {letter.id: letter.at_ms})
        pipe.hincrby(keys.deadletter_counts(self._p), kind, 1)
        self._do(pipe.execute)
        self._trim()
        return letter

    def _trim(self) -> None:
        excess = int(self._do(self._redis.zcard, keys.deadletter_order(self._p))) - MAX_RECORDS
        if excess <= 0:
            return
        old = self._do(self._redis.zrange, keys.deadletter_order(self._p), 0, excess - 1)
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(keys.deadletter_order(self._p), *old)
        pipe.hdel(keys.deadletters(self._p), *old)
        pipe.hincrby(keys.deadletter_counts(self._p), "trimmed", len(old))
        self._do(pipe.execute)

    def all(self) -> list[DeadLetter]:
        """Every record, newest first."""
        ids = self._do(self._redis.zrevrange, keys.deadletter_order(self._p), 0, -1)
        if not ids:
            return []
        raws = self._do(self._redis.hmget, keys.deadletters(self._p), ids)
        return [DeadLetter.from_json(r) for r in raws if r is not None]

    def get(self, letter_id: str) -> DeadLetter:
        """Raises: InputError naming ``id`` when there is no such record."""
        raw = self._do(self._redis.hget, keys.deadletters(self._p), letter_id)
        if raw is None:
            raise InputError("id", f"no dead letter {letter_id!r}")
        return DeadLetter.from_json(raw)

    def drop(self, letter_id: str) -> DeadLetter:
        letter = self.get(letter_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hdel(keys.deadletters(self._p), letter_id)
        pipe.zrem(keys.deadletter_order(self._p), letter_id)
        self._do(pipe.execute)
        return letter

    def counts(self) -> dict[str, int]:
        raw = self._do(self._redis.hgetall, keys.deadletter_counts(self._p))
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}

    def size(self) -> int:
        return int(self._do(self._redis.zcard, keys.deadletter_order(self._p)))
