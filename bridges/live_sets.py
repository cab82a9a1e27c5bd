"""The attester sets one registry accepts now, read from the chain.

A registry (the venue for credits, each EVM vault for settlements) accepts its current set
and, during a rotation's grace window, the set before it (``isAttesterSetLive``). Attesters
sign under the newest live set they belong to and relayers verify each quorum against the set
its message names, so a rotation needs no restart and no settings change: work signed under
the old set before the window closes still lands, and what is signed after it is signed under
the new set (the reconciler re-asks anything the window cut off).

The view is cached for ``ttl_s`` of host time: a rotation is seen within that much time, which
is far inside any grace window an operator may choose (``GRACE_S`` in
``orchestrator.actions.attesters``). The chain judges liveness again on every credit and
settlement; this view only avoids signing or sending what it would refuse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

from bridges.quorum import AttesterSet

__all__ = ["LiveSets", "SetReader"]


class SetReader(Protocol):
    """What a registry client offers (``chains.evm.contract.ContractClient``)."""

    async def current_attester_set(self) -> tuple[int, list[str], int]: ...

    async def attester_set_at(self, index: int) -> tuple[list[str], int, int, bool]: ...


class LiveSets:
    def __init__(self, reader: SetReader | None, *, operators: Mapping[str, str] | None = None,
                 ttl_s: float = 3.0, clock: Callable[[], float] = time.monotonic,
                 fixed: AttesterSet | None = None) -> None:
        """``operators``: member address (any case) -> who runs it, from the settings' roster
        (a member the roster does not know counts as its own operator, KEY-02)."""
        self._reader, self._ttl, self._clock = reader, ttl_s, clock
        self._operators = {a.lower(): o for a, o in (operators or {}).items()}
        self._sets: dict[int, AttesterSet] = {} if fixed is None else {fixed.index: fixed}
        self._current = -1 if fixed is None else fixed.index
        self._read_at: float | None = None

    @classmethod
    def fixed(cls, attesters: AttesterSet) -> LiveSets:
        """A view that never changes (one set, no registry): for offline tools and tests."""
        return cls(None, fixed=attesters)

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read the registry if the cached view is older than ``ttl_s`` (or ``force``).

        Raises: ChainError (e.g. NoAttesterSet), RpcUnavailable, ConfigError (the chain holds
        a set this process refuses to trust, KEY-02).
        """
        if self._reader is None:
            return
        now = self._clock()
        if not force and self._read_at is not None and now - self._read_at < self._ttl:
            return
        index, members, threshold = await self._reader.current_attester_set()
        sets = {index: self._of(index, members, threshold)}
        if index > 0:
            old, old_threshold, _grace_end, live = await self._reader.attester_set_at(index - 1)
            if live:
                sets[index - 1] = self._of(index - 1, old, old_threshold)
        self._sets, self._current, self._read_at = sets, index, now

    def _of(self, index: int, members: list[str], threshold: int) -> AttesterSet:
        return AttesterSet.of(index, members, threshold,
                              [self._operators.get(m.lower(), m.lower()) for m in members])

    @property
    def current(self) -> AttesterSet:
        """The registry's newest set (call :meth:`refresh` first)."""
        if self._current not in self._sets:
            raise RuntimeError("LiveSets.current read before refresh()")
        return self._sets[self._current]

    def get(self, index: int) -> AttesterSet | None:
        """Set ``index`` if the registry accepts it now, else None."""
        return self._sets.get(index)

    def signing_set(self, address: str) -> AttesterSet | None:
        """The newest live set ``address`` belongs to (None: it belongs to none, so it must not
        sign: its signature could never count)."""
        for index in sorted(self._sets, reverse=True):
            if self._sets[index].contains(address):
                return self._sets[index]
        return None
