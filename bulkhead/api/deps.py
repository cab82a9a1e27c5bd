"""What the API's routes read from, opened once in the app's lifespan (I/O).

``ApiState`` bundles the lock store, the signature pool, the settlement store, a raw Redis
client (queue depths, the risk worker's last screen), one adapter per chain and the venue and
mark readers. ``open_state`` builds the real ones from the settings; unit tests hand ``create_app``
a factory that builds in-memory ones instead, so routes never know the difference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import Request

from bulkhead.api.readers import Cached
from chains.base import ChainAdapter
from shared.lock_store import LockStore
from shared.settings import Settings
from workers.stores.pool import RedisSignaturePool
from workers.stores.settlements import RedisSettlementStore

__all__ = ["ApiOptions", "ApiState", "StateFactory", "get_state", "open_state"]


@dataclass(frozen=True)
class ApiOptions:
    """Knobs of the API process (not of the protocol).

    ``max_finality_lag`` bounds ``latest - finalized`` (in blocks/slots) for ``/readyz``; a
    chain not named falls back to ``default_max_lag``. ``read_timeout_s`` bounds one chain read.
    ``/readyz`` always lists each worker role's heartbeat; with ``require_workers`` a role with
    no live worker also makes it 503 (a deployment that runs the workers sets it).
    """

    default_max_lag: int = 1024
    max_finality_lag: Mapping[str, int] = field(default_factory=dict)
    read_timeout_s: float = 5.0
    heads_ttl_s: float = 0.25
    venue_ttl_s: float = 0.5
    require_workers: bool = False

    def max_lag(self, chain: str) -> int:
        return self.max_finality_lag.get(chain, self.default_max_lag)


class SignatureSource(Protocol):
    def signers(self, key: str) -> set[str]: ...
    def candidates(self, key: str) -> list[tuple[Any, Any, dict[str, bytes]]]: ...


class SettlementSource(Protocol):
    def all(self) -> list[Any]: ...


class RedisLike(Protocol):
    """The slice of ``redis.Redis`` the metrics and readiness checks use."""

    def ping(self) -> Any: ...
    def pipeline(self, transaction: bool = ...) -> Any: ...
    def hgetall(self, name: str) -> Any: ...
    def scan_iter(self, match: str | None = ..., count: int | None = ...) -> Any: ...


@dataclass
class ApiState:
    settings: Settings
    options: ApiOptions
    store: LockStore
    pool: SignatureSource
    settlements: SettlementSource
    redis: RedisLike | None
    adapters: dict[str, ChainAdapter]
    venue: Any = None  # readers.VenueReader, or None when no venue is configured
    marks: Any = None  # readers.MarkReader, or None when no venue is configured
    caches: dict[str, Cached[Any]] = field(default_factory=dict)

    def cache(self, name: str, ttl_s: float) -> Cached[Any]:
        if name not in self.caches:
            self.caches[name] = Cached(ttl_s)
        return self.caches[name]


StateFactory = Callable[[Settings, ApiOptions], AbstractAsyncContextManager[ApiState]]


@asynccontextmanager
async def open_state(settings: Settings, options: ApiOptions) -> AsyncIterator[ApiState]:
    """Real backends: Redis (lock store, pool, settlements) and one adapter per chain.

    Nothing here connects eagerly: a chain or Redis that is down at start shows up in
    ``/readyz``, it does not keep the process from serving ``/healthz``.
    """
    import redis

    from bulkhead.api.readers import MarkReader, VenueReader
    from chains.factory import adapter_for
    from workers.stores.locks import RedisLockStore

    url = str(settings.redis_url)
    retry = settings.retry.model_copy(update={"max_attempts": 1,
                                              "timeout_s": options.read_timeout_s})
    adapters = {key: adapter_for(key, cfg, retry) for key, cfg in settings.chains.items()}
    venue = marks = None
    if settings.venue_chain in adapters and "venue" in settings.chain(
            settings.venue_chain).contracts:
        venue = VenueReader(settings, adapters[settings.venue_chain], options.read_timeout_s)
        marks = MarkReader(settings, options.read_timeout_s * 2)
    store = RedisLockStore(url)
    pool = RedisSignaturePool(url)
    settlements = RedisSettlementStore(url)
    raw = redis.Redis.from_url(url, decode_responses=True, socket_timeout=options.read_timeout_s,
                               socket_connect_timeout=options.read_timeout_s)
    try:
        yield ApiState(settings, options, store, pool, settlements, raw, adapters, venue, marks)
    finally:
        for reader in (venue, marks):
            if reader is not None:
                await reader.aclose()
        for adapter in adapters.values():
            await adapter.aclose()
        for closeable in (store, pool, raw, settlements):
            closeable.close()


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state
