"""Identifiers that cross chain kinds, in the one form the attestation digest signs.

Every identifier is lowercase ``0x``-prefixed hex of 32 bytes (``Bytes32Hex``): an EVM address
is left-padded, a Solana pubkey is its raw 32 bytes (DESIGN §2.4). Pure.
"""

from __future__ import annotations

from typing import NewType

__all__ = ["ZERO32", "Bytes32Hex", "address_to_bytes32", "bytes32_hex"]

Bytes32Hex = NewType("Bytes32Hex", str)
ZERO32 = Bytes32Hex("0x" + "00" * 32)


def bytes32_hex(raw: bytes) -> Bytes32Hex:
    """Render exactly 32 bytes as lowercase 0x-hex. Raises ValueError on any other length."""
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return Bytes32Hex("0x" + raw.hex())


def address_to_bytes32(address: str) -> Bytes32Hex:
    """Left-pad a 20-byte EVM address (any case) to the 32-byte form the digest uses."""
    body = address.removeprefix("0x").removeprefix("0X")
    if len(body) != 40:
        raise ValueError(f"not a 20-byte address: {address!r}")
    return bytes32_hex(bytes(12) + bytes.fromhex(body))
