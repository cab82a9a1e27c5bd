"""A liquidateBatch receipt's events are attributed to its items by frame order (pure)."""

from __future__ import annotations

from chains.evm.bridge_codec import SettlementRequestedEvent
from chains.evm.venue_base import split_liquidations
from chains.evm.venue_codec import LiquidatedEvent, LiquidationSkippedEvent, ShortfallEvent
from shared.messages import SettlementKind

A, B, C, D = (bytes([i]) * 32 for i in (1, 2, 3, 4))


def liquidated(key: bytes, full: bool = True) -> LiquidatedEvent:
    return LiquidatedEvent(key, b"\x09" * 32, -10, 100, 5, full, 7, 1, "0xtx", 0)


def request(n: int) -> SettlementRequestedEvent:
    return SettlementRequestedEvent(bytes([n]) * 32, 31337, b"\x00" * 32, bytes([n]) * 32,
                                    b"\x00" * 32, n, SettlementKind.SEIZE, 1, "0xh", "0xtx", n)


def test_each_item_gets_its_own_settlements_shortfall_or_refusal() -> None:
    events = [liquidated(A), request(1), request(2), ShortfallEvent(A, 9, 1, "0xtx", 3),
              LiquidationSkippedEvent(1, B, "NotLiquidatable", "NotLiquidatable(5, 3)", 1,
                                      "0xtx", 4),
              liquidated(C, full=False)]
    items = split_liquidations([A, B, C, D], events)
    assert [i.position_key for i in items] == [A, B, C, D]
    a, b, c, d = items
    assert a.liquidated is not None and [s.amount for s in a.settlements] == [1, 2]
    assert a.shortfall is not None and a.shortfall.usd_e18 == 9
    assert b.liquidated is None and b.skipped == "NotLiquidatable(5, 3)"
    assert c.liquidated is not None and not c.liquidated.full and not c.settlements
    assert d.liquidated is None and d.skipped == "NoEvent"  # the receipt says nothing of it
