"""Risk worker tasks: ``risk.tick`` (queue ``risk``, driven by beat) screens every position the
bridge credited and plans; ``execute_liquidation`` (queue ``liquidate.<venue chain>``) submits
one plan. Idempotent on the plan id; seizures then settle through the bridge's settlement path.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from orchestrator.errors import RetryableError
from orchestrator.locks import LockState
from workers.celery_app import app
from workers.locks import only_one_running
from workers.runtime import services

logger = get_task_logger(__name__)
PLAN_TTL_MS = 10 * 60_000


def position_keys() -> list[bytes]:
    """Positions backed by credited collateral (the chains are the record of the rest)."""
    keys = {r.event.position_key for r in services().store.all_records()
            if r.state == LockState.CREDITED}
    return [bytes.fromhex(k[2:]) for k in sorted(keys)]


@app.task(name="bulkhead.risk.tick", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def tick() -> int:
    """Screen and plan; enqueue each new plan once (plan id claimed in Redis)."""
    svc = services()
    with only_one_running(svc.redis, "risk-tick", ttl_s=60) as held:
        if not held:
            return 0
        plans = svc.run(svc.keeper.plan(position_keys()))
    queued = 0
    for planned in plans:
        plan = planned.plan
        if svc.redis.set(f"bh:plan:{plan.plan_id}", 1, nx=True, px=PLAN_TTL_MS):
            execute_liquidation.apply_async(
                args=(plan.plan_id, planned.position_key, plan.close_fraction_ppm),
                queue=f"liquidate.{svc.settings.venue_chain}")
            queued += 1
    return queued


@app.task(name="bulkhead.risk.execute_liquidation", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=6)
def execute_liquidation(plan_id: str, position_key: str, fraction_ppm: int) -> dict:  # type: ignore[type-arg]
    """One plan, once: the venue refuses a second liquidation of the same trigger."""
    svc = services()
    with only_one_running(svc.redis, f"liquidate:{position_key}", ttl_s=120) as held:
        if not held:
            return {"position": position_key, "outcome": "busy"}
        result = svc.run(svc.keeper.execute(position_key, fraction_ppm))
    result["plan_id"] = plan_id
    return result
