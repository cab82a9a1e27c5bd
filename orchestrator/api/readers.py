"""Chain and venue reads behind the API (I/O).

Adapters and the venue client are held for the app's lifetime (opened in its lifespan) rather
than per request: the dashboard polls every second. Reads go through short single-flight
caches, so a burst of requests costs one round of RPC calls, and each read is bounded by a
timeout, so a dead node makes ``/readyz`` answer 503 quickly instead of hanging the probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from chains.base import ChainAdapter, ChainKind, ChainRef, Finality
from chains.finality import final_head
from orchestrator.errors import OrchestratorError
from orchestrator.settings import Settings

__all__ = ["Cached", "VenueReader", "chain_rows"]

T = TypeVar("T")


class Cached(Generic[T]):
    """One value, recomputed at most every ``ttl_s`` seconds; concurrent callers share a read."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s, self._at = ttl_s, -1e18
        self._value: T | None = None
        self._lock = asyncio.Lock()

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            if time.monotonic() - self._at > self._ttl_s:
                self._value = await compute()
                self._at = time.monotonic()
            return self._value  # type: ignore[return-value]


async def _chain_row(settings: Settings, key: str, adapter: ChainAdapter,
                     timeout_s: float) -> dict[str, Any]:
    cfg = settings.chain(key)
    row: dict[str, Any] = {"chain": key, "kind": cfg.kind.value, "chain_id": cfg.chain_id,
                           "reachable": False, "latest": None, "safe": None, "finalized": None,
                           "lag": None, "error": None}
    try:
        async with asyncio.timeout(timeout_s):
            latest = await adapter.head(Finality.LATEST)
            safe = await adapter.head(Finality.SAFE)
            final = await final_head(adapter, cfg.finality, latest)
    except OrchestratorError as exc:
        row["error"] = str(exc)[:300]
    except TimeoutError:
        row["error"] = f"no answer within {timeout_s} s"
    else:
        row.update(reachable=True, latest=latest.height, safe=safe.height,
                   finalized=final.height, lag=latest.height - final.height)
    return row


async def chain_rows(settings: Settings, adapters: Mapping[str, ChainAdapter],
                     timeout_s: float) -> list[dict[str, Any]]:
    """Heads at each commitment and the finality lag of every configured chain, in key order
    (the same figures as ``bulkhead devnet status``)."""
    keys = sorted(adapters)
    return list(await asyncio.gather(*(_chain_row(settings, k, adapters[k], timeout_s)
                                       for k in keys)))


class VenueReader:
    """Read-only access to the venue: positions through the configured venue adapter and the
    keeper's snapshot (as ``bulkhead positions`` does), and the reference contract's
    ``Liquidated``/``Shortfall`` events.

    Events at or below the venue chain's finalized head are kept (they cannot change); the
    unfinalized tail is re-read on every call, so a reorg never leaves a stale liquidation.
    """

    def __init__(self, settings: Settings, adapter: ChainAdapter, timeout_s: float) -> None:
        # One attempt per read: the API reports a dead node (503) instead of retrying into
        # the client's timeout; the caller polls again anyway.
        self.settings = settings.model_copy(
            update={"retry": settings.retry.model_copy(update={"max_attempts": 1})})
        self.adapter, self.timeout_s = adapter, timeout_s
        self._venue: Any = None
        self._events: Any = None
        self._keeper: Any = None
        self._connect_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        cfg = settings.chain(settings.venue_chain)
        self._final_upto = cfg.deployment_height - 1
        self._final_events: list[Any] = []

    async def _keeper_now(self) -> Any:
        """A read-only keeper over the registered venue adapter, connected on first use (the
        API starts while the venue chain is down, and reports it)."""
        async with self._connect_lock:
            if self._keeper is None:
                from orchestrator.liquidation.keeper import Keeper
                from orchestrator.venues.registry import open_venue

                name = self.settings.venue_adapter
                async with asyncio.timeout(self.timeout_s * 2):
                    self._venue = await open_venue(name, self.settings)
                self._keeper = Keeper(self._venue)
        return self._keeper

    async def _events_client(self) -> Any:
        async with self._connect_lock:
            if self._events is None:
                from chains.evm.venue import VenueClient

                s = self.settings
                chain_id, venue = s.venue()
                cfg = s.chain(s.venue_chain)
                async with asyncio.timeout(self.timeout_s * 2):
                    self._events = await VenueClient.connect(
                        [str(u) for u in cfg.rpc_urls], venue,
                        chain=ChainRef(s.venue_chain, ChainKind.EVM, chain_id), retry=s.retry,
                        max_block_range=cfg.max_block_range)
        return self._events

    async def position_rows(self, keys: list[bytes]) -> list[dict[str, Any]]:
        """``trade.position_rows`` for ``keys`` (positions without an open trade are left out).

        Raises:
            OrchestratorError: the venue chain could not be read (the caller answers 503).
        """
        from orchestrator.trade import position_rows

        keeper = await self._keeper_now()
        async with asyncio.timeout(self.timeout_s + 2 * len(keys)):
            return await position_rows(self.settings, keeper, keys)

    async def risk_events(self) -> tuple[list[Any], int]:
        """(Liquidated and Shortfall events in chain order, the finalized height)."""
        from chains.evm.bridge_codec import LiquidatedEvent, ShortfallEvent

        venue = await self._events_client()
        policy = self.settings.chain(self.settings.venue_chain).finality
        async with self._scan_lock, asyncio.timeout(self.timeout_s * 4):
            latest = await self.adapter.head(Finality.LATEST)
            final = await final_head(self.adapter, policy, latest)
            kinds = (LiquidatedEvent, ShortfallEvent)
            if final.height > self._final_upto:
                found = await venue.risk_events(self._final_upto + 1, final.height)
                self._final_events.extend(e for e in found if isinstance(e, kinds))
                self._final_upto = final.height
            tail: list[Any] = []
            if latest.height > self._final_upto:
                found = await venue.risk_events(self._final_upto + 1, latest.height)
                tail = [e for e in found if isinstance(e, kinds)]
            return [*self._final_events, *tail], self._final_upto

    async def aclose(self) -> None:
        for client in (self._venue, self._events):
            if client is not None:
                await client.aclose()
