"""One contract on one EVM chain: failover reads, bounded log scans, serialized sends (I/O).

:class:`ContractClient` is the base of the venue and vault clients. Reads go through the one
RPC layer (:mod:`chains.evm.rpc`: tenacity on :class:`RetryableError` only, failover across the
RPC URLs); sends are never retried here, because a second send of a non-idempotent call is a
second transaction (Celery decides, after re-checking chain state). Library errors are
converted at this edge: transport failures become :class:`RpcUnavailable`, refusals
:class:`TxRejected` with the contract's custom error decoded by name.

Sending goes through the one sending layer, :class:`chains.evm.sender.TxSender` (local nonces,
EIP-1559 pricing, re-pricing, replacement, fee budget): coroutines sharing one client never
reuse a nonce, and a failed send makes the sender re-read its nonce from the node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Self, TypeVar

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_typing import HexStr
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from eth_utils.address import is_hex_address, to_checksum_address
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import BlockIdentifier

from chains.evm.artifacts import load_artifact
from chains.evm.codec import decode_revert
from chains.evm.rpc import TRANSIENT, RpcEndpoints, Web3
from chains.evm.sender import FeePolicy, SendEvent, TxSender
from shared.chain import ChainRef
from shared.errors import ChainError, ConfigError, InputError, RpcUnavailable, TxRejected
from shared.settings import RetrySettings

__all__ = [
    "ContractClient", "address_arg", "b32", "check_range", "get_logs", "signed_size_arg",
    "size_arg", "topic0",
]

T = TypeVar("T")
E = TypeVar("E")
_SIZE_LIMIT = 2**127  # |size_e18| must stay below it (the venue stores int128)
_ERROR_ABIS = ("IsolatedMarginVenue", "CollateralVault", "MarkOracle")
_GAS_LIMIT_TTL_S = 5.0  # a congested chain may lower its gas limit: re-read it often


class EncodedCall:
    """A contract call whose calldata is encoded once, with eth-abi.

    web3's contract-function path re-encodes the arguments through its recursive normalizers
    at every estimate, build and replay (about 14 ms for a 20-item credit batch, against about
    1 ms here, and the relayer and keepers send many batches a block). It offers the three
    methods the send path uses on a web3 contract function, with the same errors (a revert is
    web3's ``ContractLogicError``, raised by the node call).
    """

    def __init__(self, w3: Any, address: str, data: str) -> None:
        self.w3, self.address, self.data = w3, address, data

    def _tx(self, tx: Mapping[str, Any]) -> dict[str, Any]:
        return {**tx, "to": self.address, "data": self.data, "value": 0}

    async def estimate_gas(self, tx: Mapping[str, Any]) -> int:
        return int(await self.w3.eth.estimate_gas(self._tx(tx)))

    async def build_transaction(self, tx: Mapping[str, Any]) -> dict[str, Any]:
        out = self._tx(tx)
        if "gas" not in out:
            out["gas"] = await self.estimate_gas(tx)
        return out

    async def call(self, tx: Mapping[str, Any], block_identifier: BlockIdentifier = "latest",
                   ) -> bytes:
        return bytes(await self.w3.eth.call(self._tx(tx), block_identifier))


class ContractClient:
    """One contract on one chain: failover reads, serialized sends, bounded log scans."""

    _ARTIFACT = ""

    def __init__(self, chain: ChainRef, rpc_urls: Sequence[str], address: str, *,
                 sender_key: str | None, retry: RetrySettings, max_block_range: int,
                 fees: FeePolicy | None = None,
                 on_send: Callable[[SendEvent], None] | None = None) -> None:
        if not is_hex_address(address):
            raise ConfigError(f"chains.{chain.key}.contracts", f"not an address: {address!r}")
        if max_block_range < 1:
            raise ConfigError(f"chains.{chain.key}.max_block_range", "must be >= 1")
        self.chain, self.address = chain, to_checksum_address(address)
        self._rpc = RpcEndpoints(chain.key, rpc_urls, retry)
        self._urls, self._clients = self._rpc.urls, self._rpc.clients
        self._abi = load_artifact(self._ARTIFACT).abi
        self._contracts = {id(w3): w3.eth.contract(address=self.address, abi=self._abi)
                           for w3 in self._clients}
        self._error_abis = [load_artifact(name).abi for name in _ERROR_ABIS]
        self._retry, self._max_range = retry, max_block_range
        try:
            self.sender_address = Account.from_key(sender_key).address if sender_key else None
        except (ValueError, TypeError) as exc:  # SECURITY: never echo the key itself
            raise ConfigError("sender_key", "not a valid secp256k1 private key") from exc
        self._key = sender_key
        self._fees, self._on_send = fees, on_send
        self._sender: TxSender | None = None
        self._send_lock = asyncio.Lock()
        self._gas_limit: tuple[int, float] | None = None  # (limit, monotonic time read)
        self._selectors: dict[str, tuple[bytes, list[str]]] = {}

    @classmethod
    async def _open(cls, rpc_urls: Sequence[str], address: str, *, chain: ChainRef,
                    sender_key: str | None, retry: RetrySettings, max_block_range: int,
                    fees: FeePolicy | None = None,
                    on_send: Callable[[SendEvent], None] | None = None) -> Self:
        self = cls(chain, rpc_urls, address, sender_key=sender_key, retry=retry,
                   max_block_range=max_block_range, fees=fees, on_send=on_send)
        try:
            chain_id = await self._call("chainId", lambda w3: w3.eth.chain_id)
            code = await self._call("getCode", lambda w3: w3.eth.get_code(self.address))
        except BaseException:
            await self.aclose()
            raise
        # SECURITY: a client on the wrong chain, or at an address without code, would read
        # "not consumed" for everything; refuse to start instead.
        if chain_id != chain.chain_id or not code:
            await self.aclose()
            reason = f"chain id {chain_id}" if chain_id != chain.chain_id else "no code"
            raise ConfigError(f"chains.{chain.key}", f"{cls._ARTIFACT} {self.address}: {reason}")
        return self

    # ----- reads ------------------------------------------------------------------------------

    async def _call(self, op: str, fn: Callable[[Web3], Awaitable[T]]) -> T:
        return await self._rpc.call(op, fn, on_revert=self._reason)

    async def _view(self, name: str, *args: Any, block: BlockIdentifier = "latest") -> Any:
        def call(w3: Web3) -> Awaitable[Any]:
            function = self._contracts[id(w3)].functions[name](*args)
            return function.call(block_identifier=block)

        return await self._call(name, call)

    async def current_attester_set(self) -> tuple[int, list[str], int]:
        """(index, members in signing order, threshold) of the contract's current set.

        Both values are read at one block, so a rotation cannot pair one set's index with
        another's members. Raises: ChainError (e.g. NoAttesterSet), RpcUnavailable.
        """
        height = await self._call("blockNumber", lambda w3: w3.eth.block_number)
        index = int(await self._view("currentAttesterSetIndex", block=height))
        members, threshold, _grace_end = await self._view("attesterSet", index, block=height)
        return index, [to_checksum_address(m) for m in members], int(threshold)

    async def attester_set_at(self, index: int) -> tuple[list[str], int, int, bool]:
        """(members, threshold, grace end in chain seconds (0 while current), live now) of set
        ``index``. Raises: RpcUnavailable."""
        members, threshold, grace_end = await self._view("attesterSet", index)
        live = bool(await self._view("isAttesterSetLive", index))
        return [to_checksum_address(m) for m in members], int(threshold), int(grace_end), live

    async def _logs(self, start: int, end: int, topic0s: Sequence[str]) -> list[Mapping[str, Any]]:
        """This contract's logs with one of ``topic0s`` in ``start..end``, in bounded chunks."""
        check_range(start, end)
        found: dict[tuple[str, int], Mapping[str, Any]] = {}
        for lo in range(start, end + 1, self._max_range):
            hi = min(lo + self._max_range - 1, end)
            params: Any = {"fromBlock": lo, "toBlock": hi, "address": self.address,
                           "topics": [list(topic0s)]}
            logs = await self._call(f"getLogs({lo}..{hi})", get_logs(params))
            for raw in logs:
                # SECURITY: the address filter is the node's promise. Anyone can emit a
                # look-alike event from another contract, so the emitter is checked here too.
                if raw.get("removed") or not self._emitted(raw):
                    continue
                found[("0x" + bytes(raw["transactionHash"]).hex(), int(raw["logIndex"]))] = raw
        return [found[k] for k in sorted(found, key=lambda k: (found[k]["blockNumber"], k[1]))]

    def _emitted(self, log: Mapping[str, Any]) -> bool:
        return str(log.get("address", "")).lower() == self.address.lower()

    def _receipt_events(self, receipt: Mapping[str, Any]) -> list[Any]:
        raise NotImplementedError

    # ----- sends ------------------------------------------------------------------------------

    def _encoded(self, contract: Any, fn_name: str, args: Sequence[Any]) -> EncodedCall:
        """``fn_name(*args)`` on ``contract`` (what ``_transact`` hands its ``build``), encoded
        once; for the batch entries on the hot paths (see :class:`EncodedCall`)."""
        found = self._selectors.get(fn_name)
        if found is None:
            abis: list[Any] = [f for f in self._abi
                               if f.get("type") == "function" and f.get("name") == fn_name]
            if len(abis) != 1:
                raise ConfigError("abi", f"{fn_name}: expected one function, found {len(abis)}")
            found = (function_abi_to_4byte_selector(abis[0]), get_abi_input_types(abis[0]))
            self._selectors[fn_name] = found
        selector, types = found
        return EncodedCall(contract.w3, self.address,
                           "0x" + (selector + abi_encode(types, list(args))).hex())

    async def _transact(self, op: str, build: Callable[[Any], Any], *, timeout_s: float,
                        extra_gas: Callable[[int], int] = lambda gas: gas // 5,
                        gas: int | None = None) -> Mapping[str, Any]:
        """Estimate, sign, send and wait for one call on this contract; the receipt if mined.
        ``gas`` given: sent with that limit, without an estimate (the caller knows its cost).

        Raises:
            ConfigError: the client has no sender key.
            TxRejected: the estimate reverted (decoded reason, ``tx_id`` None) or the mined
                transaction reverted (``tx_id`` set).
            RpcUnavailable: the node could not be reached while sending (the transaction may or
                may not have been broadcast: re-check chain state before sending again).
        """
        if self._key is None:
            raise ConfigError("sender_key", f"{op} sends a transaction; no key was given")
        sender = await self._get_sender()
        call = build(sender.w3.eth.contract(address=self.address, abi=self._abi))
        # The estimate runs before the sender's lock: concurrent calls (a batch of liquidations
        # or settlements) estimate in parallel; only pricing, the nonce and the send serialize.
        if gas is None:
            try:
                estimate = await call.estimate_gas({"from": sender.address})
            except ContractLogicError as exc:
                raise TxRejected(self.chain.key, None, self._reason(exc)) from exc
            except TRANSIENT as exc:
                raise RpcUnavailable(self.chain.key, str(sender.w3.provider), repr(exc)) from exc
            except Web3Exception as exc:
                raise TxRejected(self.chain.key, None, f"{op}: {exc}") from exc
            gas = estimate + extra_gas(estimate)
        # INVARIANT: never above the block gas limit: such a transaction is never mined and
        # its nonce would block every later one from this sender.
        limit = min(gas, await self._block_gas_limit(sender))
        tx_hash = await sender.send(call, gas=limit)
        try:
            return await sender.wait(tx_hash, timeout_s=timeout_s)
        except TxRejected as exc:
            if exc.tx_id is None:
                raise
            raise TxRejected(self.chain.key, exc.tx_id,
                             await self._replayed_reason(call, sender, exc)) from exc

    async def _replayed_reason(self, call: Any, sender: TxSender, exc: TxRejected) -> str:
        """Why a mined transaction reverted, best effort: the same call replayed on the state
        after its block (what changed between the estimate and the block, e.g. a lane paused in
        between, is then in that state); the receipt's bare "reverted" if the replay passes."""
        try:
            receipt = await sender.w3.eth.get_transaction_receipt(HexStr(str(exc.tx_id)))
            await call.call({"from": sender.address},
                            block_identifier=int(receipt["blockNumber"]))
        except ContractLogicError as replayed:
            return f"{self._reason(replayed)} (replayed after the block)"
        except Exception:  # noqa: BLE001 - a diagnosis only: the revert itself stands
            return exc.reason
        return exc.reason

    async def block_gas_limit(self) -> int:
        """The chain's block gas limit (what one block can hold; the relayer budgets by it).

        Raises:
            ConfigError: the client has no sender key. RpcUnavailable: the node is unreachable.
        """
        if self._key is None:
            raise ConfigError("sender_key", "block_gas_limit reads through the sender")
        sender = await self._get_sender()
        try:
            return await self._block_gas_limit(sender)
        except TRANSIENT as exc:
            raise RpcUnavailable(self.chain.key, str(sender.w3.provider), repr(exc)) from exc

    async def _block_gas_limit(self, sender: TxSender) -> int:
        """The latest block's gas limit, re-read at most every ``_GAS_LIMIT_TTL_S``."""
        now = time.monotonic()
        if self._gas_limit is None or now - self._gas_limit[1] > _GAS_LIMIT_TTL_S:
            block = await sender.w3.eth.get_block("latest")
            self._gas_limit = (int(block["gasLimit"]), now)
        return self._gas_limit[0]

    async def _get_sender(self) -> TxSender:
        """This client's one sender (created once; it re-syncs its own nonce after failures)."""
        async with self._send_lock:
            return await self._make_sender()

    async def _make_sender(self) -> TxSender:
        if self._sender is None:
            assert self._key is not None
            sender = await TxSender.connect(self._rpc.current_url, self._key,
                                            chain=self.chain.key, timeout_s=self._retry.timeout_s,
                                            fees=self._fees, on_event=self._on_send)
            if sender.chain_id != self.chain.chain_id:  # SECURITY: never sign for another chain
                await sender.aclose()
                raise ConfigError(f"chains.{self.chain.key}", f"chain id {sender.chain_id}")
            self._sender = sender
        return self._sender

    def _reason(self, exc: ContractLogicError) -> str:
        data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data
        if data is None and isinstance(exc.message, str) and exc.message.startswith("0x"):
            data = exc.message
        return decode_revert(data, self._error_abis) if data is not None else str(exc.message)

    def _mined(self, receipt: Mapping[str, Any], kind: type[E], op: str) -> E:
        """The single ``kind`` event this contract emitted in ``receipt``."""
        events = [e for e in self._receipt_events(receipt) if isinstance(e, kind)]
        if len(events) != 1:
            raise ChainError(f"{self.chain.key}: {op} mined with {len(events)} {kind.__name__}")
        return events[0]

    async def rotate_attester_set(self, members: Sequence[str], threshold: int, grace_s: int, *,
                                  timeout_s: float = 60) -> str:
        """Owner: install the next attester set (``members`` strictly increasing); the current
        one stays valid for ``grace_s`` more seconds of chain time. Returns the tx hash.

        Raises: TxRejected (InvalidThreshold, AttestersNotSorted, OwnableUnauthorizedAccount
        ...), ConfigError (no sender key)."""
        args = ([to_checksum_address(m) for m in members], int(threshold), int(grace_s))
        return await self._send("rotateAttesterSet", args, timeout_s)

    async def _send(self, fn: str, args: tuple[Any, ...], timeout_s: float) -> str:
        """Send ``fn(*args)`` and return the mined transaction's hash."""
        receipt = await self._transact(fn, lambda c: c.functions[fn](*args), timeout_s=timeout_s)
        return "0x" + bytes(receipt["transactionHash"]).hex()

    async def aclose(self) -> None:
        await self._rpc.aclose()
        if self._sender is not None:
            await self._sender.aclose()
        self._sender = None


def get_logs(params: Any) -> Callable[[Web3], Awaitable[Any]]:
    return lambda w3: w3.eth.get_logs(params)


def check_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise InputError("range", f"need 0 <= start <= end, got {start}..{end}")


def b32(value: bytes, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise InputError(name, "must be exactly 32 bytes")
    return bytes(value)


def size_arg(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < _SIZE_LIMIT:
        raise InputError(name, f"must be an int in 1..2^127-1 (size_e18), got {value!r}")
    return value


def signed_size_arg(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value == 0:
        raise InputError(name, f"must be a non-zero int (size_e18, long > 0), got {value!r}")
    size_arg(abs(value), name)
    return value


def address_arg(value: str) -> str:
    if not is_hex_address(value):
        raise InputError("address", f"not an address: {value!r}")
    return to_checksum_address(value)


def topic0(log: Mapping[str, Any]) -> str:
    topics: Iterable[Any] = log.get("topics") or []
    first = next(iter(topics), b"")
    return first.lower() if isinstance(first, str) else "0x" + bytes(first).hex()
