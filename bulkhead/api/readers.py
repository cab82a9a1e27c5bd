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

from chains.base import ChainAdapter
from chains.finality import final_head
from shared.chain import ChainKind, ChainRef, Finality
from shared.errors import OrchestratorError
from shared.settings import Settings

__all__ = ["Cached", "VenueReader", "chain_rows"]

T = TypeVar("T")


async def bounded(coro: Awaitable[T], timeout_s: float) -> T:
    """Wait at most ``timeout_s`` for ``coro`` without cancelling it.

    web3's AsyncHTTPProvider guards its session cache with one process-wide lock that a
    request cancelled while waiting for it can leave held (web3.py issue #3867), after which
    every EVM read in the process hangs. So a slow read is never cancelled: it finishes in the
    background, bounded by the HTTP client's own timeout, and the caller gets TimeoutError.
    """
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        task.add_done_callback(_retrieve)
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # read, so a late failure is not reported as never retrieved


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
    async def read() -> tuple[Any, Any, Any]:
        latest = await adapter.head(Finality.LATEST)
        safe = await adapter.head(Finality.SAFE)
        return latest, safe, await final_head(adapter, cfg.finality, latest)

    try:
        latest, safe, final = await bounded(read(), timeout_s)
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
                self._venue = await bounded(open_venue(name, self.settings), self.timeout_s * 2)
                self._keeper = Keeper(self._venue)
        return self._keeper

    async def _events_client(self) -> Any:
        async with self._connect_lock:
            if self._events is None:
                from chains.evm.venue import VenueClient

                s = self.settings
                chain_id, venue = s.venue()
                cfg = s.chain(s.venue_chain)
                self._events = await bounded(VenueClient.connect(
                    [str(u) for u in cfg.rpc_urls], venue,
                    chain=ChainRef(s.venue_chain, ChainKind.EVM, chain_id), retry=s.retry,
                    max_block_range=cfg.max_block_range), self.timeout_s * 2)
        return self._events

    async def position_rows(self, keys: list[bytes]) -> list[dict[str, Any]]:
        """``trade.position_rows`` for ``keys`` (positions without an open trade are left out).

        Raises:
            OrchestratorError: the venue chain could not be read (the caller answers 503).
        """
        from orchestrator.actions.trading import position_rows

        keeper = await self._keeper_now()
        return await bounded(position_rows(self.settings, keeper, keys),
                             self.timeout_s + 2 * len(keys))

    async def risk_events(self) -> tuple[list[Any], int]:
        """(Liquidated and Shortfall events in chain order, the finalized height)."""

        venue = await self._events_client()
        return await bounded(self._scan(venue), self.timeout_s * 4)

    async def _scan(self, venue: Any) -> tuple[list[Any], int]:
        """The scan itself; it holds the scan lock until done even when its caller stopped
        waiting, so two scans never extend the event list at once."""
        from chains.evm.venue_codec import LiquidatedEvent, ShortfallEvent

        policy = self.settings.chain(self.settings.venue_chain).finality
        async with self._scan_lock:
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
