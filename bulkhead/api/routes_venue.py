"""``/api/v1/chains``, ``/api/v1/positions`` and ``/api/v1/liquidations`` (I/O).

Chain heads and venue reads are shared through the state's short caches, so the dashboard,
``/metrics`` and ``/readyz`` polling together cost one round of RPC calls per interval.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from bulkhead.api.deps import ApiState, get_state
from bulkhead.api.paging import CursorKey, paginate
from bulkhead.api.params import LiquidationsQuery, PositionsQuery, single_valued
from bulkhead.api.readers import chain_rows
from bulkhead.api.rows import api_position_row, liquidation_rows
from bulkhead.api.schemas import ChainList, ErrorBody, LiquidationPage, PositionPage
from shared.locks import LockState

__all__ = ["chains_now", "liquidations_now", "positions_now", "router"]

router = APIRouter(prefix="/api/v1", tags=["chains and venue"],
                   dependencies=[Depends(single_valued)],
                   responses={503: {"model": ErrorBody,
                                    "description": "A chain or Redis could not be read"}})
State = Annotated[ApiState, Depends(get_state)]


async def chains_now(state: ApiState) -> list[dict[str, Any]]:
    return await state.cache("heads", state.options.heads_ttl_s).get(  # type: ignore[no-any-return]
        lambda: chain_rows(state.settings, state.adapters, state.options.read_timeout_s))


def _venue(state: ApiState) -> Any:
    if state.venue is None:
        raise HTTPException(503, f"no venue configured on {state.settings.venue_chain}")
    return state.venue


async def positions_now(state: ApiState) -> list[dict[str, Any]]:
    """Every open position backed by credited collateral (as ``bulkhead positions``), with its
    owner: the beneficiary its locks name, which is who may trade it on the venue."""
    venue = _venue(state)

    async def compute() -> list[dict[str, Any]]:
        records = await run_in_threadpool(state.store.all_records)
        owners: dict[str, str] = {}
        for r in records:
            if r.state == LockState.CREDITED:
                owners.setdefault(r.event.position_key.lower(), r.event.beneficiary)
        rows = await venue.position_rows([bytes.fromhex(k[2:]) for k in sorted(owners)])
        return [api_position_row(row, owners.get(str(row["position"]).lower())) for row in rows]

    return await state.cache("positions", state.options.venue_ttl_s).get(  # type: ignore[no-any-return]
        compute)


async def liquidations_now(state: ApiState) -> list[dict[str, Any]]:
    venue = _venue(state)

    async def compute() -> list[dict[str, Any]]:
        events, final_height = await venue.risk_events()
        return liquidation_rows(events, final_height)

    return await state.cache("liquidations", state.options.venue_ttl_s).get(  # type: ignore[no-any-return]
        compute)


@router.get("/chains", response_model=ChainList, summary="Heads and finality lag per chain")
async def chains(state: State) -> dict[str, Any]:
    """``latest``, ``safe`` and ``finalized`` heights (finalized under the chain's own policy)
    and ``lag = latest - finalized``; an unreachable chain has ``reachable: false`` and an
    ``error``, never a guessed height."""
    return {"items": await chains_now(state)}


def _by_position(row: dict[str, Any]) -> CursorKey:
    return (str(row["position"]),)


@router.get("/positions", response_model=PositionPage, summary="Open positions and margins")
async def positions(q: Annotated[PositionsQuery, Query()], state: State) -> dict[str, Any]:
    """Equity, initial and maintenance margin (the volatility buffer apart), margin ratio,
    liquidation and bankruptcy prices. ``owner`` is the position's owner on the venue."""
    rows = await positions_now(state)
    if q.owner is not None:
        owner: str | None = q.owner.lower()
        if len(q.owner) == 66:  # a 32-byte id: venue owners are EVM addresses, left-padded
            owner = "0x" + q.owner[26:] if q.owner[2:26] == "0" * 24 else None
        rows = [r for r in rows if owner is not None and (r["owner"] or "").lower() == owner]
    if q.liquidatable is not None:
        rows = [r for r in rows if r["liquidatable"] is q.liquidatable]
    rows = sorted(rows, key=_by_position, reverse=True)
    page = paginate(rows, _by_position, limit=q.limit, cursor=q.after(), offset=q.offset)
    return {"items": page.items, "next": page.next}


def _newest(row: dict[str, Any]) -> CursorKey:
    return (int(row["height"]), int(row["log_index"]))


@router.get("/liquidations", response_model=LiquidationPage, summary="Liquidations, newest first")
async def liquidations(q: Annotated[LiquidationsQuery, Query()], state: State) -> dict[str, Any]:
    """The venue's ``Liquidated`` events, each with the ``Shortfall`` (loss beyond the
    position's collateral, taken from the insurance fund) of the same transaction."""
    rows = await liquidations_now(state)
    if q.position is not None:
        rows = [r for r in rows if r["position"] == q.position]
    page = paginate(rows, _newest, limit=q.limit, cursor=q.after(), offset=q.offset)
    return {"items": page.items, "next": page.next}
