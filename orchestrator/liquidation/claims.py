"""Claiming liquidation plans so each trigger is executed once, and batching them.

A plan id is derived from its trigger (position, its state, the snapshot), so two risk ticks
that see the same trigger produce the same id; a claim store (Redis in the worker) keeps the
first claim. The venue refuses a second liquidation of one trigger anyway (I8): the claim only
saves a doomed transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from orchestrator.liquidation.keeper import PlannedLiquidation

__all__ = ["ClaimStore", "batches", "claim_new"]

T = TypeVar("T")
PLAN_TTL_MS = 10 * 60_000


class ClaimStore(Protocol):
    def claim(self, plan_id: str, ttl_ms: int) -> bool:
        """True if this caller now holds ``plan_id`` (first claim wins)."""
        ...


def claim_new(plans: Iterable[PlannedLiquidation], claims: ClaimStore, *,
              ttl_ms: int = PLAN_TTL_MS) -> list[tuple[str, str, int]]:
    """``(plan id, position key, close fraction ppm)`` of every plan this caller claimed."""
    return [(p.plan.plan_id, p.position_key, p.plan.close_fraction_ppm) for p in plans
            if claims.claim(p.plan.plan_id, ttl_ms)]


def batches(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in order, ``size`` at a time (the last batch may be shorter)."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
