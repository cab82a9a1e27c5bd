"""The demo's pure report helpers: crash prices solved from a margin state, checked by hand."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bulkhead.local.demo_report import (
    PositionFate,
    crash_price_e8,
    gap_price_e8,
    lock_journey,
    ratio_ppm,
)

E18, E8 = 10**18, 10**8


def test_crash_price_hits_the_target_ratio_by_hand() -> None:
    # long 1 ETH at 3000, E = 348.5, MM = 150 (5 %): p = (3000 - 348.5) * 3000 / (3000 - 120)
    p = crash_price_e8(size_e18=E18, mark_e8=3000 * E8, equity_usd_e18=348_500_000_000_000_000_000,
                       maintenance_usd_e18=150 * E18, target_ratio_ppm=800_000)
    assert p == 2651_5 * 3000 * E8 // 2880_0  # 2761.97916666
    assert p == 276_197_916_666


@given(size=st.integers(10**15, 10**20), mark=st.integers(100 * E8, 100_000 * E8),
       lev=st.integers(2, 20), target=st.integers(550_000, 950_000))
def test_crash_price_never_lands_above_the_target(size: int, mark: int, lev: int,
                                                  target: int) -> None:
    notional = size * mark // E8
    equity, mm = notional // lev, notional * 50_000 // 1_000_000
    p = crash_price_e8(size_e18=size, mark_e8=mark, equity_usd_e18=equity,
                       maintenance_usd_e18=mm, target_ratio_ppm=target)
    e_at = equity + size * (p - mark) // E8
    mm_at = size * p // E8 * 50_000 // 1_000_000
    assert p < mark
    if mm_at > 0 and e_at > 0:
        assert e_at * 1_000_000 <= (target + 1_000) * mm_at  # at or below, up to integer steps


def test_gap_price_is_below_bankruptcy() -> None:
    # long 0.75 at 2762 with E = 121.55: bankrupt at 2762 - 162.07 = 2599.93; 3 % below
    p = gap_price_e8(size_e18=750_000_000_000_000_000, mark_e8=2762 * E8,
                     equity_usd_e18=121_550_000_000_000_000_000, gap_ppm=30_000)
    bankrupt = 2762 * E8 - 121_550_000_000_000_000_000 * E8 // 750_000_000_000_000_000
    assert bankrupt == 259_993_333_334
    assert p == bankrupt * 970_000 // 1_000_000


def test_ratio_and_journey_and_fate() -> None:
    assert ratio_ppm(1, 0) is None and ratio_ppm(3, 2) == 1_500_000 and ratio_ppm(-1, 3) == -333_334
    row = {"key": "k", "chain": "evm-a", "position_key": "0x1", "amount_display": "1",
           "state": "credited", "decimals": 6, "released": "0", "seized": "5",
           "transitions": [{"state": "seen", "at_ms": 1_500}, {"state": "credited", "at_ms": 4_000}]}
    j = lock_journey(row, 1_000)
    assert j["stages_s"] == {"seen": 0.5, "finalized": None, "attested": None, "credited": 3.0}
    fate = PositionFate("A", "alice", "0x1", "long", "1",
                        liquidations=[{"full": False}, {"full": True}])
    assert fate.outcome() == "liquidated: partial -> full"
    assert PositionFate("B", "alice", "0x2", "long", "1", closed=True).outcome() == "closed by owner"
