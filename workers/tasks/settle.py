"""The way back: venue settlement requests -> attesters -> execution on the source chain.

``poll_venue`` (queue ``watch.<venue chain>``) runs the venue watcher service;
``attest_settlement`` / ``sign_settlement_proposal`` run on each attester's queue;
``relay_settlements`` (queue ``relay.<venue chain>``) executes what has a quorum.
"""

from __future__ import annotations

from bridges.reconcile import ranges
from shared.errors import RetryableError
from workers.celery_app import app
from workers.dispatch import (
    ask_settlement,
    ask_settlement_range,
    nudge_settlement_relay,
    ran_recently,
)
from workers.mutex import only_one_running
from workers.runtime import services
from workers.stores import keys
from workers.tasks.attest import ATTESTER_TASK


@app.task(name="bulkhead.settle.poll_venue", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def poll_venue() -> int:
    """Record new settlement requests from the venue, final blocks only; hint the attesters."""
    svc = services()
    interval = svc.settings.chain(svc.settings.venue_chain).poll_interval_s
    with only_one_running(svc.redis, "watch-venue", ttl_s=60) as held:
        if not held or ran_recently("watch-venue", interval):
            return 0
        new = svc.run(svc.settlement_watcher.poll())
    cfg = svc.settings.chain(svc.settings.venue_chain)
    for ask in ranges(svc.settings.venue_chain, [ev.height for ev in new], cfg.max_block_range):
        ask_settlement_range(ask.start, ask.end)
    return len(new)


def _attester_step(step: str, settlement_id: str, height: int) -> str:
    """Run one attester step (``attest`` or ``sign_proposal``), then nudge the relayer."""
    svc = services()
    outcome: str = svc.run(getattr(svc.settlement_attester, step)(settlement_id, height))
    nudge_settlement_relay()
    return outcome


@app.task(name="bulkhead.settle.attest_settlements", **ATTESTER_TASK)
def attest_settlements(start: int, end: int) -> int:
    """Round 1 for every settlement request in a venue range (one read, one write); nudge the
    settlement relayer when something may now be executable."""
    svc = services()
    signed, approved, ready = svc.run(svc.settlement_attester.attest_range(start, end))
    if ready:
        nudge_settlement_relay()
    return signed + approved


@app.task(name="bulkhead.settle.attest_settlement", **ATTESTER_TASK)
def attest_settlement(settlement_id: str, height: int) -> str:
    """Round 1: sign (EVM source) or approve (Solana source) an observed request."""
    return _attester_step("attest", settlement_id, height)


@app.task(name="bulkhead.settle.sign_settlement_proposal", **ATTESTER_TASK)
def sign_settlement_proposal(settlement_id: str, height: int) -> str:
    """Round 2 on Solana: sign the relayer's proposal iff it matches what was observed."""
    return _attester_step("sign_proposal", settlement_id, height)


@app.task(name="bulkhead.settle.relay_settlements", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=8)
def relay_settlements() -> int:
    """Idempotent: the source chain's settled set / settle memo is checked before submitting."""
    svc = services()
    svc.redis.set(keys.settle_dirty(), 1)
    executed = 0
    with only_one_running(svc.redis, "relay-settle", ttl_s=300) as held:
        if not held:
            return 0
        while svc.redis.getdel(keys.settle_dirty()):
            work = svc.run(svc.settlement_relay.relay_pending())
            executed += len(work.executed)
            for settlement_id, height, names in work.ask_sign:
                ask_settlement(settlement_id, height, set(names), step="sign")
    return executed
