"""Risk worker tasks: ``risk.tick`` (queue ``risk``, driven by beat) first lets owners' top-up
rules move reserve collateral in, pushes the volatility buffer of the configured markets when it
moved, then screens every position the bridge credited and plans (the keeper's service);
``execute_liquidations`` (queue ``liquidate.<venue chain>``) submits up to ``BATCH`` plans at
once in ``liquidateBatch`` transactions of ``PER_TX`` — the transactions go out back to back and
their receipts are awaited together, so 1,000 liquidations cost a few blocks. Idempotent on the plan id (claimed once,
:mod:`orchestrator.liquidation.claims`) and on the venue's own check (a second liquidation of
the same trigger is a typed no-op); seizures then settle through the bridge's settlement path.

Each tick publishes its screen figures in the Redis hash ``risk:last_screen`` (integer fields
``duration_us``, ``positions``, ``candidates``, ``at_ms``; see :mod:`workers.stores.keys`).

Several risk workers share the screen with ``risk.shards`` > 1 (:mod:`orchestrator.liquidation.
shards`): beat sends one tick per shard per period, and each tick screens the shard screened
longest ago (``risk:shards``) that no other worker is screening now (a per-shard mutex whose
dead holder is taken over at once); a dead worker's shards are the stalest at the next tick of
a live one. Buffers are pushed with shard 0's screen, top-ups with each shard's.
"""

from __future__ import annotations

import time
from typing import Any

import redis
import structlog

from orchestrator.liquidation.claims import LEASE_MS, batches, claim_new
from orchestrator.liquidation.keeper import ScreenStats
from orchestrator.liquidation.shards import keys_of, stalest_first
from shared.errors import FeeBudgetExhausted, OrchestratorError, RetryableError
from shared.locks import LockState
from workers.celery_app import app
from workers.dispatch import redis_now_ms, send_liquidations
from workers.mutex import only_one_running
from workers.runtime import Services, services
from workers.stores import keys
from workers.stores.claims import RedisClaims
from workers.stores.deadletters import RedisDeadLetters

log = structlog.get_logger(__name__)
BATCH = 400  # plans per execute_liquidations task (sent 40 per transaction, all in flight)
PER_TX = 40  # liquidations per liquidateBatch transaction


def position_keys() -> list[str]:
    """Positions backed by credited collateral (the chains are the record of the rest)."""
    return sorted({r.event.position_key.lower() for r in services().store.all_records()
                   if r.state == LockState.CREDITED})


def publish_screen(client: redis.Redis, stats: ScreenStats, at_ms: int) -> None:
    """Write one tick's screen figures (integers) to ``risk:last_screen``."""
    client.hset(keys.risk_last_screen(), mapping={
        "duration_us": int(stats.duration_us), "positions": int(stats.positions),
        "candidates": int(stats.candidates), "at_ms": int(at_ms)})


@app.task(name="bulkhead.risk.tick", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def tick() -> int:
    """Top up, update buffers, screen and plan; enqueue each new plan once, in batches. With
    ``risk.shards`` > 1 one tick screens one shard: the stalest one no other worker holds."""
    svc = services()
    if svc.redis.llen(f"liquidate.{svc.settings.venue_chain}"):
        # Batches still queued: a tick now would only re-plan claimed triggers and hold the
        # worker between them; the next tick after the queue drains screens everything.
        return 0
    shards = svc.settings.risk.shards
    if shards == 1:
        with only_one_running(svc.redis, "risk-tick", ttl_s=60) as held:
            if not held:
                return 0
            return _screen(svc, position_keys(), market_wide=True)
    raw = svc.redis.hgetall(keys.risk_shards())
    screened = {int(k): int(v) for k, v in raw.items()}
    for shard in stalest_first(screened, shards):
        with only_one_running(svc.redis, f"risk-tick:{shard}", ttl_s=60) as held:
            if not held:
                continue  # another worker is screening it now
            mine = keys_of(shard, position_keys(), shards)
            planned = _screen(svc, mine, market_wide=shard == 0)
            svc.redis.hset(keys.risk_shards(), str(shard), redis_now_ms(svc.redis))
            log.info("risk_shard_screened", shard=shard, shards=shards, positions=len(mine),
                     planned=planned)
            return planned
    return 0


def _screen(svc: Services, keys_now: list[str], *, market_wide: bool) -> int:
    """One screen of ``keys_now``: top-ups, the buffers (``market_wide``: once per round of
    shards), the plan; every new plan claimed once and queued in batches."""
    _before_screen(svc, keys_now, buffers=market_wide)
    result = svc.run(svc.keeper.plan(keys_now))
    publish_screen(svc.redis, result.stats, at_ms=time.time_ns() // 1_000_000)
    fresh = claim_new(result.plans, RedisClaims(svc.redis))  # most under water first
    for batch in batches(fresh, BATCH):
        send_liquidations([list(p) for p in batch])
    return len(fresh)


def _before_screen(svc: Services, keys_now: list[str], *, buffers: bool = True) -> None:
    """Owners' top-up rules first (a rescued position is then not liquidated), then the
    volatility buffer; a failure here is logged and never stops liquidations."""
    try:
        ruled = svc.run(svc.topup_rules.refresh())
        targets = [bytes.fromhex(k[2:]) for k in keys_now if k in ruled]
        if targets:
            svc.run(svc.topups.run(targets))
    except OrchestratorError as exc:
        log.warning("topup_step_failed", error=str(exc))
    if buffers and svc.settings.risk.buffer_markets:
        try:
            svc.run(svc.buffers.observe_and_update(list(svc.settings.risk.buffer_markets)))
        except OrchestratorError as exc:
            log.warning("buffer_update_failed", error=str(exc))


@app.task(name="bulkhead.risk.execute_liquidations", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=6)
def execute_liquidations(plans: list[list[Any]]) -> list[dict[str, Any]]:
    """Plans ``[plan_id, position_key, fraction_ppm]`` (most under water first), each at most
    once: this worker takes their leases over (a plan whose lease a live other worker holds is
    ``busy``), sends them in ``liquidateBatch`` transactions all in flight at once, and releases
    at once the lease of any plan whose transaction failed, so the next tick plans it again
    (claimed work is never stranded). The venue refuses a second liquidation of one trigger,
    which counts as done."""
    svc = services()
    claims = RedisClaims(svc.redis)
    held = claims.hold([str(p[0]) for p in plans], LEASE_MS)
    mine = [(str(p[0]), str(p[1]), int(p[2])) for p, ok in zip(plans, held, strict=True) if ok]
    busy = [{"position": p[1], "plan_id": p[0], "outcome": "busy"}
            for p, ok in zip(plans, held, strict=True) if not ok]
    results = svc.run(svc.keeper.execute_batch(mine, per_tx=PER_TX)) if mine else []
    failed = [(plan, r) for plan, r in zip(mine, results, strict=True)
              if isinstance(r, BaseException)]
    if failed:
        claims.release(plan_id for (plan_id, _, _), _ in failed)
        for exc in {id(r): r for _, r in failed}.values():
            log.error("liquidation_send_failed", error=str(exc), plans=sum(
                1 for _, r in failed if r is exc))
            if isinstance(exc, FeeBudgetExhausted):
                RedisDeadLetters(svc.redis).add(
                    kind="fee-budget", queue=f"liquidate.{svc.settings.venue_chain}",
                    task="bulkhead.risk.execute_liquidations", reason=str(exc), attempts=1,
                    args=[[list(p) for p, r in failed if r is exc]])
    done = [r for r in results if not isinstance(r, BaseException)]
    return [*done, *busy, *[{"position": k, "plan_id": pid, "outcome": "failed",
                             "error": str(r)} for (pid, k, _), r in failed]]


@app.task(name="bulkhead.risk.execute_liquidation", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=6)
def execute_liquidation(plan_id: str, position_key: str, fraction_ppm: int) -> dict[str, Any]:
    """One plan (kept for operators re-driving a single plan by hand)."""
    out: dict[str, Any] = execute_liquidations([[plan_id, position_key, fraction_ppm]])[0]
    return out
