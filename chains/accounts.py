"""Account ids of either chain kind in the 32-byte form the contracts key lanes by. Pure.

An EVM address is left-padded to 32 bytes; a Solana pubkey (base58) is its raw 32 bytes
(DESIGN §2.4). Decoding lives here, in ``chains``, so layers above never parse base58.
"""

from __future__ import annotations

from chains.solana.codec import b58decode
from shared.chain import ChainKind
from shared.ids import address_to_bytes32

__all__ = ["account_bytes32"]


def account_bytes32(kind: ChainKind, value: str) -> bytes:
    """``value`` (an EVM 0x address or a Solana base58 pubkey) as 32 bytes.

    Raises:
        ValueError: not an account of ``kind``.
    """
    if kind == ChainKind.EVM:
        return bytes.fromhex(address_to_bytes32(value)[2:])
    raw = b58decode(value)
    if len(raw) != 32:
        raise ValueError(f"{value!r} is not a 32-byte base58 pubkey")
    return raw
