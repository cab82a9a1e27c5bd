"""The relayer: turn pooled quorums into venue credits, in batches, exactly once.

It streams: :meth:`RelayService.stream` reads the items the pool pushed to its ready stream
when their digest reached the threshold (and those a dead relayer read but never acknowledged),
verifies each quorum once (every entry must recover to its label over the digest, a member of
a live set; the rest are discarded and counted), and sends every ready credit in batches as
soon as it is ready, several batches in flight at once from the one sender (its nonces), never
waiting for earlier batches to be mined before taking the next quorums. Stream entries are
acknowledged only once their batch is mined.

Idempotency lives on chain: the venue skips an already-consumed item in a batch without
reverting and refuses a second credit of the same (srcChainId, srcVault, lockId) (I2). Redis
only says what might be ready; losing it loses time, never a credit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bridges.live_sets import LiveSets
from bridges.ports import ReadyEntry, SignaturePool
from bridges.verifier import Verified, screen, verify_screened
from chains.evm.bridge_codec import LockStatus, lock_key
from shared.errors import (
    AlreadyConsumed,
    AttestationMalformed,
    ChainError,
    QuorumNotReached,
    TxRejected,
)
from shared.lock_store import LockStore
from shared.locks import LockState
from shared.messages import Domain, LockAttestation

__all__ = ["BATCH_RESERVE", "RelayReport", "RelayService", "split_lock_key"]

log = structlog.get_logger(__name__)


def split_lock_key(key: str) -> tuple[int, bytes, bytes]:
    """``"31337:0x..vault:0x..lockid"`` -> (src chain id, vault bytes32, lock id bytes32).

    Raises:
        AttestationMalformed: anything else (task payloads are input too).
    """
    parts = key.split(":") if isinstance(key, str) else []
    if len(parts) != 3 or not parts[0].isdigit() or not parts[0].isascii():
        raise AttestationMalformed("lock_key", f"{key!r} is not <chain id>:0x<vault>:0x<lock>")
    chain_id = int(parts[0])
    raw = []
    for part in parts[1:]:
        body = part[2:] if part.startswith("0x") else ""
        if len(body) != 64 or not all(c in "0123456789abcdef" for c in body):
            raise AttestationMalformed("lock_key", f"{part!r} is not lowercase 0x + 64 hex")
        raw.append(bytes.fromhex(body))
    if not 0 < chain_id < 2**64:
        raise AttestationMalformed("lock_key", f"chain id {chain_id} out of range")
    return chain_id, raw[0], raw[1]


def venue_lock_key(key: str) -> bytes:
    return lock_key(*split_lock_key(key))


BATCH_RESERVE = 600_000  # the venue's BATCH_ITEM_GAS (500k) before the last item, plus 100k


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class RelayReport:
    credited: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # no quorum yet
    tx_hashes: list[str] = field(default_factory=list)


class RelayService:
    def __init__(self, venue: Any, domain: Domain, sets: LiveSets, store: LockStore,
                 pool: SignaturePool, *, max_batch: int = 40,
                 batch_gas: int = 5_000_000) -> None:
        """``venue`` is a ``chains.evm.venue.VenueClient`` (or anything with its interface);
        ``sets`` the venue registry's live sets: each quorum is verified against the set its
        message names, which must be live (the current one or, in a rotation's grace window,
        the one before it)."""
        self.venue, self.domain, self.sets = venue, domain, sets
        self.store, self.pool, self.max_batch = store, pool, max_batch
        # Batches are sized by gas: about ``batch_gas`` each, from the gas the last batches
        # used per item (a block packs transactions by their limit, so several mid-sized
        # batches in flight fill a block better than one or two large ones).
        self.batch_gas, self._gas_per_item = batch_gas, 250_000
        # The costliest item a receipt has shown (gas over items): once known, a batch goes out
        # with a limit from it instead of the node's estimate, which executes the whole batch
        # once more on the venue chain for every batch the relayer sends.
        self._item_gas_max: int | None = None

    def batch_limit(self, items: int) -> int | None:
        """The gas limit to send ``items`` credits with, or None to ask the node's estimate
        (before any receipt). The costliest item seen plus 15 %, and the reserve the venue
        requires before each item (``BATCH_ITEM_GAS``, 500k) plus 100k for the call itself:
        an item to a fresh position costs more than the average, and the reserve before the
        last item is mostly slack, so a batch is short only if every item costs about a fifth
        more than the costliest yet (then it reverts whole and is sent again with an estimate).
        """
        if self._item_gas_max is None:
            return None
        return items * (self._item_gas_max * 115 // 100) + BATCH_RESERVE

    def batch_items(self) -> int:
        """Items per batch now: ``batch_gas`` over the observed gas per item, 1..max_batch."""
        return max(1, min(self.max_batch, self.batch_gas // max(1, self._gas_per_item)))

    async def stream(self, *, more: Callable[[], bool], poll_s: float = 0.2,
                     max_in_flight: int = 16, blocks_in_flight: float = 1.5,
                     count: int = 2_000) -> RelayReport:
        """Send ready credits as they come, without waiting for earlier batches to be mined.

        Every ``poll_s`` (a fraction of a venue block) what became ready since is taken and
        sent at once while earlier batches are still being mined, so a quorum waits for the
        next block, not for the batches before it (a burst fills blocks back to back). What is
        in flight is bounded by gas, not by count: about ``blocks_in_flight`` venue blocks'
        worth (the block gas limit over the gas the last batches used per item). More than
        that would only queue in the node's mempool behind our own nonces, where a batch
        waits several blocks, gets fee-bumped and replaced for nothing, and cannot take the
        quorums that arrive meanwhile; past the budget, ready items wait in the stream and go
        out as soon as a block frees room. A lock already in flight is never taken again (a
        stream entry of ours that idles while its batch is mined is re-claimed, not re-sent).
        Returns once nothing is ready, nothing is in flight and ``more()`` says no new quorum
        was announced.

        Raises:
            RpcUnavailable, ChainError: a batch failed; raised after every other batch in
                flight has settled and been recorded (its entries stay unacknowledged).
        """
        report = RelayReport()
        in_flight: dict[asyncio.Task[None], set[str]] = {}
        failure: BaseException | None = None
        budget_gas = int(await self.venue.block_gas_limit() * blocks_in_flight)
        while True:
            taken = False
            room = self._room(budget_gas, sum(len(keys) for keys in in_flight.values()))
            if failure is None and len(in_flight) < max_in_flight and (
                    room >= self.batch_items() or not in_flight):
                busy = set().union(*in_flight.values()) if in_flight else set()
                want = room if in_flight else max(room, self.batch_items())
                batches = await self._take(report, count=min(count, want), busy=busy)
                for batch in batches:
                    task = asyncio.create_task(self._submit_acked(batch, report))
                    in_flight[task] = {key for key, _, _ in batch}
                    taken = True
            if not in_flight:
                if failure is not None:
                    raise failure
                if taken:
                    continue
                if more():
                    await asyncio.sleep(0.02)  # announced: take it, without spinning on nudges
                    continue
                return report
            done, _ = await asyncio.wait(in_flight, timeout=poll_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                in_flight.pop(task)
                error = task.exception()
                if error is not None and failure is None:
                    failure = error

    def _room(self, budget_gas: int, items_in_flight: int) -> int:
        """How many more items fit the in-flight gas budget now (at least one batch when
        nothing is in flight, so a budget below one batch never stalls the stream)."""
        per_item = max(1, self._gas_per_item)
        return max(0, budget_gas // per_item - items_in_flight)

    async def _take(self, report: RelayReport, *, count: int,
                    busy: set[str]) -> list[list[tuple[str, Verified, list[str]]]]:
        """What is ready now (skipping locks in ``busy``), verified, in batches to send; the
        entries that need no send are acknowledged and the locks marked attested."""
        entries = self.pool.read_ready(count=count)
        if not entries:
            return []
        await self.sets.refresh()
        by_key: dict[str, list[ReadyEntry]] = {}
        for entry in entries:
            if entry.key not in busy:
                by_key.setdefault(entry.key, []).append(entry)
        ready: list[tuple[str, Verified, list[str]]] = []
        done: list[str] = []
        for key, items in by_key.items():
            ids = [e.entry_id for e in items]
            try:
                split_lock_key(key)
            except AttestationMalformed:
                done += ids  # not a lock key: nothing to relay (settlements use their own path)
                continue
            digests = {e.digest for e in items if e.digest} or set(self.pool.digests(key))
            verified = self._verified(key, digests)
            if verified is None:
                report.waiting.append(key)
                done += ids
            else:
                ready.append((key, verified, ids))
        # A lock the record already shows credited (or held) is not sent again: the venue would
        # only skip it, at a cost in gas.
        finished = {r.key for r in self.store.get_many([k for k, _, _ in ready])
                    if r.state in (LockState.CREDITED, LockState.HELD)}
        done += [i for k, _, ids in ready if k in finished for i in ids]
        report.already += [k for k, _, _ in ready if k in finished]
        ready = [item for item in ready if item[0] not in finished]
        self.pool.ack(done)
        now = _now_ms()
        self.store.advance_many([(key, LockState.ATTESTED, -1, now) for key, _, _ in ready])
        size = self.batch_items()
        return [ready[i:i + size] for i in range(0, len(ready), size)]

    async def release_held(self) -> RelayReport:
        """Credit every held lock whose release time has come (the venue judges, I14)."""
        report = RelayReport()
        for record in self.store.awaiting_credit():
            if record.state == LockState.HELD:
                await self._release_if_due(record.key, record.event.height, report)
        return report

    def _verified(self, key: str, digests: set[str]) -> Verified | None:
        """A verified quorum for lock ``key`` among ``digests``; entries that do not verify are
        discarded (and counted) so a planted label can never hold a lock back. Every other digest
        filed under the same lock (attesters never disagree honestly) is screened too."""
        found = self._first_quorum(key, sorted(digests))
        others = set(self.pool.digests(key)) - digests
        if others:
            self._first_quorum(key, sorted(others), stop=False)
        return found

    def _first_quorum(self, key: str, digests: list[str], *,
                      stop: bool = True) -> Verified | None:
        want = split_lock_key(key)
        found: Verified | None = None
        for dig in digests:
            entries = self.pool.entries(dig)
            if entries is None:
                self.pool.discard_message(dig)
                continue
            message, domain, sigs = entries
            # SECURITY: only messages for our own venue, of the lock they are filed under,
            # under a live set.
            attesters = (self.sets.get(message.attester_set_index)
                         if isinstance(message, LockAttestation) else None)
            if (domain != self.domain or attesters is None
                    or not isinstance(message, LockAttestation)
                    or (message.src_chain_id, message.src_vault, message.lock_id) != want):
                self.pool.discard(dig, list(sigs))
                continue
            screened = screen(message, domain, sigs, attesters, dig=bytes.fromhex(dig[2:]))
            if screened.invalid:
                self.pool.discard(dig, screened.invalid)
                log.warning("pool_entries_discarded", lock=key, digest=dig,
                            labels=list(screened.invalid))
            if found is None and len(screened.valid) >= attesters.threshold:
                found = verify_screened(message, domain, screened, attesters)
                if stop:
                    return found
            elif len(screened.valid) < attesters.threshold:
                self.pool.discard(dig, [])  # re-arm the trigger for the signatures to come
        return found

    async def _submit_acked(self, batch: Sequence[tuple[str, Verified, list[str]]],
                            report: RelayReport) -> None:
        try:
            await self._submit([(k, v) for k, v, _ in batch], report)
        except ChainError as exc:
            if "block gas limit" not in str(exc) or len(batch) == 1:
                raise
            # The chain lowered its gas limit under us: the same credits, in halves.
            half = len(batch) // 2
            log.warning("credit_batch_split", credits=len(batch), reason=str(exc))
            results = await asyncio.gather(self._submit_acked(batch[:half], report),
                                           self._submit_acked(batch[half:], report),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            return
        self.pool.ack([i for _, _, ids in batch for i in ids])

    async def credit_one(self, key: str) -> str:
        """Relay one lock now, whatever its recorded state (operator path, RPL-01).

        Returns ``credited``, ``held`` or ``already-consumed`` (a typed no-op: the venue's
        consumed set already has it). Raises QuorumNotReached without a verified quorum.
        """
        record = self.store.get(key)
        height = record.event.height if record else 0
        await self.sets.refresh()
        verified = self._quorum(key)
        if verified is None:
            status = (await self.venue.lock_credit(venue_lock_key(key))).status
            if status != LockStatus.NONE:
                return self._consumed(key, status, height)
            raise QuorumNotReached(0, self.sets.current.threshold)
        try:
            outcome = await self.venue.credit(verified.message, list(verified.signatures))
        except AlreadyConsumed:
            status = (await self.venue.lock_credit(venue_lock_key(key))).status
            return self._consumed(key, status, height)
        if outcome.queued:
            self.store.advance(key, LockState.HELD, outcome.block_number, _now_ms())
            return "held"
        self.store.advance(key, LockState.CREDITED, outcome.block_number, _now_ms())
        return "credited"

    def _consumed(self, key: str, status: LockStatus, height: int) -> str:
        state = LockState.HELD if status == LockStatus.QUEUED else LockState.CREDITED
        self.store.advance(key, state, height, _now_ms())
        return "already-consumed"

    async def _release_if_due(self, key: str, height: int, report: RelayReport) -> None:
        """A held credit is released once the venue's own clock passes its release time and
        the window has room: the contract judges both (chain time, TIME-01), so a refusal
        here just means "not yet" and the lock stays held."""
        self.store.advance(key, LockState.HELD, height, _now_ms())
        try:
            await self.venue.release_queued(venue_lock_key(key))
        except TxRejected as exc:
            report.queued.append(key)
            log.info("credit_still_held", lock=key, reason=exc.reason)
            return
        self.store.advance(key, LockState.CREDITED, height, _now_ms())
        report.credited.append(key)

    def _quorum(self, key: str) -> Verified | None:
        return self._verified(key, set(self.pool.digests(key)))

    async def _submit(self, batch: Sequence[tuple[str, Verified]], report: RelayReport) -> None:
        by_venue_key = {venue_lock_key(k): (k, v) for k, v in batch}
        items = [(v.message, v.signatures) for _, v in batch]
        limit = self.batch_limit(len(items))
        try:
            outcome = await self.venue.credit_batch(items, gas_limit=limit)
        except TxRejected as exc:
            if limit is None or exc.tx_id is None:
                raise
            # Mined and reverted whole under our own limit (short of gas): nothing of it was
            # consumed; the same credits once more, with the node's estimate.
            log.warning("credit_batch_resent_with_estimate", credits=len(items), limit=limit,
                        tx=exc.tx_id, reason=exc.reason)
            outcome = await self.venue.credit_batch(items)
        report.tx_hashes.append(outcome.tx_hash)
        done = len(outcome.credited) + len(outcome.queued)
        if done and outcome.gas_used:
            self._gas_per_item = (self._gas_per_item + outcome.gas_used // done) // 2
            if done == len(items) >= 5:  # a batch's own overhead weighs little; no skips
                self._item_gas_max = max(self._item_gas_max or 0, outcome.gas_used // done)
        now = _now_ms()
        moves = [(by_venue_key[k][0], LockState.CREDITED, outcome.block_number, now)
                 for k in outcome.credited]
        moves += [(by_venue_key[k][0], LockState.HELD, outcome.block_number, now)
                  for k in outcome.queued]
        self.store.advance_many(moves)
        report.credited += [by_venue_key[k][0] for k in outcome.credited]
        report.queued += [by_venue_key[k][0] for k in outcome.queued]
        for venue_key, reason in outcome.skipped:
            key = by_venue_key[venue_key][0]
            if reason.startswith("AlreadyConsumed"):
                status = (await self.venue.lock_credit(venue_key)).status
                state = LockState.HELD if status == LockStatus.QUEUED else LockState.CREDITED
                self.store.advance(key, state, outcome.block_number, now)
                report.already.append(key)
            elif reason.startswith("AttesterSetNotLive"):
                # Signed under a set whose grace window closed while in flight: not a refusal
                # of the lock. It stays attested; the reconciler re-asks the attesters, who
                # sign under the current set.
                report.skipped.append((key, reason))
                log.warning("credit_set_expired", lock=key, reason=reason, tx=outcome.tx_hash)
            else:
                # Not consumed, not retried blindly: a refusal by the venue (cap, lane, pause of
                # one lane...) waits for an operator; everything else in the batch went through.
                self.store.advance(key, LockState.REFUSED, outcome.block_number, now)
                report.skipped.append((key, reason))
                log.error("credit_refused", lock=key, reason=reason, tx=outcome.tx_hash)
        log.info("relayed", tx=outcome.tx_hash, credited=len(outcome.credited),
                 queued=len(outcome.queued), skipped=len(outcome.skipped))
