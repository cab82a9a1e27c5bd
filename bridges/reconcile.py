"""The reconciler's decisions: re-derive pending bridge work from the stores. Pure.

Celery does not promptly redeliver a task whose whole worker died, and a FLUSHALL drops the
queues, so every reconciler pass (``workers.tasks.reconcile``) asks this module what to redo:

- locks awaiting credit whose attesters were not asked for ``reask_after_ms`` are asked again,
  by range (one ask per chain and range of at most ``max_range`` heights, to every attester:
  each signs what it observes final there and skips what its own signature already covers),
  and are pushed to the relayer's ready stream (the backstop for a lost trigger);
- pending settlements are re-asked the same way, by venue range (round 1: sign or approve),
  and on Solana the chosen signers of a live proposal are asked to sign it (round 2);
- work pending longer than ``stuck_after_ms`` is reported as stuck (an alarm, I13);
- the relayers are nudged while anything is pending.

The host clock here only paces re-asking and alarms; it never decides what is accepted (TIME-01).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bridges.ports import SettlementRecord
from shared.locks import LockRecord

__all__ = ["Ask", "ReconcilePlan", "SettlementAsk", "Stuck", "plan_reconcile", "ranges"]


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask every attester to attest ``chain`` heights ``start..end``."""

    chain: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SettlementAsk:
    """Ask ``attesters`` to run ``step`` (``attest`` or ``sign``) for one settlement."""

    settlement_id: str
    height: int
    attesters: frozenset[str]
    step: str


@dataclass(frozen=True, slots=True)
class Stuck:
    key: str
    state: str
    pending_ms: int


@dataclass
class ReconcilePlan:
    lock_asks: list[Ask] = field(default_factory=list)
    settlement_asks: list[SettlementAsk] = field(default_factory=list)  # Solana round 2
    settlement_ranges: list[Ask] = field(default_factory=list)  # round 1, by venue range
    stuck: list[Stuck] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)  # items whose ask time to record now
    relay_keys: list[str] = field(default_factory=list)  # locks to push to the ready stream
    relay_locks: bool = False
    relay_settlements: bool = False


def plan_reconcile(
    now_ms: int,
    *,
    pending_locks: Iterable[LockRecord],
    pending_settlements: Iterable[SettlementRecord],
    attesters: Mapping[str, str],
    solana_pubkeys: Mapping[str, str | None],
    settlement_done: Callable[[str], set[str]],
    proposal_signers: Callable[[str], list[str] | None],
    last_asked: Callable[[str], int | None],
    reask_after_ms: int,
    stuck_after_ms: int,
    max_range: Mapping[str, int],
    venue_chain: str = "venue",
) -> ReconcilePlan:
    """What to re-ask, what is stuck, and whether to nudge the relayers.

    Args:
        attesters: name -> EVM address (lower case) of every configured attester.
        solana_pubkeys: name -> Solana pubkey (base58) of every attester, if it has one.
        max_range: the widest range one ask may cover (the chains' ``max_block_range``).
        settlement_done: settlement id -> names of attesters that signed or approved it.
        proposal_signers: settlement id -> pubkeys chosen for the live Solana proposal.
        last_asked: item key -> when it was last re-asked (ms), if ever.
    """
    plan = ReconcilePlan()
    heights: dict[str, list[int]] = {}
    for record in pending_locks:
        plan.relay_locks = True
        since = record.transitions[-1].at_ms
        if now_ms - since > stuck_after_ms:
            plan.stuck.append(Stuck(record.key, record.state.value, now_ms - since))
        # The first ask is the watcher's; re-ask only once work sat ``reask_after_ms`` since
        # its last move or its last re-ask.
        if now_ms - max(last_asked(record.key) or 0, since) < reask_after_ms:
            continue
        heights.setdefault(record.event.chain, []).append(record.event.height)
        plan.relay_keys.append(record.key)
        plan.asked.append(record.key)
    for chain, found in sorted(heights.items()):
        plan.lock_asks += ranges(chain, found, max_range.get(chain, 1_000))
    venue_heights: list[int] = []
    for srec in pending_settlements:
        plan.relay_settlements = True
        last = last_asked(srec.id_hex)
        if last is None:  # first sighting: the venue watcher just asked; start the clock
            plan.asked.append(srec.id_hex)
            continue
        if now_ms - last < reask_after_ms:
            continue
        if set(attesters) - settlement_done(srec.id_hex):
            venue_heights.append(srec.event.height)
        chosen = proposal_signers(srec.id_hex)
        if chosen is not None:
            names = frozenset(n for n, pk in solana_pubkeys.items() if pk in chosen)
            plan.settlement_asks.append(SettlementAsk(srec.id_hex, srec.event.height, names,
                                                      "sign"))
        plan.asked.append(srec.id_hex)
    plan.settlement_ranges = ranges(venue_chain, venue_heights,
                                    max_range.get(venue_chain, 1_000))
    return plan


def ranges(chain: str, heights: Iterable[int], max_range: int) -> list[Ask]:
    """The fewest asks of at most ``max_range`` heights covering every height given."""
    out: list[Ask] = []
    for height in sorted(set(heights)):
        if out and height - out[-1].start < max_range:
            out[-1] = Ask(chain, out[-1].start, height)
        else:
            out.append(Ask(chain, height, height))
    return out
