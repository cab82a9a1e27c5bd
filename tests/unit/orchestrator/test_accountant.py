"""The accountant's pure rule and one pass over in-memory ports (ACCT-01, I1; DESIGN §2.7):
a lane whose venue credit outgrows its vault is paused once, a resumed lane is paused again only
for a larger deficit or a new orphan, and a failed pause is tried again next pass."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from chains.testing import FakeChain, make_event
from orchestrator.venues.lanes import Lane, LaneBook, orphaned_credits
from orchestrator.watch.accountant import Accountant, MemoryAccountantState, decide
from shared.lock_store import archive_key
from shared.locks import LockRecord, LockState, Transition

VAULT = "0x" + "11" * 20
ASSET = "0x" + "33" * 20


def book(held: int, outstanding: int, *, paused: bool = False, ceiling: int = 10**12,
         orphans: tuple[tuple[str, int], ...] = ()) -> LaneBook:
    lane = Lane("evm-a", 31337, VAULT, bytes(12) + b"\x11" * 20, "USDC",
                bytes(12) + b"\x33" * 20, 6)
    return LaneBook(lane, held, outstanding, ceiling, paused, orphans)


# ----- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(("held", "outstanding", "ack", "acted", "orphans", "breach"), [
    pytest.param(100, 100, 0, (), (), False, id="exactly-backed"),
    pytest.param(150, 100, 0, (), (), False, id="over-backed"),
    pytest.param(100, 101, 0, (), (), True, id="one-unit-short"),
    pytest.param(100, 130, 30, (), (), False, id="deficit-already-acknowledged"),
    pytest.param(100, 131, 30, (), (), True, id="deficit-grew-past-acknowledged"),
    pytest.param(100, 100, 0, (), (("k~t", 5),), True, id="fresh-orphaned-credit"),
    pytest.param(100, 100, 0, ("k~t",), (("k~t", 5),), False, id="orphan-already-acted-on"),
    pytest.param(100, 100, 0, ("k~t",), (("k~t", 5), ("j~u", 7)), True, id="second-orphan"),
])
def test_decide(held: int, outstanding: int, ack: int, acted: tuple[str, ...],
                orphans: tuple[tuple[str, int], ...], breach: bool) -> None:
    found = decide(book(held, outstanding, orphans=orphans), ack, acted)
    assert (found is not None) == breach
    if found is not None:
        assert set(found.new_orphans) == {oid for oid, _ in orphans} - set(acted)


def test_breach_reason_names_the_figures() -> None:
    found = decide(book(1_000_000_000, 1_000_000_001), 0, ())
    assert found is not None
    assert "1000000001" in found.reason and "1000000000" in found.reason
    assert "deficit 1" in found.reason


@pytest.mark.parametrize(("held", "outstanding", "ceiling", "paused", "headroom"), [
    (100, 40, 1_000, False, 60),  # the vault binds
    (10_000, 40, 100, False, 60),  # the ceiling binds
    (100, 140, 1_000, False, 0),  # in deficit: no room, never negative
    (100, 40, 1_000, True, 0),  # paused: no room
])
def test_headroom_is_the_tighter_bound(held: int, outstanding: int, ceiling: int, paused: bool,
                                       headroom: int) -> None:
    lane = book(held, outstanding, ceiling=ceiling, paused=paused)
    assert lane.headroom == headroom
    assert lane.deficit == max(0, outstanding - held)


def test_only_orphans_that_were_credited_count() -> None:
    credited = make_event("evm-a", 1, 5_000_000, height=3, block_hash="0xaa")
    finalized = make_event("evm-a", 2, 7_000_000, height=3, block_hash="0xaa")
    records = [
        LockRecord(credited, LockState.ORPHANED, (Transition(LockState.SEEN, 3, 1),
                                                  Transition(LockState.CREDITED, 9, 2),
                                                  Transition(LockState.ORPHANED, 20, 3))),
        LockRecord(finalized, LockState.ORPHANED, (Transition(LockState.SEEN, 3, 1),
                                                   Transition(LockState.ORPHANED, 20, 3))),
    ]
    found = orphaned_credits(records)
    assert found == {("evm-a", credited.vault.lower(), credited.asset.lower()):
                     [(archive_key(records[0]), 5_000_000)]}


# ----- one pass over ports ----------------------------------------------------------------


class Venue:
    """The lane as the venue sees it: what it credited, whether it is paused, who paused it."""

    def __init__(self, held: int, outstanding: int) -> None:
        self.held, self.outstanding, self.paused = held, outstanding, False
        self.pauses: list[str] = []
        self.fail_next = False
        self.orphans: tuple[tuple[str, int], ...] = ()

    async def read(self) -> list[LaneBook]:
        return [book(self.held, self.outstanding, paused=self.paused, orphans=self.orphans)]

    async def pause(self, lane: LaneBook, reason: str) -> str:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("rpc down")
        self.paused = True
        self.pauses.append(reason)
        return f"0x{len(self.pauses):064x}"


def run_pass(accountant: Accountant, now_ms: int = 1) -> Any:
    return asyncio.run(accountant.run(now_ms))


def test_a_breaching_lane_is_paused_once_and_published() -> None:
    venue, state = Venue(held=1_000, outstanding=1_000), MemoryAccountantState()
    accountant = Accountant(venue.read, venue.pause, state)
    assert run_pass(accountant).acted == [] and venue.pauses == []

    venue.outstanding = 1_500  # fabricated credits land
    result = run_pass(accountant, 2)
    assert len(venue.pauses) == 1 and venue.paused
    [(breach, tx)] = result.acted
    assert tx is not None and breach.book.deficit == 500
    assert state.acknowledged() == {"evm-a:" + VAULT + ":USDC": 500}
    assert state.books[0].outstanding == 1_500

    run_pass(accountant, 3)  # the same deficit, already paused: nothing new
    assert len(venue.pauses) == 1


def test_a_resumed_lane_is_paused_again_only_for_a_larger_deficit() -> None:
    venue, state = Venue(held=1_000, outstanding=1_200), MemoryAccountantState()
    accountant = Accountant(venue.read, venue.pause, state)
    run_pass(accountant)
    venue.paused = False  # the owner accepts the loss and resumes
    run_pass(accountant)
    assert len(venue.pauses) == 1 and not venue.paused
    venue.outstanding = 1_201
    run_pass(accountant)
    assert len(venue.pauses) == 2 and venue.paused


def test_a_made_good_deficit_is_forgotten_so_the_next_one_counts() -> None:
    venue, state = Venue(held=1_000, outstanding=1_200), MemoryAccountantState()
    accountant = Accountant(venue.read, venue.pause, state)
    run_pass(accountant)
    venue.paused, venue.held = False, 1_200  # the loss is made up, the lane resumed
    run_pass(accountant)
    assert state.acknowledged() == {}
    venue.outstanding = 1_250  # a smaller breach than the first is still a breach
    run_pass(accountant)
    assert len(venue.pauses) == 2


def test_a_failed_pause_is_not_remembered_and_is_tried_next_pass() -> None:
    venue, state = Venue(held=1_000, outstanding=1_300), MemoryAccountantState()
    venue.fail_next = True
    accountant = Accountant(venue.read, venue.pause, state)
    with pytest.raises(RuntimeError):
        run_pass(accountant)
    assert state.acknowledged() == {} and not venue.paused
    run_pass(accountant)
    assert venue.paused and len(venue.pauses) == 1


def test_an_orphaned_credit_pauses_even_a_backed_lane_once() -> None:
    venue, state = Venue(held=2_000, outstanding=1_000), MemoryAccountantState()
    venue.orphans = (("k~0xab", 11),)
    accountant = Accountant(venue.read, venue.pause, state)
    run_pass(accountant)
    assert venue.paused and "k~0xab" in venue.pauses[0]
    venue.paused = False
    run_pass(accountant)
    assert len(venue.pauses) == 1 and state.acted_orphans() == {"k~0xab"}


# ----- the fake chain's vault balance ------------------------------------------------------


def test_fake_chain_vault_balance_sums_canonical_locks_of_that_asset() -> None:
    chain = FakeChain("fake")
    e1, e2 = make_event("fake", 1, 5), make_event("fake", 2, 7)
    other = replace(make_event("fake", 3, 100), asset="0x" + "00" * 12 + "99" * 20)
    chain.mine(e1, other)
    chain.mine(e2)
    # The vault and asset as 20-byte addresses or as bytes32: the same lane.
    assert asyncio.run(chain.vault_balance(VAULT, ASSET)) == 12
    assert asyncio.run(chain.vault_balance(e1.vault, e1.asset)) == 12
