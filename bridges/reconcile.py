"""The reconciler's decisions: re-derive pending bridge work from the stores. Pure.

Celery does not promptly redeliver a task whose whole worker died, and a FLUSHALL drops the
queues, so every reconciler pass (``workers.tasks.reconcile``) asks this module what to redo:

- a lock awaiting credit whose attesters were not asked for ``reask_after_ms`` is asked again,
  by every attester that has not signed it (each attester checks its own record and the chain);
- a pending settlement is re-asked the same way (round 1: sign or approve; round 2 on Solana:
  the chosen signers of the live proposal);
- work pending longer than ``stuck_after_ms`` is reported as stuck (an alarm, I13);
- the relayers are nudged while anything is pending.

The host clock here only paces re-asking and alarms; it never decides what is accepted (TIME-01).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bridges.ports import SettlementRecord
from shared.locks import LockRecord

__all__ = ["Ask", "ReconcilePlan", "SettlementAsk", "Stuck", "plan_reconcile"]


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask ``attesters`` to look at lock ``key`` on ``chain`` at ``height``."""

    chain: str
    height: int
    key: str
    attesters: frozenset[str]


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
    settlement_asks: list[SettlementAsk] = field(default_factory=list)
    stuck: list[Stuck] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)  # items whose ask time to record now
    relay_locks: bool = False
    relay_settlements: bool = False


def plan_reconcile(
    now_ms: int,
    *,
    pending_locks: Iterable[LockRecord],
    pending_settlements: Iterable[SettlementRecord],
    attesters: Mapping[str, str],
    solana_pubkeys: Mapping[str, str | None],
    signed_lock: Callable[[str], set[str]],
    settlement_done: Callable[[str], set[str]],
    proposal_signers: Callable[[str], list[str] | None],
    last_asked: Callable[[str], int | None],
    reask_after_ms: int,
    stuck_after_ms: int,
) -> ReconcilePlan:
    """What to re-ask, what is stuck, and whether to nudge the relayers.

    Args:
        attesters: name -> EVM address (lower case) of every configured attester.
        solana_pubkeys: name -> Solana pubkey (base58) of every attester, if it has one.
        signed_lock: lock key -> addresses (lower case) whose signature is pooled for it.
        settlement_done: settlement id -> names of attesters that signed or approved it.
        proposal_signers: settlement id -> pubkeys chosen for the live Solana proposal.
        last_asked: item key -> when it was last re-asked (ms), if ever.
    """
    plan = ReconcilePlan()
    for record in pending_locks:
        plan.relay_locks = True
        since = record.transitions[-1].at_ms
        if now_ms - since > stuck_after_ms:
            plan.stuck.append(Stuck(record.key, record.state.value, now_ms - since))
        last = last_asked(record.key)
        if last is not None and now_ms - last < reask_after_ms:
            continue
        signed = signed_lock(record.key)
        missing = frozenset(n for n, addr in attesters.items() if addr not in signed)
        if missing:
            plan.lock_asks.append(Ask(record.event.chain, record.event.height, record.key,
                                      missing))
            plan.asked.append(record.key)
    for srec in pending_settlements:
        plan.relay_settlements = True
        last = last_asked(srec.id_hex)
        if last is not None and now_ms - last < reask_after_ms:
            continue
        missing = frozenset(set(attesters) - settlement_done(srec.id_hex))
        if missing:
            plan.settlement_asks.append(SettlementAsk(srec.id_hex, srec.event.height, missing,
                                                      "attest"))
        chosen = proposal_signers(srec.id_hex)
        if chosen is not None:
            names = frozenset(n for n, pk in solana_pubkeys.items() if pk in chosen)
            plan.settlement_asks.append(SettlementAsk(srec.id_hex, srec.event.height, names,
                                                      "sign"))
        plan.asked.append(srec.id_hex)
    return plan
