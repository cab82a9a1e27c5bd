"""What every part of the venue client shares: its ABI, event decoding and mined outcomes.

:class:`VenueContract` is the base of the credit, trading and admin parts of
:class:`chains.evm.venue.VenueClient` (one client, split by purpose across modules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chains.evm.bridge_codec import (
    CreditedEvent,
    CreditQueuedEvent,
    CreditSkippedEvent,
    SettlementRequestedEvent,
)
from chains.evm.contract import ContractClient
from chains.evm.venue_codec import (
    LiquidatedEvent,
    LiquidationSkippedEvent,
    ShortfallEvent,
    TradedEvent,
    VenueEvent,
    decode_venue_log,
)
from shared.errors import ChainError
from shared.messages import SettlementKind

__all__ = [
    "BatchLiquidationOutcome", "CreditOutcome", "ItemLiquidation", "TradeOutcome",
    "VenueContract", "split_liquidations",
]


@dataclass(frozen=True, slots=True)
class CreditOutcome:
    """What one mined ``credit``/``creditBatch`` did, item by item, read from its receipt.

    ``credited``/``queued`` are lock keys; ``skipped`` is (lock key, error name) for items the
    batch refused (not consumed: they may be sent again). ``events`` has the decoded logs.
    """

    tx_hash: str
    block_number: int
    gas_used: int
    credited: list[bytes]
    queued: list[bytes]
    skipped: list[tuple[bytes, str]]
    events: list[VenueEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TradeOutcome:
    """What one mined trading call (open/increase/reduce/close/liquidate) did, from its receipt.

    ``traded`` is the ``Traded`` event of a user trade, ``liquidated`` the ``Liquidated`` event
    of a liquidation; ``settlements`` the seize and release requests of a settlement (a close
    with a booked loss, or a full liquidation), in log order; ``shortfall`` the loss the
    position's own collateral could not cover (taken from the insurance fund).
    """

    tx_hash: str
    block_number: int
    gas_used: int
    traded: TradedEvent | None
    liquidated: LiquidatedEvent | None
    settlements: list[SettlementRequestedEvent]
    shortfall: ShortfallEvent | None
    events: list[VenueEvent] = field(default_factory=list)

    @property
    def seized(self) -> list[SettlementRequestedEvent]:
        return [e for e in self.settlements if e.kind == SettlementKind.SEIZE]

    @property
    def released(self) -> list[SettlementRequestedEvent]:
        return [e for e in self.settlements if e.kind == SettlementKind.RELEASE]


@dataclass(frozen=True, slots=True)
class ItemLiquidation:
    """One position's part of a mined ``liquidateBatch``: its ``Liquidated`` event and the
    settlements and shortfall that followed it in the receipt, or the reason it was skipped."""

    position_key: bytes
    liquidated: LiquidatedEvent | None
    settlements: list[SettlementRequestedEvent] = field(default_factory=list)
    shortfall: ShortfallEvent | None = None
    skipped: str | None = None  # the custom error's name when it was not liquidated


@dataclass(frozen=True, slots=True)
class BatchLiquidationOutcome:
    tx_hash: str
    block_number: int
    gas_used: int
    items: list[ItemLiquidation]


def split_liquidations(keys: list[bytes], events: list[Any]) -> list[ItemLiquidation]:
    """Attribute a ``liquidateBatch`` receipt's events to its items, in order: a position's
    settlement requests and shortfall follow its ``Liquidated`` event (one frame per item)."""
    done: dict[bytes, ItemLiquidation] = {}
    current: ItemLiquidation | None = None
    for event in events:
        if isinstance(event, LiquidatedEvent):
            current = ItemLiquidation(event.position_key, event)
            done[event.position_key] = current
        elif isinstance(event, LiquidationSkippedEvent):
            done[event.position_key] = ItemLiquidation(event.position_key, None,
                                                       skipped=event.detail)
            current = None
        elif isinstance(event, SettlementRequestedEvent) and current is not None:
            current.settlements.append(event)
        elif isinstance(event, ShortfallEvent) and current is not None:
            done[current.position_key] = current = ItemLiquidation(
                current.position_key, current.liquidated, current.settlements, event)
    return [done.get(k) or ItemLiquidation(k, None, skipped="NoEvent") for k in keys]


class VenueContract(ContractClient):
    """``IsolatedMarginVenue``: receipt and log decoding shared by the client's parts."""

    _ARTIFACT = "IsolatedMarginVenue"

    def _receipt_events(self, receipt: Mapping[str, Any]) -> list[Any]:
        events = (decode_venue_log(log, chain=self.chain.key, error_abis=self._error_abis)
                  for log in receipt["logs"] if self._emitted(log))
        return [e for e in events if e is not None]

    async def _trade(self, fn: str, args: tuple[Any, ...], timeout_s: float) -> TradeOutcome:
        receipt = await self._transact(fn, lambda c: c.functions[fn](*args), timeout_s=timeout_s)
        events = self._receipt_events(receipt)
        traded = [e for e in events if isinstance(e, TradedEvent)]
        liquidated = [e for e in events if isinstance(e, LiquidatedEvent)]
        shortfall = [e for e in events if isinstance(e, ShortfallEvent)]
        if len(traded) + len(liquidated) != 1 or len(shortfall) > 1:
            raise ChainError(f"{self.chain.key}: {fn} mined without exactly one trade event")
        return TradeOutcome(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            traded=traded[0] if traded else None,
            liquidated=liquidated[0] if liquidated else None,
            settlements=[e for e in events if isinstance(e, SettlementRequestedEvent)],
            shortfall=shortfall[0] if shortfall else None,
            events=events,
        )

    def _decode(self, raw: Mapping[str, Any]) -> VenueEvent:
        event = decode_venue_log(raw, chain=self.chain.key, error_abis=self._error_abis)
        assert event is not None  # the topic filter only lets known events through
        return event

    def _outcome(self, receipt: Mapping[str, Any]) -> CreditOutcome:
        events = self._receipt_events(receipt)
        return CreditOutcome(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            credited=[e.lock_key for e in events if isinstance(e, CreditedEvent)],
            queued=[e.lock_key for e in events if isinstance(e, CreditQueuedEvent)],
            skipped=[(e.lock_key, e.reason) for e in events if isinstance(e, CreditSkippedEvent)],
            events=events,
        )
