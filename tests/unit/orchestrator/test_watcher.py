"""Watcher rules on FakeChain: lifecycle by heads, bounded ranges, reorg rewind, store loss."""

import asyncio

import pytest

from chains.testing import FakeChain, make_event
from orchestrator.watch.watcher import Watcher
from shared.lock_store import MemoryLockStore
from shared.locks import LockState
from shared.settings import FinalityPolicy

TAG = FinalityPolicy(mode="tag")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def states(store: MemoryLockStore) -> dict[int, LockState]:
    return {r.event.nonce: r.state for r in store.all_records()}  # type: ignore[misc]


def make(chain: FakeChain, policy: FinalityPolicy = TAG,
         **kw: int) -> tuple[Watcher, MemoryLockStore]:
    store = MemoryLockStore()
    return Watcher(chain, store, policy, start_height=1, **kw), store


def test_lock_moves_seen_safe_finalized_with_heights() -> None:
    chain = FakeChain(safe_lag=2, final_lag=4)
    watcher, store = make(chain)
    h = chain.mine(make_event("fake", 1, 100))
    run(watcher.poll())
    assert list(states(store)) == [1]  # found (already safe: safe == readable here)
    chain.mine(), chain.mine()
    run(watcher.poll())
    assert states(store) == {1: LockState.SAFE}
    chain.mine(), chain.mine()
    report = run(watcher.poll())
    record = store.all_records()[0]
    assert record.state == LockState.FINALIZED and report.final == h
    assert [t.state for t in record.transitions] == [LockState.SEEN, LockState.SAFE,
                                                     LockState.FINALIZED]
    assert record.reached(LockState.SEEN).height == h  # type: ignore[union-attr]
    assert record.reached(LockState.FINALIZED).height == h  # type: ignore[union-attr]


def test_confirmations_policy() -> None:
    chain = FakeChain(safe_lag=100, final_lag=100)
    watcher, store = make(chain, FinalityPolicy(mode="confirmations", confirmations=3))
    chain.mine(make_event("fake", 1, 5))
    for _ in range(2):
        chain.mine()
        run(watcher.poll())
        assert list(states(store)) == [1]  # found (already safe: safe == readable here)
    chain.mine()
    run(watcher.poll())
    assert states(store) == {1: LockState.FINALIZED}


def test_bounded_ranges_find_every_lock_once() -> None:
    chain = FakeChain()
    for n in range(1, 31):
        chain.mine(make_event("fake", n, n))
    watcher, store = make(chain, max_block_range=7, max_ranges_per_poll=100)
    report = run(watcher.poll())
    assert sorted(states(store)) == list(range(1, 31))
    assert len(report.new) == 30
    scans = [c for c in chain.calls if c[0] != c[1]]
    assert all(end - start < 7 for start, end in scans)
    assert run(watcher.poll()).new == []


def test_poll_is_bounded_per_call_and_resumes() -> None:
    chain = FakeChain()
    for n in range(1, 21):
        chain.mine(make_event("fake", n, n))
    watcher, store = make(chain, max_block_range=5, max_ranges_per_poll=2)
    first = run(watcher.poll())
    assert first.cursor == 10 and not first.caught_up
    run(watcher.poll())
    assert len(store.all_records()) == 20


def test_reorg_before_finality_drops_and_rescans() -> None:
    """SRC-02 on the fake: a lock reorged out before finality is dropped, never finalized."""
    chain = FakeChain(safe_lag=2, final_lag=4)
    watcher, store = make(chain)
    chain.mine()
    run(watcher.poll())
    gone = chain.mine(make_event("fake", 1, 100))
    run(watcher.poll())
    chain.mine()
    run(watcher.poll())
    chain.reorg(gone, fork_tag="b")
    chain.mine(make_event("fake", 2, 7))
    for _ in range(6):
        chain.mine()
    report = run(watcher.poll())
    assert report.reorg_to == gone - 1
    assert states(store) == {1: LockState.DROPPED, 2: LockState.FINALIZED}


def test_reorg_past_every_remembered_hash_rescans_from_start() -> None:
    chain = FakeChain(safe_lag=50, final_lag=50)
    watcher, store = make(chain)
    chain.mine(make_event("fake", 1, 100))
    chain.mine()
    run(watcher.poll())  # one range: only height 2's hash is remembered
    chain.reorg(1, fork_tag="b")
    chain.mine(make_event("fake", 2, 5))
    chain.mine()
    report = run(watcher.poll())
    assert report.reorg_to == 0
    assert states(store) == {1: LockState.DROPPED, 2: LockState.SEEN}


def test_same_lock_id_on_the_new_fork_is_seen_again() -> None:
    chain = FakeChain()
    watcher, store = make(chain)
    h = chain.mine(make_event("fake", 1, 100))
    run(watcher.poll())
    chain.reorg(h, fork_tag="b")
    chain.mine()
    chain.mine(make_event("fake", 1, 90))
    run(watcher.poll())
    (record,) = store.all_records()
    assert record.state == LockState.SEEN and record.event.amount == 90


def test_store_loss_rebuilds_from_the_chain() -> None:
    chain = FakeChain()
    for n in range(1, 6):
        chain.mine(make_event("fake", n, n))
    for _ in range(5):
        chain.mine()
    watcher, store = make(chain)
    run(watcher.poll())
    before = states(store)
    fresh = MemoryLockStore()
    rebuilt = Watcher(chain, fresh, TAG, start_height=1)
    run(rebuilt.poll())
    assert states(fresh) == before == {n: LockState.FINALIZED for n in range(1, 6)}


@pytest.mark.parametrize("polls", [1, 3])
def test_repeated_polls_are_idempotent(polls: int) -> None:
    chain = FakeChain()
    chain.mine(make_event("fake", 1, 1))
    watcher, store = make(chain)
    for _ in range(polls):
        run(watcher.poll())
    assert len(store.all_records()) == 1


def test_scan_stops_where_history_reads_stop() -> None:
    """On Solana history is readable only up to ``confirmed``: a lock in the newest slot must
    not be passed by the cursor before it becomes readable (it would be lost for good)."""
    chain = FakeChain(history_lag=1)
    watcher, store = make(chain)
    chain.mine()
    run(watcher.poll())
    chain.mine(make_event("fake", 1, 100))  # newest height: not yet in readable history
    report = run(watcher.poll())
    assert report.cursor == chain.latest - 1 and states(store) == {}
    chain.mine()
    run(watcher.poll())
    assert list(states(store)) == [1]  # found (already safe: safe == readable here)


def test_reorg_01_a_lock_vanished_after_finality_is_orphaned_and_its_id_kept_apart() -> None:
    """REORG-01 on the fake: a finalized (then credited) lock whose block is replaced by a
    fork without it becomes orphaned; a new lock reusing its id is a record of its own."""
    chain = FakeChain(safe_lag=2, final_lag=4)
    watcher, store = make(chain, orphan_recheck_ms=0)
    gone = chain.mine(make_event("fake", 1, 100))
    for _ in range(5):
        chain.mine()
    run(watcher.poll())
    (record,) = store.all_records()
    assert record.state == LockState.FINALIZED
    store.advance(record.key, LockState.CREDITED, gone + 6, 1)
    chain.reorg(gone, fork_tag="deep")  # past finality: an incident
    reused = chain.mine(make_event("fake", 1, 55))  # same nonce, another transaction
    for _ in range(5):
        chain.mine()
    report = run(watcher.poll())
    assert report.orphaned == [record.key]
    report = run(watcher.poll())
    rows = sorted((r.state, r.event.amount, r.event.height) for r in store.all_records())
    assert (LockState.ORPHANED, 100, gone) in rows
    assert any(state != LockState.ORPHANED and amount == 55 and height == reused
               for state, amount, height in rows), rows
    assert len(rows) == 2


class ResetUnderScan(MemoryLockStore):
    """A store that is wiped (a FLUSHALL, RT-04) right after the scan recorded its first range:
    records gone, a new epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.generation, self.resets_left = 0, 1

    def epoch(self) -> str:
        return str(self.generation)

    def put(self, records):  # type: ignore[no-untyped-def]
        super().put(records)
        if self.resets_left and self._records:
            self.resets_left -= 1
            self.__init__()  # type: ignore[misc]
            self.generation, self.resets_left = 1, 0

    def set_cursor(self, chain: str, height: int, *, epoch: str | None = None) -> bool:
        if epoch is not None and epoch != self.epoch():
            return False
        return super().set_cursor(chain, height)


def test_rt_04_a_reset_under_a_scan_does_not_let_the_cursor_pass_lost_records() -> None:
    chain = FakeChain()
    chain.mine(make_event("fake", 1, 100))
    store = ResetUnderScan()
    watcher = Watcher(chain, store, TAG, start_height=1)
    report = run(watcher.poll())
    assert store.all_records() == [] and store.cursor("fake") is None  # not passed
    assert report.cursor < chain.latest
    run(watcher.poll())
    assert list(states(store)) == [1]  # the next poll found it again
    assert store.cursor("fake") == chain.latest
