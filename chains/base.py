"""Values and the adapter seam shared by every chain kind.

All identifiers that cross chain kinds are lowercase ``0x``-prefixed hex of 32 bytes
(``Bytes32Hex``): an EVM address is left-padded, a Solana pubkey is its raw 32 bytes. That is
the form the attestation digest (DESIGN §2.4) signs, so watchers emit it directly.
Amounts are ``int`` base units of the source asset, never floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, NewType, Protocol, runtime_checkable

__all__ = [
    "ZERO32",
    "BlockRef",
    "Bytes32Hex",
    "ChainAdapter",
    "ChainKind",
    "ChainRef",
    "Finality",
    "LockEvent",
    "address_to_bytes32",
    "bytes32_hex",
]

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


class ChainKind(StrEnum):
    EVM = "evm"
    SOLANA = "solana"


class Finality(StrEnum):
    """Commitment levels, one vocabulary for both kinds."""

    LATEST = "latest"  # EVM latest    / Solana processed
    SAFE = "safe"  # EVM safe      / Solana confirmed
    FINALIZED = "finalized"  # EVM finalized / Solana finalized


@dataclass(frozen=True, slots=True)
class ChainRef:
    """Which chain: the settings key (``evm-a``), its kind and its numeric id."""

    key: str
    kind: ChainKind
    chain_id: int


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block (EVM) or slot (Solana) at some commitment; ``hash`` is the block hash / blockhash."""

    chain: str
    height: int
    hash: str
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class LockEvent:
    """One observed lock, identical in shape for EVM and Solana.

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


@runtime_checkable
class ChainAdapter(Protocol):
    """One connection to one chain. I/O only; decoding lives in the chain's codec module.

    Every method raises only ``orchestrator.errors`` types: library errors are converted
    at the edge. Reads are retried inside the adapter (tenacity) before ``RpcUnavailable``.
    """

    chain: ChainRef

    @property
    def history_finality(self) -> Finality:
        """The commitment ``lock_events`` reads history at: a scan must not move its cursor past
        ``head(history_finality)``, or locks in newer heights would be skipped for good."""
        ...

    async def head(self, finality: Finality) -> BlockRef:
        """Newest block/slot at ``finality``."""
        ...

    async def block_hash(self, height: int) -> str | None:
        """Hash of the canonical block at ``height`` now, or None if there is none (skipped slot)."""
        ...

    async def lock_events(self, start: int, end: int) -> Sequence[LockEvent]:
        """Locks into registered vaults landed in heights ``start..end`` inclusive, in chain order."""
        ...

    async def aclose(self) -> None: ...
