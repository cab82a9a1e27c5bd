"""Many read-only ``eth_call`` s at one block, sent as JSON-RPC batches (I/O).

Bulk snapshots (thousands of positions per risk tick) spend their time in per-call overhead, not
in the node: one contract call through web3's contract layer costs milliseconds of client CPU,
the same call as an item of a JSON-RPC batch a few microseconds. This module encodes and decodes
with ``eth_abi`` from the committed ABI, posts batches of ``batch_size`` calls, keeps at most
``max_in_flight`` requests open (a bounded semaphore), and pins every call to one block so a
snapshot is coherent.

Reads only, so a whole batch may be retried (tenacity, :func:`chains.retry.with_retries`):
transport trouble becomes :class:`RpcUnavailable` and the next endpoint is tried. A call that
reverts is returned as :class:`Reverted` (its data decoded by the caller); any other error of
the node is a :class:`ChainError`. ``batch_size = 1`` sends plain single requests, for
providers that refuse batches.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from eth_utils.address import to_checksum_address

from chains.retry import with_retries
from shared.chain import ChainRef
from shared.errors import ChainError, ConfigError, RpcUnavailable
from shared.settings import RetrySettings

__all__ = ["BatchReader", "Call", "Reverted", "ViewFunction", "view_functions"]

_TRANSPORT = (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)


@dataclass(frozen=True, slots=True)
class ViewFunction:
    """One function of an ABI: selector and types, for encoding calls and decoding results."""

    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def encode(self, args: Sequence[Any]) -> str:
        return "0x" + (self.selector + abi_encode(list(self.inputs), list(args))).hex()

    def decode(self, raw: bytes) -> Any:
        """The result as web3 returns it: the value itself for one output, else a tuple."""
        values = abi_decode(list(self.outputs), raw)
        return values[0] if len(values) == 1 else tuple(values)


def view_functions(abi: Sequence[Mapping[str, Any]]) -> dict[str, ViewFunction]:
    """The ABI's functions by name (overloaded names are left out: call them by another way)."""
    found: dict[str, list[ViewFunction]] = {}
    for entry in abi:
        if entry.get("type") != "function":
            continue
        typed = cast(Any, entry)
        fn = ViewFunction(str(entry["name"]), function_abi_to_4byte_selector(typed),
                          tuple(get_abi_input_types(typed)), tuple(get_abi_output_types(typed)))
        found.setdefault(fn.name, []).append(fn)
    return {name: fns[0] for name, fns in found.items() if len(fns) == 1}


@dataclass(frozen=True, slots=True)
class Call:
    """One read: ``fn(*args)`` on the contract at ``to``."""

    to: str
    fn: ViewFunction
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Reverted:
    """The call reverted; ``data`` is the revert data (empty when the node gave none)."""

    data: bytes


class BatchReader:
    """Read-only JSON-RPC for one chain through one or more endpoints (failover in order)."""

    def __init__(self, chain: ChainRef, rpc_urls: Sequence[str], *, retry: RetrySettings,
                 batch_size: int = 100, max_in_flight: int = 8) -> None:
        if not rpc_urls:
            raise ConfigError(f"chains.{chain.key}.rpc_urls", "at least one RPC URL is required")
        if batch_size < 1 or max_in_flight < 1:
            raise ConfigError("venue.batch", "batch_size and max_in_flight must be >= 1")
        self.chain, self._urls, self._retry = chain, [str(u) for u in rpc_urls], retry
        self.batch_size = batch_size
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._active = 0
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        """One JSON-RPC request (retried on transport trouble). Raises: RpcUnavailable,
        ChainError (the node answered with an error)."""
        answer = await with_retries(self._retry, lambda: self._post_once(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}))
        if not isinstance(answer, dict):
            raise ChainError(f"{self.chain.key}: {method}: malformed answer")
        if "error" in answer:
            raise ChainError(f"{self.chain.key}: {method}: {answer['error']}")
        return answer.get("result")

    async def block_number(self) -> int:
        return int(await self.request("eth_blockNumber", []), 16)

    async def call_many(self, calls: Sequence[Call], *, block: int | str = "latest"
                        ) -> list[Any]:
        """Results of ``calls`` in order (a :class:`Reverted` for each call that reverted).

        Raises:
            RpcUnavailable: no endpoint answered a batch within the retry policy.
            ChainError: the node refused a call for a reason other than a revert.
        """
        tag = hex(block) if isinstance(block, int) else block
        chunks = [calls[i:i + self.batch_size] for i in range(0, len(calls), self.batch_size)]
        parts = await asyncio.gather(*(self._chunk(chunk, tag) for chunk in chunks))
        return [result for part in parts for result in part]

    async def _chunk(self, calls: Sequence[Call], tag: str) -> list[Any]:
        async with self._in_flight:
            requests = [{"jsonrpc": "2.0", "id": next(self._ids), "method": "eth_call",
                         "params": [{"to": c.to, "data": c.fn.encode(c.args)}, tag]}
                        for c in calls]
            answers = await with_retries(self._retry, lambda: self._send(requests))
        return [self._result(call, answer) for call, answer in zip(calls, answers, strict=True)]

    async def _send(self, requests: list[dict[str, Any]]) -> list[Any]:
        if len(requests) == 1:
            return [await self._post_once(requests[0])]
        answer = await self._post_once(requests)
        if not isinstance(answer, list):
            raise ChainError(f"{self.chain.key}: the endpoint refused a JSON-RPC batch "
                             f"({str(answer)[:200]}); use batch_size=1")
        by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
        missing = [r["id"] for r in requests if r["id"] not in by_id]
        if missing:
            raise RpcUnavailable(self.chain.key, self._urls[self._active],
                                 f"batch answer lacks {len(missing)} of {len(requests)} items")
        return [by_id[r["id"]] for r in requests]

    async def _post_once(self, body: Any) -> Any:
        index = self._active
        try:
            session = self._get_session()
            async with session.post(self._urls[index], json=body) as response:
                if response.status >= 500 or response.status == 429:
                    raise aiohttp.ClientResponseError(response.request_info, (),
                                                      status=response.status)
                return await response.json(content_type=None)
        except _TRANSPORT as exc:
            self._active = (index + 1) % len(self._urls)
            raise RpcUnavailable(self.chain.key, self._urls[index], repr(exc)) from exc

    def _result(self, call: Call, answer: Any) -> Any:
        error = answer.get("error") if isinstance(answer, dict) else None
        if error is not None:
            message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            if "revert" in message.lower() or (isinstance(error, dict) and error.get("code") == 3):
                data = error.get("data") if isinstance(error, dict) else None
                if isinstance(data, dict):  # some nodes nest it: {"data": {"data": "0x.."}}
                    data = data.get("data")
                raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data[:2] == "0x" else b""
                return Reverted(raw)
            raise ChainError(f"{self.chain.key}: {call.fn.name} at "
                             f"{to_checksum_address(call.to)} failed: {message}")
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, str) or not result.startswith("0x"):
            raise ChainError(f"{self.chain.key}: {call.fn.name}: malformed result {result!r}")
        raw = bytes.fromhex(result[2:])
        if not raw and call.fn.outputs:
            raise ChainError(f"{self.chain.key}: {call.fn.name} at {call.to} returned nothing "
                             "(no contract at that address?)")
        try:
            return call.fn.decode(raw)
        except DecodingError as exc:
            raise ChainError(f"{self.chain.key}: {call.fn.name}: undecodable result") from exc

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self._retry.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
