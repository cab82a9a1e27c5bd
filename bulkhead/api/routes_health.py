"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer, in time).

Liveness never touches a dependency: a restart cannot fix a dead chain, so only readiness
reports one. Readiness is per dependency, so an operator sees which chain is behind and by how
much, not just "not ready".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bulkhead.api.deps import ApiState, get_state
from bulkhead.api.routes_venue import chains_now
from bulkhead.api.schemas import Health, Readiness
from workers.liveness import alive_workers, expected_workers

__all__ = ["readiness", "router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _redis_status(state: ApiState) -> dict[str, Any]:
    if state.redis is None:
        return {"ok": True, "error": None}
    try:
        state.redis.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported as text
        return {"ok": False, "error": f"redis: {exc}"[:300]}
    return {"ok": True, "error": None}


def _workers(state: ApiState) -> list[dict[str, Any]]:
    """Each expected worker and whether its heartbeat is live (empty without Redis)."""
    if state.redis is None:
        return []
    try:
        alive = alive_workers(state.redis)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - Redis trouble is reported by the redis row
        return []
    return [{"worker": w, "alive": w in alive} for w in expected_workers(state.settings)]


def readiness(chains: list[dict[str, Any]], redis_status: dict[str, Any],
              max_lag: Any, workers: list[dict[str, Any]] | None = None,
              require_workers: bool = False) -> dict[str, Any]:
    """Ready iff Redis answers and every chain answers with ``lag <= max_lag(chain)``, and with
    ``require_workers`` every expected worker has a live heartbeat (pure)."""
    rows = []
    for c in chains:
        bound = int(max_lag(c["chain"]))
        ok = bool(c["reachable"]) and c["lag"] is not None and c["lag"] <= bound
        error = c.get("error")
        if c["reachable"] and not ok:
            error = f"finality lag {c['lag']} exceeds {bound}"
        rows.append({"chain": c["chain"], "ok": ok, "reachable": bool(c["reachable"]),
                     "lag": c["lag"], "max_lag": bound, "error": error})
    workers = workers or []
    ready = redis_status["ok"] and all(r["ok"] for r in rows) and (
        not require_workers or all(w["alive"] for w in workers))
    return {"ready": ready, "redis": redis_status, "chains": rows, "workers": workers}


@router.get("/readyz", response_model=Readiness, summary="Every chain adapter and Redis answer",
            responses={503: {"model": Readiness, "description": "Not ready; per-chain detail"}})
async def readyz(state: Annotated[ApiState, Depends(get_state)]) -> Any:
    body = readiness(await chains_now(state), await run_in_threadpool(_redis_status, state),
                     state.options.max_lag, await run_in_threadpool(_workers, state),
                     state.options.require_workers)
    return JSONResponse(body, status_code=200 if body["ready"] else 503)
