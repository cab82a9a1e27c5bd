"""The reconciler's decisions (bridges.reconcile): pure, table-driven."""

from __future__ import annotations

import pytest

from bridges.reconcile import Ask, plan_reconcile, ranges
from chains.testing import make_event
from shared.locks import LockRecord, LockState

NOW = 1_000_000


@pytest.mark.parametrize(("heights", "max_range", "want"), [
    pytest.param([], 10, [], id="nothing"),
    pytest.param([5], 10, [(5, 5)], id="one"),
    pytest.param([7, 5, 5, 6], 10, [(5, 7)], id="dedup-and-sort"),
    pytest.param([1, 10, 11], 10, [(1, 10), (11, 11)], id="split-at-max-range"),
    pytest.param([1, 100], 10, [(1, 1), (100, 100)], id="far-apart"),
    pytest.param(list(range(25)), 10, [(0, 9), (10, 19), (20, 24)], id="long-run"),
])
def test_ranges_cover_every_height_within_the_bound(heights: list[int], max_range: int,
                                                    want: list[tuple[int, int]]) -> None:
    got = ranges("evm-a", heights, max_range)
    assert [(a.start, a.end) for a in got] == want
    assert all(a.end - a.start + 1 <= max_range for a in got)
    assert all(any(a.start <= h <= a.end for a in got) for h in heights)


def _record(nonce: int, height: int, since_ms: int) -> LockRecord:
    event = make_event("evm-a", nonce, 10**6, height=height)
    return LockRecord.first_seen(event, since_ms).advanced(LockState.FINALIZED, height, since_ms)


def _plan(pending: list[LockRecord], asked: dict[str, int]):  # type: ignore[no-untyped-def]
    return plan_reconcile(
        NOW, pending_locks=pending, pending_settlements=[],
        attesters={"att-1": "0x1", "att-2": "0x2"}, solana_pubkeys={},
        settlement_done=lambda _sid: set(), proposal_signers=lambda _sid: None,
        last_asked=asked.get, reask_after_ms=15_000, stuck_after_ms=60_000,
        max_range={"evm-a": 100})


def test_pending_locks_are_reasked_by_range_and_pushed_to_the_relayer() -> None:
    a, b = _record(1, 10, NOW - 20_000), _record(2, 12, NOW - 20_000)
    plan = _plan([a, b], {})
    assert plan.lock_asks == [Ask("evm-a", 10, 12)]
    assert sorted(plan.relay_keys) == sorted([a.key, b.key])
    assert sorted(plan.asked) == sorted([a.key, b.key])
    assert plan.relay_locks and not plan.stuck


def test_a_lock_asked_recently_is_not_asked_again_but_keeps_the_relayer_nudged() -> None:
    a = _record(1, 10, NOW - 20_000)
    plan = _plan([a], {a.key: NOW - 1_000})
    assert plan.lock_asks == [] and plan.relay_keys == [] and plan.relay_locks


def test_work_pending_past_the_bound_is_reported_stuck() -> None:
    a = _record(1, 10, NOW - 61_000)
    (stuck,) = _plan([a], {}).stuck
    assert stuck.key == a.key and stuck.pending_ms == 61_000 and stuck.state == "finalized"
