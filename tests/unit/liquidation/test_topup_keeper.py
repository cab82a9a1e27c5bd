"""TopUpKeeper against an in-memory venue: read, plan, send, and treat "already done" refusals
as no-ops (the real venue is exercised in tests/integration/evm/test_topup.py)."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from chains.evm.bridge_codec import LockCredit, LockStatus
from chains.evm.venue_codec import CollateralConfig, MarginState, PositionState, ToppedUp
from orchestrator.liquidation.topup_keeper import TopUpKeeper
from orchestrator.risk.topup import TopUpRule
from shared.errors import TxRejected

E18, E8, NOW = 10**18, 10**8, 1_700_000_000
TARGET, RESERVE, QUIET = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
FEED = b"\xfe" * 32
ETH = b"\xee" * 32


def lock(n: int) -> bytes:
    return bytes([0xA0 + n]) * 32


@dataclass
class Market:
    cooldown_s: int = 30
    max_age_liq_s: int = 600


@dataclass
class FakeVenue:
    """Just the reads and the one send the keeper uses; ``top_up`` moves a lock's USD 1:1."""

    equity: int = 297 * E18
    locks: dict[bytes, int] = field(default_factory=lambda: {lock(1): 100, lock(2): 200})
    refuse: str | None = None
    sent: list[bytes] = field(default_factory=list)

    async def topup_rule_of(self, key: bytes) -> TopUpRule | None:
        return TopUpRule("0x" + RESERVE.hex(), 1_500_000, 1_000 * E18) if key == TARGET else None

    async def position_of(self, key: bytes) -> PositionState:
        return PositionState(ETH, 2 * E18 if key == TARGET else 0, 3_000 * E8, 0, 0)

    async def market_of(self, market: bytes) -> tuple[Market, int]:
        return Market(), 0

    async def margin_of(self, key: bytes) -> MarginState:
        return MarginState(0, self.equity, 0, 265 * E18, 5_300 * E18)

    async def position_locks(self, key: bytes) -> list[bytes]:
        return list(self.locks) if key == RESERVE else []

    async def lock_credit(self, key: bytes) -> LockCredit:
        return LockCredit(RESERVE, b"\x00" * 32, b"\x00" * 32, self.locks[key] * 10**6, 900001,
                          LockStatus.CREDITED, 6, 0)

    async def collateral_config_of(self, chain: int, asset: bytes) -> CollateralConfig:
        return CollateralConfig(FEED, 0, 1, 10**20)

    async def top_up(self, key: bytes, lock_key: bytes) -> ToppedUp:
        if self.refuse:
            raise TxRejected("evm-b", None, self.refuse)
        self.sent.append(lock_key)
        usd = self.locks.pop(lock_key)
        self.equity += usd * E18
        return ToppedUp("0x" + key.hex(), "0x" + RESERVE.hex(), "0x" + lock_key.hex(),
                        usd * E18, usd * E18, "0x" + "00" * 32, 1)


class FakeOracle:
    """``OracleClient.price_of``: (price_e8, publish time), or None when never published."""

    def __init__(self, at: int | None = NOW) -> None:
        self.at = at

    async def price_of(self, oracle_id: bytes, max_age_s: int | None = None
                       ) -> tuple[int, int] | None:
        """As MarkOracle.getMark: no mark once every source is older than the max age."""
        if self.at is None or (max_age_s is not None and NOW - self.at > max_age_s):
            return None
        return E8, self.at


async def now() -> int:
    return NOW


def run_keeper(venue: FakeVenue, oracle: Any = None) -> list[dict[str, Any]]:
    keeper = TopUpKeeper(venue, oracle or FakeOracle(), chain_time=now)
    return asyncio.run(keeper.run([QUIET, TARGET, RESERVE]))


def test_moves_the_cheapest_restoring_lock_then_nothing() -> None:
    venue = FakeVenue()
    first = run_keeper(venue)
    assert [(r["lock"], r["outcome"]) for r in first] == [("0x" + lock(2).hex(), "moved")]
    assert run_keeper(venue) == [] and venue.sent == [lock(2)]


def test_a_venue_refusal_meaning_done_is_a_no_op() -> None:
    venue = FakeVenue(refuse="LockNotInPosition(0x.., 0x..)")
    rows = run_keeper(venue)
    assert [r["outcome"] for r in rows] == ["no-op"] and venue.sent == []


def test_other_refusals_are_reported_not_raised() -> None:
    venue = FakeVenue(refuse="StalePrice(0x.., 1, 600)")
    assert [r["outcome"] for r in run_keeper(venue)] == ["refused"]


def test_stale_reserve_prices_leave_locks_out() -> None:
    venue = FakeVenue()
    assert run_keeper(venue, FakeOracle(at=NOW - 601)) == [] and venue.sent == []


def test_never_published_reserve_prices_leave_locks_out() -> None:
    venue = FakeVenue()
    assert run_keeper(venue, FakeOracle(at=None)) == [] and venue.sent == []


def test_healthy_target_sends_nothing() -> None:
    venue = FakeVenue(equity=400 * E18)
    assert run_keeper(venue) == [] and venue.sent == []
