"""Pure encoding and decoding for the bridge contracts (``IsolatedMarginVenue``,
``CollateralVault``). No I/O: unit-testable without a node.

* :func:`lock_attestation_tuple` / :func:`settlement_tuple` turn the EIP-712 values of
  :mod:`shared.messages` into the ABI struct tuples ``credit``/``creditBatch``/``settle``
  take, in the contracts' field order (which is also the EIP-712 type string's order).
* :func:`lock_key` is the venue's replay key, byte for byte ``lockKeyOf``.
* Trading: :class:`MarketParams` (the venue's ``MarketParams`` struct, :func:`market_params_tuple`
  / :func:`market_params_from_tuple`), :class:`PositionState` (``positionOf``),
  :class:`MarginState` (``marginOf``) and the ``Traded``, ``Liquidated``, ``Shortfall`` and
  ``BufferSet`` events. Fixed point as the contract: USD ``usd_e18``, prices ``price_e8``, sizes
  ``size_e18`` (signed, long > 0), rates ppm.
* ``decode_*`` parse one log strictly (topic count, data length, padding, value ranges), from
  raw ``eth_getLogs`` JSON or web3-formatted receipts alike, into frozen values. Anything that
  is not exactly what the contract emits raises :class:`LogMalformed`; nothing is guessed.

bytes32 fields are ``bytes`` of length 32; addresses are checksummed ``str``; amounts ``int``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak

# The strict field parsers of the Locked-log codec, shared so both codecs refuse the same way.
from chains.evm.codec import _bytes, _field, _quantity, _word_address, _word_uint, decode_revert
from shared.errors import AttestationMalformed, InputError, LogMalformed
from shared.messages import LockAttestation, Settlement, SettlementKind

__all__ = [
    "BUFFER_SET_TOPIC0",
    "CREDITED_TOPIC0",
    "CREDIT_QUEUED_TOPIC0",
    "CREDIT_SKIPPED_TOPIC0",
    "LIQUIDATED_TOPIC0",
    "QUEUED_CREDIT_RELEASED_TOPIC0",
    "SETTLED_TOPIC0",
    "SETTLEMENT_REQUESTED_TOPIC0",
    "SHORTFALL_TOPIC0",
    "TOPUP_RULE_CLEARED_TOPIC0",
    "TOPUP_RULE_SET_TOPIC0",
    "TRADED_TOPIC0",
    "VAULT_EVENT_SIGNATURES",
    "VENUE_EVENT_SIGNATURES",
    "BufferSetEvent",
    "CollateralConfig",
    "CreditQueuedEvent",
    "CreditSkippedEvent",
    "CreditedEvent",
    "LiquidatedEvent",
    "LockCredit",
    "LockStatus",
    "MarginState",
    "MarketParams",
    "PositionState",
    "QueuedCreditReleasedEvent",
    "SettledEvent",
    "SettlementRequestedEvent",
    "ShortfallEvent",
    "TopUpRuleState",
    "ToppedUp",
    "TradedEvent",
    "VaultLock",
    "VenueEvent",
    "collateral_config_from_tuple",
    "collateral_config_tuple",
    "decode_buffer_set",
    "decode_credit_queued",
    "decode_credit_skipped",
    "decode_credited",
    "decode_liquidated",
    "decode_queued_credit_released",
    "decode_settled",
    "decode_settlement_requested",
    "decode_shortfall",
    "decode_traded",
    "decode_venue_log",
    "lock_attestation_tuple",
    "lock_credit_from_tuple",
    "lock_key",
    "margin_state_from_tuple",
    "market_params_from_tuple",
    "market_params_tuple",
    "position_state_from_tuple",
    "settlement_tuple",
    "struct_tuple",
    "vault_lock_from_tuple",
]

VENUE_EVENT_SIGNATURES = {
    "Credited": "Credited(bytes32,uint64,bytes32,bytes32,bytes32,uint256,uint256,address)",
    "CreditQueued": (
        "CreditQueued(bytes32,bytes32,uint64,bytes32,bytes32,bytes32,uint256,uint48,uint8)"
    ),
    "QueuedCreditReleased": "QueuedCreditReleased(bytes32,bytes32,uint256,uint256)",
    "CreditSkipped": "CreditSkipped(uint256,bytes32,bytes)",
    "SettlementRequested": (
        "SettlementRequested(bytes32,uint64,bytes32,bytes32,bytes32,uint256,uint8)"
    ),
    "Traded": "Traded(bytes32,bytes32,int256,uint256,uint256,int256,int256,uint256)",
    "Liquidated": "Liquidated(bytes32,bytes32,int256,uint256,uint256,bool,uint64)",
    "Shortfall": "Shortfall(bytes32,uint256)",
    "BufferSet": "BufferSet(bytes32,uint256)",
}
VAULT_EVENT_SIGNATURES = {"Settled": "Settled(bytes32,uint256,uint8,address,uint256)"}


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


CREDITED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["Credited"])
CREDIT_QUEUED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["CreditQueued"])
QUEUED_CREDIT_RELEASED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["QueuedCreditReleased"])
CREDIT_SKIPPED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["CreditSkipped"])
SETTLEMENT_REQUESTED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["SettlementRequested"])
SETTLED_TOPIC0 = _topic(VAULT_EVENT_SIGNATURES["Settled"])
TRADED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["Traded"])
TOPUP_RULE_SET_TOPIC0 = _topic("TopUpRuleSet(bytes32,bytes32,uint32,uint256)")
TOPUP_RULE_CLEARED_TOPIC0 = _topic("TopUpRuleCleared(bytes32)")
LIQUIDATED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["Liquidated"])
SHORTFALL_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["Shortfall"])
BUFFER_SET_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["BufferSet"])
_TOPIC0_BYTES = {
    name: keccak(text=signature)
    for name, signature in (VENUE_EVENT_SIGNATURES | VAULT_EVENT_SIGNATURES).items()
}
_UINT = {8: 2**8, 32: 2**32, 64: 2**64, 256: 2**256}
_WORD_32 = (32).to_bytes(32, "big")

# ----- struct tuples ---------------------------------------------------------------------------


def _b32(value: bytes, field: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise AttestationMalformed(field, "must be exactly 32 bytes")
    return bytes(value)


def _uint(value: int, bits: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _UINT[bits]:
        raise AttestationMalformed(field, f"must be an int in uint{bits}, got {value!r}")
    return value


def lock_attestation_tuple(a: LockAttestation) -> tuple[Any, ...]:
    """``IsolatedMarginVenue.LockAttestation`` as the tuple web3 encodes (struct field order).

    Raises:
        AttestationMalformed: a field has the wrong size or range (nothing is truncated).
    """
    if not is_hex_address(a.beneficiary):
        raise AttestationMalformed("beneficiary", f"not an address: {a.beneficiary!r}")
    return (
        _uint(a.version, 8, "version"),
        _uint(a.src_chain_id, 64, "src_chain_id"),
        _b32(a.src_vault, "src_vault"),
        _b32(a.lock_id, "lock_id"),
        _b32(a.owner, "owner"),
        to_checksum_address(a.beneficiary),
        _b32(a.src_asset, "src_asset"),
        _uint(a.amount, 256, "amount"),
        _uint(a.decimals, 8, "decimals"),
        _b32(a.position_key, "position_key"),
        _uint(a.attester_set_index, 32, "attester_set_index"),
    )


def settlement_tuple(s: Settlement) -> tuple[Any, ...]:
    """``CollateralVault.Settlement`` as the tuple web3 encodes (struct field order).

    Raises:
        AttestationMalformed: a field has the wrong size or range.
    """
    return (
        _uint(s.version, 8, "version"),
        _uint(s.src_chain_id, 64, "src_chain_id"),
        _b32(s.src_vault, "src_vault"),
        _b32(s.lock_id, "lock_id"),
        _b32(s.recipient, "recipient"),
        _uint(s.amount, 256, "amount"),
        _uint(int(s.kind), 8, "kind"),
        _b32(s.settlement_id, "settlement_id"),
        _uint(s.attester_set_index, 32, "attester_set_index"),
    )


def struct_tuple(msg: LockAttestation | Settlement) -> tuple[Any, ...]:
    """Either struct's tuple, by type."""
    if isinstance(msg, LockAttestation):
        return lock_attestation_tuple(msg)
    return settlement_tuple(msg)


def lock_key(src_chain_id: int, src_vault: bytes, lock_id: bytes) -> bytes:
    """The venue's replay key: ``keccak256(abi.encode(uint64, bytes32, bytes32))``.

    Raises:
        AttestationMalformed: a bytes32 argument is not 32 bytes or the chain id is not uint64.
    """
    # INVARIANT: equals IsolatedMarginVenue.lockKeyOf; a mismatch would make is_consumed lie.
    values = (_uint(src_chain_id, 64, "src_chain_id"), _b32(src_vault, "src_vault"),
              _b32(lock_id, "lock_id"))
    return keccak(abi_encode(["uint64", "bytes32", "bytes32"], list(values)))


# ----- view results ----------------------------------------------------------------------------


class LockStatus(IntEnum):
    NONE = 0
    QUEUED = 1
    CREDITED = 2


@dataclass(frozen=True, slots=True)
class LockCredit:
    """``IsolatedMarginVenue.lockCredit(key)``: ``remaining`` is in source base units."""

    position_key: bytes
    src_asset: bytes
    src_owner: bytes
    remaining: int
    src_chain_id: int
    status: LockStatus
    decimals: int
    release_at: int


@dataclass(frozen=True, slots=True)
class VaultLock:
    """``CollateralVault.lockOf(nonce)``: measured ``amount`` and ``settled`` so far."""

    owner: str
    asset: str
    amount: int
    settled: int


def lock_credit_from_tuple(value: Sequence[Any]) -> LockCredit:
    """Raises: ValueError on a status the contract does not define."""
    key, asset, owner, remaining, chain_id, status, decimals, release_at = value
    return LockCredit(bytes(key), bytes(asset), bytes(owner), int(remaining), int(chain_id),
                      LockStatus(int(status)), int(decimals), int(release_at))


def vault_lock_from_tuple(value: Sequence[Any]) -> VaultLock:
    owner, asset, amount, settled = value
    return VaultLock(to_checksum_address(owner), to_checksum_address(asset), int(amount),
                     int(settled))


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


# ----- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditedEvent:
    position_key: bytes
    src_chain_id: int
    src_vault: bytes
    lock_id: bytes
    src_asset: bytes
    amount: int  # source base units
    amount18: int  # the same, scaled to 18 decimals (exact)
    beneficiary: str
    height: int
    tx_id: str
    log_index: int

    @property
    def lock_key(self) -> bytes:
        return lock_key(self.src_chain_id, self.src_vault, self.lock_id)


@dataclass(frozen=True, slots=True)
class CreditQueuedEvent:
    lock_key: bytes
    position_key: bytes
    src_chain_id: int
    src_vault: bytes
    lock_id: bytes
    src_asset: bytes
    amount: int
    release_at: int  # chain time (s) from which releaseQueued may credit it
    reason: int  # 1 = above the large-transfer threshold, 2 = the window is full
    height: int
    tx_id: str
    log_index: int


@dataclass(frozen=True, slots=True)
class QueuedCreditReleasedEvent:
    lock_key: bytes
    position_key: bytes
    amount: int
    amount18: int
    height: int
    tx_id: str
    log_index: int


@dataclass(frozen=True, slots=True)
class CreditSkippedEvent:
    """A refused ``creditBatch`` item: not consumed, may be submitted again.

    ``reason`` is the custom error's name (``AlreadyConsumed``) when known, ``detail`` the
    decoded error with its arguments, ``revert_data`` the raw bytes (empty: out of gas).
    """

    index: int
    lock_key: bytes
    reason: str
    detail: str
    revert_data: bytes
    height: int
    tx_id: str
    log_index: int


@dataclass(frozen=True, slots=True)
class SettlementRequestedEvent:
    settlement_id: bytes
    src_chain_id: int
    src_vault: bytes
    lock_id: bytes
    recipient: bytes
    amount: int
    kind: SettlementKind
    height: int
    block_hash: str
    tx_id: str
    log_index: int

    def to_settlement(self, attester_set_index: int) -> Settlement:
        """The ``Settlement`` attesters sign for the source vault (every field from the event)."""
        return Settlement(self.src_chain_id, self.src_vault, self.lock_id, self.recipient,
                          self.amount, self.kind, self.settlement_id, attester_set_index)


@dataclass(frozen=True, slots=True)
class SettledEvent:
    settlement_id: bytes
    nonce: int
    kind: SettlementKind
    recipient: str
    amount: int
    height: int
    tx_id: str
    log_index: int


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


@dataclass(frozen=True, slots=True)
class _Log:
    topics: list[bytes]
    words: list[bytes]
    data: bytes
    height: int
    block_hash: str
    tx_id: str
    log_index: int


def _parse(
    raw: Mapping[str, Any], chain: str, name: str, n_topics: int, n_words: int | None
) -> _Log:
    """Envelope and shape checks shared by every decoder; ``n_words`` None = dynamic data."""
    if not isinstance(raw, Mapping):
        raise LogMalformed(chain, f"{name}: log is a {type(raw).__name__}, not a mapping")
    topics_raw = _field(raw, "topics", chain)
    if isinstance(topics_raw, (str, bytes)) or not isinstance(topics_raw, Iterable):
        raise LogMalformed(chain, f"{name}: topics is not a list")
    topics = [_bytes(t, f"topics[{i}]", chain, 32) for i, t in enumerate(topics_raw)]
    if not topics or topics[0] != _TOPIC0_BYTES[name]:
        raise LogMalformed(chain, f"topic0 is not {name}(...)")
    if len(topics) != n_topics:
        raise LogMalformed(chain, f"{name}: expected {n_topics} topics, got {len(topics)}")
    data = _bytes(_field(raw, "data", chain), "data", chain)
    if n_words is not None and len(data) != 32 * n_words:
        raise LogMalformed(chain, f"{name}: expected {32 * n_words} data bytes, got {len(data)}")
    return _Log(
        topics=topics,
        words=[data[i : i + 32] for i in range(0, len(data) - len(data) % 32, 32)],
        data=data,
        height=_quantity(_field(raw, "blockNumber", chain), "blockNumber", chain),
        block_hash="0x" + _bytes(_field(raw, "blockHash", chain), "blockHash", chain, 32).hex(),
        tx_id="0x" + _bytes(_field(raw, "transactionHash", chain), "transactionHash", chain,
                            32).hex(),
        log_index=_quantity(_field(raw, "logIndex", chain), "logIndex", chain),
    )


def _word_int(word: bytes, field: str, chain: str) -> int:
    """An int256 word (two's complement)."""
    del field, chain  # every 32-byte word is a valid int256
    return int.from_bytes(word, "big", signed=True)


def _word_bool(word: bytes, field: str, chain: str) -> bool:
    value = int.from_bytes(word, "big")
    if value > 1:
        raise LogMalformed(chain, f"{field}: {value} is not a bool")
    return value == 1


def _kind(word: bytes, chain: str) -> SettlementKind:
    value = _word_uint(word, 8, "kind", chain)
    try:
        return SettlementKind(value)
    except ValueError:
        raise LogMalformed(chain, f"kind {value} is neither release nor seize") from None


def decode_credited(raw: Mapping[str, Any], *, chain: str = "evm") -> CreditedEvent:
    """Decode one ``Credited`` log. Raises: LogMalformed."""
    log = _parse(raw, chain, "Credited", 4, 5)
    w = log.words
    return CreditedEvent(
        position_key=log.topics[1],
        src_chain_id=_word_uint(log.topics[2], 64, "srcChainId", chain),
        src_vault=w[0], lock_id=log.topics[3], src_asset=w[1],
        amount=_word_uint(w[2], 256, "amount", chain),
        amount18=_word_uint(w[3], 256, "amount18", chain),
        beneficiary=_word_address(w[4], "beneficiary", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_credit_queued(raw: Mapping[str, Any], *, chain: str = "evm") -> CreditQueuedEvent:
    """Decode one ``CreditQueued`` log. Raises: LogMalformed."""
    log = _parse(raw, chain, "CreditQueued", 3, 7)
    w = log.words
    return CreditQueuedEvent(
        lock_key=log.topics[1], position_key=log.topics[2],
        src_chain_id=_word_uint(w[0], 64, "srcChainId", chain), src_vault=w[1], lock_id=w[2],
        src_asset=w[3], amount=_word_uint(w[4], 256, "amount", chain),
        release_at=_word_uint(w[5], 48, "releaseAt", chain),
        reason=_word_uint(w[6], 8, "reason", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_queued_credit_released(
    raw: Mapping[str, Any], *, chain: str = "evm"
) -> QueuedCreditReleasedEvent:
    """Decode one ``QueuedCreditReleased`` log. Raises: LogMalformed."""
    log = _parse(raw, chain, "QueuedCreditReleased", 3, 2)
    return QueuedCreditReleasedEvent(
        lock_key=log.topics[1], position_key=log.topics[2],
        amount=int.from_bytes(log.words[0], "big"), amount18=int.from_bytes(log.words[1], "big"),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


_ERROR_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(")


def decode_credit_skipped(
    raw: Mapping[str, Any],
    *,
    chain: str = "evm",
    error_abis: Iterable[Iterable[Mapping[str, Any]]] = (),
) -> CreditSkippedEvent:
    """Decode one ``CreditSkipped`` log; ``error_abis`` name the custom errors (the venue's ABI).

    Raises:
        LogMalformed: bad shape, or the ``bytes`` payload is not canonically ABI-encoded.
    """
    log = _parse(raw, chain, "CreditSkipped", 3, None)
    if not log.words or log.words[0] != _WORD_32:
        raise LogMalformed(chain, "CreditSkipped: reason offset is not 0x20")
    try:
        (revert_data,) = abi_decode(["bytes"], log.data)
    except Exception:  # noqa: BLE001 - eth_abi raises several types; all mean "malformed"
        raise LogMalformed(chain, "CreditSkipped: reason is not ABI-encoded bytes") from None
    # SECURITY: strict length: 2 words + the payload padded to 32, nothing trailing.
    if len(log.data) != 64 + -(-len(revert_data) // 32) * 32:
        raise LogMalformed(chain, "CreditSkipped: trailing or non-canonical data")
    detail = decode_revert(bytes(revert_data), error_abis)
    match = _ERROR_NAME.match(detail)
    return CreditSkippedEvent(
        index=int.from_bytes(log.topics[1], "big"), lock_key=log.topics[2],
        reason=match.group(1) if match else detail, detail=detail,
        revert_data=bytes(revert_data),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_settlement_requested(
    raw: Mapping[str, Any], *, chain: str = "evm"
) -> SettlementRequestedEvent:
    """Decode one ``SettlementRequested`` log. Raises: LogMalformed."""
    log = _parse(raw, chain, "SettlementRequested", 4, 4)
    w = log.words
    return SettlementRequestedEvent(
        settlement_id=log.topics[1],
        src_chain_id=_word_uint(log.topics[2], 64, "srcChainId", chain),
        src_vault=w[0], lock_id=log.topics[3], recipient=w[1],
        amount=int.from_bytes(w[2], "big"), kind=_kind(w[3], chain),
        height=log.height, block_hash=log.block_hash, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_settled(raw: Mapping[str, Any], *, chain: str = "evm") -> SettledEvent:
    """Decode one ``Settled`` log (``CollateralVault``). Raises: LogMalformed."""
    log = _parse(raw, chain, "Settled", 3, 3)
    w = log.words
    return SettledEvent(
        settlement_id=log.topics[1], nonce=int.from_bytes(log.topics[2], "big"),
        kind=_kind(w[0], chain), recipient=_word_address(w[1], "recipient", chain),
        amount=int.from_bytes(w[2], "big"),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_traded(raw: Mapping[str, Any], *, chain: str = "evm") -> TradedEvent:
    """Decode one ``Traded`` log. Raises: LogMalformed."""
    log = _parse(raw, chain, "Traded", 3, 6)
    w = log.words
    return TradedEvent(
        position_key=log.topics[1], market=log.topics[2],
        size_delta_e18=_word_int(w[0], "sizeDeltaE18", chain),
        price_e8=_word_uint(w[1], 256, "priceE8", chain),
        fee_usd_e18=_word_uint(w[2], 256, "feeUsdE18", chain),
        realized_pnl_usd_e18=_word_int(w[3], "realizedPnlUsdE18", chain),
        size_e18=_word_int(w[4], "sizeE18", chain),
        entry_e8=_word_uint(w[5], 256, "entryE8", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_liquidated(raw: Mapping[str, Any], *, chain: str = "evm") -> LiquidatedEvent:
    """Decode one ``Liquidated`` log. Raises: LogMalformed."""
    log = _parse(raw, chain, "Liquidated", 3, 5)
    w = log.words
    return LiquidatedEvent(
        position_key=log.topics[1], market=log.topics[2],
        closed_size_e18=_word_int(w[0], "closedSizeE18", chain),
        mark_e8=_word_uint(w[1], 256, "markE8", chain),
        fee_usd_e18=_word_uint(w[2], 256, "feeUsdE18", chain),
        full=_word_bool(w[3], "full", chain),
        plan_tick=_word_uint(w[4], 64, "planTick", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_shortfall(raw: Mapping[str, Any], *, chain: str = "evm") -> ShortfallEvent:
    """Decode one ``Shortfall`` log. Raises: LogMalformed."""
    log = _parse(raw, chain, "Shortfall", 2, 1)
    return ShortfallEvent(
        position_key=log.topics[1], usd_e18=_word_uint(log.words[0], 256, "usdE18", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_buffer_set(raw: Mapping[str, Any], *, chain: str = "evm") -> BufferSetEvent:
    """Decode one ``BufferSet`` log. Raises: LogMalformed."""
    log = _parse(raw, chain, "BufferSet", 2, 1)
    return BufferSetEvent(
        market=log.topics[1], buffer_ppm=_word_uint(log.words[0], 256, "bufferPpm", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


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
    topics = _field(raw, "topics", chain) if isinstance(raw, Mapping) else None
    if not topics:
        raise LogMalformed(chain, "log without topics")
    topic0 = "0x" + _bytes(topics[0], "topics[0]", chain, 32).hex()
    if topic0 == CREDIT_SKIPPED_TOPIC0:
        return decode_credit_skipped(raw, chain=chain, error_abis=error_abis)
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
