"""The keeper over a VenueAdapter: bulk snapshot, vectorized screen, exact re-check of the
candidates only, plan; execute is idempotent (a handled trigger is a typed no-op)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from orchestrator.liquidation.keeper import Keeper, KeeperTick
from orchestrator.liquidation.snapshot import screen_candidates
from orchestrator.risk import CollateralLot, Position, position_risk
from orchestrator.venues import (
    LiquidationOutcome,
    LiquidationRefused,
    PositionSnapshot,
    PriceQuote,
    SettlementRequest,
    VenueAdapter,
)
from orchestrator.venues.errors import RefusalCode, refusal_from_reason
from shared.chain import ChainKind, ChainRef
from shared.errors import UnsupportedOperation
from tests.unit.risk.constants import E8, ETH_USD_IM10_MM5, UNIT, USD

MARK = 2_000 * E8
PRICES = {"ETH": MARK, "USDC": E8, "BTC": 60_000 * E8}


def snap(key: int, size_e18: int, usdc: int, *, entry_e8: int = 2_000 * E8, mark: int = MARK,
         buffer_ppm: int = 0, fees: int = 0) -> PositionSnapshot:
    hexkey = "0x" + f"{key:064x}"
    position = Position(hexkey, 0, size_e18, entry_e8, (CollateralLot("USDC", usdc * UNIT),),
                        accrued_fees_usd_e18=fees)
    return PositionSnapshot(hexkey, "0x" + "ee" * 32, position, ETH_USD_IM10_MM5,
                            {**PRICES, "ETH": mark}, 1_700_000_000, buffer_ppm, 0)


class FakeVenue:
    """In-memory adapter: positions as given; liquidation refusals scripted."""

    name = "fake:0x" + "00" * 20
    chain = ChainRef("fake", ChainKind.EVM, 1)

    def __init__(self, snaps: Sequence[PositionSnapshot]) -> None:
        self.book = {s.key: s for s in snaps}
        self.reads: list[list[str]] = []
        self.refuse: str | None = None

    async def read_positions(self, keys: Sequence[str]) -> list[PositionSnapshot]:
        self.reads.append(list(keys))
        return [self.book[k] for k in keys if k in self.book]

    async def prices(self) -> Mapping[str, PriceQuote]:
        return {f: PriceQuote(f, p, 1_700_000_000) for f, p in PRICES.items()}

    async def submit_liquidation(self, position_key: str, fraction_ppm: int
                                 ) -> LiquidationOutcome:
        if self.refuse:
            raise refusal_from_reason(self.chain.key, position_key, self.refuse)
        return LiquidationOutcome(position_key, "0xtx", 7, fraction_ppm == 10**6, 1, MARK, 0, 1)

    async def submit_liquidations(self, plans: Sequence[tuple[str, int]]) -> list[Any]:
        raise UnsupportedOperation(self.chain.key, "liquidateBatch")  # one per transaction

    async def settlement_events(self, start: int, end: int) -> Sequence[SettlementRequest]:
        return []

    async def credit(self, attestation: Any, sigs: Sequence[bytes]) -> Any:
        raise NotImplementedError

    async def chain_time(self) -> int:
        return 1_700_000_100

    async def aclose(self) -> None:
        return None


HEALTHY = snap(1, 10 * UNIT, 5_000)  # 4x: E 5000 >= IM 2000
UNDERWATER = snap(2, 10 * UNIT, 2_000, mark=1_820 * E8)  # E 200 < MM 910 / 2: full
SHORT_HEALTHY = snap(3, -10 * UNIT, 5_000)


def test_fake_is_a_venue_adapter() -> None:
    assert isinstance(FakeVenue([]), VenueAdapter)


def test_plan_screens_all_and_rechecks_only_candidates_on_a_fresh_read() -> None:
    venue = FakeVenue([HEALTHY, UNDERWATER, SHORT_HEALTHY])
    tick = asyncio.run(Keeper(venue).plan([HEALTHY.key, UNDERWATER.key, SHORT_HEALTHY.key]))
    assert isinstance(tick, KeeperTick)
    assert [p.position_key for p in tick.plans] == [UNDERWATER.key]
    assert tick.plans[0].plan.close_fraction_ppm == 10**6  # E < MM * full_ratio: full
    assert (tick.stats.positions, tick.stats.candidates, tick.stats.liquidatable) == (3, 1, 1)
    assert tick.stats.duration_us >= 0
    assert venue.reads == [[HEALTHY.key, UNDERWATER.key, SHORT_HEALTHY.key], [UNDERWATER.key]]


def test_plan_accepts_bytes_keys_and_skips_flat_ones() -> None:
    venue = FakeVenue([UNDERWATER])
    raw = [bytes.fromhex(UNDERWATER.key[2:]), bytes(32)]
    tick = asyncio.run(Keeper(venue).plan(raw))
    assert [p.position_key for p in tick.plans] == [UNDERWATER.key]
    assert tick.stats.positions == 1


def test_plan_with_nothing_to_screen_reads_once() -> None:
    venue = FakeVenue([])
    tick = asyncio.run(Keeper(venue).plan([]))
    assert tick.plans == [] and tick.stats.positions == 0 and len(venue.reads) == 1


@pytest.mark.parametrize(("reason", "outcome"), [
    ("NotLiquidatable(5, 7)", "no-op"),
    ("NoOpenTrade(0x" + "00" * 32 + ")", "no-op"),
    ("LiquidationCooldown(1700000030)", "no-op"),
    ("StepTooLarge(300000, 250000)", "no-op"),
])
def test_execute_reports_a_handled_trigger_as_a_no_op(reason: str, outcome: str) -> None:
    venue = FakeVenue([UNDERWATER])
    venue.refuse = reason
    result = asyncio.run(Keeper(venue).execute(UNDERWATER.key, 10**6))
    assert result["outcome"] == outcome and result["reason"] == reason


def test_execute_raises_a_refusal_that_is_not_a_no_op() -> None:
    venue = FakeVenue([UNDERWATER])
    venue.refuse = "StalePrice(0x" + "11" * 32 + ", 5, 600)"
    with pytest.raises(LiquidationRefused) as info:
        asyncio.run(Keeper(venue).execute(UNDERWATER.key, 10**6))
    assert info.value.code is RefusalCode.PRICE_INVALID and not info.value.no_op


def test_execute_reports_the_landed_liquidation() -> None:
    result = asyncio.run(Keeper(FakeVenue([UNDERWATER])).execute(UNDERWATER.key, 10**6))
    assert result == {"position": UNDERWATER.key, "outcome": "full", "tx": "0xtx",
                      "settlements": 0, "shortfall": "0"}


def test_screen_never_misses_what_the_exact_rule_liquidates() -> None:
    rng = random.Random(7)
    snaps = []
    for i in range(2_000):
        size = rng.choice([-1, 1]) * rng.randint(1, 50 * UNIT)
        usdc = rng.randint(0, 20_000)
        snaps.append(snap(i + 10, size, usdc, entry_e8=rng.randint(1_500, 2_500) * E8,
                          mark=rng.randint(1_500, 2_500) * E8,
                          fees=rng.randint(0, 5) * USD))
    found = set(screen_candidates(snaps).candidates)
    exact = {i for i, s in enumerate(snaps)
             if position_risk(s.position, s.prices_e8, s.params, s.buffer_ppm).is_liquidatable()}
    assert exact <= found
    assert len(found - exact) <= len(snaps) // 100  # the band adds almost no false positives


def test_a_snapshot_that_cannot_be_screened_is_forced_to_the_exact_check() -> None:
    broken = PositionSnapshot(HEALTHY.key, HEALTHY.market, HEALTHY.position, HEALTHY.params,
                              {"ETH": MARK}, 1, 0, 0)  # no USDC price
    result = screen_candidates([HEALTHY, broken])
    assert result.candidates == (1,) and result.forced == 1


def test_the_tick_publishes_its_screen_figures_as_integers() -> None:
    from orchestrator.liquidation.keeper import ScreenStats
    from workers.stores import keys
    from workers.tasks.risk import publish_screen  # importing a task reads no settings

    LAST_SCREEN_KEY = keys.risk_last_screen()

    class Hashes:
        def __init__(self) -> None:
            self.data: dict[str, dict[str, Any]] = {}

        def hset(self, key: str, mapping: dict[str, Any]) -> None:
            self.data.setdefault(key, {}).update(mapping)

    client = Hashes()
    publish_screen(client, ScreenStats(positions=12, candidates=2, liquidatable=1,
                                       duration_us=1_500, snapshot_us=90_000), at_ms=1_700)
    assert LAST_SCREEN_KEY == "bh:risk:last_screen"
    assert client.data[LAST_SCREEN_KEY] == {"duration_us": 1_500, "positions": 12,
                                            "candidates": 2, "at_ms": 1_700}
