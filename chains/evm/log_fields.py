"""Strict parsers for the fields of an EVM log, shared by every log codec. Pure.

A log reaches us as raw ``eth_getLogs`` JSON (hex strings) or as a web3-formatted receipt entry
(bytes, ints); each parser accepts both and refuses anything else with :class:`LogMalformed`
naming the field, so no codec ever guesses at a malformed log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from shared.errors import LogMalformed

__all__ = [
    "ParsedLog", "log_bytes", "log_field", "log_int", "log_quantity", "parse_log", "word_address",
    "word_bool", "word_int", "word_uint",
]


def log_bytes(value: Any, field: str, chain: str, size: int | None = None) -> bytes:
    """Hex string or bytes-like -> bytes, optionally of an exact size."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str):
        body = value[2:] if value[:2] in ("0x", "0X") else None
        if body is None or len(body) % 2:
            raise LogMalformed(chain, f"{field}: not 0x-prefixed even-length hex")
        try:
            raw = bytes.fromhex(body)
        except ValueError:
            raise LogMalformed(chain, f"{field}: not hex") from None
    else:
        raise LogMalformed(chain, f"{field}: expected hex or bytes, got {type(value).__name__}")
    if size is not None and len(raw) != size:
        raise LogMalformed(chain, f"{field}: expected {size} bytes, got {len(raw)}")
    return raw


def log_int(value: Any, field: str, chain: str) -> int:
    if isinstance(value, bool):
        raise LogMalformed(chain, f"{field}: expected an integer")
    if isinstance(value, int):
        result = value
    else:
        raw = log_bytes(value, field, chain)
        if not raw or len(raw) > 32:
            raise LogMalformed(chain, f"{field}: bad quantity")
        result = int.from_bytes(raw, "big")
    if result < 0:
        raise LogMalformed(chain, f"{field}: negative")
    return result


def log_quantity(value: Any, field: str, chain: str) -> int:
    """JSON-RPC quantities are odd-length hex allowed (``0x1``); web3 gives ints."""
    if isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) % 2:
        value = "0x0" + value[2:]
    return log_int(value, field, chain)


def word_address(word: bytes, field: str, chain: str) -> str:
    if any(word[:12]):
        raise LogMalformed(chain, f"{field}: address word has non-zero padding")
    return to_checksum_address(word[12:])


def word_uint(word: bytes, bits: int, field: str, chain: str) -> int:
    value = int.from_bytes(word, "big")
    if value >> bits:
        raise LogMalformed(chain, f"{field}: does not fit uint{bits}")
    return value


def log_field(raw_log: Mapping[str, Any], key: str, chain: str) -> Any:
    try:
        value = raw_log[key]
    except (KeyError, TypeError):
        raise LogMalformed(chain, f"missing field {key!r}") from None
    if value is None:
        raise LogMalformed(chain, f"field {key!r} is null (pending log?)")
    return value


def word_int(word: bytes, field: str, chain: str) -> int:
    """An int256 word (two's complement)."""
    del field, chain  # every 32-byte word is a valid int256
    return int.from_bytes(word, "big", signed=True)


def word_bool(word: bytes, field: str, chain: str) -> bool:
    value = int.from_bytes(word, "big")
    if value > 1:
        raise LogMalformed(chain, f"{field}: {value} is not a bool")
    return value == 1


@dataclass(frozen=True, slots=True)
class ParsedLog:
    topics: list[bytes]
    words: list[bytes]
    data: bytes
    height: int
    block_hash: str
    tx_id: str
    log_index: int


def parse_log(raw: Mapping[str, Any], chain: str, name: str, topic0: bytes, n_topics: int,
              n_words: int | None) -> ParsedLog:
    """Envelope and shape checks shared by every decoder; ``n_words`` None = dynamic data."""
    if not isinstance(raw, Mapping):
        raise LogMalformed(chain, f"{name}: log is a {type(raw).__name__}, not a mapping")
    topics_raw = log_field(raw, "topics", chain)
    if isinstance(topics_raw, (str, bytes)) or not isinstance(topics_raw, Iterable):
        raise LogMalformed(chain, f"{name}: topics is not a list")
    topics = [log_bytes(t, f"topics[{i}]", chain, 32) for i, t in enumerate(topics_raw)]
    if not topics or topics[0] != topic0:
        raise LogMalformed(chain, f"topic0 is not {name}(...)")
    if len(topics) != n_topics:
        raise LogMalformed(chain, f"{name}: expected {n_topics} topics, got {len(topics)}")
    data = log_bytes(log_field(raw, "data", chain), "data", chain)
    if n_words is not None and len(data) != 32 * n_words:
        raise LogMalformed(chain, f"{name}: expected {32 * n_words} data bytes, got {len(data)}")
    return ParsedLog(
        topics=topics,
        words=[data[i : i + 32] for i in range(0, len(data) - len(data) % 32, 32)],
        data=data,
        height=log_quantity(log_field(raw, "blockNumber", chain), "blockNumber", chain),
        block_hash="0x" + log_bytes(log_field(raw, "blockHash", chain), "blockHash", chain,
                                    32).hex(),
        tx_id="0x" + log_bytes(log_field(raw, "transactionHash", chain), "transactionHash",
                               chain, 32).hex(),
        log_index=log_quantity(log_field(raw, "logIndex", chain), "logIndex", chain),
    )
