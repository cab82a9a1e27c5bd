"""The one EVM JSON-RPC layer: endpoints with failover, tenacity retries, error conversion.

Every EVM reader in ``chains.evm`` (the chain adapter, the venue and vault clients, the oracle
client, the audit's event reader) reaches the node through :class:`RpcEndpoints`:

- a read is retried by tenacity (:func:`chains.retry.with_retries`) on :class:`RetryableError`
  only, and each failed attempt moves to the next configured URL (failover in order);
- transport trouble (:data:`TRANSIENT`) becomes :class:`RpcUnavailable`; a revert becomes
  :class:`ChainError` with the contract's custom error decoded by the caller's ``on_revert``;
  any other web3 error becomes :class:`ChainError`. Nothing above ``chains`` sees web3 errors.

Providers never retry by themselves (one retry layer). Many reads at one block go out as
JSON-RPC batches through :mod:`chains.evm.batch_calls`, which shares :data:`TRANSIENT`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import (
    BadResponseFormat,
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TooManyRequests,
    Web3Exception,
)

from chains.retry import with_retries
from shared.errors import ChainError, ConfigError, RpcUnavailable
from shared.settings import RetrySettings

__all__ = ["TRANSIENT", "RpcEndpoints", "Web3", "make_web3"]

T = TypeVar("T")
Web3 = AsyncWeb3[AsyncHTTPProvider]

#: Transport-level failures: the endpoint, not the request, is at fault -> retry / fail over.
TRANSIENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
    ProviderConnectionError,
    RequestTimedOut,
    TooManyRequests,
    BadResponseFormat,
)


def make_web3(rpc_url: str, timeout_s: float) -> Web3:
    """An ``AsyncWeb3`` whose provider never retries by itself (tenacity is the one layer)."""
    provider = AsyncHTTPProvider(
        rpc_url,
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout_s)},
        exception_retry_configuration=None,
    )
    return AsyncWeb3(provider)


class RpcEndpoints:
    """The configured RPC URLs of one chain, one ``AsyncWeb3`` each, used in failover order."""

    def __init__(self, chain: str, rpc_urls: Sequence[str], retry: RetrySettings) -> None:
        if not rpc_urls:
            raise ConfigError(f"chains.{chain}.rpc_urls", "at least one RPC URL is required")
        self.chain, self.retry = chain, retry
        self.urls = [str(u) for u in rpc_urls]
        self.clients = [make_web3(u, retry.timeout_s) for u in self.urls]
        self.active = 0

    @property
    def current(self) -> Web3:
        return self.clients[self.active]

    @property
    def current_url(self) -> str:
        return self.urls[self.active]

    async def call(self, op: str, fn: Callable[[Web3], Awaitable[T]], *,
                   passthrough: tuple[type[BaseException], ...] = (),
                   on_revert: Callable[[ContractLogicError], str] | None = None) -> T:
        """Run the read ``fn`` with retries and failover; errors converted (module docstring).

        Args:
            passthrough: web3 exceptions the caller handles itself (e.g. ``BlockNotFound``).
            on_revert: renders a revert's reason (custom errors decoded by name).
        """
        return await with_retries(self.retry, lambda: self.once(op, fn, passthrough=passthrough,
                                                                 on_revert=on_revert))

    async def once(self, op: str, fn: Callable[[Web3], Awaitable[T]], *,
                   passthrough: tuple[type[BaseException], ...] = (),
                   on_revert: Callable[[ContractLogicError], str] | None = None) -> T:
        """One attempt on the active endpoint; a transport failure moves to the next one."""
        index = self.active
        try:
            return await fn(self.clients[index])
        except passthrough:
            raise
        except TRANSIENT as exc:
            self.active = (index + 1) % len(self.clients)
            raise RpcUnavailable(self.chain, self.urls[index], f"{op}: {exc!r}") from exc
        except ContractLogicError as exc:
            reason = on_revert(exc) if on_revert is not None else str(exc.message)
            raise ChainError(f"{self.chain}: {op} reverted: {reason}") from exc
        except Web3Exception as exc:
            raise ChainError(f"{self.chain}: {op} failed: {exc}") from exc

    async def aclose(self) -> None:
        for client in self.clients:
            await client.provider.disconnect()
