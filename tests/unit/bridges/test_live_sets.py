"""The live attester sets of one registry as workers see them: current and grace-window sets,
the set an attester signs under, caching and KEY-02 on a set read from the chain. Pure (the
registry is an in-memory double of the two views a registry client offers)."""

from __future__ import annotations

import asyncio

import pytest
from eth_account import Account

from bridges.live_sets import LiveSets
from bridges.quorum import AttesterSet
from shared.errors import ConfigError

A, B, C, D, E = (Account.from_key(bytes([i]) * 32).address for i in range(1, 6))


class Registry:
    """Numbered sets; ``live`` says whether the previous set is still in its grace window."""

    def __init__(self) -> None:
        self.sets: list[tuple[list[str], int]] = [([A, B, C, D], 3)]
        self.previous_live = True
        self.reads = 0

    async def current_attester_set(self) -> tuple[int, list[str], int]:
        self.reads += 1
        members, threshold = self.sets[-1]
        return len(self.sets) - 1, sorted(members, key=str.lower), threshold

    async def attester_set_at(self, index: int) -> tuple[list[str], int, int, bool]:
        members, threshold = self.sets[index]
        live = index == len(self.sets) - 1 or (index == len(self.sets) - 2
                                                and self.previous_live)
        return sorted(members, key=str.lower), threshold, 0, live


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def refreshed(sets: LiveSets, *, force: bool = False) -> LiveSets:
    asyncio.run(sets.refresh(force=force))
    return sets


def test_a_rotation_is_followed_within_the_ttl_and_the_old_set_counts_during_its_grace() -> None:
    registry, clock = Registry(), Clock()
    sets = refreshed(LiveSets(registry, ttl_s=3.0, clock=clock))
    assert sets.current.index == 0 and sets.get(1) is None
    assert sets.signing_set(D) == sets.get(0)

    registry.sets.append(([A, B, C, E], 3))  # D replaced by E
    clock.now = 2.0
    refreshed(sets)
    assert registry.reads == 1 and sets.current.index == 0  # cached: not re-read yet
    clock.now = 3.5
    refreshed(sets)
    assert registry.reads == 2 and sets.current.index == 1
    assert sets.get(0) is not None and sets.get(1) is not None  # old set in its grace window
    assert sets.signing_set(A) is sets.get(1)  # members of both sign under the newest
    assert sets.signing_set(D) is sets.get(0)  # the leaving member still counts, old index
    assert sets.signing_set(E) is sets.get(1)

    registry.previous_live = False  # the grace window closed
    refreshed(sets, force=True)
    assert sets.get(0) is None and sets.signing_set(D) is None
    assert sets.current.members == tuple(sorted([A, B, C, E], key=str.lower))


def test_fixed_view_never_reads_and_refuses_current_before_refresh() -> None:
    one = AttesterSet.of(7, [A, B, C, D], 3)
    fixed = refreshed(LiveSets.fixed(one))
    assert fixed.current is one and fixed.get(7) is one and fixed.get(6) is None
    with pytest.raises(RuntimeError, match="before refresh"):
        _ = LiveSets(Registry()).current


def test_key_02_a_set_on_chain_run_by_too_few_operators_is_refused() -> None:
    """Two members run by one operator cannot make a quorum of 3 of 4 on their own: the
    operators come from the settings' roster, by address."""
    registry = Registry()
    ops = {A: "acme", B: "acme", C: "acme", D: "other"}
    with pytest.raises(ConfigError, match="operators"):
        refreshed(LiveSets(registry, operators=ops))
    # Unknown members count as their own operators.
    assert refreshed(LiveSets(registry, operators={A: "acme"})).current.threshold == 3
