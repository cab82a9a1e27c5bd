"""Decoded events, views and block times of any committed contract on one EVM chain (I/O).

The audit reads what the typed clients do not expose (rate-limit and attester-rotation logs,
historical views at a block, block timestamps) through this one reader, against the committed
ABIs. Results are plain dicts and ints; library errors become ours at this edge.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from chains.evm.artifacts import load_artifact
from chains.evm.rpc import TRANSIENT, make_web3
from shared.errors import ChainError, RpcUnavailable

__all__ = ["EvmEventReader"]

T = TypeVar("T")


class EvmEventReader:
    """One RPC endpoint of one chain; ``max_block_range`` bounds every ``eth_getLogs``."""

    def __init__(self, chain: str, rpc_url: str, *, timeout_s: float,
                 max_block_range: int) -> None:
        self.chain, self._url = chain, rpc_url
        self._w3 = make_web3(rpc_url, timeout_s)
        self._range = max(1, max_block_range)
        self._times: dict[int, int] = {}
        self._contracts: dict[tuple[str, str], Any] = {}

    async def _do(self, op: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except TRANSIENT as exc:
            raise RpcUnavailable(self.chain, self._url, f"{op}: {exc!r}") from exc
        except Exception as exc:
            raise ChainError(f"{self.chain}: {op} failed: {exc}") from exc

    def _contract(self, address: str, artifact: str) -> Any:
        key = (address.lower(), artifact)
        if key not in self._contracts:
            self._contracts[key] = self._w3.eth.contract(
                address=self._w3.to_checksum_address(address), abi=load_artifact(artifact).abi)
        return self._contracts[key]

    async def timestamp(self, height: int) -> int:
        """The block's timestamp (seconds), cached: a mined block's time never changes."""
        if height not in self._times:
            block = await self._do(f"block({height})", self._w3.eth.get_block(height))
            self._times[height] = int(block["timestamp"])
        return self._times[height]

    async def events(self, address: str, artifact: str, event: str, start: int,
                     end: int) -> list[dict[str, Any]]:
        """Decoded ``event`` logs emitted by ``address`` in ``start..end``, in chain order:
        ``{"args": {...}, "blockNumber", "logIndex", "transactionHash"}``."""
        contract = self._contract(address, artifact)
        handle = contract.events[event]()
        abi = next(e for e in contract.abi if e.get("type") == "event" and e["name"] == event)
        signature = f"{event}({','.join(i['type'] for i in abi['inputs'])})"
        topic0 = "0x" + bytes(self._w3.keccak(text=signature)).hex()
        found = []
        for lo in range(start, end + 1, self._range):
            params: Any = {"fromBlock": lo, "toBlock": min(lo + self._range - 1, end),
                           "address": contract.address, "topics": [topic0]}
            for raw in await self._do(f"getLogs {event}", self._w3.eth.get_logs(params)):
                # SECURITY: only logs the contract itself emitted (the filter is the node's word).
                if raw.get("removed") or str(raw["address"]).lower() != address.lower():
                    continue
                decoded = handle.process_log(raw)
                found.append({"args": dict(decoded["args"]),
                              "blockNumber": int(decoded["blockNumber"]),
                              "logIndex": int(decoded["logIndex"]),
                              "transactionHash": "0x" + bytes(decoded["transactionHash"]).hex()})
        return sorted(found, key=lambda e: (e["blockNumber"], e["logIndex"]))

    async def call(self, address: str, artifact: str, function: str, *args: Any,
                   block: int | str = "latest") -> Any:
        """One ``eth_call`` of ``function(*args)`` at ``block`` (the devnet keeps history)."""
        bound = self._contract(address, artifact).functions[function](*args)
        return await self._do(f"{function} at {block}", bound.call(block_identifier=block))

    async def aclose(self) -> None:
        await self._w3.provider.disconnect()
