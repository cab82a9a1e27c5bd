"""Pure decoding of EVM vault logs and revert data. No I/O: unit-testable without a node.

A ``Locked`` log is parsed field by field with strict length and padding checks, so a log that
is not exactly what ``CollateralVault`` emits is refused with :class:`LogMalformed` rather than
decoded loosely. Logs may come raw from ``eth_getLogs`` (hex strings) or formatted by web3
(``HexBytes``, ints); both shapes give the same result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak

from chains.evm.log_fields import (
    log_bytes,
    log_field,
    log_quantity,
    word_address,
    word_uint,
)
from shared.chain import ChainRef
from shared.errors import LogMalformed, UnknownAsset
from shared.events import LockEvent
from shared.ids import address_to_bytes32, bytes32_hex

__all__ = [
    "LOCKED_SIGNATURE",
    "LOCKED_TOPIC0",
    "EvmCodec",
    "LockedLog",
    "decode_lock_event",
    "decode_revert",
    "parse_locked_log",
]

LOCKED_SIGNATURE = "Locked(uint256,address,address,uint256,bytes32,uint64,address,address)"
LOCKED_TOPIC0 = "0x" + keccak(text=LOCKED_SIGNATURE).hex()
_TOPIC0_BYTES = bytes.fromhex(LOCKED_TOPIC0[2:])
_DATA_LEN = 5 * 32  # amount, positionKey, dstChainId, dstVenue, beneficiary


@dataclass(frozen=True, slots=True)
class LockedLog:
    """The fields of one ``Locked`` log, addresses checksummed, before chain context is added."""

    vault: str
    nonce: int
    owner: str
    asset: str
    amount: int
    position_key: bytes
    dst_chain_id: int
    dst_venue: str
    beneficiary: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


def parse_locked_log(raw_log: Mapping[str, Any], *, chain: str = "evm") -> LockedLog:
    """Parse one ``Locked`` log strictly.

    Raises:
        LogMalformed: wrong topic0 or topic count, wrong data length, bad padding, bad fields.
    """
    if not isinstance(raw_log, Mapping):
        raise LogMalformed(chain, f"log is a {type(raw_log).__name__}, not a mapping")
    topics_raw = log_field(raw_log, "topics", chain)
    if isinstance(topics_raw, (str, bytes)) or not isinstance(topics_raw, Iterable):
        raise LogMalformed(chain, "topics: not a list")
    topics = [log_bytes(t, f"topics[{i}]", chain, 32) for i, t in enumerate(topics_raw)]
    if len(topics) != 4:
        raise LogMalformed(chain, f"expected 4 topics, got {len(topics)}")
    if topics[0] != _TOPIC0_BYTES:
        raise LogMalformed(chain, "topic0 is not Locked(...)")
    data = log_bytes(log_field(raw_log, "data", chain), "data", chain)
    if len(data) != _DATA_LEN:
        raise LogMalformed(chain, f"expected {_DATA_LEN} data bytes, got {len(data)}")
    words = [data[i : i + 32] for i in range(0, _DATA_LEN, 32)]
    return LockedLog(
        vault=to_checksum_address(log_bytes(log_field(raw_log, "address", chain), "address", chain, 20)),
        nonce=int.from_bytes(topics[1], "big"),
        owner=word_address(topics[2], "owner", chain),
        asset=word_address(topics[3], "asset", chain),
        amount=int.from_bytes(words[0], "big"),
        position_key=words[1],
        dst_chain_id=word_uint(words[2], 64, "dstChainId", chain),
        dst_venue=word_address(words[3], "dstVenue", chain),
        beneficiary=word_address(words[4], "beneficiary", chain),
        block_number=log_quantity(log_field(raw_log, "blockNumber", chain), "blockNumber", chain),
        block_hash="0x" + log_bytes(log_field(raw_log, "blockHash", chain), "blockHash", chain, 32).hex(),
        tx_hash="0x"
        + log_bytes(log_field(raw_log, "transactionHash", chain), "transactionHash", chain, 32).hex(),
        log_index=log_quantity(log_field(raw_log, "logIndex", chain), "logIndex", chain),
    )


def decode_lock_event(
    raw_log: Mapping[str, Any], *, chain: ChainRef, decimals_by_asset: Mapping[str, int]
) -> LockEvent:
    """Decode a ``Locked`` log into the chain-neutral :class:`LockEvent`.

    Args:
        raw_log: one entry of an ``eth_getLogs`` answer (raw or web3-formatted).
        chain: the source chain; its key and id go into the event.
        decimals_by_asset: lowercase asset address -> decimals, from the settings.

    Raises:
        LogMalformed: the log is not a well-formed ``Locked`` log.
        UnknownAsset: the asset has no configured decimals (never guessed).
    """
    parsed = parse_locked_log(raw_log, chain=chain.key)
    decimals = decimals_by_asset.get(parsed.asset.lower())
    if decimals is None:
        raise UnknownAsset(chain.key, parsed.asset)
    return LockEvent(
        chain=chain.key,
        chain_id=chain.chain_id,
        lock_id=bytes32_hex(parsed.nonce.to_bytes(32, "big")),
        vault=address_to_bytes32(parsed.vault),
        owner=address_to_bytes32(parsed.owner),
        asset=address_to_bytes32(parsed.asset),
        amount=parsed.amount,
        decimals=decimals,
        position_key=bytes32_hex(parsed.position_key),
        dst_chain_id=parsed.dst_chain_id,
        dst_venue=parsed.dst_venue,
        beneficiary=parsed.beneficiary,
        height=parsed.block_number,
        block_hash=parsed.block_hash,
        tx_id=parsed.tx_hash,
        log_index=parsed.log_index,
        nonce=parsed.nonce,
    )


@dataclass(frozen=True, slots=True)
class EvmCodec:
    """The codec seam for one EVM chain: decoding bound to its chain and asset decimals."""

    chain: ChainRef
    decimals_by_asset: Mapping[str, int]

    def decode_address(self, raw: str | bytes) -> str:
        """A 20-byte address (hex or bytes) in checksum form."""
        return to_checksum_address(log_bytes(raw, "address", self.chain.key, 20))

    def decode_lock_event(self, raw_log: Mapping[str, Any]) -> LockEvent:
        return decode_lock_event(
            raw_log, chain=self.chain, decimals_by_asset=self.decimals_by_asset
        )


def _error_table(abis: Iterable[Iterable[Mapping[str, Any]]]) -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {
        bytes.fromhex("08c379a0"): ("Error", ["string"]),
        bytes.fromhex("4e487b71"): ("Panic", ["uint256"]),
    }
    for abi in abis:
        for item in abi:
            if item.get("type") == "error":
                types = [str(i["type"]) for i in item.get("inputs", [])]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                table[selector] = (str(item["name"]), types)
    return table


def decode_revert(data: bytes | str | None, abis: Iterable[Iterable[Mapping[str, Any]]]) -> str:
    """Render revert data as ``Name(arg, ...)`` using the custom errors in ``abis``.

    Unknown selectors or undecodable arguments fall back to the raw hex; never raises.
    """
    try:
        raw = log_bytes(data, "revert", "evm") if data is not None else b""
    except LogMalformed:
        return f"unparsed revert data {data!r}"
    if len(raw) < 4:
        return "reverted without reason" if not raw else f"revert 0x{raw.hex()}"
    entry = _error_table(abis).get(raw[:4])
    if entry is None:
        return f"unknown error 0x{raw.hex()}"
    name, types = entry
    try:
        args = abi_decode(types, raw[4:])
    except Exception:  # noqa: BLE001 - any decoding failure falls back to hex
        return f"{name}(undecodable 0x{raw[4:].hex()})"
    return f"{name}({', '.join(_render(a) for a in args)})"


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str):
        return to_checksum_address(value) if is_hex_address(value) else repr(value)
    return str(value)
