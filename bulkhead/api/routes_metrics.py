"""``/metrics``: gather a snapshot from Redis and the chains, then expose it (I/O).

Redis layouts read here are the workers': Celery's queue lists (``LLEN <queue>``, plus the
priority lists kombu keeps beside it), the signature pool's ``bh:sig:<digest>`` hashes
(signer -> signature) and the risk worker's ``risk:last_screen`` hash; key names are
:mod:`workers.stores.keys`'s.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from bulkhead.api.deps import ApiState, get_state
from bulkhead.api.metrics import BulkheadCollector, MetricsInput, queue_names, risk_screen
from bulkhead.api.routes_marks import marks_now
from bulkhead.api.routes_venue import chains_now, liquidations_now
from shared.errors import OrchestratorError
from workers.liveness import alive_workers, expected_workers
from workers.stores import keys
from workers.stores.accountant import last_books
from workers.stores.deadletters import RedisDeadLetters

__all__ = ["gather", "router"]

router = APIRouter(tags=["metrics"])
PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: queue + sep + priority step
PRIORITY_STEPS = (3, 6, 9)
SCAN_BATCH = 500


def _queue_depths(state: ApiState) -> dict[str, int]:
    names = queue_names(state.settings)
    assert state.redis is not None
    pipe = state.redis.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{name}{PRIORITY_SEP}{step}")
    lengths = pipe.execute()
    per = 1 + len(PRIORITY_STEPS)
    return {name: sum(int(n) for n in lengths[i * per:(i + 1) * per])
            for i, name in enumerate(names)}


def _signature_counts(state: ApiState) -> dict[str, int]:
    assert state.redis is not None
    names = {m.address.lower(): m.name for m in state.settings.attesters.members}
    counts: Counter[str] = Counter({m.name: 0 for m in state.settings.attesters.members})
    names_found = list(state.redis.scan_iter(match=keys.signatures("*"), count=SCAN_BATCH))
    for start in range(0, len(names_found), SCAN_BATCH):
        pipe = state.redis.pipeline(transaction=False)
        for key in names_found[start:start + SCAN_BATCH]:
            pipe.hkeys(key)
        for signers in pipe.execute():
            for signer in signers:
                counts[names.get(str(signer).lower(), str(signer).lower())] += 1
    return dict(counts)


def _operations(state: ApiState) -> dict[str, Any]:
    """Dead letters, discarded pool entries, sending decisions and worker heartbeats."""
    assert state.redis is not None
    letters = RedisDeadLetters(state.redis)  # type: ignore[arg-type]
    alive = alive_workers(state.redis)  # type: ignore[arg-type]
    raw_tx = state.redis.hgetall(keys.tx_events())
    return {"deadletters": letters.size(), "deadletter_kinds": letters.counts(),
            "pool_discarded": int(state.redis.get(keys.discarded()) or 0),
            "tx_events": {_text(k): int(v) for k, v in raw_tx.items()},
            "workers_alive": {w: w in alive for w in expected_workers(state.settings)},
            "lanes": last_books(state.redis)}  # type: ignore[arg-type]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_redis(state: ApiState) -> dict[str, Any]:
    """Everything the scrape needs from Redis; any failure marks the source down."""
    try:
        if state.redis is None:
            return {"records": state.store.all_records()}
        return {"records": state.store.all_records(), "queue_depths": _queue_depths(state),
                "signatures": _signature_counts(state),
                "risk_screen": risk_screen(state.redis.hgetall(keys.risk_last_screen())),
                **_operations(state)}
    except Exception:  # noqa: BLE001 - Redis down or refusing: reported as source down
        return {}


async def gather(state: ApiState) -> MetricsInput:
    redis_part = await run_in_threadpool(_read_redis, state)
    liquidations = marks = None
    try:
        liquidations = await liquidations_now(state)
    except (OrchestratorError, TimeoutError, HTTPException):
        pass
    try:
        marks = await marks_now(state)
    except (OrchestratorError, TimeoutError, HTTPException):
        pass
    chains = await chains_now(state)
    sources = {"redis": "records" in redis_part,
               "venue": liquidations is not None, "marks": marks is not None,
               **{f"chain:{c['chain']}": bool(c["reachable"]) for c in chains}}
    return MetricsInput(chains=chains, liquidations=liquidations, marks=marks,
                        sources=sources, **redis_part)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
async def metrics(state: Annotated[ApiState, Depends(get_state)]) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BulkheadCollector(await gather(state)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
