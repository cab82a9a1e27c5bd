"""Solana ``ChainAdapter`` over solana-py's ``AsyncClient``: heads, block hashes and locks.

What "finalized" means here: the cluster's ``finalized`` commitment (a slot rooted by a
supermajority), which the watcher uses by default. ``Finality.SAFE`` is ``confirmed`` and
``Finality.LATEST`` is ``processed``. The node refuses ``processed`` for history reads
(getSignaturesForAddress, getTransaction, getBlock), so those use at least ``confirmed``.
Settlements signed by the attesters additionally expire with their blockhash (150 slots),
which the executor handles; nothing here signs.

Locks are found by scanning the vault token accounts' signature history newest-first until
below the range, then reading each successful transaction; decoding is in ``codec``. Reads are
retried with tenacity on ``RetryableError`` and fail over across ``rpc_urls``; every library
or transport error is converted here, at the edge, to an ``shared.errors`` type.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solders.commitment_config import CommitmentLevel
from solders.errors import SerdeJSONError
from solders.pubkey import Pubkey
from solders.rpc.config import RpcTransactionConfig
from solders.rpc.errors import (
    BlockCleanedUpMessage,
    BlockNotAvailableMessage,
    BlockStatusNotAvailableYetMessage,
    InvalidParamsMessage,
    LongTermStorageSlotSkippedMessage,
    SlotSkippedMessage,
)
from solders.rpc.requests import GetTransaction, batch_to_json
from solders.rpc.responses import (
    GetSignaturesForAddressResp,
    GetTransactionResp,
    RpcConfirmedTransactionStatusWithSignature,
)
from solders.signature import Signature
from solders.transaction_status import TransactionDetails, UiTransactionEncoding

from chains.retry import with_retries
from chains.solana.codec import decode_lock_transaction
from shared.chain import BlockRef, ChainKind, ChainRef, Finality
from shared.errors import ChainError, ConfigError, InputError, RpcUnavailable
from shared.events import LockEvent
from shared.settings import ChainSettings, RetrySettings

__all__ = ["SolanaAdapter"]

T = TypeVar("T")
_PAGE = 1000
_FETCH_CONCURRENCY = 4  # JSON-RPC batches of one range in flight at once
_TX_BATCH = 100  # getTransaction requests per JSON-RPC batch
_COMMITMENT: dict[Finality, Commitment] = {
    Finality.LATEST: Processed, Finality.SAFE: Confirmed, Finality.FINALIZED: Finalized,
}
_LEVEL: dict[Commitment, CommitmentLevel] = {
    Processed: CommitmentLevel.Processed, Confirmed: CommitmentLevel.Confirmed,
    Finalized: CommitmentLevel.Finalized,
}
_NO_BLOCK = (BlockNotAvailableMessage, SlotSkippedMessage, LongTermStorageSlotSkippedMessage,
             BlockCleanedUpMessage, BlockStatusNotAvailableYetMessage)


async def _signatures_page(
    client: AsyncClient, *, address: Pubkey, before: Signature | None, commitment: Commitment
) -> GetSignaturesForAddressResp:
    return await client.get_signatures_for_address(
        address, before=before, limit=_PAGE, commitment=commitment)


class _BatchBody:
    """A JSON-RPC batch as the provider's request body (it only needs ``to_json``)."""

    def __init__(self, requests: Sequence[Any]) -> None:
        self._json = batch_to_json(list(requests))

    def to_json(self) -> str:
        return self._json


async def _transaction_batch(client: AsyncClient, *, signatures: Sequence[Signature], chain: str,
                             commitment: Commitment) -> list[dict[str, Any]]:
    """``getTransaction`` (json, v0) for each signature in one JSON-RPC batch request: the
    same request solana-py sends one at a time, through the client's own provider."""
    config = RpcTransactionConfig(encoding=UiTransactionEncoding.Json,
                                  commitment=_LEVEL[commitment],
                                  max_supported_transaction_version=0)
    body = _BatchBody([GetTransaction(sig, config, id=i) for i, sig in enumerate(signatures)])
    # solana-py has no batch call: the batch goes through the client's own provider
    raw = await client._provider.make_request_unparsed(body)
    node = str(client._provider)
    try:
        answers = json.loads(raw)
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)} \
            if isinstance(answers, list) else {}
        parsed = [GetTransactionResp.from_json(json.dumps(by_id[i]))
                  for i in range(len(signatures))]
    except (ValueError, KeyError, SerdeJSONError) as exc:  # SECURITY: answers are input
        raise RpcUnavailable(chain, node, f"getTransaction batch: malformed answer ({exc})") \
            from exc
    out = []
    for sig, answer in zip(signatures, parsed, strict=True):
        if not isinstance(answer, GetTransactionResp):
            raise RPCException(answer)
        if answer.value is None:  # listed at this commitment but not served: node lagging
            raise RpcUnavailable(chain, node, f"getTransaction {sig}: listed but not found")
        out.append(json.loads(answer.value.to_json()))
    return out


class _NoBlock(Exception):
    """The node has no block at that slot (skipped, not yet available, or cleaned up)."""


class SolanaAdapter:
    """One Solana cluster, possibly behind several RPC endpoints (tried in order)."""

    def __init__(
        self,
        chain: ChainRef,
        rpc_urls: Sequence[str],
        *,
        vaults: Sequence[str],
        assets: Mapping[str, int],
        finality: Finality = Finality.FINALIZED,
        retry: RetrySettings | None = None,
    ) -> None:
        if not rpc_urls:
            raise ConfigError("rpc_urls", "at least one Solana RPC url is required")
        for key in (*vaults, *assets):
            try:
                Pubkey.from_string(key)
            except ValueError as exc:
                raise ConfigError("vaults/assets", f"not a base58 pubkey: {key!r}") from exc
        self.chain = chain
        self.retry = retry or RetrySettings()
        self.vaults = list(vaults)
        self.assets = dict(assets)
        self.finality = finality
        self._urls = [str(u) for u in rpc_urls]
        self._clients = [AsyncClient(u, timeout=self.retry.timeout_s) for u in self._urls]
        self._active = 0
        self._block_hashes: dict[int, str] = {}

    @classmethod
    def from_settings(
        cls, key: str, settings: ChainSettings, retry: RetrySettings | None = None,
        *, commitment: Finality | None = None,
    ) -> SolanaAdapter:
        """Build from a ``chains.<key>`` settings entry (kind must be ``solana``).

        ``commitment`` overrides the policy's tag for reads (watchers scan at ``latest``).

        Raises:
            ConfigError: the entry is not a Solana chain.
        """
        if settings.kind != ChainKind.SOLANA:
            raise ConfigError(f"chains.{key}.kind", "expected 'solana'")
        return cls(
            ChainRef(key, ChainKind.SOLANA, settings.chain_id),
            [str(u) for u in settings.rpc_urls],
            vaults=settings.vaults,
            assets={a.address: a.decimals for a in settings.assets.values()},
            finality=commitment or settings.finality.tag,
            retry=retry,
        )

    # --- the edge: retries, failover, error conversion -----------------------------------

    async def _call(self, op: str, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
        return await with_retries(self.retry, lambda: self._call_once(op, fn))

    async def _call_once(self, op: str, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
        index = self._active
        try:
            return await fn(self._clients[index])
        except RPCException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, _NO_BLOCK):
                raise _NoBlock(str(error)) from exc
            if isinstance(error, InvalidParamsMessage):
                raise ChainError(f"{self.chain.key}: {op} refused: {error.message}") from exc
            self._fail_over(index)
            raise RpcUnavailable(self.chain.key, self._urls[index], f"{op}: {error}") from exc
        except (SolanaRpcException, httpx2.HTTPError, OSError) as exc:
            self._fail_over(index)
            raise RpcUnavailable(self.chain.key, self._urls[index], f"{op}: {exc}") from exc

    def _fail_over(self, failed: int) -> None:
        if self._active == failed:
            self._active = (failed + 1) % len(self._clients)

    def _history_commitment(self) -> Commitment:
        return _COMMITMENT[self.history_finality]

    @property
    def history_finality(self) -> Finality:
        """Nodes refuse ``processed`` for history: a LATEST adapter reads at ``confirmed``."""
        return Finality.SAFE if self.finality == Finality.LATEST else self.finality

    # --- ChainAdapter ----------------------------------------------------------------------

    async def head(self, finality: Finality) -> BlockRef:
        """Newest slot at ``finality`` and its blockhash (the bank's last blockhash)."""
        resp = await self._call(
            "getLatestBlockhash", lambda c: c.get_latest_blockhash(_COMMITMENT[finality]))
        return BlockRef(self.chain.key, resp.context.slot, str(resp.value.blockhash))

    async def block_hash(self, height: int) -> str | None:
        """Blockhash of the confirmed block at slot ``height``; None if skipped or unknown."""
        try:
            resp = await self._call("getBlock", lambda c: c.get_block(
                height, max_supported_transaction_version=0,
                transaction_details=TransactionDetails.None_, rewards=False,
                commitment=self._history_commitment()))
        except _NoBlock:
            return None
        return str(resp.value.blockhash)

    async def lock_events(self, start: int, end: int) -> Sequence[LockEvent]:
        """Locks into the registered vaults landed in slots ``start..end``, in chain order.

        Unattributed deposits are included with ``unattributed_reason`` set; failed
        transactions and outgoing transfers are not.
        """
        events: list[tuple[int, int, LockEvent]] = []
        for vault in self.vaults:
            infos = [i for i in await self._signatures(vault, start, end) if i.err is None]
            # A burst lands many locks per range: their transactions are fetched in JSON-RPC
            # batches (one request per _TX_BATCH), a few batches at once, in order.
            txs = await self._transactions([i.signature for i in infos])
            hashes = {slot: await self._cached_block_hash(slot) for slot in {i.slot for i in infos}}
            for order, (info, tx) in enumerate(zip(infos, txs, strict=True)):
                event = decode_lock_transaction(
                    tx, chain=self.chain.key, chain_id=self.chain.chain_id, vault=vault,
                    assets=self.assets, block_hash=hashes[info.slot])
                if event is not None:
                    events.append((info.slot, order, event))
        events.sort(key=lambda item: (item[0], item[1]))
        return [event for _, _, event in events]

    async def lock_exists(self, event: LockEvent) -> bool:
        """The lock's transaction is served at this adapter's commitment, succeeded, and still
        decodes to the same lock (id, vault, amount)."""
        signature = Signature.from_string(event.tx_id)
        resp = await self._call("getTransaction", lambda c: c.get_transaction(
            signature, "json", commitment=self._history_commitment(),
            max_supported_transaction_version=0))
        if resp.value is None:
            return False
        tx: dict[str, Any] = json.loads(resp.value.to_json())
        if (tx.get("meta") or {}).get("err") is not None:
            return False
        for vault in self.vaults:
            found = decode_lock_transaction(tx, chain=self.chain.key, chain_id=self.chain.chain_id,
                                            vault=vault, assets=self.assets,
                                            block_hash=event.block_hash)
            if found is not None and (found.lock_id, found.vault, found.amount) == (
                    event.lock_id, event.vault, event.amount):
                return True
        return False

    async def vault_balance(self, vault: str, asset: str) -> int:
        """The vault token account's balance at ``confirmed``, base units (``asset``, its mint,
        is implied by the account)."""
        try:
            account = Pubkey.from_string(vault)
        except ValueError as exc:
            raise InputError("vault", f"not a Solana pubkey: {vault!r}") from exc
        resp = await self._call("getTokenAccountBalance", lambda c: c.get_token_account_balance(
            account, commitment=Confirmed))
        return int(resp.value.amount)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()

    # --- helpers ---------------------------------------------------------------------------

    async def _signatures(
        self, vault: str, start: int, end: int
    ) -> list[RpcConfirmedTransactionStatusWithSignature]:
        """Signatures touching ``vault`` in ``start..end``, oldest first."""
        address = Pubkey.from_string(vault)
        found: list[RpcConfirmedTransactionStatusWithSignature] = []
        before: Signature | None = None
        while True:
            page = (await self._call("getSignaturesForAddress", functools.partial(
                _signatures_page, address=address, before=before,
                commitment=self._history_commitment()))).value
            for info in page:
                if info.slot < start:
                    return found[::-1]
                if info.slot <= end:
                    found.append(info)
            if len(page) < _PAGE:
                return found[::-1]
            before = page[-1].signature

    async def _transactions(self, signatures: Sequence[Signature]) -> list[dict[str, Any]]:
        """The transactions of ``signatures`` at the history commitment, in order.

        Raises:
            RpcUnavailable: one is listed but not served (the node lags), or the node failed.
        """
        chunks = [signatures[i:i + _TX_BATCH] for i in range(0, len(signatures), _TX_BATCH)]
        gate = asyncio.Semaphore(_FETCH_CONCURRENCY)

        async def one(chunk: Sequence[Signature]) -> list[dict[str, Any]]:
            async with gate:
                return await self._call("getTransaction", functools.partial(
                    _transaction_batch, signatures=chunk, chain=self.chain.key,
                    commitment=self._history_commitment()))

        return [tx for part in await asyncio.gather(*(one(c) for c in chunks)) for tx in part]

    async def _cached_block_hash(self, slot: int) -> str:
        if slot not in self._block_hashes:
            found = await self.block_hash(slot)
            if found is None:
                return ""
            if len(self._block_hashes) > 4096:
                self._block_hashes.clear()
            self._block_hashes[slot] = found
        return self._block_hashes[slot]
