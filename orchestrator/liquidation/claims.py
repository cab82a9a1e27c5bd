"""Leases on liquidation plans: each trigger is worked by one live worker, and a lease dies
with its holder.

A plan id is derived from its trigger (position, its state, the snapshot), so two risk ticks
that see the same trigger produce the same id. The tick leases each new plan; the worker that
executes it takes the lease over (:meth:`ClaimStore.hold`) and releases it at once if its send
failed, so the next tick plans it again. A lease whose holder died is free again: at once when
the holder is known dead (same host), else when its short TTL runs out. The venue refuses a
second liquidation of one trigger anyway (I8): a lease only saves a doomed transaction, and
losing one (FLUSHALL) costs at most that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from orchestrator.liquidation.keeper import PlannedLiquidation

__all__ = ["LEASE_MS", "ClaimStore", "batches", "claim_new"]

T = TypeVar("T")
LEASE_MS = 15_000  # a live holder finishes a batch well within it; a dead one frees it soon


class ClaimStore(Protocol):
    def claim(self, plan_id: str, ttl_ms: int) -> bool:
        """True if this process now holds ``plan_id``: it was free, or its holder is dead."""
        ...

    def hold(self, plan_ids: Sequence[str], ttl_ms: int) -> list[bool]:
        """Take over (or claim) each lease for this process; False where a live other holds it."""
        ...

    def release(self, plan_ids: Iterable[str]) -> None:
        """Give back the leases this process holds (the next tick may plan them again)."""
        ...


def claim_new(plans: Iterable[PlannedLiquidation], claims: ClaimStore, *,
              ttl_ms: int = LEASE_MS) -> list[tuple[str, str, int]]:
    """``(plan id, position key, close fraction ppm)`` of every plan this caller leased, in the
    order given (most under water first)."""
    return [(p.plan.plan_id, p.position_key, p.plan.close_fraction_ppm) for p in plans
            if claims.claim(p.plan.plan_id, ttl_ms)]


def batches(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in order, ``size`` at a time (the last batch may be shorter)."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
