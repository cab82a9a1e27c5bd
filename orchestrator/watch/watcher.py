"""One watcher per chain (wormhole style): scan from a cursor, act on heads, rewind on reorg.

A poll does three things, in this order:

1. **Reorg check.** The hash of the last scanned height is compared with the chain's current
   hash at that height. On a mismatch the watcher walks its remembered hashes down to the
   newest height that still matches, rewinds the cursor there (logged: the only backward move
   of a cursor, I4) and drops every not-yet-final observation above it.
2. **Scan.** ``lock_events`` over ``cursor+1 .. latest`` in ranges of ``max_block_range``,
   remembering the hash of each range's last height.
3. **Lifecycle.** Open locks at or below the safe head become ``safe``; at or below the final
   head (per the chain's :class:`FinalityPolicy`) they are re-read at their height and become
   ``finalized`` only if still there with the same amount, else ``dropped`` (SRC-02, SRC-04).
4. **Orphans.** Every ``orphan_recheck_ms``, locks past finality (finalized, attested, held,
   refused, credited) within ``orphan_depth`` heights of the final head are checked again: a
   lock whose block hash changed and whose transaction no longer carries it is ``orphaned`` —
   an incident finality should have made impossible (REORG-01): an error-level
   ``lock_orphaned`` line names it, the record keeps the state for the CLI, the API, the
   metrics and the accountant (which pauses its lane), and a later lock reusing its id is kept
   as a record of its own (the orphan moves to ``<key>~<tx>``).

Hashes are remembered for the last height of every scanned range (every height once caught up)
and kept down to one anchor at or below the final head: nothing there may reorg under the policy.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from chains.base import ChainAdapter
from chains.finality import final_head
from shared.chain import BlockRef, Finality
from shared.errors import NotYetFinal
from shared.events import LockEvent
from shared.lock_store import LockStore
from shared.locks import LockRecord, LockState, lock_key
from shared.settings import FinalityPolicy

__all__ = ["PollReport", "Watcher"]

log = structlog.get_logger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class PollReport:
    chain: str
    latest: int
    safe: int
    final: int
    cursor: int
    new: list[str] = field(default_factory=list)
    advanced: list[tuple[str, LockState]] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    reorg_to: int | None = None

    @property
    def caught_up(self) -> bool:
        return self.cursor >= self.latest


class Watcher:
    """Drives one chain's locks through ``seen -> safe -> finalized`` in the store."""

    def __init__(
        self,
        adapter: ChainAdapter,
        store: LockStore,
        policy: FinalityPolicy,
        *,
        start_height: int,
        max_block_range: int = 1_000,
        max_ranges_per_poll: int = 20,
        confirm_adapter: ChainAdapter | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        orphan_depth: int = 256,
        orphan_recheck_ms: int = 5_000,
    ) -> None:
        """``confirm_adapter`` re-reads locks at finality; on Solana it is the same endpoint at
        ``finalized`` commitment while ``adapter`` scans at ``processed``."""
        self.adapter = adapter
        self.confirm_adapter = confirm_adapter or adapter
        self.store = store
        self.policy = policy
        self.chain = adapter.chain.key
        self.start_height = start_height
        self.max_block_range = max_block_range
        self.max_ranges_per_poll = max_ranges_per_poll
        self._clock_ms = clock_ms
        self.orphan_depth, self.orphan_recheck_ms = orphan_depth, orphan_recheck_ms
        self._rechecked_ms: int | None = None

    async def poll(self) -> PollReport:
        # INVARIANT: scan only up to what the adapter's history reads can see completely (on
        # Solana ``confirmed``), or a lock in a newer slot would be passed by the cursor.
        latest = await self.adapter.head(self.adapter.history_finality)
        epoch = self.store.epoch()  # before the cursor: a reset after this refuses our write
        cursor = self.store.cursor(self.chain)
        if cursor is None:
            cursor = self.start_height - 1
        report = PollReport(self.chain, latest.height, 0, 0, cursor)
        fork = await self._find_fork(cursor, latest)
        if fork is not None:
            self._rewind(fork)
            cursor, report.reorg_to = fork, fork
        try:
            final = await final_head(self.adapter, self.policy, latest)
        except NotYetFinal:  # a young chain (fewer than k blocks): nothing is final yet
            final = BlockRef(self.chain, -1, "")
        # Orphans first: after a rewind the rescan must find their ids free for a new lock.
        await self._recheck_final(final, report, force=fork is not None)
        cursor = await self._scan(cursor, latest, report, epoch)
        report.cursor = cursor
        safe = await self.adapter.head(Finality.SAFE)
        report.safe, report.final = safe.height, final.height
        await self._advance(safe, final, report)
        self._prune_hashes(min(final.height, cursor))
        return report

    async def _recheck_final(self, final: BlockRef, report: PollReport, *,
                             force: bool = False) -> None:
        """Orphan detection (the module docstring, step 4); ``force`` after a rewind."""
        now = self._clock_ms()
        if not force and self._rechecked_ms is not None and \
                now - self._rechecked_ms < self.orphan_recheck_ms:
            return
        self._rechecked_ms = now
        by_height: dict[int, list[LockRecord]] = defaultdict(list)
        for record in self.store.final_records(self.chain, final.height - self.orphan_depth):
            by_height[record.event.height].append(record)
        for height, records in sorted(by_height.items()):
            current = await self.confirm_adapter.block_hash(height)
            for record in records:
                if current is not None and current == record.event.block_hash:
                    continue
                # SECURITY: the block is not the one the lock was final in; only the lock's own
                # transaction can say whether the lock survived (re-mined elsewhere) or not.
                if await self.confirm_adapter.lock_exists(record.event):
                    continue
                before = record.state
                moved = self.store.advance(record.key, LockState.ORPHANED, final.height, now)
                if moved is not None and moved.state == LockState.ORPHANED:
                    report.orphaned.append(record.key)
                    log.error("lock_orphaned", chain=self.chain, lock_key=record.key,
                              height=height, tx=record.event.tx_id, was=before.value,
                              amount=record.event.amount, block_hash=record.event.block_hash,
                              now_hash=current)

    def _prune_hashes(self, final_height: int) -> None:
        """Forget hashes below the newest remembered height at or under the final head; that one
        stays as the anchor a fork search can always stop at."""
        anchors = [h for h in self.store.hashes(self.chain) if h <= final_height]
        if anchors:
            self.store.forget_hashes(self.chain, below=max(anchors))

    async def _find_fork(self, cursor: int, latest: BlockRef) -> int | None:
        """None if the scanned chain is still canonical, else the height to rewind to."""
        known = self.store.hashes(self.chain)
        if cursor not in known:
            return None if cursor <= latest.height else min(latest.height, cursor)
        if cursor <= latest.height and await self.adapter.block_hash(cursor) == known[cursor]:
            return None
        for height in sorted((h for h in known if h < cursor), reverse=True):
            if height <= latest.height and await self.adapter.block_hash(height) == known[height]:
                return height
        # No remembered height still matches: rescan from the start (idempotent, just slower).
        return self.start_height - 1

    def _rewind(self, fork: int) -> None:
        # INVARIANT: the only backward move of a cursor, and it is logged (I4).
        log.warning("reorg_rewind", chain=self.chain, to_height=fork,
                    from_height=self.store.cursor(self.chain))
        now = self._clock_ms()
        for record in self.store.open_records(self.chain):
            if record.event.height > fork:
                self.store.advance(record.key, LockState.DROPPED, fork, now)
        self.store.set_cursor(self.chain, fork)
        self.store.forget_hashes(self.chain, above=fork)

    async def _scan(self, cursor: int, latest: BlockRef, report: PollReport, epoch: str) -> int:
        for _ in range(self.max_ranges_per_poll):
            if cursor >= latest.height:
                break
            start, end = cursor + 1, min(cursor + self.max_block_range, latest.height)
            events = await self.adapter.lock_events(start, end)
            report.new.extend(self._record_seen(events))
            end_hash = latest.hash if end == latest.height else await self.adapter.block_hash(end)
            self.store.remember_hash(self.chain, end, end_hash or "")
            if not self.store.set_cursor(self.chain, end, epoch=epoch):
                # The store was reset under this scan (RT-04): what it recorded before the
                # reset is gone, so the cursor must not pass it; the next poll starts over.
                log.warning("store_reset_mid_scan", chain=self.chain, height=end)
                break
            cursor = end
        return cursor

    def _record_seen(self, events: Sequence[LockEvent]) -> list[str]:
        now, fresh = self._clock_ms(), []
        for event in events:
            existing = self.store.get(lock_key(event))
            if existing is not None and existing.state == LockState.ORPHANED and (
                    existing.event.tx_id, existing.event.block_hash) != (event.tx_id,
                                                                         event.block_hash):
                # A new lock reuses an orphan's id: the orphan stays listed, under its own key.
                self.store.archive(existing.key)
                log.error("lock_id_reused_after_orphan", chain=self.chain,
                          lock_key=existing.key, orphan_tx=existing.event.tx_id,
                          new_tx=event.tx_id)
            elif existing is not None and existing.state != LockState.DROPPED:
                continue  # overlapping rescans are idempotent
            fresh.append(LockRecord.first_seen(event, now))
        self.store.put(fresh)
        return [r.key for r in fresh]

    async def _advance(self, safe: BlockRef, final: BlockRef, report: PollReport) -> None:
        """Transitions go through ``store.advance`` (atomic, forward-only), so a concurrent
        watcher or the bridge moving the same lock further is never undone."""
        now = self._clock_ms()
        by_height: dict[int, list[LockRecord]] = defaultdict(list)
        moves: list[tuple[str, LockState, int]] = []
        for record in self.store.open_records(self.chain):
            if record.event.height <= final.height:
                by_height[record.event.height].append(record)
            elif record.event.height <= safe.height and record.state == LockState.SEEN:
                moves.append((record.key, LockState.SAFE, safe.height))
        for height, records in sorted(by_height.items()):
            # SECURITY: re-read at the lock's height before calling it final; a lock that is no
            # longer there (reorged out, abandoned fork) is dropped, never finalized (I5).
            events = await self.confirm_adapter.lock_events(height, height)
            still = {lock_key(e): e for e in events}
            for record in records:
                again = still.get(record.key)
                ok = again is not None and again.amount == record.event.amount
                moves.append((record.key, LockState.FINALIZED if ok else LockState.DROPPED,
                              final.height))
        for key, state, height in moves:
            moved = self.store.advance(key, state, height, now)
            if moved is not None and moved.state == state:
                report.advanced.append((key, state))
