"""The venue watcher: settlement requests seen on the venue chain at its finality (DESIGN §2.4).

The way back starts here. Each poll reads the venue's events from the stored cursor up to the
venue chain's final head (one bounded range per poll), records every new
``SettlementRequested`` once in the settlement store and moves the cursor. The venue's events
are the record: a lost store is rebuilt by scanning again from the deployment height, and
attesters re-read each request themselves before signing (a request here is only a hint).
"""

from __future__ import annotations

from typing import Any

import structlog

from bridges.ports import SettlementStore
from chains.base import ChainAdapter
from chains.evm.bridge_codec import SettlementRequestedEvent
from chains.finality import final_head
from shared.settings import FinalityPolicy

__all__ = ["SettlementWatcher"]

log = structlog.get_logger(__name__)


class SettlementWatcher:
    """Drives the venue's settlement requests into the store, final blocks only."""

    def __init__(self, adapter: ChainAdapter, venue_reader: Any, store: SettlementStore,
                 policy: FinalityPolicy, *, chain: str, start_height: int,
                 max_block_range: int) -> None:
        """``venue_reader`` is a read-only ``VenueClient`` (its ``events(start, end)``)."""
        self.adapter, self.reader, self.store, self.policy = adapter, venue_reader, store, policy
        self.chain, self.start_height = chain, start_height
        self.max_block_range = max(1, max_block_range)

    async def poll(self) -> list[SettlementRequestedEvent]:
        """Scan one range past the cursor, at most to the final head; the requests new here.

        Raises:
            RpcUnavailable, ChainError: the venue chain could not be read (the cursor stays).
        """
        epoch = self.store.epoch()  # before the cursor: a reset after this refuses our write
        cursor = self.store.cursor(self.chain)
        start = (self.start_height - 1 if cursor is None else cursor) + 1
        final = await final_head(self.adapter, self.policy)
        if final.height < start:
            return []
        end = min(final.height, start + self.max_block_range - 1)
        new = [ev for ev in await self.reader.events(start, end)
               if isinstance(ev, SettlementRequestedEvent) and self.store.add(ev)]
        # INVARIANT (I4): the cursor only moves forward, after the range was read whole and
        # recorded in the same incarnation of the store (RT-04: a reset in between refuses it).
        if not self.store.set_cursor(self.chain, end, epoch=epoch):
            log.warning("store_reset_mid_scan", chain=self.chain, height=end)
        return new
