"""One attester: observe through its own adapters at finality, sign, post to the pool.

# SECURITY: a task only says *where* to look (chain, height, lock key). This service signs
exactly what its own adapter returns at a height its own view of the chain calls final, and
nothing when the lock is not there (KEY-01: honest attesters never co-sign a fabricated lock).
Decisions use chain heads only, never the host clock (TIME-01).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from eth_account.signers.local import LocalAccount

from bridges.observation import attestation_for
from bridges.ports import SignaturePool
from chains.base import ChainAdapter
from chains.finality import final_head
from shared.errors import NotYetFinal
from shared.events import LockEvent
from shared.locks import lock_key
from shared.messages import Domain, sign
from shared.settings import FinalityPolicy

__all__ = ["AttesterService", "Observation"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Observation:
    key: str
    digest: str | None  # None: not observed, nothing signed


class AttesterService:
    def __init__(self, name: str, account: LocalAccount, *, set_index: int, venue: Domain,
                 adapters: Mapping[str, ChainAdapter], policies: Mapping[str, FinalityPolicy],
                 pool: SignaturePool) -> None:
        """``adapters`` read at ``finalized`` commitment through this attester's own endpoints."""
        self.name, self.account, self.set_index = name, account, set_index
        self.venue, self.adapters, self.policies, self.pool = venue, adapters, policies, pool
        self._final: dict[str, int] = {}
        self._events: OrderedDict[tuple[str, int], Sequence[LockEvent]] = OrderedDict()

    @property
    def address(self) -> str:
        return str(self.account.address)

    async def observe_lock(self, chain: str, height: int, key: str) -> Observation:
        """Sign the lock ``key`` if this attester sees it at ``height`` on ``chain``, final."""
        return (await self.observe_locks(chain, height, [key]))[0]

    async def observe_locks(self, chain: str, height: int,
                            keys: Sequence[str]) -> list[Observation]:
        """Sign every lock among ``keys`` this attester sees at ``height``, final: one head
        read and one history read per height, however many locks landed there. A lock this
        attester already signed costs one Redis read.

        Raises:
            NotYetFinal: ``height`` is above this attester's final head (retry later).
        """
        if height > self._final.get(chain, -1):
            final = await final_head(self.adapters[chain], self.policies[chain])
            self._final[chain] = final.height
            if height > final.height:
                raise NotYetFinal(chain, height, "final for this attester")
        observed = {lock_key(e): e for e in await self._final_events(chain, height)}
        out = []
        for key in keys:
            if self.address.lower() in self.pool.signers(key):
                out.append(Observation(key, "already-signed"))
                continue
            event = observed.get(key)
            if event is None or not event.attributed:
                log.warning("attest_refused_not_observed", attester=self.name, chain=chain,
                            height=height, lock=key)
                out.append(Observation(key, None))
                continue
            attestation = attestation_for(event, self.set_index)
            signature = sign(attestation, self.venue, self.account.key)
            dig = self.pool.post(key, attestation, self.venue, self.address, signature)
            log.info("attested", attester=self.name, chain=chain, lock=key, digest=dig)
            out.append(Observation(key, dig))
        return out

    async def _final_events(self, chain: str, height: int) -> Sequence[LockEvent]:
        """Locks at a height this attester already saw final; a final height never changes, so
        a burst of locks in one block costs one read (kept for the last 256 heights)."""
        cached = self._events.get((chain, height))
        if cached is None:
            cached = await self.adapters[chain].lock_events(height, height)
            self._events[(chain, height)] = cached
            while len(self._events) > 256:
                self._events.popitem(last=False)
        return cached
