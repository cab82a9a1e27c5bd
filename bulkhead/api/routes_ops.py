"""``/api/v1/deadletters`` and ``/api/v1/operations``: what the workers refused or could not
finish, and the counters an operator watches (discarded pool entries, sending decisions,
worker heartbeats). Read-only; requeue and drop are ``bulkhead deadletters`` commands."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from bulkhead.api.deps import ApiState, get_state
from workers.liveness import alive_workers, expected_workers
from workers.stores import keys
from workers.stores.deadletters import RedisDeadLetters

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["operations"])


def _letters(state: ApiState, limit: int) -> dict[str, Any]:
    if state.redis is None:
        return {"items": [], "total": 0, "counts": {}}
    store = RedisDeadLetters(state.redis)  # type: ignore[arg-type]
    letters = store.all()
    return {"items": [asdict(letter) for letter in letters[:limit]], "total": len(letters),
            "counts": store.counts()}


@router.get("/deadletters", summary="Dead letters, newest first")
async def deadletters(state: Annotated[ApiState, Depends(get_state)],
                      limit: Annotated[int, Query(ge=1, le=1_000)] = 100) -> dict[str, Any]:
    return await run_in_threadpool(_letters, state, limit)


def _operations(state: ApiState) -> dict[str, Any]:
    if state.redis is None:
        return {"deadletters": 0, "pool_discarded": 0, "tx_events": {}, "workers": []}
    alive = alive_workers(state.redis)  # type: ignore[arg-type]
    raw = state.redis.hgetall(keys.tx_events())
    return {"deadletters": RedisDeadLetters(state.redis).size(),  # type: ignore[arg-type]
            "pool_discarded": int(state.redis.get(keys.discarded()) or 0),
            "tx_events": {(k.decode() if isinstance(k, bytes) else k): int(v)
                          for k, v in raw.items()},
            "workers": [{"worker": w, "alive": w in alive}
                        for w in expected_workers(state.settings)]}


@router.get("/operations", summary="Dead letters held, discarded pool entries, sending "
            "decisions and worker heartbeats")
async def operations(state: Annotated[ApiState, Depends(get_state)]) -> dict[str, Any]:
    return await run_in_threadpool(_operations, state)
