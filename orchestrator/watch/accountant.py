"""The accountant: per lane, what the source vault holds against what the venue credited, kept
continuously, and a lane paused the moment it breaks (DESIGN §2.7, I1; fault ACCT-01).

A lane is one (source chain, vault, asset). The venue's ``outstanding`` for it is what it
credited (queued credits included) minus what it asked back (releases and seizures); the vault
must hold at least that much, because every credit is backed by a lock the vault measured and
every payout of the vault was first taken off ``outstanding``. So on a healthy lane
``held >= outstanding`` at every block. A *deficit* (``outstanding - held > 0``) means credits
the vault does not back: a quorum of compromised or buggy attesters, or a lock that vanished
after finality. Either way the lane is paused on the venue at once through a narrow pauser
role (it can pause one lane and nothing else; only the owner resumes), and an error-level
``lane_breach`` line names the lane, the figures and why.

Read order matters: ``held`` is read before ``outstanding``. A lock mined after the ``held``
read cannot be credited before the ``outstanding`` read (a credit needs the lock final, many
blocks later), while a payout between two reads taken the other way round would show a deficit
that is not there.

Resuming is the owner's call. The accountant remembers the deficit it paused a lane for and
each orphan it acted on, so a lane the owner resumes (having made up the loss, or accepted it)
is paused again only when its deficit grows past the acknowledged one or a new orphan appears.

The loss an attacker holding m attester keys can take is then bounded by what lands on the
venue between two accountant passes (plus the pause transaction's block), not by the lane's
static ceiling; credits above the governor's large-transfer threshold are queued, and a paused
lane releases no queued credit.

:func:`decide` is the pure rule; :class:`Accountant` runs one pass over its ports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from orchestrator.venues.lanes import LaneBook

__all__ = [
    "Accountant",
    "AccountantState",
    "Breach",
    "MemoryAccountantState",
    "PassResult",
    "decide",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Breach:
    book: LaneBook
    reason: str
    new_orphans: tuple[str, ...] = ()


def decide(book: LaneBook, acknowledged: int, acted_orphans: Iterable[str]) -> Breach | None:
    """The breach to act on for ``book``, or None.

    ``acknowledged`` is the deficit a pause already covered; ``acted_orphans`` the orphan ids
    a pause already covered. A deficit beyond the acknowledged one, or an orphaned credit not
    yet acted on, is a breach."""
    acted = set(acted_orphans)
    fresh = tuple(oid for oid, _ in book.orphans if oid not in acted)
    if book.deficit > acknowledged:
        return Breach(book, f"I1: venue credited {book.outstanding} but the vault holds "
                            f"{book.held} (deficit {book.deficit})", fresh)
    if fresh:
        amount = sum(a for oid, a in book.orphans if oid in fresh)
        return Breach(book, f"credited lock(s) {', '.join(fresh)} of {amount} vanished after "
                            "finality (orphaned)", fresh)
    return None


class AccountantState(Protocol):
    """What the accountant remembers between passes (Redis in the workers)."""

    def acknowledged(self) -> Mapping[str, int]:
        """lane id -> deficit already paused for."""
        ...

    def acted_orphans(self) -> set[str]: ...

    def record(self, lane_id: str, deficit: int, orphans: Sequence[str]) -> None:
        """Remember a pause for ``deficit`` (0 clears) and the orphans it covered."""
        ...

    def publish(self, books: Sequence[LaneBook], at_ms: int) -> None:
        """Keep the last pass's books for the metrics and the CLI."""
        ...


@dataclass
class MemoryAccountantState:
    """In-process state (unit tests, one-shot CLI checks)."""

    acks: dict[str, int] = field(default_factory=dict)
    orphans: set[str] = field(default_factory=set)
    books: list[LaneBook] = field(default_factory=list)

    def acknowledged(self) -> Mapping[str, int]:
        return dict(self.acks)

    def acted_orphans(self) -> set[str]:
        return set(self.orphans)

    def record(self, lane_id: str, deficit: int, orphans: Sequence[str]) -> None:
        if deficit:
            self.acks[lane_id] = deficit
        else:
            self.acks.pop(lane_id, None)
        self.orphans.update(orphans)

    def publish(self, books: Sequence[LaneBook], at_ms: int) -> None:
        self.books = list(books)


@dataclass(frozen=True, slots=True)
class PassResult:
    books: list[LaneBook]
    # Each breach with the pause transaction (None: the lane was already paused).
    acted: list[tuple[Breach, str | None]]


LaneReader = Callable[[], Awaitable[Sequence[LaneBook]]]
LanePauser = Callable[[LaneBook, str], Awaitable[str]]


class Accountant:
    """One pass: read every lane, pause each that breaks (once), remember what it did."""

    def __init__(self, read_lanes: LaneReader, pause_lane: LanePauser,
                 state: AccountantState) -> None:
        """``read_lanes`` returns each registered lane's book; ``pause_lane`` pauses one on the
        venue and returns the transaction id."""
        self.read_lanes, self.pause_lane, self.state = read_lanes, pause_lane, state

    async def run(self, now_ms: int) -> PassResult:
        books = list(await self.read_lanes())
        acks, acted_orphans = self.state.acknowledged(), self.state.acted_orphans()
        acted: list[tuple[Breach, str | None]] = []
        for book in books:
            known = acks.get(book.lane_id, 0)
            breach = decide(book, known, acted_orphans)
            if breach is None:
                if book.deficit == 0 and known:
                    self.state.record(book.lane_id, 0, ())  # made good: the next one counts
                continue
            tx = None if book.paused else await self.pause_lane(book, breach.reason)
            # Remembered only once the pause stands (or stood already): a failed pause is
            # tried again next pass.
            self.state.record(book.lane_id, max(book.deficit, known), breach.new_orphans)
            log.error("lane_breach", lane=book.lane_id, held=book.held,
                      outstanding=book.outstanding, deficit=book.deficit, reason=breach.reason,
                      paused_now=tx is not None, tx=tx)
            acted.append((breach, tx))
        self.state.publish(books, now_ms)
        return PassResult(books, acted)
