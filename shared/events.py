"""A lock as the watchers observe it, identical in shape for EVM and Solana. Pure.

Amounts are ``int`` base units of the source asset, never floats; identifiers are
:data:`shared.ids.Bytes32Hex`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shared.ids import Bytes32Hex

__all__ = ["LockEvent"]


@dataclass(frozen=True, slots=True)
class LockEvent:
    """One observed lock.

    ``amount`` is the measured balance delta of the vault, never an argument or memo.
    ``unattributed_reason`` is set when funds reached a vault without a valid lock
    instruction (Solana transfer without or with a malformed memo): such an event is
    reported so an operator can refund it, and is never credited.
    """

    chain: str
    chain_id: int
    lock_id: Bytes32Hex
    vault: Bytes32Hex
    owner: Bytes32Hex
    asset: Bytes32Hex
    amount: int
    decimals: int
    position_key: Bytes32Hex
    dst_chain_id: int
    dst_venue: str  # 20-byte EVM address, checksummed
    beneficiary: str  # 20-byte EVM address, checksummed
    height: int  # block number / slot where the lock landed
    block_hash: str
    tx_id: str  # EVM tx hash (0x-hex) / Solana signature (base58)
    log_index: int = 0
    nonce: int | None = None  # EVM vault nonce; None on Solana
    unattributed_reason: str | None = None

    @property
    def attributed(self) -> bool:
        return self.unattributed_reason is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockEvent:
        return cls(**data)
