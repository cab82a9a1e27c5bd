"""The adapter seam every chain kind implements (DESIGN §7 "chains: see").

Values that cross the seam (``ChainRef``, ``BlockRef``, ``Finality``, ``LockEvent``, 32-byte
ids) live in :mod:`shared`, so every layer can use them without importing ``chains``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from shared.chain import BlockRef, ChainRef, Finality
from shared.events import LockEvent

__all__ = ["ChainAdapter"]


@runtime_checkable
class ChainAdapter(Protocol):
    """One connection to one chain. I/O only; decoding lives in the chain's codec module.

    Every method raises only ``shared.errors`` types: library errors are converted
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

    async def lock_exists(self, event: LockEvent) -> bool:
        """True if the lock's transaction is in the chain now (at this adapter's commitment)
        and still carries the same lock: id, vault and amount. False when it vanished (an
        orphan once it was final)."""
        ...

    async def vault_balance(self, vault: str, asset: str) -> int:
        """What ``vault`` holds of ``asset`` now, in base units (the accountant's ``held``;
        Solana: the vault token account's balance, ``asset`` is its mint)."""
        ...

    async def aclose(self) -> None: ...
