"""``/api/v1/marks``: the venue's marks and every source behind them (I/O).

Read through the state's venue cache interval like the other venue reads, so the dashboard,
``/metrics`` and API clients polling together cost one coherent read of the oracle per
interval.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from bulkhead.api.deps import ApiState, get_state
from bulkhead.api.params import single_valued
from bulkhead.api.schemas import ErrorBody, MarkList

__all__ = ["marks_now", "router"]

router = APIRouter(prefix="/api/v1", tags=["chains and venue"],
                   dependencies=[Depends(single_valued)],
                   responses={503: {"model": ErrorBody,
                                    "description": "The venue chain could not be read"}})


async def marks_now(state: ApiState) -> list[dict[str, Any]]:
    """Every mark row (``rows.mark_row``), shared for ``venue_ttl_s``."""
    if state.marks is None:
        raise HTTPException(503, f"no venue configured on {state.settings.venue_chain}")
    return await state.cache("marks", state.options.venue_ttl_s).get(  # type: ignore[no-any-return]
        state.marks.rows)


@router.get("/marks", response_model=MarkList, summary="Marks and their sources")
async def marks(state: Annotated[ApiState, Depends(get_state)]) -> dict[str, Any]:
    """Per oracle name: the mark for a user action and for a liquidation (null when fewer
    sources are valid than the minimum: the venue refuses that class of operation), and each
    source's normalised price, age on the chain's clock and verdict for both max ages."""
    return {"items": await marks_now(state)}
