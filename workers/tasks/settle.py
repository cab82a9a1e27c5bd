"""The way back: venue settlement requests -> attesters -> execution on the source chain.

``poll_venue`` (queue ``watch.<venue chain>``) reads the venue's events up to the venue chain's
final head; ``attest_settlement`` / ``sign_settlement_proposal`` run on each attester's queue;
``relay_settlements`` (queue ``relay.<venue chain>``) executes what has a quorum.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from chains.evm.bridge_codec import SettlementRequestedEvent
from chains.finality import final_head
from orchestrator.errors import RetryableError
from workers.celery_app import app
from workers.locks import only_one_running
from workers.runtime import services
from workers.tasks.watch import hint_backlog, ran_recently

logger = get_task_logger(__name__)
DIRTY = "bh:relay-settle:dirty"


@app.task(name="bulkhead.settle.poll_venue", acks_late=True,
          autoretry_for=(RetryableError,), retry_backoff=True, max_retries=3)
def poll_venue() -> int:
    """Record new settlement requests from the venue, final blocks only; hint the attesters."""
    svc = services()
    s = svc.settings
    with only_one_running(svc.redis, "watch-venue", ttl_s=60) as held:
        if not held or ran_recently("watch-venue", s.chain(s.venue_chain).poll_interval_s):
            return 0
        parts = svc.settlements
        reader = parts.reader
        cfg = s.chain(s.venue_chain)
        start = (parts.store.cursor(s.venue_chain) or cfg.deployment_height - 1) + 1
        final = svc.run(final_head(svc.adapter(s.venue_chain), cfg.finality))
        if final.height < start:
            return 0
        end = min(final.height, start + cfg.max_block_range - 1)
        new = [ev for ev in svc.run(reader.events(start, end))
               if isinstance(ev, SettlementRequestedEvent) and parts.store.add(ev)]
        parts.store.set_cursor(s.venue_chain, end)
    for ev in new:
        ask_settlement("0x" + ev.settlement_id.hex(), ev.height)
    return len(new)


def ask_settlement(settlement_id: str, height: int, only: set[str] | None = None,
                   task: str = "attest") -> None:
    target = attest_settlement if task == "attest" else sign_settlement_proposal
    limit = services().settings.bridge.max_queued_hints
    for member in services().settings.attesters.members:
        if (only is None or member.name in only) and hint_backlog(f"attest.{member.name}") < limit:
            target.apply_async(args=(settlement_id, height), queue=f"attest.{member.name}")


ATTESTER_TASK = {"acks_late": True, "autoretry_for": (RetryableError,), "retry_backoff": 1,
                 "retry_backoff_max": 10, "retry_jitter": False, "max_retries": 12}


def _attester_step(step: str, settlement_id: str, height: int) -> str:
    """Run one attester step (``attest`` or ``sign_proposal``), then nudge the relayer."""
    svc = services()
    outcome: str = svc.run(getattr(svc.settlements.attester, step)(settlement_id, height))
    relay_settlements.apply_async(queue=f"relay.{svc.settings.venue_chain}")
    return outcome


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
    svc.redis.set(DIRTY, 1)
    executed = 0
    with only_one_running(svc.redis, "relay-settle", ttl_s=300) as held:
        if not held:
            return 0
        while svc.redis.getdel(DIRTY):
            work = svc.run(svc.settlements.relay.relay_pending())
            executed += len(work.executed)
            for settlement_id, height, names in work.ask_sign:
                ask_settlement(settlement_id, height, set(names), task="sign")
    return executed
