"""Apply a chain's finality policy to its heads (DESIGN §2.3). Pure policy over the adapter seam."""

from __future__ import annotations

from chains.base import ChainAdapter
from shared.chain import BlockRef, Finality
from shared.errors import NotYetFinal
from shared.settings import FinalityPolicy

__all__ = ["final_head"]


async def final_head(adapter: ChainAdapter, policy: FinalityPolicy,
                     latest: BlockRef | None = None) -> BlockRef:
    """The newest height the policy calls final: the chain's own ``finalized``/``safe`` tag, or
    ``latest - k`` for k confirmations (the block ``k`` below the head has ``k`` blocks on top).

    Raises:
        NotYetFinal: confirmations mode and the chain is shorter than ``k`` blocks, or the
            block vanished under us (reorg): retry later.
    """
    if policy.mode == "tag":
        return await adapter.head(policy.tag)
    latest = latest or await adapter.head(Finality.LATEST)
    height = latest.height - policy.confirmations
    if height < 0:
        raise NotYetFinal(adapter.chain.key, 0, f"{policy.confirmations} confirmations")
    block_hash = await adapter.block_hash(height)
    if block_hash is None:
        raise NotYetFinal(adapter.chain.key, height, "present")
    return BlockRef(adapter.chain.key, height, block_hash)
