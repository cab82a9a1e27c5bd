"""Venue adapters: the seam between the orchestrator and a margin venue on any chain.

``protocol`` (pure values and the :class:`VenueAdapter` protocol), ``errors`` (typed refusals),
``registry`` (built-ins and the ``bulkhead.venues`` entry points). The reference adapter lives
with its chain: :mod:`orchestrator.venues.reference`.
"""

from __future__ import annotations

from orchestrator.venues.errors import (
    LiquidationCoolingDown,
    LiquidationRefused,
    NoOpenPosition,
    PositionNotLiquidatable,
    RefusalCode,
    UnknownVenue,
    VenueConflict,
)
from orchestrator.venues.protocol import (
    CreditReceipt,
    LiquidationOutcome,
    PositionSnapshot,
    PriceQuote,
    RiskTuning,
    SettlementKind,
    SettlementRequest,
    VenueAdapter,
    VenueMargin,
)
from orchestrator.venues.registry import (
    ENTRY_POINT_GROUP,
    VenueFactory,
    available_venues,
    open_venue,
    venue_factory,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "CreditReceipt",
    "LiquidationCoolingDown",
    "LiquidationOutcome",
    "LiquidationRefused",
    "NoOpenPosition",
    "PositionNotLiquidatable",
    "PositionSnapshot",
    "PriceQuote",
    "RefusalCode",
    "RiskTuning",
    "SettlementKind",
    "SettlementRequest",
    "UnknownVenue",
    "VenueAdapter",
    "VenueConflict",
    "VenueFactory",
    "VenueMargin",
    "available_venues",
    "open_venue",
    "venue_factory",
]
