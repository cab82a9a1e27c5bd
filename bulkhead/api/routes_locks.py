"""``/api/v1/locks``, ``/api/v1/locks/{key}``, ``/api/v1/pipeline`` and
``/api/v1/attestations``: the bridge's work in progress, read from Redis (I/O).

Handlers are plain ``def``: the Redis client is synchronous, so FastAPI runs them in its
thread pool and the event loop keeps serving chain reads meanwhile. Rows are built by
``bulkhead.cli.views.lock_row``, the same function behind ``bulkhead locks --json``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from bridges.quorum import default_threshold
from bulkhead.api.deps import ApiState, get_state
from bulkhead.api.paging import CursorKey, paginate
from bulkhead.api.params import (
    AttestationsQuery,
    LocksQuery,
    owner_matches,
    refuse,
    resolve_chain,
    single_valued,
)
from bulkhead.api.rows import pipeline_counts
from bulkhead.api.schemas import AttestationPage, ErrorBody, LockItem, LockPage, Pipeline
from bulkhead.cli import views
from shared.errors import InputError
from shared.locks import LockRecord, LockState

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["locks"], dependencies=[Depends(single_valued)],
                   responses={503: {"model": ErrorBody, "description": "Redis unreachable"}})
State = Annotated[ApiState, Depends(get_state)]

IN_FLIGHT = frozenset({LockState.FINALIZED, LockState.ATTESTED, LockState.HELD,
                       LockState.REFUSED})
NOT_SIGNABLE = frozenset({LockState.SEEN, LockState.SAFE, LockState.DROPPED})
LOCK_KEY = r"^[0-9]{1,20}:0x[0-9a-fA-F]{64}:0x[0-9a-fA-F]{64}$"


def newest_first(record: LockRecord) -> CursorKey:
    return (record.transitions[0].at_ms if record.transitions else 0, record.key)


def _need(state: ApiState) -> int:
    a = state.settings.attesters
    return a.threshold or default_threshold(len(a.members))


def lock_rows(state: ApiState, records: list[LockRecord]) -> list[dict[str, Any]]:
    """``views.lock_row`` for each record, with settlements and in-flight signature counts."""
    settled = views.settled_by_lock(state.settlements.all()) if records else {}
    need = _need(state)
    return [views.lock_row(r, settled=settled.get(r.key),
                           signatures=(len(state.pool.signers(r.key)), need)
                           if r.state in IN_FLIGHT else None)
            for r in records]


def _matches(record: LockRecord, q: LocksQuery | AttestationsQuery, chain: str | None) -> bool:
    e = record.event
    owner = q.owner if isinstance(q, LocksQuery) else None
    return ((chain is None or e.chain == chain)
            and (q.state is None or record.state == q.state)
            and (q.position is None or e.position_key.lower() == q.position)
            and (owner is None or owner_matches(owner, e.owner, e.beneficiary)))


def _filtered(state: ApiState, q: LocksQuery | AttestationsQuery) -> list[LockRecord]:
    chain = resolve_chain(state.settings, q.chain) if q.chain else None
    records = [r for r in state.store.all_records() if _matches(r, q, chain)]
    return sorted(records, key=newest_first, reverse=True)


@router.get("/locks", response_model=LockPage, summary="Locks, newest first")
def list_locks(q: Annotated[LocksQuery, Query()], state: State) -> dict[str, Any]:
    """Every lock the watchers saw, with its lifecycle state and the heights and times it got
    there. ``owner`` matches the beneficiary on the venue or the owner on the source chain."""
    page = paginate(_filtered(state, q), newest_first, limit=q.limit, cursor=q.after(),
                    offset=q.offset)
    return {"items": lock_rows(state, page.items), "next": page.next}


@router.get("/locks/{key}", response_model=LockItem, summary="One lock",
            responses={404: {"model": ErrorBody, "description": "No such lock"}})
def get_lock(key: Annotated[str, Path(pattern=LOCK_KEY,
                                      description="<chain id>:0x<vault>:0x<lock id>")],
             state: State) -> dict[str, Any]:
    from orchestrator.actions.collateral import parse_lock_key

    try:
        chain_id, vault, lock_id = parse_lock_key(key)
    except InputError as exc:
        raise refuse("path", "key", str(exc)) from exc
    canonical = f"{chain_id}:0x{vault.hex()}:0x{lock_id.hex()}"
    record = state.store.get(canonical)
    if record is None:
        raise HTTPException(404, f"no lock {canonical}")
    return lock_rows(state, [record])[0]


@router.get("/pipeline", response_model=Pipeline, summary="Locks per lifecycle state")
def pipeline(state: State) -> dict[str, Any]:
    return pipeline_counts(state.store.all_records())


@router.get("/attestations", response_model=AttestationPage, summary="Signatures per lock")
def list_attestations(q: Annotated[AttestationsQuery, Query()], state: State) -> dict[str, Any]:
    """For every attributed lock past finality: which attesters signed (from the signature
    pool) and how many are needed (m of the configured set)."""
    records = [r for r in _filtered(state, q)
               if r.event.attributed and r.state not in NOT_SIGNABLE]
    page = paginate(records, newest_first, limit=q.limit, cursor=q.after(), offset=q.offset)
    names = {m.address.lower(): m.name for m in state.settings.attesters.members}
    need = _need(state)
    items = []
    for r in page.items:
        # SECURITY: a quorum is m signatures over ONE digest; signers of conflicting digests
        # are listed but never add up.
        candidates = state.pool.candidates(r.key)
        best = max((len(sigs) for _, _, sigs in candidates), default=0)
        signers = sorted({s for _, _, sigs in candidates for s in sigs})
        items.append({"key": r.key, "chain": r.event.chain, "state": r.state.value,
                      "position_key": r.event.position_key, "have": best,
                      "need": need, "quorum": best >= need,
                      "signers": [{"address": s, "name": names.get(s.lower())} for s in signers],
                      "digests": len(candidates)})
    return {"items": items, "next": page.next}
