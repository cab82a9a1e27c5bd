"""The invariants of DESIGN §6 as pure rules over what the chains say (``bulkhead audit``).

No I/O: :mod:`orchestrator.audit.collect` reads the chains into an :class:`AuditInput`, and each
``check_*`` function returns the :class:`Violation` s of one invariant. The chains are the
record; the lock store is consulted only for I12 (what we told users must match the chains),
and a store that lost records is not a violation.

Every lock is named by the store's key ``<srcChainId>:<srcVault>:<lockId>`` (bytes32 hex),
the human form of the venue's replay key. Amounts are ``int`` source base units.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from shared.events import LockEvent
from shared.locks import LockRecord, LockState, lock_key

__all__ = [
    "INVARIANTS",
    "WINDOW_S",
    "AttesterIndexSample",
    "AuditInput",
    "AuditReport",
    "ChainHead",
    "CreditQueuedRow",
    "CreditedRow",
    "ExecutedSettlement",
    "QueuedReleaseRow",
    "RateCap",
    "SettlementRequestRow",
    "Violation",
    "audit",
    "check_at_most_once",
    "check_authenticity",
    "check_conservation",
    "check_durability",
    "check_finality",
    "check_monotonicity",
    "check_rate_limits",
    "key_of",
    "summarize",
]

WINDOW_S = 86_400  # the venue's governor: fixed windows aligned to whole days of block.timestamp
Lane = tuple[int, str, str]  # (src chain id, vault, asset), bytes32 hex


@dataclass(frozen=True, slots=True, order=True)
class Violation:
    invariant: str  # "I1" ... "I12"
    subject: str  # the lock key, settlement id, lane or contract concerned
    detail: str

    def line(self) -> str:
        return f"{self.invariant} {self.subject}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ChainHead:
    chain: str  # settings key
    chain_id: int
    final_height: int
    latest_height: int


@dataclass(frozen=True, slots=True)
class CreditedRow:
    """A venue ``Credited`` event; ``owner`` is the venue's ``lockCredit(key).srcOwner``."""

    key: str
    asset: str
    amount: int
    position_key: str
    beneficiary: str
    height: int
    timestamp: int
    tx_id: str
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class CreditQueuedRow:
    key: str
    venue_key: str  # keccak replay key, the join to QueuedCreditReleased
    asset: str
    amount: int
    position_key: str
    height: int
    timestamp: int
    tx_id: str
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class QueuedReleaseRow:
    venue_key: str
    amount: int
    height: int
    timestamp: int
    tx_id: str


@dataclass(frozen=True, slots=True)
class SettlementRequestRow:
    settlement_id: str
    key: str
    amount: int
    kind: int
    height: int


@dataclass(frozen=True, slots=True)
class ExecutedSettlement:
    """A ``Settled`` event of an EVM vault, or a Solana vault debit carrying the settle memo."""

    chain: str
    settlement_id: str
    key: str
    amount: int
    kind: int
    height: int
    tx_id: str


@dataclass(frozen=True, slots=True)
class AttesterIndexSample:
    """One ``AttesterSetRotated`` (``rotation``) or the current index read at ``height``."""

    contract: str  # e.g. "evm-b:venue"
    height: int
    order: int  # log index; current-index samples sort after the block's logs
    index: int
    rotation: bool


@dataclass(frozen=True, slots=True)
class RateCap:
    """The governor cap of (src chain id, asset) in effect from chain time ``since_ts``."""

    src_chain_id: int
    asset: str
    cap: int
    since_ts: int


@dataclass(frozen=True, slots=True)
class AuditInput:
    venue_chain_id: int
    venue: str  # venue address
    heads: Sequence[ChainHead]
    locks: Sequence[LockEvent]
    credited: Sequence[CreditedRow] = ()
    queued: Sequence[CreditQueuedRow] = ()
    released: Sequence[QueuedReleaseRow] = ()
    requests: Sequence[SettlementRequestRow] = ()
    executed: Sequence[ExecutedSettlement] = ()
    attester_indices: Sequence[AttesterIndexSample] = ()
    caps: Sequence[RateCap] = ()
    records: Sequence[LockRecord] = ()
    store_checked: bool = True

    def locks_by_key(self) -> dict[str, LockEvent]:
        return {lock_key(e): e for e in self.locks}

    def consumed(self) -> list[CreditedRow | CreditQueuedRow]:
        """Every venue event that consumed a lock's replay key (credited now or queued)."""
        return [*self.credited, *self.queued]

    def head_by_chain_id(self) -> dict[int, ChainHead]:
        return {h.chain_id: h for h in self.heads}


def key_of(src_chain_id: int, vault: str, lock_id: str) -> str:
    """The store's lock key for a (chain id, vault, lock id) given as bytes32 hex."""
    return f"{src_chain_id}:{vault.lower()}:{lock_id.lower()}"


def _chain_id(key: str) -> int:
    return int(key.split(":", 1)[0])


def _lane_of_key(key: str, asset: str) -> Lane:
    chain_id, vault, _ = key.split(":")
    return int(chain_id), vault, asset


def _credit_items(inp: AuditInput) -> list[tuple[str, str, int, int, int]]:
    """Every credit that reached a position: (key, asset, amount, height, timestamp).

    A ``QueuedCreditReleased`` takes its lock and lane from the ``CreditQueued`` it releases.
    """
    queued = {q.venue_key: q for q in inp.queued}
    items = [(c.key, c.asset, c.amount, c.height, c.timestamp) for c in inp.credited]
    for r in inp.released:
        q = queued.get(r.venue_key)
        key, asset = (q.key, q.asset) if q else (f"venue-key {r.venue_key}", "?")
        items.append((key, asset, r.amount, r.height, r.timestamp))
    return items


# ----- I1 conservation ------------------------------------------------------------------------


def check_conservation(inp: AuditInput) -> list[Violation]:
    """I1, per (source chain, vault, asset): credited - requested back <= locked - settled.

    credited = Credited + QueuedCreditReleased amounts; requested back = the venue's
    SettlementRequested amounts (they lower the venue's credit); locked = measured attributed
    lock amounts; settled = settlements executed on the source chain (released + seized).
    Per lock, settlements executed never exceed the lock's amount.
    """
    locks = inp.locks_by_key()
    asset_of: dict[str, str] = {k: e.asset for k, e in locks.items()}
    asset_of.update({q.key: q.asset for q in inp.queued})
    asset_of.update({c.key: c.asset for c in inp.credited})
    net: dict[Lane, int] = defaultdict(int)
    backing: dict[Lane, int] = defaultdict(int)
    for e in inp.locks:
        if e.attributed:
            backing[(e.chain_id, e.vault, e.asset)] += e.amount
    for key, asset, amount, _, _ in _credit_items(inp):
        if ":" in key:
            net[_lane_of_key(key, asset)] += amount
    for r in inp.requests:
        net[_lane_of_key(r.key, asset_of.get(r.key, "?"))] -= r.amount
    settled_per_lock: dict[str, int] = defaultdict(int)
    for s in inp.executed:
        backing[_lane_of_key(s.key, asset_of.get(s.key, "?"))] -= s.amount
        settled_per_lock[s.key] += s.amount
    out = [Violation("I1", f"{c}:{v}:{a}", f"outstanding credit {net[(c, v, a)]} > backing "
                     f"{backing[(c, v, a)]} (locked - released - seized)")
           for (c, v, a) in sorted(net) if net[(c, v, a)] > backing[(c, v, a)]]
    for key, total in sorted(settled_per_lock.items()):
        amount = locks[key].amount if key in locks else 0
        if total > amount:
            out.append(Violation("I1", key, f"settlements executed {total} > lock amount {amount}"))
    return out


# ----- I2 at-most-once ------------------------------------------------------------------------


def check_at_most_once(inp: AuditInput) -> list[Violation]:
    """I2: one Credited, one CreditQueued, one QueuedCreditReleased per lock key at most, never
    Credited and CreditQueued both, credits of one key never above its lock's amount; every
    settlement id requested and executed at most once."""
    out: list[Violation] = []
    credited = Counter(c.key for c in inp.credited)
    queued = Counter(q.key for q in inp.queued)
    released = Counter(r.venue_key for r in inp.released)
    for name, counts in (("Credited", credited), ("CreditQueued", queued),
                         ("QueuedCreditReleased", released)):
        out += [Violation("I2", k, f"{n} {name} events") for k, n in sorted(counts.items())
                if n > 1]
    out += [Violation("I2", k, "both Credited and CreditQueued") for k in sorted(credited)
            if k in queued]
    locks = inp.locks_by_key()
    total: dict[str, int] = defaultdict(int)
    for key, _, amount, _, _ in _credit_items(inp):
        total[key] += amount
    out += [Violation("I2", k, f"credited {t} > lock amount {locks[k].amount}")
            for k, t in sorted(total.items()) if k in locks and t > locks[k].amount]
    for name, ids in (("requested", [r.settlement_id for r in inp.requests]),
                      ("executed", [s.settlement_id for s in inp.executed])):
        out += [Violation("I2", sid, f"settlement {name} {n} times")
                for sid, n in sorted(Counter(ids).items()) if n > 1]
    return out


# ----- I3 authenticity ------------------------------------------------------------------------


def _mismatches(lock: LockEvent, row: CreditedRow | CreditQueuedRow,
                inp: AuditInput) -> list[str]:
    want: list[tuple[str, Any, Any]] = [
        ("amount", row.amount, lock.amount),
        ("asset", row.asset.lower(), lock.asset.lower()),
        ("position_key", row.position_key.lower(), lock.position_key.lower()),
        ("dst_chain_id", inp.venue_chain_id, lock.dst_chain_id),
        ("dst_venue", inp.venue.lower(), lock.dst_venue.lower()),
    ]
    if isinstance(row, CreditedRow):
        want.append(("beneficiary", row.beneficiary.lower(), lock.beneficiary.lower()))
    if row.owner is not None:
        want.append(("owner", row.owner.lower(), lock.owner.lower()))
    diffs = [f"{name} venue={got} chain={expected}" for name, got, expected in want
             if got != expected]
    if not lock.attributed:
        diffs.append(f"lock is unattributed ({lock.unattributed_reason})")
    return diffs


def check_authenticity(inp: AuditInput) -> list[Violation]:
    """I3: every consumed lock key (Credited or CreditQueued) is a real, attributed lock on its
    source chain with the same amount, asset, position key, owner, beneficiary and destination;
    every executed settlement was requested by the venue for that lock, amount and kind."""
    locks = inp.locks_by_key()
    out: list[Violation] = []
    for row in inp.consumed():
        lock = locks.get(row.key)
        if lock is None:
            out.append(Violation("I3", row.key, f"consumed in {row.tx_id} but no such lock on "
                                 "its source chain"))
            continue
        out += [Violation("I3", row.key, d) for d in _mismatches(lock, row, inp)]
    requests = {r.settlement_id: r for r in inp.requests}
    for s in inp.executed:
        r = requests.get(s.settlement_id)
        if r is None:
            out.append(Violation("I3", s.settlement_id, f"executed on {s.chain} in {s.tx_id} "
                                 "but never requested by the venue"))
        elif (r.key, r.amount, r.kind) != (s.key, s.amount, s.kind):
            out.append(Violation("I3", s.settlement_id, f"executed {s.key} {s.amount} kind "
                                 f"{s.kind}; requested {r.key} {r.amount} kind {r.kind}"))
    return out


# ----- I4 monotonicity ------------------------------------------------------------------------


def check_monotonicity(inp: AuditInput) -> list[Violation]:
    """I4: per EVM vault, lock nonces strictly increase in chain order (a jump means the scan
    missed a lock); per contract, attester-set indices never decrease and each rotation
    installs a new index."""
    out: list[Violation] = []
    by_vault: dict[tuple[str, str], list[LockEvent]] = defaultdict(list)
    for e in inp.locks:
        if e.nonce is not None:
            by_vault[(e.chain, e.vault)].append(e)
    for (chain, vault), events in sorted(by_vault.items()):
        events.sort(key=lambda e: (e.height, e.log_index))
        for prev, cur in pairwise(events):
            assert prev.nonce is not None and cur.nonce is not None
            if cur.nonce <= prev.nonce:
                out.append(Violation("I4", f"{chain}:{vault}", f"nonce {cur.nonce} at height "
                                     f"{cur.height} after nonce {prev.nonce}"))
            elif cur.nonce != prev.nonce + 1:
                out.append(Violation("I4", f"{chain}:{vault}", f"nonce jumps {prev.nonce} -> "
                                     f"{cur.nonce}: a lock is missing from the scan"))
    by_contract: dict[str, list[AttesterIndexSample]] = defaultdict(list)
    for s in inp.attester_indices:
        by_contract[s.contract].append(s)
    for contract, samples in sorted(by_contract.items()):
        samples.sort(key=lambda s: (s.height, s.order))
        for before, after in pairwise(samples):
            if after.index < before.index or (after.rotation and after.index == before.index):
                out.append(Violation("I4", contract, f"attester set index {after.index} at "
                                     f"height {after.height} after {before.index}"))
    return out


# ----- I5 finality ----------------------------------------------------------------------------


def check_finality(inp: AuditInput) -> list[Violation]:
    """I5: the lock behind every consumed key is on its source chain now, at or below that
    chain's final head (a credit above it was signed below the finality policy)."""
    locks, heads = inp.locks_by_key(), inp.head_by_chain_id()
    out: list[Violation] = []
    for row in inp.consumed():
        lock = locks.get(row.key)
        head = heads.get(_chain_id(row.key))
        if head is None:
            out.append(Violation("I5", row.key, "source chain is not configured"))
        elif lock is None:
            out.append(Violation("I5", row.key, f"credited, but the lock is not on "
                                 f"{head.chain} (reorged out after credit, or never there)"))
        elif lock.height > head.final_height:
            out.append(Violation("I5", row.key, f"lock at height {lock.height} is above "
                                 f"{head.chain}'s final head {head.final_height}"))
    return out


# ----- I11 rate limits ------------------------------------------------------------------------


def _cap_at(caps: Sequence[RateCap], ts: int) -> int | None:
    live = [c for c in caps if c.since_ts <= ts]
    return max(live, key=lambda c: c.since_ts).cap if live else None


def check_rate_limits(inp: AuditInput) -> list[Violation]:
    """I11, per (src chain, asset) and fixed window ``[t - t % 1 day, + 1 day)`` of the venue
    chain's block time: the running sum of credits (Credited + QueuedCreditReleased) never
    exceeds the cap in effect at each credit, exactly as the venue's governor counts."""
    caps: dict[tuple[int, str], list[RateCap]] = defaultdict(list)
    for c in inp.caps:
        caps[(c.src_chain_id, c.asset.lower())].append(c)
    used: dict[tuple[int, str, int], int] = defaultdict(int)
    out: list[Violation] = []
    reported: set[tuple[int, str, int]] = set()
    for key, asset, amount, _, ts in sorted(_credit_items(inp), key=lambda i: (i[3], i[4])):
        if ":" not in key:
            continue
        window = (_chain_id(key), asset.lower(), ts - ts % WINDOW_S)
        used[window] += amount
        cap = _cap_at(caps[window[:2]], ts)
        if window in reported or (cap is not None and used[window] <= cap):
            continue
        reported.add(window)
        limit = "no rate limit configured" if cap is None else f"cap {cap}"
        out.append(Violation("I11", f"{window[0]}:{window[1]}", f"window starting "
                             f"{window[2]}: credited {used[window]} > {limit} (at {key})"))
    return out


# ----- I12 durability -------------------------------------------------------------------------

_ON_CHAIN_CLAIMS = frozenset({LockState.FINALIZED, LockState.ATTESTED, LockState.HELD,
                              LockState.CREDITED})


def check_durability(inp: AuditInput) -> list[Violation]:
    """I12: every claim the store makes to users holds on the chains, and no lock vanished after
    finality (an ``orphaned`` record is reported). ``credited`` -> credited on the venue; ``held`` -> queued there; ``finalized``/``attested``/``held``/``credited`` ->
    the lock is on its chain at the recorded height and amount, at or below the final head.
    Records the store lost are not violations: the chains are the record."""
    locks = inp.locks_by_key()
    heads = {h.chain: h for h in inp.heads}
    credited = {k for k, *_ in _credit_items(inp)}
    queued = {q.key for q in inp.queued}
    out: list[Violation] = []
    for record in inp.records:
        key, e = record.key, record.event
        if record.state == LockState.ORPHANED:
            # An incident, never silent (DESIGN §2.3): the watcher saw it vanish after finality.
            out.append(Violation("I12", key, f"orphaned: the lock (tx {e.tx_id}) vanished from "
                                 f"{e.chain} after finality"))
            continue
        if record.state == LockState.CREDITED and key not in credited:
            out.append(Violation("I12", key, "store says credited; the venue has no credit"))
        if record.state == LockState.HELD and key not in queued:
            out.append(Violation("I12", key, "store says held; the venue never queued it"))
        if record.state not in _ON_CHAIN_CLAIMS:
            continue
        lock, head = locks.get(key), heads.get(e.chain)
        if lock is None:
            out.append(Violation("I12", key, f"store says {record.state}; no such lock on "
                                 f"{e.chain}"))
        elif (lock.height, lock.amount) != (e.height, e.amount):
            out.append(Violation("I12", key, f"store says height {e.height} amount {e.amount}; "
                                 f"chain has {lock.height} / {lock.amount}"))
        elif head is not None and lock.height > head.final_height:
            out.append(Violation("I12", key, f"store says {record.state}; lock height "
                                 f"{lock.height} is above the final head {head.final_height}"))
    return out


# ----- all of them ----------------------------------------------------------------------------

INVARIANTS: Mapping[str, Callable[[AuditInput], list[Violation]]] = {
    "I1": check_conservation,
    "I2": check_at_most_once,
    "I3": check_authenticity,
    "I4": check_monotonicity,
    "I5": check_finality,
    "I11": check_rate_limits,
    "I12": check_durability,
}


def audit(inp: AuditInput) -> list[Violation]:
    """Every invariant's violations, in invariant order."""
    return [v for check in INVARIANTS.values() for v in check(inp)]


@dataclass(frozen=True, slots=True)
class AuditReport:
    violations: list[Violation]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "summary": self.summary,
                "violations": [{"invariant": v.invariant, "subject": v.subject,
                                "detail": v.detail} for v in self.violations]}


def _checked(inp: AuditInput, consumed: int) -> dict[str, int]:
    credits = len(_credit_items(inp))
    return {"I1": len({(e.chain_id, e.vault, e.asset) for e in inp.locks}),
            "I2": consumed + len(inp.executed), "I3": consumed + len(inp.executed),
            "I4": len(inp.locks) + len(inp.attester_indices), "I5": consumed,
            "I11": credits, "I12": len(inp.records)}


def summarize(inp: AuditInput, violations: Iterable[Violation]) -> dict[str, Any]:
    """Counts per invariant (items checked, violations) and per chain, for the report."""
    found = Counter(v.invariant for v in violations)
    consumed = len({r.key for r in inp.consumed()})
    per_inv = {inv: {"checked": n, "violations": found.get(inv, 0)}
               for inv, n in _checked(inp, consumed).items()}
    ids = {h.chain_id: h.chain for h in inp.heads}
    chains: dict[str, dict[str, int]] = {
        h.chain: {"locks": 0, "credits": 0, "queued": 0, "settlements": 0,
                  "final_height": h.final_height, "latest_height": h.latest_height}
        for h in inp.heads}
    for e in inp.locks:
        chains[e.chain]["locks"] += 1
    for rows, name in ((inp.credited, "credits"), (inp.queued, "queued")):
        for row in rows:
            if (chain := ids.get(_chain_id(row.key))) is not None:
                chains[chain][name] += 1
    for s in inp.executed:
        if s.chain in chains:
            chains[s.chain]["settlements"] += 1
    return {"invariants": per_inv, "chains": chains, "locks": len(inp.locks),
            "credits": len(_credit_items(inp)), "queued": len(inp.queued),
            "settlements_requested": len(inp.requests), "settlements_executed": len(inp.executed),
            "store_records": len(inp.records), "store_checked": inp.store_checked,
            "violations": sum(found.values())}
