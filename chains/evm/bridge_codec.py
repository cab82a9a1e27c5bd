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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak

from chains.evm.codec import decode_revert
from chains.evm.log_fields import (
    parse_log,
    word_address,
    word_uint,
)
from shared.errors import AttestationMalformed, LogMalformed
from shared.messages import LockAttestation, Settlement, SettlementKind

__all__ = [
    "CREDITED_TOPIC0",
    "CREDIT_QUEUED_TOPIC0",
    "CREDIT_SKIPPED_TOPIC0",
    "QUEUED_CREDIT_RELEASED_TOPIC0",
    "SETTLED_TOPIC0",
    "SETTLEMENT_REQUESTED_TOPIC0",
    "SETTLEMENT_SKIPPED_TOPIC0",
    "VAULT_EVENT_SIGNATURES",
    "VENUE_EVENT_SIGNATURES",
    "CreditQueuedEvent",
    "CreditSkippedEvent",
    "CreditedEvent",
    "LockCredit",
    "LockStatus",
    "QueuedCreditReleasedEvent",
    "SettledEvent",
    "SettlementRequestedEvent",
    "SkippedItem",
    "VaultLock",
    "decode_credit_queued",
    "decode_credit_skipped",
    "decode_credited",
    "decode_queued_credit_released",
    "decode_settled",
    "decode_settlement_requested",
    "decode_skipped_item",
    "lock_attestation_tuple",
    "lock_credit_from_tuple",
    "lock_key",
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
    "LiquidationSkipped": "LiquidationSkipped(uint256,bytes32,bytes)",
}
VAULT_EVENT_SIGNATURES = {
    "Settled": "Settled(bytes32,uint256,uint8,address,uint256)",
    "SettlementSkipped": "SettlementSkipped(uint256,bytes32,bytes)",
}


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


CREDITED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["Credited"])
CREDIT_QUEUED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["CreditQueued"])
QUEUED_CREDIT_RELEASED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["QueuedCreditReleased"])
CREDIT_SKIPPED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["CreditSkipped"])
SETTLEMENT_REQUESTED_TOPIC0 = _topic(VENUE_EVENT_SIGNATURES["SettlementRequested"])
SETTLED_TOPIC0 = _topic(VAULT_EVENT_SIGNATURES["Settled"])
SETTLEMENT_SKIPPED_TOPIC0 = _topic(VAULT_EVENT_SIGNATURES["SettlementSkipped"])
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


def _kind(word: bytes, chain: str) -> SettlementKind:
    value = word_uint(word, 8, "kind", chain)
    try:
        return SettlementKind(value)
    except ValueError:
        raise LogMalformed(chain, f"kind {value} is neither release nor seize") from None


def decode_credited(raw: Mapping[str, Any], *, chain: str = "evm") -> CreditedEvent:
    """Decode one ``Credited`` log. Raises: LogMalformed."""
    log = parse_log(raw, chain, "Credited", _TOPIC0_BYTES["Credited"], 4, 5)
    w = log.words
    return CreditedEvent(
        position_key=log.topics[1],
        src_chain_id=word_uint(log.topics[2], 64, "srcChainId", chain),
        src_vault=w[0], lock_id=log.topics[3], src_asset=w[1],
        amount=word_uint(w[2], 256, "amount", chain),
        amount18=word_uint(w[3], 256, "amount18", chain),
        beneficiary=word_address(w[4], "beneficiary", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_credit_queued(raw: Mapping[str, Any], *, chain: str = "evm") -> CreditQueuedEvent:
    """Decode one ``CreditQueued`` log. Raises: LogMalformed."""
    log = parse_log(raw, chain, "CreditQueued", _TOPIC0_BYTES["CreditQueued"], 3, 7)
    w = log.words
    return CreditQueuedEvent(
        lock_key=log.topics[1], position_key=log.topics[2],
        src_chain_id=word_uint(w[0], 64, "srcChainId", chain), src_vault=w[1], lock_id=w[2],
        src_asset=w[3], amount=word_uint(w[4], 256, "amount", chain),
        release_at=word_uint(w[5], 48, "releaseAt", chain),
        reason=word_uint(w[6], 8, "reason", chain),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_queued_credit_released(
    raw: Mapping[str, Any], *, chain: str = "evm"
) -> QueuedCreditReleasedEvent:
    """Decode one ``QueuedCreditReleased`` log. Raises: LogMalformed."""
    log = parse_log(raw, chain, "QueuedCreditReleased", _TOPIC0_BYTES["QueuedCreditReleased"], 3, 2)
    return QueuedCreditReleasedEvent(
        lock_key=log.topics[1], position_key=log.topics[2],
        amount=int.from_bytes(log.words[0], "big"), amount18=int.from_bytes(log.words[1], "big"),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


_ERROR_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(")


@dataclass(frozen=True, slots=True)
class SkippedItem:
    """The common shape of a refused batch item (``CreditSkipped``, ``LiquidationSkipped``,
    ``SettlementSkipped``): its index, the item's key, the error's name when known, the decoded
    error, the raw revert bytes (empty: out of gas) and where it was logged."""

    index: int
    key: bytes
    reason: str
    detail: str
    revert_data: bytes
    height: int
    tx_id: str
    log_index: int


def decode_skipped_item(raw: Mapping[str, Any], *, name: str, chain: str = "evm",
                        error_abis: Iterable[Iterable[Mapping[str, Any]]] = ()) -> SkippedItem:
    """Decode one ``<name>(uint256 indexed index, bytes32 indexed key, bytes reason)`` log.

    Raises:
        LogMalformed: bad shape, or the ``bytes`` payload is not canonically ABI-encoded.
    """
    log = parse_log(raw, chain, name, _TOPIC0_BYTES[name], 3, None)
    if not log.words or log.words[0] != _WORD_32:
        raise LogMalformed(chain, f"{name}: reason offset is not 0x20")
    try:
        (revert_data,) = abi_decode(["bytes"], log.data)
    except Exception:  # noqa: BLE001 - eth_abi raises several types; all mean "malformed"
        raise LogMalformed(chain, f"{name}: reason is not ABI-encoded bytes") from None
    # SECURITY: strict length: 2 words + the payload padded to 32, nothing trailing.
    if len(log.data) != 64 + -(-len(revert_data) // 32) * 32:
        raise LogMalformed(chain, f"{name}: trailing or non-canonical data")
    detail = decode_revert(bytes(revert_data), error_abis)
    match = _ERROR_NAME.match(detail)
    return SkippedItem(int.from_bytes(log.topics[1], "big"), log.topics[2],
                       match.group(1) if match else detail, detail, bytes(revert_data),
                       log.height, log.tx_id, log.log_index)


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
    item = decode_skipped_item(raw, name="CreditSkipped", chain=chain, error_abis=error_abis)
    return CreditSkippedEvent(
        index=item.index, lock_key=item.key, reason=item.reason, detail=item.detail,
        revert_data=item.revert_data, height=item.height, tx_id=item.tx_id,
        log_index=item.log_index,
    )


def decode_settlement_requested(
    raw: Mapping[str, Any], *, chain: str = "evm"
) -> SettlementRequestedEvent:
    """Decode one ``SettlementRequested`` log. Raises: LogMalformed."""
    log = parse_log(raw, chain, "SettlementRequested", _TOPIC0_BYTES["SettlementRequested"], 4, 4)
    w = log.words
    return SettlementRequestedEvent(
        settlement_id=log.topics[1],
        src_chain_id=word_uint(log.topics[2], 64, "srcChainId", chain),
        src_vault=w[0], lock_id=log.topics[3], recipient=w[1],
        amount=int.from_bytes(w[2], "big"), kind=_kind(w[3], chain),
        height=log.height, block_hash=log.block_hash, tx_id=log.tx_id, log_index=log.log_index,
    )


def decode_settled(raw: Mapping[str, Any], *, chain: str = "evm") -> SettledEvent:
    """Decode one ``Settled`` log (``CollateralVault``). Raises: LogMalformed."""
    log = parse_log(raw, chain, "Settled", _TOPIC0_BYTES["Settled"], 3, 3)
    w = log.words
    return SettledEvent(
        settlement_id=log.topics[1], nonce=int.from_bytes(log.topics[2], "big"),
        kind=_kind(w[0], chain), recipient=word_address(w[1], "recipient", chain),
        amount=int.from_bytes(w[2], "big"),
        height=log.height, tx_id=log.tx_id, log_index=log.log_index,
    )


