"""How tasks hand work to other roles: hints to attesters, nudges to relayers, pacing.

Tasks send each other work by task name and queue (``app.send_task``), so no task module imports
another. Everything here is a hint: attesters check the chain themselves, relayers re-read what
is ready, and the reconciler re-derives anything a lost hint would have carried.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from workers.celery_app import app
from workers.runtime import services
from workers.stores import keys

__all__ = [
    "ask_attesters", "ask_range", "ask_settlement", "ask_settlement_range", "hint_backlog", "nudge_relay", "nudge_settlement_relay",
    "ran_recently", "redis_now_ms", "send_liquidations",
]

ATTEST_LOCKS = "bulkhead.attest.attest_locks"
ATTEST_RANGE = "bulkhead.attest.attest_range"
ATTEST_SETTLEMENT = "bulkhead.settle.attest_settlement"
ATTEST_SETTLEMENTS = "bulkhead.settle.attest_settlements"
SIGN_PROPOSAL = "bulkhead.settle.sign_settlement_proposal"
RELAY_PENDING = "bulkhead.relay.relay_pending"
RELAY_SETTLEMENTS = "bulkhead.settle.relay_settlements"
EXECUTE_LIQUIDATIONS = "bulkhead.risk.execute_liquidations"


def redis_now_ms(client: redis.Redis) -> int:
    """The Redis server's clock in ms: one clock for every worker host."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def ran_recently(job: str, interval_s: float) -> bool:
    """True if ``job`` ran less than half an interval ago, by the Redis server's clock (a
    backlog of beat ticks after a restart collapses instead of running N times)."""
    client = services().redis
    now_ms = redis_now_ms(client)
    last = client.getset(keys.last_run(job), now_ms)
    return last is not None and now_ms - int(last) < interval_s * 500


def hint_backlog(queue: str) -> int:
    """Messages waiting in a queue (the Redis list named after it): a dead attester's queue is
    not fed forever."""
    return int(services().redis.llen(queue))


def _attesters(only: Iterable[str] | None) -> list[str]:
    names = [m.name for m in services().settings.attesters.members]
    wanted = None if only is None else set(only)
    limit = services().settings.bridge.max_queued_hints
    return [n for n in names if (wanted is None or n in wanted)
            and hint_backlog(f"attest.{n}") < limit]


def ask_attesters(chain: str, height: int, lock_keys: list[str],
                  only: Iterable[str] | None = None) -> None:
    """Hint every attester (or ``only`` these) to look at ``lock_keys`` at ``height``; each
    checks for itself."""
    for name in _attesters(only):
        app.send_task(ATTEST_LOCKS, args=(chain, height, lock_keys), queue=f"attest.{name}")


def ask_range(chain: str, start: int, end: int, only: Iterable[str] | None = None) -> None:
    """Hint every attester (or ``only`` these) to attest ``chain`` heights ``start..end``."""
    for name in _attesters(only):
        app.send_task(ATTEST_RANGE, args=(chain, start, end), queue=f"attest.{name}")


def ask_settlement(settlement_id: str, height: int, only: Iterable[str] | None = None,
                   step: str = "attest") -> None:
    """Hint attesters to sign (``attest``) or, on Solana, sign the proposal (``sign``)."""
    task = ATTEST_SETTLEMENT if step == "attest" else SIGN_PROPOSAL
    for name in _attesters(only):
        app.send_task(task, args=(settlement_id, height), queue=f"attest.{name}")


def ask_settlement_range(start: int, end: int) -> None:
    """Hint every attester to attest the settlement requests in venue heights ``start..end``."""
    for name in _attesters(None):
        app.send_task(ATTEST_SETTLEMENTS, args=(start, end), queue=f"attest.{name}")


def nudge_relay() -> None:
    app.send_task(RELAY_PENDING, queue=f"relay.{services().settings.venue_chain}")


def nudge_settlement_relay() -> None:
    app.send_task(RELAY_SETTLEMENTS, queue=f"relay.{services().settings.venue_chain}")


def send_liquidations(plans: list[list[object]]) -> None:
    app.send_task(EXECUTE_LIQUIDATIONS, args=(plans,),
                  queue=f"liquidate.{services().settings.venue_chain}")
