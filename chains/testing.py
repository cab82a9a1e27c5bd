"""``FakeChain``: an in-memory chain for unit tests of pure logic built on the adapter seam.

Integration tests use real nodes; this exists so the watcher's cursor, reorg and finality
rules can be tested table-style in milliseconds. Heights start at 0 (genesis, no events).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from shared.chain import BlockRef, ChainKind, ChainRef, Finality
from shared.events import LockEvent
from shared.ids import bytes32_hex

__all__ = ["FakeChain", "make_event"]


def make_event(chain: str, nonce: int, amount: int, height: int = 0, block_hash: str = "") -> LockEvent:
    """A well-formed attributed lock event; height and hash are filled in by ``FakeChain.mine``."""
    return LockEvent(
        chain=chain, chain_id=31337, lock_id=bytes32_hex(nonce.to_bytes(32, "big")),
        vault=bytes32_hex(bytes(12) + b"\x11" * 20), owner=bytes32_hex(bytes(12) + b"\x22" * 20),
        asset=bytes32_hex(bytes(12) + b"\x33" * 20), amount=amount, decimals=6,
        position_key=bytes32_hex(b"\x44" * 32), dst_chain_id=31338,
        dst_venue="0x" + "55" * 20, beneficiary="0x" + "66" * 20, height=height,
        block_hash=block_hash, tx_id=f"0x{nonce:064x}", nonce=nonce,
    )


@dataclass
class FakeChain:
    key: str = "fake"
    safe_lag: int = 2
    final_lag: int = 4
    fork_tag: str = "a"
    blocks: list[tuple[str, list[LockEvent]]] = field(default_factory=list)
    calls: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.chain = ChainRef(self.key, ChainKind.EVM, 31337)
        if not self.blocks:
            self.blocks.append((self._hash(0), []))

    def _hash(self, height: int) -> str:
        return "0x" + hashlib.sha256(f"{self.fork_tag}:{height}".encode()).hexdigest()

    @property
    def latest(self) -> int:
        return len(self.blocks) - 1

    def mine(self, *events: LockEvent) -> int:
        height = len(self.blocks)
        block_hash = self._hash(height)
        self.blocks.append((block_hash, [replace(e, height=height, block_hash=block_hash)
                                         for e in events]))
        return height

    def reorg(self, from_height: int, fork_tag: str) -> None:
        """Drop every block at or above ``from_height``; new blocks get hashes of ``fork_tag``."""
        del self.blocks[from_height:]
        self.fork_tag = fork_tag

    history_lag: int = 0  # like Solana: history visible only up to latest - history_lag

    @property
    def history_finality(self) -> Finality:
        return Finality.SAFE if self.history_lag else Finality.LATEST

    async def head(self, finality: Finality) -> BlockRef:
        lag = {Finality.LATEST: 0, Finality.SAFE: self.history_lag or self.safe_lag,
               Finality.FINALIZED: self.final_lag}[finality]
        height = max(self.latest - lag, 0)
        return BlockRef(self.key, height, self.blocks[height][0])

    async def block_hash(self, height: int) -> str | None:
        return self.blocks[height][0] if 0 <= height <= self.latest else None

    async def lock_events(self, start: int, end: int) -> Sequence[LockEvent]:
        self.calls.append((start, end))
        visible = self.latest - self.history_lag
        return [e for h in range(max(start, 0), min(end, visible) + 1)
                for e in self.blocks[h][1]]

    async def lock_exists(self, event: LockEvent) -> bool:
        return any(e.tx_id == event.tx_id and e.lock_id == event.lock_id
                   and e.amount == event.amount for _, events in self.blocks for e in events)

    async def vault_balance(self, vault: str, asset: str) -> int:
        """Every canonical lock into ``vault`` of ``asset`` (the fake vault never pays out)."""
        def b32(value: str) -> str:  # a 20-byte address or a bytes32, as bytes32 hex
            return "0x" + value.lower().removeprefix("0x").rjust(64, "0")
        return sum(e.amount for _, events in self.blocks for e in events
                   if b32(e.vault) == b32(vault) and b32(e.asset) == b32(asset))

    async def aclose(self) -> None:
        return None
