"""Which chain, which block, which commitment: one vocabulary for EVM and Solana. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BlockRef", "ChainKind", "ChainRef", "Finality"]


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
