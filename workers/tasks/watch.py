"""Watcher tasks (queue ``watch.<chain>``): poll one chain, fan finalized locks out to attesters."""

from __future__ import annotations

from collections import defaultdict

from celery.utils.log import get_task_logger

from orchestrator.errors import RetryableError
from orchestrator.lock_store import awaits_credit
from orchestrator.locks import LockState
from workers.celery_app import app
from workers.locks import only_one_running
from workers.runtime import services

logger = get_task_logger(__name__)


@app.task(name="bulkhead.watch.poll_chain", bind=True, acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def poll_chain(self, chain: str) -> int:  # type: ignore[no-untyped-def]
    """One watcher poll; returns how many locks became final. Overlapping polls are skipped."""
    svc = services()
    with only_one_running(svc.redis, f"watch:{chain}", ttl_s=60) as held:
        if not held or ran_recently(f"watch:{chain}", svc.settings.chain(chain).poll_interval_s):
            return 0
        report = svc.run(svc.watcher(chain).poll())
    final = [key for key, state in report.advanced if state == LockState.FINALIZED]
    by_height: dict[int, list[str]] = defaultdict(list)
    for key in final:
        record = svc.store.get(key)
        if record is not None and awaits_credit(record):
            by_height[record.event.height].append(key)
    for height, keys in sorted(by_height.items()):
        ask_attesters(chain, height, keys)
    return len(final)


def ran_recently(key: str, interval_s: float) -> bool:
    """True if this poll ran less than half an interval ago, by the Redis server's clock (a
    backlog of beat ticks after a restart collapses instead of polling N times)."""
    client = services().redis
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    last = client.getset(f"bh:last-run:{key}", now_ms)
    return last is not None and now_ms - int(last) < interval_s * 500


def hint_backlog(queue: str) -> int:
    """Messages waiting in a queue (Redis list named after it): a dead attester's queue is
    not fed forever."""
    return int(services().redis.llen(queue))


def ask_attesters(chain: str, height: int, keys: list[str], only: set[str] | None = None) -> None:
    """Hint every attester (or ``only`` these) to look at ``keys`` at ``height``; each checks
    for itself."""
    from workers.tasks.attest import attest_locks

    limit = services().settings.bridge.max_queued_hints
    for member in services().settings.attesters.members:
        if (only is None or member.name in only) and hint_backlog(f"attest.{member.name}") < limit:
            attest_locks.apply_async(args=(chain, height, keys), queue=f"attest.{member.name}")
