"""The relayer's stream against a real Redis signature pool: a quorum that becomes ready while
an earlier batch is still being mined goes out at once (it does not wait for that batch), a lock
in flight is never sent twice even when its stream entry idles long enough to be re-claimed,
and batches are sized by the gas items used.

The venue here is an in-process stand-in that holds each batch "in the mempool" until the test
mines it (the real venue is exercised by the e2e and benchmark runs); everything else (pool,
quorum verification, stream entries, acknowledgements) is the real code on a real Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eth_account import Account

from bridges.live_sets import LiveSets
from bridges.ports import Posting
from bridges.quorum import AttesterSet
from bridges.relay import RelayService, venue_lock_key
from chains.evm.bridge_codec import lock_key
from chains.evm.venue_base import CreditOutcome
from shared.errors import TxRejected
from shared.lock_store import MemoryLockStore
from shared.messages import Domain, LockAttestation, digest, sign_digest
from workers.stores.pool import RedisSignaturePool

pytestmark = pytest.mark.integration

KEYS = [bytes([i]) * 32 for i in range(1, 5)]
SET = AttesterSet.of(0, [Account.from_key(k).address for k in KEYS], 3)
DOMAIN = Domain(31338, "0x" + "ab" * 20)
VAULT = bytes(12) + bytes.fromhex("cd" * 20)


class SlowVenue:
    """Holds every batch until :meth:`mine` releases it; credits every item."""

    def __init__(self, gas_limit: int = 30_000_000) -> None:
        self.gas_limit = gas_limit
        self.unmined_peak = 0  # most items sent and not yet mined at any moment
        self.sent: list[list[bytes]] = []
        self.pending: list[asyncio.Future[None]] = []
        self.sent_event = asyncio.Event()

    async def credit_batch(self, items: Any, **_: Any) -> CreditOutcome:
        keys = [lock_key(a.src_chain_id, a.src_vault, a.lock_id) for a, _ in items]
        self.sent.append(keys)
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(gate)
        unmined = sum(len(k) for k, g in zip(self.sent, self.pending, strict=True) if not g.done())
        self.unmined_peak = max(self.unmined_peak, unmined)
        self.sent_event.set()
        await gate
        return CreditOutcome(f"0x{len(self.sent):064x}", len(self.sent), 200_000 * len(keys),
                             keys, [], [], [])

    async def block_gas_limit(self) -> int:
        return self.gas_limit

    def mine(self) -> None:
        for gate in self.pending:
            if not gate.done():
                gate.set_result(None)


class EagerPool(RedisSignaturePool):
    """Re-claims entries at once (as if every batch took longer than the idle limit to mine),
    and counts the reads, so a test can wait on the stream having polled again."""

    reads = 0

    def read_ready(self, count: int = 1_000, min_idle_ms: int = 0) -> Any:
        self.reads += 1
        return super().read_ready(count, 0)


def relay_on(venue: Any, pool: RedisSignaturePool, *, batch_gas: int = 5_000_000,
             kind: type[RelayService] = RelayService) -> Any:
    """The real relayer over ``venue`` and the real pool, the test set and a memory store."""
    return kind(venue, DOMAIN, LiveSets.fixed(SET), MemoryLockStore(), pool, max_batch=40,
                batch_gas=batch_gas)


def post_quorum(pool: RedisSignaturePool, nonce: int) -> str:
    """Three of four members sign lock ``nonce``; returns its lock key."""
    att = LockAttestation(
        src_chain_id=31337, src_vault=VAULT, lock_id=nonce.to_bytes(32, "big"),
        owner=bytes(12) + b"\x01" * 20, beneficiary="0x" + "01" * 20, src_asset=bytes(12) + b"\x02" * 20,
        amount=1_000_000, decimals=6, position_key=b"\x03" * 32, attester_set_index=0)
    key = post_key(nonce)
    dig = digest(att, DOMAIN)
    postings = [Posting(key, "0x" + dig.hex(), att, DOMAIN, Account.from_key(k).address,
                        sign_digest(dig, k)) for k in KEYS[:3]]
    assert pool.post_many(postings, SET.threshold) == [key]
    return key


def test_a_quorum_ready_during_a_batch_in_flight_goes_out_without_waiting_for_it(
        redis_url: str) -> None:
    pool = EagerPool(redis_url, consumer="relay:test")
    venue = SlowVenue()
    relay = relay_on(venue, pool)
    assert relay.batch_items() == 20  # 5M over the assumed 250k per item, before any receipt
    first = [post_quorum(pool, n) for n in range(1, 4)]
    announced = {"more": True}

    async def scenario() -> Any:
        streaming = asyncio.create_task(relay.stream(
            more=lambda: announced.pop("more", False), poll_s=0.05))
        await asyncio.wait_for(venue.sent_event.wait(), 10)
        venue.sent_event.clear()
        assert venue.sent == [[venue_lock_key(k) for k in first]]
        # A new quorum while the first batch is still unmined: sent at once, in its own batch.
        late = post_quorum(pool, 4)
        await asyncio.wait_for(venue.sent_event.wait(), 10)
        assert venue.sent[1] == [venue_lock_key(late)]
        assert not any(g.done() for g in venue.pending)  # the first one was still in flight
        # Their entries are re-claimed on every poll while unmined: never sent again, however
        # many polls go by (wait for three more reads of the stream, each re-claiming them).
        polled = pool.reads

        async def polled_again() -> None:
            while pool.reads < polled + 3:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(polled_again(), 10)
        assert len(venue.sent) == 2
        venue.mine()
        return await asyncio.wait_for(streaming, 10)

    try:
        report = asyncio.run(scenario())
        assert sorted(report.credited) == sorted([*first, post_key(4)])
        assert pool.read_ready() == []  # every entry acknowledged
        # The receipts said 200k per item: batches grow toward 5M / 200k = 25 items.
        assert 20 < relay.batch_items() <= 25
    finally:
        pool._redis.flushdb()


def post_key(nonce: int) -> str:
    return f"31337:0x{VAULT.hex()}:0x{nonce.to_bytes(32, 'big').hex()}"


class CountingRelay(RelayService):
    """The real relayer, counting its stream's passes (to wait on one having gone by)."""

    passes = 0

    def _room(self, budget_gas: int, items_in_flight: int) -> int:
        self.passes += 1
        return super()._room(budget_gas, items_in_flight)


def test_what_is_in_flight_is_bounded_by_the_venue_block_gas_and_the_rest_waits_in_the_stream(
        redis_url: str) -> None:
    pool = EagerPool(redis_url, consumer="relay:test")
    # 1.5 blocks of 2M gas: 3M in flight, 12 items at the assumed 250k (4 per 1M batch).
    venue = SlowVenue(gas_limit=2_000_000)
    relay = relay_on(venue, pool, batch_gas=1_000_000, kind=CountingRelay)
    locks = [post_quorum(pool, n) for n in range(1, 31)]

    async def scenario() -> Any:
        streaming = asyncio.create_task(relay.stream(more=lambda: False, poll_s=0.02))
        while sum(map(len, venue.sent)) < 12:
            await asyncio.wait_for(venue.sent_event.wait(), 10)
            venue.sent_event.clear()
        passes = relay.passes

        async def passed_again() -> None:
            while relay.passes < passes + 3:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(passed_again(), 10)
        assert sum(map(len, venue.sent)) == 12  # the other 18 wait in the stream, not the mempool
        while not streaming.done():
            venue.mine()
            await asyncio.sleep(0.01)
        return await streaming

    try:
        report = asyncio.run(scenario())
        assert sorted(report.credited) == sorted(locks)
        assert sorted(k for batch in venue.sent for k in batch) == sorted(
            venue_lock_key(k) for k in locks)  # each sent exactly once
        # After the first receipts (200k per item) the budget is 3M / ~200k = 15 items.
        assert 12 <= venue.unmined_peak <= 15
        assert pool.read_ready() == []
    finally:
        pool._redis.flushdb()


class MeteredVenue:
    """Credits every item at 210k gas each; the first batch sent under the relayer's own limit
    while ``short`` is set reverts whole (as a batch short of gas does on chain)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []
        self.short = False

    async def block_gas_limit(self) -> int:
        return 30_000_000

    async def credit_batch(self, items: Any, *, gas_limit: int | None = None,
                           **_: Any) -> CreditOutcome:
        self.calls.append((len(items), gas_limit))
        if gas_limit is not None and self.short:
            self.short = False
            raise TxRejected("evm-b", "0x" + "ee" * 32, "reverted on chain")
        keys = [lock_key(a.src_chain_id, a.src_vault, a.lock_id) for a, _ in items]
        return CreditOutcome(f"0x{len(self.calls):064x}", len(self.calls), 210_000 * len(keys),
                             keys, [], [], [])


def test_batches_go_out_with_a_limit_from_receipts_and_one_that_reverts_is_resent_estimated(
        redis_url: str) -> None:
    pool = RedisSignaturePool(redis_url, consumer="relay:test")
    venue = MeteredVenue()
    relay = relay_on(venue, pool)
    try:
        first = [post_quorum(pool, n) for n in range(1, 7)]
        report = asyncio.run(relay.stream(more=lambda: False, poll_s=0.02))
        assert sorted(report.credited) == sorted(first)
        assert venue.calls == [(6, None)]  # no receipt yet: the node estimates
        venue.short = True
        second = [post_quorum(pool, n) for n in range(7, 13)]
        report = asyncio.run(relay.stream(more=lambda: False, poll_s=0.02))
        # 6 x (210k + 15 %) + the venue's 500k reserve + 100k; reverted, then estimated.
        assert venue.calls[1:] == [(6, 6 * 241_500 + 600_000), (6, None)]
        assert sorted(report.credited) == sorted(second)
        assert pool.read_ready() == []
    finally:
        pool._redis.flushdb()
