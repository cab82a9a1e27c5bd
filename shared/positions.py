"""Position identity (DESIGN §2.5): the key is known before any collateral moves."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak, to_canonical_address

from shared.ids import Bytes32Hex, bytes32_hex

__all__ = ["market_id", "position_key"]


def position_key(venue_chain_id: int, venue: str, owner: str, salt: bytes) -> Bytes32Hex:
    """``keccak256(abi.encode(venueChainId, venue, owner, salt))``; ``salt`` is 32 bytes."""
    if len(salt) != 32:
        raise ValueError("salt must be 32 bytes")
    encoded = encode(["uint256", "address", "address", "bytes32"],
                     [venue_chain_id, to_canonical_address(venue), to_canonical_address(owner),
                      salt])
    return bytes32_hex(keccak(encoded))


def market_id(name: str) -> bytes:
    """A market's (and its oracle feed's) id: ``keccak256(name)``, e.g. ``ETH-USD``."""
    return bytes(keccak(name.encode()))
