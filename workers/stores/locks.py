"""The Redis lock store: scan cursors, processed block hashes and lock records (I/O).

Implements :class:`shared.lock_store.LockStore`. Redis is work in progress; the chains are the
record, so losing this store (``FLUSHALL``) costs a rescan, never a lock. Key names come from
:mod:`workers.stores.keys`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis
import redis.exceptions

from shared.errors import StoreError
from shared.lock_store import FINAL_STATES, archive_key, awaits_credit, order_key, outside
from shared.locks import OPEN_STATES, LockRecord, LockState
from workers.stores import keys
from workers.stores.epoch import current_epoch, set_if_epoch

__all__ = ["RedisLockStore"]


class RedisLockStore:
    """Redis layout (prefix ``bh:``): ``cursor:<chain>`` int, ``hashes:<chain>`` hash
    height->blockhash, ``lock:<key>`` JSON record, ``locks`` zset of keys by first-seen ms,
    ``open:<chain>`` set of keys not yet final."""

    def __init__(self, url: str, prefix: str = keys.PREFIX) -> None:
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
        raw = self._call(self._redis.get, keys.cursor(chain, self._p))
        return None if raw is None else int(raw)

    def epoch(self) -> str:
        return str(self._call(current_epoch, self._redis, keys.epoch(self._p)))

    def set_cursor(self, chain: str, height: int, *, epoch: str | None = None) -> bool:
        if epoch is None:
            self._call(self._redis.set, keys.cursor(chain, self._p), height)
            return True
        return bool(self._call(set_if_epoch, self._redis, keys.epoch(self._p),
                               keys.cursor(chain, self._p), height, epoch))

    def hashes(self, chain: str) -> dict[int, str]:
        raw = self._call(self._redis.hgetall, keys.hashes(chain, self._p))
        return {int(h): v for h, v in raw.items()}

    def remember_hash(self, chain: str, height: int, block_hash: str) -> None:
        self._call(self._redis.hset, keys.hashes(chain, self._p), str(height), block_hash)

    def forget_hashes(self, chain: str, *, below: int | None = None,
                      above: int | None = None) -> None:
        stale = outside(self.hashes(chain), below, above)
        if stale:
            self._call(self._redis.hdel, keys.hashes(chain, self._p), *map(str, stale))

    def put(self, records: Iterable[LockRecord]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        for record in records:
            pipe.set(keys.lock(record.key, self._p), json.dumps(record.to_dict()))
            pipe.zadd(keys.locks(self._p), {record.key: record.transitions[0].at_ms}, nx=True)
            self._index(pipe, record)
        self._call(pipe.execute)

    def _index(self, pipe: redis.client.Pipeline, record: LockRecord) -> None:
        open_key = keys.open_locks(record.event.chain, self._p)
        if record.state in OPEN_STATES:
            pipe.sadd(open_key, record.key)
        else:
            pipe.srem(open_key, record.key)
        if awaits_credit(record):
            pipe.sadd(keys.awaiting_credit(self._p), record.key)
        else:
            pipe.srem(keys.awaiting_credit(self._p), record.key)
        if record.state == LockState.ORPHANED:
            pipe.sadd(keys.orphaned(self._p), record.key)
        final_key = keys.final_locks(record.event.chain, self._p)
        if record.state in FINAL_STATES:
            pipe.zadd(final_key, {record.key: record.event.height})
        else:
            pipe.zrem(final_key, record.key)

    def awaiting_credit(self) -> list[LockRecord]:
        names = sorted(self._call(self._redis.smembers, keys.awaiting_credit(self._p)))
        return [r for r in self._many(names) if awaits_credit(r)]

    def advance(self, key: str, state: LockState, height: int, at_ms: int) -> LockRecord | None:
        """Atomically move one record forward (optimistic WATCH; concurrent writers retry)."""
        name = keys.lock(key, self._p)
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

    def advance_many(self, moves: Iterable[tuple[str, LockState, int, int]]) -> None:
        """Move many records forward in one optimistic transaction (WATCH on all of them); on
        contention the moves fall back to :meth:`advance` one by one."""
        moves = list(moves)
        if not moves:
            return
        names = [keys.lock(key, self._p) for key, _, _, _ in moves]
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.watch(*names)
                raws = pipe.mget(names)
                pipe.multi()
                for (key, state, height, at_ms), raw in zip(moves, raws, strict=True):
                    if raw is None:
                        continue
                    record = LockRecord.from_dict(json.loads(raw))
                    moved = record.advanced(state, record.event.height if height < 0 else height,
                                            at_ms)
                    if moved is not record:
                        pipe.set(keys.lock(key, self._p), json.dumps(moved.to_dict()))
                        self._index(pipe, moved)
                pipe.execute()
        except redis.exceptions.WatchError:
            for key, state, height, at_ms in moves:
                record = self.get(key)
                if record is not None:
                    self.advance(key, state, record.event.height if height < 0 else height,
                                 at_ms)
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    def get(self, key: str) -> LockRecord | None:
        raw = self._call(self._redis.get, keys.lock(key, self._p))
        return None if raw is None else LockRecord.from_dict(json.loads(raw))

    def get_many(self, lock_keys: Iterable[str]) -> list[LockRecord]:
        """The records of ``lock_keys`` that exist, in one round trip per thousand."""
        return self._many(list(lock_keys))

    def _many(self, names: list[str]) -> list[LockRecord]:
        out: list[LockRecord] = []
        for start in range(0, len(names), 1000):
            batch = names[start:start + 1000]
            raws = self._call(self._redis.mget, [keys.lock(k, self._p) for k in batch])
            out.extend(LockRecord.from_dict(json.loads(r)) for r in raws if r is not None)
        return out

    def final_records(self, chain: str, min_height: int) -> list[LockRecord]:
        names = self._call(self._redis.zrangebyscore, keys.final_locks(chain, self._p),
                           min_height, "+inf")
        return [r for r in self._many(sorted(names)) if r.state in FINAL_STATES]

    def archive(self, key: str) -> str | None:
        """Move an orphaned record to ``lock:<key>~<tx>`` (listed, never re-indexed)."""
        record = self.get(key)
        if record is None:
            return None
        name = archive_key(record)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(keys.lock(name, self._p), json.dumps(record.to_dict()))
        pipe.delete(keys.lock(key, self._p))
        pipe.zrem(keys.locks(self._p), key)
        pipe.zadd(keys.locks(self._p), {name: record.transitions[0].at_ms})
        for index in (keys.open_locks(record.event.chain, self._p), keys.awaiting_credit(self._p)):
            pipe.srem(index, key)
        pipe.zrem(keys.final_locks(record.event.chain, self._p), key)
        if record.state == LockState.ORPHANED:
            pipe.srem(keys.orphaned(self._p), key)
            pipe.sadd(keys.orphaned(self._p), name)
        self._call(pipe.execute)
        return name

    def orphaned_records(self) -> list[LockRecord]:
        names = sorted(self._call(self._redis.smembers, keys.orphaned(self._p)))
        return [r for r in self._many(names) if r.state == LockState.ORPHANED]

    def open_records(self, chain: str) -> list[LockRecord]:
        names = sorted(self._call(self._redis.smembers, keys.open_locks(chain, self._p)))
        return self._many(names)

    def all_records(self) -> list[LockRecord]:
        return sorted(self._many(self._call(self._redis.zrange, keys.locks(self._p), 0, -1)),
                      key=order_key)

    @staticmethod
    def _call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
