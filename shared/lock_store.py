"""The lock store seam: where watchers keep scan cursors, processed block hashes and lock records.

The chains are the record; a store is a cache of what was derived from them. Losing it
(``FLUSHALL``) costs a rescan from each chain's deployment height, never a lock.
Two implementations share the :class:`LockStore` protocol: ``workers.stores.locks.RedisLockStore``
(I/O, used by every process) and :class:`MemoryLockStore` here (pure, for unit tests of the
watcher's and relayer's logic).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from shared.locks import OPEN_STATES, LockRecord, LockState

AWAITING_CREDIT = frozenset({LockState.FINALIZED, LockState.ATTESTED, LockState.HELD})
#: states a lock can only leave by being orphaned: the watcher re-checks these
FINAL_STATES = frozenset({LockState.FINALIZED, LockState.ATTESTED, LockState.HELD,
                          LockState.REFUSED, LockState.CREDITED})


def awaits_credit(record: LockRecord) -> bool:
    """Final, attributed, not yet credited: the bridge's work queue, derived from the record."""
    return record.event.attributed and record.state in AWAITING_CREDIT

__all__ = [
    "AWAITING_CREDIT", "FINAL_STATES", "LockStore", "MemoryLockStore", "archive_key",
    "awaits_credit", "order_key", "outside",
]


class LockStore(Protocol):
    def cursor(self, chain: str) -> int | None: ...

    def epoch(self) -> str:
        """The store's incarnation (workers.stores.epoch): changes when the store is reset."""
        ...

    def set_cursor(self, chain: str, height: int, *, epoch: str | None = None) -> bool:
        """Move the cursor; with ``epoch``, only if the store is still in it (else False)."""
        ...
    def hashes(self, chain: str) -> dict[int, str]: ...
    def remember_hash(self, chain: str, height: int, block_hash: str) -> None: ...
    def forget_hashes(self, chain: str, *, below: int | None = None,
                      above: int | None = None) -> None: ...
    def put(self, records: Iterable[LockRecord]) -> None: ...
    def get(self, key: str) -> LockRecord | None: ...
    def get_many(self, keys: Iterable[str]) -> list[LockRecord]: ...
    def open_records(self, chain: str) -> list[LockRecord]: ...
    def final_records(self, chain: str, min_height: int) -> list[LockRecord]:
        """Records of ``chain`` past finality (not orphaned) at ``min_height`` or above."""
        ...

    def archive(self, key: str) -> str | None:
        """Keep an orphaned record under a key of its own (``<key>~<tx>``) so a later lock
        that reuses its id is a different record; returns the archive key."""
        ...

    def all_records(self) -> list[LockRecord]: ...

    def orphaned_records(self) -> list[LockRecord]:
        """Every orphaned record, archived ones included (the accountant reads these)."""
        ...

    def awaiting_credit(self) -> list[LockRecord]: ...
    def advance(self, key: str, state: LockState, height: int, at_ms: int) -> LockRecord | None: ...

    def advance_many(self, moves: Iterable[tuple[str, LockState, int, int]]) -> None:
        """Several forward moves ``(key, state, height, at_ms)`` at once; a negative height
        means the lock's own height. Unknown keys are skipped."""
        ...


class MemoryLockStore:
    """Process-local store with the same semantics as the Redis one."""

    def __init__(self) -> None:
        self._cursors: dict[str, int] = {}
        self._hashes: dict[str, dict[int, str]] = {}
        self._records: dict[str, LockRecord] = {}
        self._archived: dict[str, LockRecord] = {}

    def cursor(self, chain: str) -> int | None:
        return self._cursors.get(chain)

    def epoch(self) -> str:
        return "memory"  # a process-local store is never reset under its reader

    def set_cursor(self, chain: str, height: int, *, epoch: str | None = None) -> bool:
        self._cursors[chain] = height
        return True

    def hashes(self, chain: str) -> dict[int, str]:
        return dict(self._hashes.get(chain, {}))

    def remember_hash(self, chain: str, height: int, block_hash: str) -> None:
        self._hashes.setdefault(chain, {})[height] = block_hash

    def forget_hashes(self, chain: str, *, below: int | None = None,
                      above: int | None = None) -> None:
        known = self._hashes.get(chain, {})
        for height in outside(known, below, above):
            del known[height]

    def put(self, records: Iterable[LockRecord]) -> None:
        for record in records:
            self._records[record.key] = record

    def get(self, key: str) -> LockRecord | None:
        return self._records.get(key)

    def get_many(self, keys: Iterable[str]) -> list[LockRecord]:
        return [r for k in keys if (r := self._records.get(k)) is not None]

    def open_records(self, chain: str) -> list[LockRecord]:
        return [r for r in self._records.values()
                if r.event.chain == chain and r.state in OPEN_STATES]

    def final_records(self, chain: str, min_height: int) -> list[LockRecord]:
        return [r for r in self._records.values() if r.event.chain == chain
                and r.state in FINAL_STATES and r.event.height >= min_height]

    def archive(self, key: str) -> str | None:
        record = self._records.pop(key, None)
        if record is None:
            return None
        name = archive_key(record)
        self._archived[name] = record
        return name

    def all_records(self) -> list[LockRecord]:
        return sorted([*self._records.values(), *self._archived.values()], key=order_key)

    def orphaned_records(self) -> list[LockRecord]:
        return [r for r in self.all_records() if r.state == LockState.ORPHANED]

    def awaiting_credit(self) -> list[LockRecord]:
        return [r for r in self.all_records() if awaits_credit(r)]

    def advance(self, key: str, state: LockState, height: int, at_ms: int) -> LockRecord | None:
        record = self._records.get(key)
        if record is None:
            return None
        self._records[key] = record.advanced(state, height, at_ms)
        return self._records[key]

    def advance_many(self, moves: Iterable[tuple[str, LockState, int, int]]) -> None:
        for key, state, height, at_ms in moves:
            record = self._records.get(key)
            if record is not None:
                self.advance(key, state, record.event.height if height < 0 else height, at_ms)


def archive_key(record: LockRecord) -> str:
    """Where an orphaned record is kept once its id is reused: ``<lock key>~<tx id>``."""
    return f"{record.key}~{record.event.tx_id}"


def outside(known: Mapping[int, str], below: int | None, above: int | None) -> list[int]:
    return [h for h in known
            if (below is not None and h < below) or (above is not None and h > above)]


def order_key(record: LockRecord) -> tuple[int, str, int, int]:
    return (record.transitions[0].at_ms, record.event.chain, record.event.height,
            record.event.log_index)
