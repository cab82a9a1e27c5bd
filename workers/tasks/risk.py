"""Risk worker tasks: ``risk.tick`` (queue ``risk``, driven by beat) screens every position the
bridge credited and plans; ``execute_liquidation`` (queue ``liquidate.<venue chain>``) submits
one plan. Idempotent on the plan id; seizures then settle through the bridge's settlement path.

Each tick publishes its screen figures in the Redis hash ``bh:risk:last_screen`` (integer
fields ``duration_us``, ``positions``, ``candidates``, ``at_ms``), read by the API.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from celery.utils.log import get_task_logger

from orchestrator.errors import RetryableError
from orchestrator.locks import LockState
from workers.celery_app import app
from workers.locks import only_one_running
from workers.runtime import services

if TYPE_CHECKING:
    from orchestrator.liquidation.keeper import ScreenStats

logger = get_task_logger(__name__)
PLAN_TTL_MS = 10 * 60_000
LAST_SCREEN_KEY = "bh:risk:last_screen"


def position_keys() -> list[str]:
    """Positions backed by credited collateral (the chains are the record of the rest)."""
    return sorted({r.event.position_key.lower() for r in services().store.all_records()
                   if r.state == LockState.CREDITED})


def publish_screen(client: Any, stats: ScreenStats, at_ms: int) -> None:
    """Write one tick's screen figures (integers) to ``bh:risk:last_screen``."""
    client.hset(LAST_SCREEN_KEY, mapping={
        "duration_us": int(stats.duration_us), "positions": int(stats.positions),
        "candidates": int(stats.candidates), "at_ms": int(at_ms)})


@app.task(name="bulkhead.risk.tick", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def tick() -> int:
    """Screen and plan; enqueue each new plan once (plan id claimed in Redis)."""
    svc = services()
    with only_one_running(svc.redis, "risk-tick", ttl_s=60) as held:
        if not held:
            return 0
        result = svc.run(svc.keeper.plan(position_keys()))
    publish_screen(svc.redis, result.stats, at_ms=time.time_ns() // 1_000_000)
    queued = 0
    for planned in result.plans:
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
