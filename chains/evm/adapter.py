"""EVM chain adapter: heads, block hashes and vault lock events over JSON-RPC.

"Finalized" here means the node's ``finalized`` block tag (the consensus layer's finalized
checkpoint; anvil answers ``latest - 2 * slots_in_an_epoch``). A policy may instead ask for
the ``safe`` tag or ``k`` confirmations (``latest - k``), see :meth:`EvmAdapter.final_head`.

Every read is retried with tenacity on :class:`RetryableError` only, rotating across the
configured RPC URLs; library errors are converted here, at the edge, so nothing above
``chains/`` sees web3 or aiohttp exceptions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from web3.exceptions import BlockNotFound

from chains.evm.codec import LOCKED_TOPIC0, decode_lock_event
from chains.evm.rpc import RpcEndpoints, Web3
from shared.chain import BlockRef, ChainKind, ChainRef, Finality
from shared.errors import ChainError, ConfigError, InputError
from shared.events import LockEvent
from shared.settings import ChainSettings, RetrySettings

__all__ = ["EvmAdapter"]

T = TypeVar("T")


class EvmAdapter:
    """One EVM chain, read through one or more RPC endpoints (failover in order)."""

    def __init__(
        self,
        chain: ChainRef,
        rpc_urls: Sequence[str],
        *,
        vaults: Sequence[str],
        max_block_range: int,
        retry: RetrySettings,
        decimals_by_asset: Mapping[str, int] | None = None,
    ) -> None:
        if max_block_range < 1:
            raise ConfigError(f"chains.{chain.key}.max_block_range", "must be >= 1")
        self.chain = chain
        self._rpc = RpcEndpoints(chain.key, rpc_urls, retry)
        self._max_range = max_block_range
        try:
            self._vaults = sorted({to_checksum_address(v) for v in vaults})
        except ValueError as exc:
            raise ConfigError(f"chains.{chain.key}.vaults", str(exc)) from exc
        self._vault_set = frozenset(v.lower() for v in self._vaults)
        self._decimals = {a.lower(): d for a, d in (decimals_by_asset or {}).items()}

    @classmethod
    def from_settings(cls, key: str, settings: ChainSettings, retry: RetrySettings) -> EvmAdapter:
        """Build from one ``[chains.<key>]`` section; asset decimals come from its ``assets``."""
        if settings.kind != ChainKind.EVM:
            raise ConfigError(f"chains.{key}.kind", f"expected evm, got {settings.kind}")
        return cls(
            ChainRef(key=key, kind=ChainKind.EVM, chain_id=settings.chain_id),
            [str(u) for u in settings.rpc_urls],
            vaults=settings.vaults,
            max_block_range=settings.max_block_range,
            retry=retry,
            decimals_by_asset={a.address: a.decimals for a in settings.assets.values()},
        )

    # ----- the retry / failover edge ---------------------------------------------------------

    async def _call(self, op: str, fn: Callable[[Web3], Awaitable[T]]) -> T:
        """Run a read with tenacity; each failed attempt moves to the next endpoint."""
        return await self._rpc.call(op, fn, passthrough=(BlockNotFound,))

    @property
    def history_finality(self) -> Finality:
        """eth_getLogs over a block range reads whatever is canonical now (latest)."""
        return Finality.LATEST

    # ----- ChainAdapter ---------------------------------------------------------------------

    async def head(self, finality: Finality) -> BlockRef:
        """Newest block at ``finality`` (EVM block tags ``latest`` / ``safe`` / ``finalized``)."""
        try:
            block = await self._call(
                f"head({finality})", lambda w3: w3.eth.get_block(finality.value)
            )
        except BlockNotFound as exc:
            raise ChainError(f"{self.chain.key}: node has no {finality} block") from exc
        return self._block_ref(block)

    async def block_hash(self, height: int) -> str | None:
        """Hash of the canonical block at ``height`` now, or None if the chain is shorter."""
        if height < 0:
            raise InputError("height", f"must be >= 0, got {height}")
        try:
            block = await self._call(f"block({height})", lambda w3: w3.eth.get_block(height))
        except BlockNotFound:
            return None
        return self._block_ref(block).hash

    async def lock_events(self, start: int, end: int) -> Sequence[LockEvent]:
        """Locks into registered vaults in blocks ``start..end`` inclusive, in chain order.

        Scans in chunks of at most ``max_block_range`` blocks.

        Raises:
            LogMalformed, UnknownAsset: a configured vault emitted a log that does not decode;
                the scan stops rather than skip a lock.
            RpcUnavailable: every attempt failed; ChainError: the node refused the query.
        """
        if start < 0 or end < start:
            raise InputError("range", f"need 0 <= start <= end, got {start}..{end}")
        if not self._vaults:
            return []
        events: dict[tuple[str, int], LockEvent] = {}
        for lo in range(start, end + 1, self._max_range):
            hi = min(lo + self._max_range - 1, end)
            for event in await self._scan(lo, hi):
                events[(event.tx_id, event.log_index)] = event
        return sorted(events.values(), key=lambda e: (e.height, e.log_index))

    async def _scan(self, lo: int, hi: int) -> list[LockEvent]:
        params: Any = {
            "fromBlock": lo,
            "toBlock": hi,
            "address": self._vaults,
            "topics": [LOCKED_TOPIC0],
        }
        logs = await self._call(f"getLogs({lo}..{hi})", lambda w3: w3.eth.get_logs(params))
        found = []
        for raw in logs:
            # SECURITY: the address filter is the node's promise, not ours. Anyone can emit an
            # identical Locked event from any contract (RPL-04), so only logs whose emitter is a
            # configured vault, in the requested range, may become observations. Foreign logs
            # are dropped before decoding (their garbage must not fail the scan) and the
            # emitter is checked again on the decoded value.
            if raw.get("removed") or _emitter(raw) not in self._vault_set:
                continue
            event = decode_lock_event(raw, chain=self.chain, decimals_by_asset=self._decimals)
            if "0x" + event.vault[-40:] not in self._vault_set or not lo <= event.height <= hi:
                continue
            found.append(event)
        return found

    async def vault_balance(self, vault: str, asset: str) -> int:
        """ERC-20 ``balanceOf(vault)`` of ``asset`` at the latest block, base units."""
        try:
            holder, token = to_checksum_address(vault), to_checksum_address(asset)
        except ValueError as exc:
            raise InputError("vault", str(exc)) from exc
        params: Any = {"to": token, "data": "0x70a08231" + holder[2:].lower().rjust(64, "0")}
        raw = bytes(await self._call(f"balanceOf({holder})",
                                     lambda w3: w3.eth.call(params, "latest")))
        if len(raw) != 32:
            raise ChainError(f"{self.chain.key}: balanceOf on {token} returned {len(raw)} bytes")
        return int.from_bytes(raw, "big")

    async def lock_exists(self, event: LockEvent) -> bool:
        """The receipt of the lock's transaction, if the node has it, still holds a ``Locked``
        log from the same vault with the same lock id and amount."""
        try:
            receipt = await self._call(f"receipt({event.tx_id})",
                                       lambda w3: w3.eth.get_transaction_receipt(HexStr(event.tx_id)))
        except ChainError as exc:
            if "not found" in str(exc).lower():
                return False
            raise
        if receipt is None or int(receipt.get("status", 0)) != 1:
            return False
        for raw in receipt.get("logs") or []:
            if _emitter(raw) not in self._vault_set:
                continue
            topics = raw.get("topics") or []
            if not topics or "0x" + bytes(topics[0]).hex() != LOCKED_TOPIC0:
                continue
            found = decode_lock_event(raw, chain=self.chain, decimals_by_asset=self._decimals)
            if (found.lock_id, found.vault, found.amount) == (event.lock_id, event.vault,
                                                             event.amount):
                return True
        return False

    async def aclose(self) -> None:
        await self._rpc.aclose()

    def _block_ref(self, block: Mapping[str, Any]) -> BlockRef:
        number, block_hash = block.get("number"), block.get("hash")
        if number is None or block_hash is None:
            raise ChainError(f"{self.chain.key}: block without number or hash (pending?)")
        return BlockRef(
            chain=self.chain.key,
            height=int(number),
            hash="0x" + bytes(block_hash).hex(),
            timestamp=int(block["timestamp"]) if block.get("timestamp") is not None else None,
        )


def _emitter(raw: Mapping[str, Any]) -> str:
    """The log's emitter as lowercase 0x-hex, or "" if it has none."""
    address = raw.get("address")
    if isinstance(address, (bytes, bytearray)):
        return "0x" + bytes(address).hex()
    return address.lower() if isinstance(address, str) else ""
