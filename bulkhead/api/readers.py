"""Chain and venue reads behind the API (I/O).

Adapters and the venue client are held for the app's lifetime (opened in its lifespan) rather
than per request: the dashboard polls every second. Reads go through short single-flight
caches, so a burst of requests costs one round of RPC calls, and each read is bounded by a
timeout, so a dead node makes ``/readyz`` answer 503 quickly instead of hanging the probe.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from eth_utils.address import to_checksum_address

from bulkhead.api.rows import MarkReading, mark_ages, mark_row
from chains.base import ChainAdapter
from chains.evm.artifacts import load_artifact
from chains.evm.batch_calls import BatchReader, Call, Reverted, ViewFunction, view_functions
from chains.evm.venue_codec import market_params_from_tuple
from chains.finality import final_head
from shared.chain import ChainKind, ChainRef, Finality
from shared.errors import ChainError, OrchestratorError
from shared.positions import market_id
from shared.settings import Settings

__all__ = ["Cached", "MarkReader", "VenueReader", "chain_rows", "read_marks"]

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


@functools.cache
def _fns(artifact: str) -> dict[str, ViewFunction]:
    return view_functions(load_artifact(artifact).abi)


class MarkReader:
    """The marks the venue reads (``MarkOracle`` through the venue's ``oracle()``), for
    operators: per oracle name its minimum, the mark for a user action and for a liquidation
    (the max ages of the venue's markets, :func:`rows.mark_ages`) and every source as judged
    for each.

    Everything is read at one block (two JSON-RPC batches and its timestamp), so ages are on
    the clock the oracle judged by and a source's verdict, the mark and its count agree.
    ``names`` default to the devnet's oracle names and ``markets`` to its venue markets.
    """

    def __init__(self, settings: Settings, timeout_s: float, *, attempts: int = 1,
                 names: Sequence[str] | None = None,
                 markets: Sequence[str] | None = None) -> None:
        from devnet.evm_specs import DEFAULT_VENUE_MARKETS
        from devnet.feeder import devnet_feeds

        chain_id, self.venue = settings.venue()
        cfg = settings.chain(settings.venue_chain)
        retry = settings.retry.model_copy(update={"max_attempts": attempts})
        self.chain = ChainRef(settings.venue_chain, ChainKind.EVM, chain_id)
        self.reader = BatchReader(self.chain, [str(u) for u in cfg.rpc_urls], retry=retry)
        self.timeout_s = timeout_s
        self.names = list(devnet_feeds() if names is None else names)
        self.markets = list([m.name for m in DEFAULT_VENUE_MARKETS.markets]
                            if markets is None else markets)

    async def rows(self) -> list[dict[str, Any]]:
        """One :func:`rows.mark_row` per name, in name order.

        Raises:
            RpcUnavailable: the venue chain did not answer. ChainError: a view that never
                reverts did, or the oracle has no mark configured for a name. TimeoutError:
                no answer within ``timeout_s``.
        """
        return await bounded(self._read(), self.timeout_s)

    async def _read(self) -> list[dict[str, Any]]:
        height = await self.reader.block_number()
        at = functools.partial(self.reader.call_many, block=height)
        venue, oracle_fn = _fns("IsolatedMarginVenue"), _fns("MarkOracle")
        first = self._strict(await at([Call(self.venue, venue["oracle"])] + [
            Call(self.venue, venue["marketOf"], (market_id(m),)) for m in self.markets]))
        oracle = str(first[0])
        params = [market_params_from_tuple(a[0]) for a in first[1:]]
        ages = mark_ages(self.names, [(p.oracle_id, p.max_age_user_s, p.max_age_liq_s)
                                      for p in params])
        per = 6
        calls = []
        for name in self.names:
            oid, (user_s, liq_s) = market_id(name), ages[name]
            calls += [Call(oracle, oracle_fn["params"], (oid,)),
                      Call(oracle, oracle_fn["sources"], (oid,)),
                      Call(oracle, oracle_fn["getMark"], (oid, user_s)),
                      Call(oracle, oracle_fn["getMark"], (oid, liq_s)),
                      Call(oracle, oracle_fn["sourceStates"], (oid, user_s)),
                      Call(oracle, oracle_fn["sourceStates"], (oid, liq_s))]
        answers = await at(calls)
        block = await self.reader.request("eth_getBlockByNumber", [hex(height), False])
        if not isinstance(block, dict) or "timestamp" not in block:
            raise ChainError(f"{self.chain.key}: block {height} has no timestamp")
        chain_time = int(block["timestamp"], 16)
        rows = []
        for i, name in enumerate(self.names):
            p, listed, user, liq, user_states, liq_states = answers[i * per:(i + 1) * per]
            self._strict([p, listed, user_states, liq_states], what=f"the mark of {name}")
            if not listed or not int(p[0]):
                raise ChainError(f"{self.chain.key}: oracle {oracle} has no mark configured "
                                 f"for {name}")
            rows.append(mark_row(MarkReading(
                name, height, chain_time, int(p[0]), ages[name],
                (None if isinstance(user, Reverted) else user,
                 None if isinstance(liq, Reverted) else liq),
                [(int(k), to_checksum_address(f), bytes(pid)) for k, f, pid in listed],
                (user_states, liq_states))))
        return rows

    def _strict(self, answers: Sequence[Any], what: str = "a venue view") -> Sequence[Any]:
        if any(isinstance(a, Reverted) for a in answers):
            raise ChainError(f"{self.chain.key}: reading {what} reverted (is {self.venue} an "
                             "IsolatedMarginVenue with a MarkOracle?)")
        return answers

    async def aclose(self) -> None:
        await self.reader.aclose()


async def read_marks(settings: Settings) -> list[dict[str, Any]]:
    """Every mark once, retried under the settings' policy (the CLI's read)."""
    retry = settings.retry
    reader = MarkReader(settings, retry.timeout_s * retry.max_attempts * 4,
                        attempts=retry.max_attempts)
    try:
        return await reader.rows()
    finally:
        await reader.aclose()
