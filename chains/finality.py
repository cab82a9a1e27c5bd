"""Apply a chain's finality policy to its heads (DESIGN §2.3). Pure policy over the adapter seam."""

from __future__ import annotations

from chains.base import BlockRef, ChainAdapter, Finality
from orchestrator.settings import FinalityPolicy

__all__ = ["final_head"]


async def final_head(adapter: ChainAdapter, policy: FinalityPolicy,
                     latest: BlockRef | None = None) -> BlockRef:
    """The newest height the policy calls final: the chain's own ``finalized``/``safe`` tag, or
    ``latest - k`` for k confirmations (the block ``k`` below the head has ``k`` blocks on top)."""
    if policy.mode == "tag":
        return await adapter.head(policy.tag)
    latest = latest or await adapter.head(Finality.LATEST)
    height = max(latest.height - policy.confirmations, 0)
    return BlockRef(adapter.chain.key, height, await adapter.block_hash(height) or "")
