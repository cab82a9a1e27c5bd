"""Where watchers keep their work in progress: scan cursors, processed block hashes, lock records.

The chains are the record; this store is a cache of what was derived from them. Losing it
(``FLUSHALL``) costs a rescan from each chain's deployment height, never a lock.
Two implementations share one protocol: :class:`RedisLockStore` (I/O, used by every process)
and :class:`MemoryLockStore` (used by unit tests of the watcher's logic).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Protocol

import redis
import redis.exceptions

from orchestrator.errors import StoreError
from orchestrator.locks import OPEN_STATES, LockRecord, LockState

AWAITING_CREDIT = frozenset({LockState.FINALIZED, LockState.ATTESTED, LockState.HELD})


def awaits_credit(record: LockRecord) -> bool:
    """Final, attributed, not yet credited: the bridge's work queue, derived from the record."""
    return record.event.attributed and record.state in AWAITING_CREDIT

__all__ = ["AWAITING_CREDIT", "LockStore", "MemoryLockStore", "RedisLockStore", "awaits_credit"]


class LockStore(Protocol):
    def cursor(self, chain: str) -> int | None: ...
    def set_cursor(self, chain: str, height: int) -> None: ...
    def hashes(self, chain: str) -> dict[int, str]: ...
    def remember_hash(self, chain: str, height: int, block_hash: str) -> None: ...
    def forget_hashes(self, chain: str, *, below: int | None = None,
                      above: int | None = None) -> None: ...
    def put(self, records: Iterable[LockRecord]) -> None: ...
    def get(self, key: str) -> LockRecord | None: ...
    def open_records(self, chain: str) -> list[LockRecord]: ...
    def all_records(self) -> list[LockRecord]: ...
    def awaiting_credit(self) -> list[LockRecord]: ...
    def advance(self, key: str, state: LockState, height: int, at_ms: int) -> LockRecord | None: ...


class MemoryLockStore:
    """Process-local store with the same semantics as the Redis one."""

    def __init__(self) -> None:
        self._cursors: dict[str, int] = {}
        self._hashes: dict[str, dict[int, str]] = {}
        self._records: dict[str, LockRecord] = {}

    def cursor(self, chain: str) -> int | None:
        return self._cursors.get(chain)

    def set_cursor(self, chain: str, height: int) -> None:
        self._cursors[chain] = height

    def hashes(self, chain: str) -> dict[int, str]:
        return dict(self._hashes.get(chain, {}))

    def remember_hash(self, chain: str, height: int, block_hash: str) -> None:
        self._hashes.setdefault(chain, {})[height] = block_hash

    def forget_hashes(self, chain: str, *, below: int | None = None,
                      above: int | None = None) -> None:
        known = self._hashes.get(chain, {})
        for height in _outside(known, below, above):
            del known[height]

    def put(self, records: Iterable[LockRecord]) -> None:
        for record in records:
            self._records[record.key] = record

    def get(self, key: str) -> LockRecord | None:
        return self._records.get(key)

    def open_records(self, chain: str) -> list[LockRecord]:
        return [r for r in self._records.values()
                if r.event.chain == chain and r.state in OPEN_STATES]

    def all_records(self) -> list[LockRecord]:
        return sorted(self._records.values(), key=_order)

    def awaiting_credit(self) -> list[LockRecord]:
        return [r for r in self.all_records() if awaits_credit(r)]

    def advance(self, key: str, state: LockState, height: int, at_ms: int) -> LockRecord | None:
        record = self._records.get(key)
        if record is None:
            return None
        self._records[key] = record.advanced(state, height, at_ms)
        return self._records[key]


def _outside(known: Mapping[int, str], below: int | None, above: int | None) -> list[int]:
    return [h for h in known
            if (below is not None and h < below) or (above is not None and h > above)]


def _order(record: LockRecord) -> tuple[int, str, int, int]:
    return (record.transitions[0].at_ms, record.event.chain, record.event.height,
            record.event.log_index)


class RedisLockStore:
    """Redis layout (prefix ``bh:``): ``cursor:<chain>`` int, ``hashes:<chain>`` hash
    height->blockhash, ``lock:<key>`` JSON record, ``locks`` zset of keys by first-seen ms,
    ``open:<chain>`` set of keys not yet final."""

    def __init__(self, url: str, prefix: str = "bh:") -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._p = prefix

    def close(self) -> None:
        self._redis.close()

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis unreachable: {exc}") from exc

    def cursor(self, chain: str) -> int | None:
        raw = self._call(self._redis.get, f"{self._p}cursor:{chain}")
        return None if raw is None else int(raw)

    def set_cursor(self, chain: str, height: int) -> None:
        self._call(self._redis.set, f"{self._p}cursor:{chain}", height)

    def hashes(self, chain: str) -> dict[int, str]:
        raw = self._call(self._redis.hgetall, f"{self._p}hashes:{chain}")
        return {int(h): v for h, v in raw.items()}

    def remember_hash(self, chain: str, height: int, block_hash: str) -> None:
        self._call(self._redis.hset, f"{self._p}hashes:{chain}", str(height), block_hash)

    def forget_hashes(self, chain: str, *, below: int | None = None,
                      above: int | None = None) -> None:
        stale = _outside(self.hashes(chain), below, above)
        if stale:
            self._call(self._redis.hdel, f"{self._p}hashes:{chain}", *map(str, stale))

    def put(self, records: Iterable[LockRecord]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        for record in records:
            pipe.set(f"{self._p}lock:{record.key}", json.dumps(record.to_dict()))
            pipe.zadd(f"{self._p}locks", {record.key: record.transitions[0].at_ms}, nx=True)
            self._index(pipe, record)
        self._call(pipe.execute)

    def _index(self, pipe: redis.client.Pipeline, record: LockRecord) -> None:
        open_key = f"{self._p}open:{record.event.chain}"
        if record.state in OPEN_STATES:
            pipe.sadd(open_key, record.key)
        else:
            pipe.srem(open_key, record.key)
        if awaits_credit(record):
            pipe.sadd(f"{self._p}awaiting-credit", record.key)
        else:
            pipe.srem(f"{self._p}awaiting-credit", record.key)

    def awaiting_credit(self) -> list[LockRecord]:
        keys = sorted(self._call(self._redis.smembers, f"{self._p}awaiting-credit"))
        return [r for r in self._many(keys) if awaits_credit(r)]

    def advance(self, key: str, state: LockState, height: int, at_ms: int) -> LockRecord | None:
        """Atomically move one record forward (optimistic WATCH; concurrent writers retry)."""
        name = f"{self._p}lock:{key}"
        for _ in range(20):
            try:
                with self._redis.pipeline(transaction=True) as pipe:
                    pipe.watch(name)
                    raw = pipe.get(name)
                    if raw is None:
                        return None
                    record = LockRecord.from_dict(json.loads(raw))
                    moved = record.advanced(state, height, at_ms)
                    if moved is record:
                        return record
                    pipe.multi()
                    pipe.set(name, json.dumps(moved.to_dict()))
                    self._index(pipe, moved)
                    pipe.execute()
                    return moved
            except redis.exceptions.WatchError:
                continue
            except redis.exceptions.RedisError as exc:
                raise StoreError(f"redis: {exc}") from exc
        raise StoreError(f"could not advance {key}: too much contention")

    def get(self, key: str) -> LockRecord | None:
        raw = self._call(self._redis.get, f"{self._p}lock:{key}")
        return None if raw is None else LockRecord.from_dict(json.loads(raw))

    def _many(self, keys: list[str]) -> list[LockRecord]:
        out: list[LockRecord] = []
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            raws = self._call(self._redis.mget, [f"{self._p}lock:{k}" for k in batch])
            out.extend(LockRecord.from_dict(json.loads(r)) for r in raws if r is not None)
        return out

    def open_records(self, chain: str) -> list[LockRecord]:
        keys = sorted(self._call(self._redis.smembers, f"{self._p}open:{chain}"))
        return self._many(keys)

    def all_records(self) -> list[LockRecord]:
        return sorted(self._many(self._call(self._redis.zrange, f"{self._p}locks", 0, -1)),
                      key=_order)

    @staticmethod
    def _call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
