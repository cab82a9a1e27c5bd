"""The lifecycle record of one lock (DESIGN §2), pure data and transitions.

``seen -> safe -> finalized`` are driven by the watcher from chain heads; ``attested`` and
``credited`` by the bridge (a quorum in the signature pool; the venue's consumed set). ``dropped`` means the lock
vanished before finality (reorg / abandoned fork); ``orphaned`` means it vanished *after*
finality, an incident that ``bulkhead audit`` reports and nothing silences.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from shared.events import LockEvent

__all__ = ["OPEN_STATES", "LockRecord", "LockState", "Transition", "lock_key"]


class LockState(StrEnum):
    SEEN = "seen"
    SAFE = "safe"
    FINALIZED = "finalized"
    ATTESTED = "attested"  # a quorum of attester signatures is in the pool
    HELD = "held"  # consumed by the venue but queued by a rate limit until its release time
    REFUSED = "refused"  # the venue refused a valid quorum (e.g. above the whole cap): an
    #                      operator decides (raise a limit, then `bulkhead credit --lock`)
    CREDITED = "credited"  # the venue consumed the lock (its consumed set is the record)
    DROPPED = "dropped"
    ORPHANED = "orphaned"



# INVARIANT: the lifecycle only moves forward along these edges (I4).
_NEXT: dict[LockState, frozenset[LockState]] = {
    LockState.SEEN: frozenset({LockState.SAFE, LockState.FINALIZED, LockState.DROPPED}),
    LockState.SAFE: frozenset({LockState.FINALIZED, LockState.DROPPED}),
    LockState.FINALIZED: frozenset({LockState.ATTESTED, LockState.HELD, LockState.CREDITED,
                                    LockState.ORPHANED}),
    LockState.ATTESTED: frozenset({LockState.HELD, LockState.CREDITED, LockState.REFUSED,
                                   LockState.ORPHANED}),
    LockState.REFUSED: frozenset({LockState.HELD, LockState.CREDITED, LockState.ORPHANED}),
    LockState.HELD: frozenset({LockState.CREDITED, LockState.ORPHANED}),
    LockState.CREDITED: frozenset({LockState.ORPHANED}),
    LockState.DROPPED: frozenset(),
    LockState.ORPHANED: frozenset(),
}
OPEN_STATES = frozenset({LockState.SEEN, LockState.SAFE})


def lock_key(event: LockEvent) -> str:
    """The replay key of DESIGN §2.4: ``srcChainId:srcVault:lockId``."""
    return f"{event.chain_id}:{event.vault}:{event.lock_id}"


@dataclass(frozen=True, slots=True)
class Transition:
    """Where and when a lock reached a state: the head height that proved it, host time in ms."""

    state: LockState
    height: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class LockRecord:
    event: LockEvent
    state: LockState
    transitions: tuple[Transition, ...] = field(default=())

    @property
    def key(self) -> str:
        return lock_key(self.event)

    def advanced(self, state: LockState, height: int, at_ms: int) -> LockRecord:
        """Move forward to ``state`` (no-op if already there or past it in the lifecycle)."""
        if state not in _NEXT[self.state]:
            return self
        return replace(self, state=state,
                       transitions=(*self.transitions, Transition(state, height, at_ms)))

    def reached(self, state: LockState) -> Transition | None:
        return next((t for t in self.transitions if t.state == state), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.to_dict(),
            "state": self.state.value,
            "transitions": [
                {"state": t.state.value, "height": t.height, "at_ms": t.at_ms}
                for t in self.transitions
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockRecord:
        return cls(
            event=LockEvent.from_dict(data["event"]),
            state=LockState(data["state"]),
            transitions=tuple(
                Transition(LockState(t["state"]), int(t["height"]), int(t["at_ms"]))
                for t in data["transitions"]
            ),
        )

    @classmethod
    def first_seen(cls, event: LockEvent, at_ms: int) -> LockRecord:
        return cls(event, LockState.SEEN, (Transition(LockState.SEEN, event.height, at_ms),))
