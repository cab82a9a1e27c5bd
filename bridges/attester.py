"""One attester: observe through its own adapters at finality, sign, post to the pool.

# SECURITY: a task only says *where* to look (chain and a height range, or lock keys). This
service signs exactly what its own adapter returns at heights its own view of the chain calls
final, and nothing when a lock is not there (KEY-01: honest attesters never co-sign a fabricated
lock). Decisions use chain heads only, never the host clock (TIME-01).

Attesting is by range (DESIGN §4 "hot paths"): one history read for a whole finalized range,
every lock in it signed at once, and every signature posted in one atomic write that also tells
which locks just reached the threshold (the relayer is nudged only then).

What this attester already signed is decided from its own evidence, never from a label in
Redis: signatures are deterministic (RFC 6979), so the pool holds this attester's signature over
this digest exactly when the bytes under its label equal what it would sign now. Anything else
under its label (junk, a signature over another digest or under a set index that is not live) is
overwritten by a fresh post.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from eth_account.signers.local import LocalAccount

from bridges.live_sets import LiveSets
from bridges.observation import attestation_for
from bridges.ports import Posting, SignaturePool
from bridges.quorum import AttesterSet
from chains.base import ChainAdapter
from chains.finality import final_head
from shared.errors import InputError, NotYetFinal
from shared.events import LockEvent
from shared.locks import lock_key
from shared.messages import Domain, digest, sign_digest
from shared.settings import FinalityPolicy

__all__ = ["AttestRun", "AttesterService", "Observation"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Observation:
    key: str
    digest: str | None  # None: not observed, nothing signed


@dataclass(frozen=True, slots=True)
class AttestRun:
    """What one range (or one set of locks) cost and produced."""

    observations: tuple[Observation, ...]
    posted: int  # signatures written now
    already: int  # own valid signature already in the pool
    ready: tuple[str, ...]  # lock keys that reached the threshold with this write


class AttesterService:
    def __init__(self, name: str, account: LocalAccount, *, sets: LiveSets, venue: Domain,
                 adapters: Mapping[str, ChainAdapter], policies: Mapping[str, FinalityPolicy],
                 pool: SignaturePool, max_block_range: int = 1_000) -> None:
        """``adapters`` read at ``finalized`` commitment through this attester's own endpoints;
        ``sets`` are the venue registry's live sets: this attester signs under the newest one
        it belongs to, and that set's m tells the relayer when to look."""
        self.name, self.account, self.sets = name, account, sets
        self.venue, self.adapters, self.policies, self.pool = venue, adapters, policies, pool
        self.max_block_range = max(1, max_block_range)
        self._final: dict[str, int] = {}
        self._events: OrderedDict[tuple[str, int, int], Sequence[LockEvent]] = OrderedDict()

    @property
    def address(self) -> str:
        return str(self.account.address)

    async def _require_final(self, chain: str, height: int) -> None:
        if height > self._final.get(chain, -1):
            final = await final_head(self.adapters[chain], self.policies[chain])
            self._final[chain] = final.height
            if height > final.height:
                raise NotYetFinal(chain, height, "final for this attester")

    async def observe_range(self, chain: str, start: int, end: int) -> AttestRun:
        """Sign every attributed lock this attester sees in ``start..end`` on ``chain``, final.

        Raises:
            InputError: an empty or oversized range (a payload is input too).
            NotYetFinal: ``end`` is above this attester's final head (retry later).
        """
        if start < 0 or end < start or end - start + 1 > self.max_block_range:
            raise InputError("range", f"{start}..{end} is not a range of 1.."
                             f"{self.max_block_range} heights")
        await self._require_final(chain, end)
        signing = await self._signing_set()
        events = await self._final_events(chain, start, end)
        return self._sign_and_post(chain, [e for e in events if e.attributed], [], signing)

    async def observe_locks(self, chain: str, height: int,
                            keys: Sequence[str]) -> list[Observation]:
        """Sign every lock among ``keys`` this attester sees at ``height``, final (the
        reconciler's targeted re-ask). A key not observed there is refused and logged.

        Raises:
            NotYetFinal: ``height`` is above this attester's final head (retry later).
        """
        await self._require_final(chain, height)
        signing = await self._signing_set()
        observed = {lock_key(e): e for e in await self._final_events(chain, height, height)}
        chosen, refused = [], []
        for key in keys:
            event = observed.get(key)
            if event is None or not event.attributed:
                log.warning("attest_refused_not_observed", attester=self.name, chain=chain,
                            height=height, lock=key)
                refused.append(key)
            else:
                chosen.append(event)
        run = self._sign_and_post(chain, chosen, refused, signing)
        by_key = {o.key: o for o in run.observations}
        return [by_key[k] for k in keys if k in by_key]

    async def _signing_set(self) -> AttesterSet | None:
        """The newest live set of the venue's registry this attester belongs to (None: it is
        in none now, e.g. rotated out and past the grace window: it signs nothing)."""
        await self.sets.refresh()
        signing = self.sets.signing_set(self.address)
        if signing is None:
            log.warning("attester_not_in_live_set", attester=self.name,
                        current=self.sets.current.index)
        return signing

    def _sign_and_post(self, chain: str, events: Sequence[LockEvent], refused: Sequence[str],
                       signing: AttesterSet | None) -> AttestRun:
        if signing is None:
            keys = [*(lock_key(e) for e in events), *refused]
            return AttestRun(tuple(Observation(k, None) for k in keys), 0, 0, ())
        signed = []
        for event in events:
            attestation = attestation_for(event, signing.index)
            dig = digest(attestation, self.venue)
            signed.append((lock_key(event), attestation, dig,
                           sign_digest(dig, self.account.key)))
        existing = self.pool.signatures_of([("0x" + d.hex(), self.address)
                                            for _, _, d, _ in signed])
        postings = [Posting(key, "0x" + dig.hex(), att, self.venue, self.address, sig)
                    for (key, att, dig, sig), have in zip(signed, existing, strict=True)
                    if have != sig]  # INVARIANT: own evidence decides, never a label
        ready = self.pool.post_many(postings, signing.threshold) if postings else []
        observations = [Observation(key, "0x" + dig.hex()) for key, _, dig, _ in signed]
        observations += [Observation(key, None) for key in refused]
        if postings:
            log.info("attested", attester=self.name, chain=chain, posted=len(postings),
                     already=len(signed) - len(postings), ready=len(ready))
        return AttestRun(tuple(observations), len(postings), len(signed) - len(postings),
                         tuple(ready))

    async def _final_events(self, chain: str, start: int, end: int) -> Sequence[LockEvent]:
        """Locks in a range this attester already saw final; a final range never changes, so a
        burst costs one read per range (the last 256 ranges are kept)."""
        cached = self._events.get((chain, start, end))
        if cached is None:
            cached = await self.adapters[chain].lock_events(start, end)
            self._events[(chain, start, end)] = cached
            while len(self._events) > 256:
                self._events.popitem(last=False)
        return cached
