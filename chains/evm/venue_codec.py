"""Pure encoding and decoding of the venue's trading side (``IsolatedMarginVenue``). No I/O.

* :class:`MarketParams` (the venue's ``MarketParams`` struct, :func:`market_params_tuple` /
  :func:`market_params_from_tuple`), :class:`CollateralConfig`, :class:`PositionState`
  (``positionOf``) and :class:`MarginState` (``marginOf``). Fixed point as the contract: USD
  ``usd_e18``, prices ``price_e8``, sizes ``size_e18`` (signed, long > 0), rates ppm.
* The ``Traded``, ``Liquidated``, ``Shortfall``, ``BufferSet`` and ``ToppedUp`` events and the
  top-up rule view, decoded strictly (:mod:`chains.evm.log_fields`).
* :func:`decode_venue_log` decodes any of the venue's events, bridge ones
  (:mod:`chains.evm.bridge_codec`) included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from chains.evm.bridge_codec import (
    CREDIT_QUEUED_TOPIC0,
    CREDIT_SKIPPED_TOPIC0,
    CREDITED_TOPIC0,
    QUEUED_CREDIT_RELEASED_TOPIC0,
    SETTLEMENT_REQUESTED_TOPIC0,
    VENUE_EVENT_SIGNATURES,
    CreditedEvent,
    CreditQueuedEvent,
    CreditSkippedEvent,
    QueuedCreditReleasedEvent,
    SettlementRequestedEvent,
    decode_credit_queued,
    decode_credit_skipped,
    decode_credited,
    decode_queued_credit_released,
    decode_settlement_requested,
    decode_skipped_item,
)
from chains.evm.log_fields import (
    log_bytes,
    log_field,
    parse_log,
    word_bool,
    word_int,
    word_uint,
)
from shared.errors import InputError, LogMalformed

__all__ = [
    "BUFFER_SET_TOPIC0",
    "LIQUIDATED_TOPIC0",
    "SHORTFALL_TOPIC0",
    "TOPUP_RULE_CLEARED_TOPIC0",
    "TOPUP_RULE_SET_TOPIC0",
    "TRADED_TOPIC0",
    "BufferSetEvent",
    "CollateralConfig",
    "LiquidatedEvent",
    "MarginState",
    "MarketParams",
    "PositionState",
    "ShortfallEvent",
    "TopUpRuleState",
    "ToppedUp",
    "TradedEvent",
    "VenueEvent",
    "collateral_config_from_tuple",
    "collateral_config_tuple",
    "decode_buffer_set",
    "decode_liquidated",
    "decode_shortfall",
    "decode_traded",
    "decode_venue_log",
    "margin_state_from_tuple",
    "market_params_from_tuple",
    "market_params_tuple",
    "position_state_from_tuple",
]


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


TRADED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["Traded"])
TOPUP_RULE_SET_TOPIC0 = _topic("TopUpRuleSet(bytes32,bytes32,uint32,uint256)")
TOPUP_RULE_CLEARED_TOPIC0 = _topic("TopUpRuleCleared(bytes32)")
LIQUIDATED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["Liquidated"])
SHORTFALL_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["Shortfall"])
BUFFER_SET_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["BufferSet"])
LIQUIDATION_SKIPPED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["LiquidationSkipped"])
_TOPIC0_BYTES = {name: keccak(text=signature) for name, signature in VENUE_EVENT_SIGNATURES.items()}


# ----- trading ---------------------------------------------------------------------------------

_PPM = 10**6
# MarketParams field -> uint width in the contract's struct (oracle_id is bytes32)
_MARKET_BITS = {"imr_ppm": 32, "mmr_ppm": 32, "taker_fee_ppm": 32, "liq_fee_ppm": 32,
                "liq_fee_cap_usd_e18": 128, "max_age_user_s": 32, "max_age_liq_s": 32,
                "min_price_e8": 128, "max_price_e8": 128, "step_max_ppm": 32,
                "full_ratio_ppm": 32, "dust_notional_usd_e18": 128, "cooldown_s": 32,
                "buffer_max_ppm": 32}


@dataclass(frozen=True, slots=True)
class MarketParams:
    """The venue's ``MarketParams`` struct (owner-set), fields in the struct's order.

    The contract refuses (``InvalidMarketParams``) unless: oracle id non-zero;
    0 < mmr_ppm; mmr_ppm + buffer_max_ppm <= imr_ppm <= 1e6 and mmr_ppm + buffer_max_ppm < 1e6;
    taker_fee_ppm < 1e6; liq_fee_ppm < mmr_ppm; 0 < step_max_ppm <= 1e6;
    0 < full_ratio_ppm <= 1e6; 0 < max_age_user_s < max_age_liq_s; 0 < min_price_e8 <
    max_price_e8 (the invariants of ``orchestrator.risk.params.RiskParams``). :meth:`check`
    applies the same rules (and the types' widths) before anything is sent.
    """

    oracle_id: bytes
    imr_ppm: int
    mmr_ppm: int
    taker_fee_ppm: int
    liq_fee_ppm: int
    liq_fee_cap_usd_e18: int
    max_age_user_s: int
    max_age_liq_s: int
    min_price_e8: int
    max_price_e8: int
    step_max_ppm: int
    full_ratio_ppm: int
    dust_notional_usd_e18: int
    cooldown_s: int
    buffer_max_ppm: int

    def check(self) -> None:
        """Raises: InputError naming the first field the contract would refuse."""
        if not isinstance(self.oracle_id, (bytes, bytearray)) or len(self.oracle_id) != 32:
            raise InputError("oracle_id", "must be exactly 32 bytes")
        if not any(self.oracle_id):
            raise InputError("oracle_id", "must not be zero")
        for name, bits in _MARKET_BITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
                raise InputError(name, f"must be an int in uint{bits}, got {value!r}")
        rules = (
            ("mmr_ppm", 0 < self.mmr_ppm, "must be > 0"),
            ("imr_ppm", self.mmr_ppm + self.buffer_max_ppm <= self.imr_ppm <= _PPM,
             "need mmr_ppm + buffer_max_ppm <= imr_ppm <= 1e6"),
            ("buffer_max_ppm", self.mmr_ppm + self.buffer_max_ppm < _PPM,
             "mmr_ppm + buffer_max_ppm must be < 1e6"),
            ("taker_fee_ppm", self.taker_fee_ppm < _PPM, "must be < 1e6"),
            ("liq_fee_ppm", self.liq_fee_ppm < self.mmr_ppm, "must be < mmr_ppm"),
            ("step_max_ppm", 0 < self.step_max_ppm <= _PPM, "must be in 1..1e6"),
            ("full_ratio_ppm", 0 < self.full_ratio_ppm <= _PPM, "must be in 1..1e6"),
            ("max_age_user_s", 0 < self.max_age_user_s, "must be > 0"),
            ("max_age_liq_s", self.max_age_user_s < self.max_age_liq_s,
             "must be longer than max_age_user_s"),
            ("min_price_e8", 0 < self.min_price_e8, "must be > 0"),
            ("max_price_e8", self.min_price_e8 < self.max_price_e8, "must be > min_price_e8"),
        )
        for name, ok, message in rules:
            if not ok:
                raise InputError(name, message)


def market_params_tuple(p: MarketParams) -> tuple[Any, ...]:
    """``MarketParams`` as the tuple web3 encodes. Raises: InputError (see ``check``)."""
    p.check()
    return (bytes(p.oracle_id), p.imr_ppm, p.mmr_ppm, p.taker_fee_ppm, p.liq_fee_ppm,
            p.liq_fee_cap_usd_e18, p.max_age_user_s, p.max_age_liq_s, p.min_price_e8,
            p.max_price_e8, p.step_max_ppm, p.full_ratio_ppm, p.dust_notional_usd_e18,
            p.cooldown_s, p.buffer_max_ppm)


def market_params_from_tuple(value: Sequence[Any]) -> MarketParams:
    oracle_id, *rest = value
    return MarketParams(bytes(oracle_id), *(int(v) for v in rest))


@dataclass(frozen=True, slots=True)
class CollateralConfig:
    """Collateral price of one lane (src chain, asset) on the venue (``collateralConfigOf``):
    oracle id (zero: not priced), haircut (< 1e6) and exclusive bounds 0 < min < max."""

    oracle_id: bytes
    haircut_ppm: int
    min_price_e8: int
    max_price_e8: int

    def check(self) -> None:
        """Raises: InputError naming the first field the contract would refuse."""
        if not isinstance(self.oracle_id, (bytes, bytearray)) or len(self.oracle_id) != 32:
            raise InputError("oracle_id", "must be exactly 32 bytes")
        for name, bits in (("haircut_ppm", 32), ("min_price_e8", 112), ("max_price_e8", 112)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
                raise InputError(name, f"must be an int in uint{bits}, got {value!r}")
        if self.haircut_ppm >= _PPM:
            raise InputError("haircut_ppm", "must be < 1e6")
        if any(self.oracle_id) and not 0 < self.min_price_e8 < self.max_price_e8:
            raise InputError("max_price_e8", "need 0 < min_price_e8 < max_price_e8")


def collateral_config_tuple(c: CollateralConfig) -> tuple[Any, ...]:
    """Raises: InputError (see ``check``)."""
    c.check()
    return (bytes(c.oracle_id), c.haircut_ppm, c.min_price_e8, c.max_price_e8)


def collateral_config_from_tuple(value: Sequence[Any]) -> CollateralConfig:
    oracle_id, haircut, low, high = value
    return CollateralConfig(bytes(oracle_id), int(haircut), int(low), int(high))


@dataclass(frozen=True, slots=True)
class PositionState:
    """``positionOf``: the trade of one position and its equity ledger.

    ``realized_usd_e18`` is realized PnL minus every fee charged (negative = booked loss);
    ``last_liquidation`` chain time of the last liquidation of the current trade (0: none).
    """

    market: bytes
    size_e18: int
    entry_e8: int
    realized_usd_e18: int
    last_liquidation: int

    @property
    def is_open(self) -> bool:
        return self.size_e18 != 0


def position_state_from_tuple(value: Sequence[Any]) -> PositionState:
    market, size, entry, realized, last = value
    return PositionState(bytes(market), int(size), int(entry), int(realized), int(last))


@dataclass(frozen=True, slots=True)
class MarginState:
    """``marginOf``: collateral value C, equity E, initial IM and maintenance MM margins and
    notional N, all usd_e18, at the oracle's latest prices (whatever their age)."""

    collateral_usd_e18: int
    equity_usd_e18: int
    initial_usd_e18: int
    maintenance_usd_e18: int
    notional_usd_e18: int

    @property
    def liquidatable(self) -> bool:
        """MM > 0 and E < MM (the contract's rule; it also requires a valid price)."""
        return 0 < self.maintenance_usd_e18 and self.equity_usd_e18 < self.maintenance_usd_e18


def margin_state_from_tuple(value: Sequence[Any]) -> MarginState:
    c, e, im, mm, n = value
    return MarginState(int(c), int(e), int(im), int(mm), int(n))



@dataclass(frozen=True, slots=True)
class TradedEvent:
    """``Traded``: an open, increase, reduce or close at the oracle mark ``price_e8``.

    ``size_delta_e18`` is the signed change; ``realized_pnl_usd_e18`` the PnL this trade realized
    (before ``fee_usd_e18``); ``size_e18`` / ``entry_e8`` the position afterwards.
    """

    position_key: bytes
    market: bytes
    size_delta_e18: int
    price_e8: int
    fee_usd_e18: int
    realized_pnl_usd_e18: int
    size_e18: int
    entry_e8: int
    height: int
    tx_id: str
    log_index: int


@dataclass(frozen=True, slots=True)
class LiquidatedEvent:
    """``Liquidated``: ``closed_size_e18`` (signed like the position) closed at ``mark_e8``;
    ``plan_tick`` is the publishTime of the oracle price used (a keeper's plan id is
    (position_key, plan_tick))."""

    position_key: bytes
    market: bytes
    closed_size_e18: int
    mark_e8: int
    fee_usd_e18: int
    full: bool
    plan_tick: int
    height: int
    tx_id: str
    log_index: int


@dataclass(frozen=True, slots=True)
class ShortfallEvent:
    """A loss beyond the position's own collateral, taken from the insurance fund."""

    position_key: bytes
    usd_e18: int
    height: int
    tx_id: str
    log_index: int


@dataclass(frozen=True, slots=True)
class BufferSetEvent:
    market: bytes
    buffer_ppm: int
    height: int
    tx_id: str
    log_index: int



def decode_traded(raw: Mapping[str, Any], *, chain: str = "evm") -> TradedEvent:
    """Decode one ``Traded`` log. Raises: LogMalformed."""
    log = parse_log(raw, chain, "Traded", _TOPIC0_BYTES["Traded"], 3, 6)
    w = log.words
    return TradedEvent(
        position_key=log.topics[1], market=log.topics[2],
        size_delta_e18=word_int(w[0], "sizeDeltaE18", chain),
        price_e8=word_uint(w[1], 256, "priceE8", chain),
        fee_usd_e18=word_uint(w[2], 256, "feeUsdE18", chain),
        realized_pnl_usd_e18=word_int(w[3], "realizedPnlUsdE18", chain),
        size_e18=word_int(w[4], "sizeE18", chain),
        entry_e8=word_uint(w[5], 256, "entryE8", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_liquidated(raw: Mapping[str, Any], *, chain: str = "evm") -> LiquidatedEvent:
    """Decode one ``Liquidated`` log. Raises: LogMalformed."""
    log = parse_log(raw, chain, "Liquidated", _TOPIC0_BYTES["Liquidated"], 3, 5)
    w = log.words
    return LiquidatedEvent(
        position_key=log.topics[1], market=log.topics[2],
        closed_size_e18=word_int(w[0], "closedSizeE18", chain),
        mark_e8=word_uint(w[1], 256, "markE8", chain),
        fee_usd_e18=word_uint(w[2], 256, "feeUsdE18", chain),
        full=word_bool(w[3], "full", chain),
        plan_tick=word_uint(w[4], 64, "planTick", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_shortfall(raw: Mapping[str, Any], *, chain: str = "evm") -> ShortfallEvent:
    """Decode one ``Shortfall`` log. Raises: LogMalformed."""
    log = parse_log(raw, chain, "Shortfall", _TOPIC0_BYTES["Shortfall"], 2, 1)
    return ShortfallEvent(
        position_key=log.topics[1], usd_e18=word_uint(log.words[0], 256, "usdE18", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_buffer_set(raw: Mapping[str, Any], *, chain: str = "evm") -> BufferSetEvent:
    """Decode one ``BufferSet`` log. Raises: LogMalformed."""
    log = parse_log(raw, chain, "BufferSet", _TOPIC0_BYTES["BufferSet"], 2, 1)
    return BufferSetEvent(
        market=log.topics[1], buffer_ppm=word_uint(log.words[0], 256, "bufferPpm", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )



@dataclass(frozen=True, slots=True)
class LiquidationSkippedEvent:
    """A ``liquidateBatch`` item that was not liquidated (no longer liquidatable, cooldown...):
    it left no state behind. ``reason`` is the custom error's name when known."""

    index: int
    position_key: bytes
    reason: str
    detail: str
    height: int
    tx_id: str
    log_index: int


def decode_liquidation_skipped(raw: Mapping[str, Any], *, chain: str = "evm",
                               error_abis: Iterable[Iterable[Mapping[str, Any]]] = ()
                               ) -> LiquidationSkippedEvent:
    """Decode one ``LiquidationSkipped`` log (strict, as every other decoder)."""
    item = decode_skipped_item(raw, name="LiquidationSkipped", chain=chain,
                               error_abis=error_abis)
    return LiquidationSkippedEvent(item.index, item.key, item.reason, item.detail, item.height,
                                   item.tx_id, item.log_index)


VenueEvent = (
    CreditedEvent
    | CreditQueuedEvent
    | QueuedCreditReleasedEvent
    | CreditSkippedEvent
    | SettlementRequestedEvent
    | TradedEvent
    | LiquidatedEvent
    | ShortfallEvent
    | BufferSetEvent
    | LiquidationSkippedEvent
)


def decode_venue_log(
    raw: Mapping[str, Any],
    *,
    chain: str = "evm",
    error_abis: Iterable[Iterable[Mapping[str, Any]]] = (),
) -> VenueEvent | None:
    """Decode any of the venue's bridge or trading events; None for another topic0 (e.g.
    PositionOwnerSet, MarketSet).

    Raises:
        LogMalformed: the log carries a known topic0 but does not decode, or has no topics.
    """
    topics = log_field(raw, "topics", chain) if isinstance(raw, Mapping) else None
    if not topics:
        raise LogMalformed(chain, "log without topics")
    topic0 = "0x" + log_bytes(topics[0], "topics[0]", chain, 32).hex()
    if topic0 == CREDIT_SKIPPED_TOPIC0:
        return decode_credit_skipped(raw, chain=chain, error_abis=error_abis)
    if topic0 == LIQUIDATION_SKIPPED_TOPIC0:
        return decode_liquidation_skipped(raw, chain=chain, error_abis=error_abis)
    decoder = _VENUE_DECODERS.get(topic0)
    return decoder(raw, chain=chain) if decoder is not None else None


_VENUE_DECODERS: dict[str, Callable[..., VenueEvent]] = {
    CREDITED_TOPIC0: decode_credited,
    CREDIT_QUEUED_TOPIC0: decode_credit_queued,
    QUEUED_CREDIT_RELEASED_TOPIC0: decode_queued_credit_released,
    SETTLEMENT_REQUESTED_TOPIC0: decode_settlement_requested,
    TRADED_TOPIC0: decode_traded,
    LIQUIDATED_TOPIC0: decode_liquidated,
    SHORTFALL_TOPIC0: decode_shortfall,
    BUFFER_SET_TOPIC0: decode_buffer_set,
}



@dataclass(frozen=True, slots=True)
class TopUpRuleState:
    """A position's top-up rule as the venue stores it (``topUpRuleOf``); ``source_key`` is
    the reserve position (bytes32 hex). The risk core's ``TopUpRule`` is built from it."""

    source_key: str
    threshold_ppm: int
    max_usd_e18: int
    used_usd_e18: int


@dataclass(frozen=True, slots=True)
class ToppedUp:
    """A mined ``ToppedUp`` event: ``amount18`` moved, ``value_usd_e18`` counted on the cap."""

    position_key: str
    source_key: str
    lock_key: str
    amount18: int
    value_usd_e18: int
    tx_id: str
    height: int
