"""Values of the risk audit (I6–I10) and the venue's fixed-point arithmetic, pure.

What :mod:`orchestrator.audit.risk_collect` reads from the venue chain and
:mod:`orchestrator.audit.risk_rules` judges. The arithmetic re-implements ``VenueCore``'s
integer rules on purpose, independently of ``orchestrator.risk``: an audit that shares the code
it audits proves little. Amounts are ints: usdE18 values, priceE8 prices, sizeE18 sizes,
source base units. Position keys are bytes32 hex.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "CREDIT_EVENTS",
    "PPM",
    "PRICE_ONE",
    "SHORTFALL_RESIDUE_MAX",
    "USER_OPS",
    "CreditConversion",
    "FeedRead",
    "Lane",
    "MarginValues",
    "MarketView",
    "OpKind",
    "PositionView",
    "RiskAuditInput",
    "RiskOp",
    "Seizure",
    "Touch",
    "ceil_div",
    "collateral_value",
    "fee",
    "haircut_value",
    "margin_values",
    "pnl",
]

PPM = 1_000_000
PRICE_ONE = 10**8
SHORTFALL_RESIDUE_MAX = 10**6  # usdE18: the per-lock rounding residue the venue may book
CREDIT_EVENTS = frozenset({"Credited", "CreditQueued"})


class OpKind(StrEnum):
    OPEN = "open"
    INCREASE = "increase"
    REDUCE = "reduce"
    CLOSE = "close"
    RELEASE = "release"  # a user's requestRelease (remove margin / withdraw)
    LIQUIDATE = "liquidate"


USER_OPS = frozenset({OpKind.OPEN, OpKind.INCREASE, OpKind.REDUCE, OpKind.CLOSE, OpKind.RELEASE})


@dataclass(frozen=True, slots=True)
class Touch:
    """One venue event that changes a position's collateral, margin or trade."""

    tx_id: str
    height: int
    log_index: int
    event: str  # Credited, CreditQueued, QueuedCreditReleased, SettlementRequested, Traded, ...
    position_key: str


@dataclass(frozen=True, slots=True)
class FeedRead:
    """The mark of one oracle id an operation read (recomputed by the audit from its sources)."""

    oracle_id: str
    price_e8: int | None  # None: never published before the operation
    publish_time: int | None
    min_price_e8: int  # exclusive bounds: the market's for a mark, the lane's for collateral
    max_price_e8: int


@dataclass(frozen=True, slots=True)
class Lane:
    """One collateral entry (srcChainId, srcAsset) of a position before the operation."""

    src_chain_id: int
    src_asset: str
    amount18: int
    haircut_ppm: int
    feed: FeedRead


@dataclass(frozen=True, slots=True)
class MarketView:
    oracle_id: str
    imr_ppm: int
    mmr_ppm: int
    buffer_ppm: int
    liq_fee_ppm: int
    liq_fee_cap_usd_e18: int
    max_age_user_s: int
    max_age_liq_s: int
    full_ratio_ppm: int
    cooldown_s: int


@dataclass(frozen=True, slots=True)
class PositionView:
    size_e18: int
    entry_e8: int
    realized_usd_e18: int
    last_liquidation: int


@dataclass(frozen=True, slots=True)
class Seizure:
    """A seize request of the operation's transaction, with its lock's lane."""

    src_chain_id: int
    src_asset: str
    amount: int  # source base units
    decimals: int


@dataclass(frozen=True, slots=True)
class RiskOp:
    """One user trade, user release or liquidation, with the state it was judged on."""

    kind: OpKind
    position_key: str
    tx_id: str
    height: int
    log_index: int
    timestamp: int  # the block's (the venue's clock)
    before: PositionView
    market: MarketView
    mark: FeedRead
    lanes: tuple[Lane, ...] = ()
    exact: bool = True
    price_e8: int | None = None  # Traded.priceE8 / Liquidated.markE8
    fee_usd_e18: int = 0
    realized_pnl_usd_e18: int = 0  # Traded
    size_after_e18: int = 0  # Traded
    entry_after_e8: int = 0  # Traded
    closed_size_e18: int = 0  # Liquidated (signed like the position)
    full: bool = False  # Liquidated
    plan_tick: int | None = None  # Liquidated
    released: tuple[int, str, int] | None = None  # RELEASE: (srcChainId, srcAsset, amount18)
    seized: tuple[Seizure, ...] = ()
    shortfall_usd_e18: int | None = None  # the transaction's Shortfall, if any

    @property
    def subject(self) -> str:
        return f"{self.position_key}@{self.tx_id}"


@dataclass(frozen=True, slots=True)
class CreditConversion:
    """A Credited / QueuedCreditReleased event: source amount, its 18-decimal credit."""

    lock: str
    amount: int
    amount18: int
    decimals: int


@dataclass(frozen=True, slots=True)
class RiskAuditInput:
    touches: Sequence[Touch] = ()
    ops: Sequence[RiskOp] = ()
    conversions: Sequence[CreditConversion] = ()
    insurance_fund_usd_e18: int | None = None  # the venue's balance at the audited head
    insurance_funded_usd_e18: Sequence[int] = ()  # InsuranceFunded amounts
    shortfalls_usd_e18: Sequence[int] = ()  # every Shortfall amount
    fee_pool_usd_e18: int | None = None
    documents: Mapping[str, Any] = field(default_factory=dict)  # JSON shown to users


# ----- the venue's arithmetic -------------------------------------------------------------------


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for b > 0."""
    return -(-a // b)


def pnl(size_e18: int, mark_e8: int, entry_e8: int) -> int:
    """floor(size * (mark - entry) / 1e8), toward minus infinity (Python's // already is)."""
    return size_e18 * (mark_e8 - entry_e8) // PRICE_ONE


def haircut_value(amount18: int, price_e8: int, haircut_ppm: int) -> int:
    """floor(floor(amount18 * price / 1e8) * (1e6 - haircut) / 1e6): collateral floors."""
    return amount18 * price_e8 // PRICE_ONE * (PPM - haircut_ppm) // PPM


def fee(size_abs: int, mark_e8: int, rate_ppm: int) -> int:
    """ceil(ceil(|size| * mark / 1e8) * rate / 1e6): fees round up."""
    return ceil_div(ceil_div(size_abs * mark_e8, PRICE_ONE) * rate_ppm, PPM)


@dataclass(frozen=True, slots=True)
class MarginValues:
    collateral: int
    equity: int
    initial: int
    maintenance: int
    notional: int


def collateral_value(lanes: Iterable[Lane]) -> int | None:
    """C: the haircut value of every non-empty lane (None: a needed price is missing)."""
    total = 0
    for lane in lanes:
        if lane.amount18 == 0:
            continue
        if lane.feed.price_e8 is None:
            return None
        total += haircut_value(lane.amount18, lane.feed.price_e8, lane.haircut_ppm)
    return total


def margin_values(collateral: int, pos: PositionView, market: MarketView,
                  mark_e8: int) -> MarginValues:
    """(C, E, IM, MM, N) exactly as ``VenueCore._margin``: notional and margins round up,
    PnL floors toward minus infinity."""
    equity = collateral + pos.realized_usd_e18
    if pos.size_e18 == 0:
        return MarginValues(collateral, equity, 0, 0, 0)
    notional = ceil_div(abs(pos.size_e18) * mark_e8, PRICE_ONE)
    equity += pnl(pos.size_e18, mark_e8, pos.entry_e8)
    return MarginValues(collateral, equity, ceil_div(notional * market.imr_ppm, PPM),
                        ceil_div(notional * (market.mmr_ppm + market.buffer_ppm), PPM),
                        notional)
