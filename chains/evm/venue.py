"""Clients for the bridge contracts: the venue (credits, releases, trading, liquidation) and
the source vault (settlements), used by the relayer, attester, risk and keeper tasks.

Reads go through tenacity (retrying :class:`RetryableError` only, failing over across the RPC
URLs); sends are never retried here, because a second send of a non-idempotent call is a second
transaction (Celery decides, after re-checking chain state). Library errors are converted at
this edge: transport failures become :class:`RpcUnavailable`, refusals :class:`TxRejected` with
the contract's custom error decoded by name, and replays :class:`AlreadyConsumed`.

Sending uses :class:`chains.evm.locker.TxSender` (local nonces) behind an ``asyncio.Lock``, so
coroutines sharing one client never reuse a nonce. A failed send drops the sender; the next one
re-reads the pending nonce from the node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from eth_account import Account
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import BlockIdentifier

from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import (
    BUFFER_SET_TOPIC0,
    CREDIT_QUEUED_TOPIC0,
    CREDITED_TOPIC0,
    LIQUIDATED_TOPIC0,
    QUEUED_CREDIT_RELEASED_TOPIC0,
    SETTLED_TOPIC0,
    SETTLEMENT_REQUESTED_TOPIC0,
    SHORTFALL_TOPIC0,
    TOPUP_RULE_CLEARED_TOPIC0,
    TOPUP_RULE_SET_TOPIC0,
    TRADED_TOPIC0,
    BufferSetEvent,
    CollateralConfig,
    CreditedEvent,
    CreditQueuedEvent,
    CreditSkippedEvent,
    LiquidatedEvent,
    LockCredit,
    MarginState,
    MarketParams,
    PositionState,
    QueuedCreditReleasedEvent,
    SettledEvent,
    SettlementRequestedEvent,
    ShortfallEvent,
    ToppedUp,
    TopUpRuleState,
    TradedEvent,
    VaultLock,
    VenueEvent,
    collateral_config_from_tuple,
    collateral_config_tuple,
    decode_settled,
    decode_venue_log,
    lock_attestation_tuple,
    lock_credit_from_tuple,
    lock_key,
    margin_state_from_tuple,
    market_params_from_tuple,
    market_params_tuple,
    position_state_from_tuple,
    settlement_tuple,
    vault_lock_from_tuple,
)
from chains.evm.codec import decode_revert
from chains.evm.locker import TxSender
from chains.evm.rpc import TRANSIENT, RpcEndpoints, Web3
from shared.chain import ChainRef
from shared.errors import (
    AlreadyConsumed,
    ChainError,
    ConfigError,
    InputError,
    RpcUnavailable,
    TxRejected,
)
from shared.messages import LockAttestation, Settlement, SettlementKind
from shared.settings import RetrySettings

__all__ = ["CreditOutcome", "TradeOutcome", "VaultClient", "VenueClient"]

T = TypeVar("T")
_PPM = 10**6
_SIZE_LIMIT = 2**127  # |size_e18| must stay below it (the venue stores int128)
E = TypeVar("E")
_ERROR_ABIS = ("IsolatedMarginVenue", "CollateralVault")
_GAS_LIMIT_TTL_S = 60.0
_TOPPED_UP_TOPIC0 = keccak(text="ToppedUp(bytes32,bytes32,bytes32,uint256,uint256)")


@dataclass(frozen=True, slots=True)
class CreditOutcome:
    """What one mined ``credit``/``creditBatch`` did, item by item, read from its receipt.

    ``credited``/``queued`` are lock keys; ``skipped`` is (lock key, error name) for items the
    batch refused (not consumed: they may be sent again). ``events`` has the decoded logs.
    """

    tx_hash: str
    block_number: int
    gas_used: int
    credited: list[bytes]
    queued: list[bytes]
    skipped: list[tuple[bytes, str]]
    events: list[VenueEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TradeOutcome:
    """What one mined trading call (open/increase/reduce/close/liquidate) did, from its receipt.

    ``traded`` is the ``Traded`` event of a user trade, ``liquidated`` the ``Liquidated`` event
    of a liquidation; ``settlements`` the seize and release requests of a settlement (a close
    with a booked loss, or a full liquidation), in log order; ``shortfall`` the loss the
    position's own collateral could not cover (taken from the insurance fund).
    """

    tx_hash: str
    block_number: int
    gas_used: int
    traded: TradedEvent | None
    liquidated: LiquidatedEvent | None
    settlements: list[SettlementRequestedEvent]
    shortfall: ShortfallEvent | None
    events: list[VenueEvent] = field(default_factory=list)

    @property
    def seized(self) -> list[SettlementRequestedEvent]:
        return [e for e in self.settlements if e.kind == SettlementKind.SEIZE]

    @property
    def released(self) -> list[SettlementRequestedEvent]:
        return [e for e in self.settlements if e.kind == SettlementKind.RELEASE]


class _WithGas:
    """A contract call whose transaction carries an explicit gas limit (TxSender estimates
    otherwise)."""

    def __init__(self, call: Any, gas: int) -> None:
        self._call, self._gas = call, gas

    async def build_transaction(self, tx: Mapping[str, Any]) -> Any:
        return await self._call.build_transaction({**tx, "gas": self._gas})


class _ContractClient:
    """One contract on one chain: failover reads, serialized sends, bounded log scans."""

    _ARTIFACT = ""

    def __init__(self, chain: ChainRef, rpc_urls: Sequence[str], address: str, *,
                 sender_key: str | None, retry: RetrySettings, max_block_range: int) -> None:
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
        self._sender: TxSender | None = None
        self._retired: list[TxSender] = []
        self._send_lock = asyncio.Lock()
        self._gas_limit: tuple[int, float] | None = None  # (limit, monotonic time read)

    @classmethod
    async def _open(cls, rpc_urls: Sequence[str], address: str, *, chain: ChainRef,
                    sender_key: str | None, retry: RetrySettings, max_block_range: int) -> Self:
        self = cls(chain, rpc_urls, address, sender_key=sender_key, retry=retry,
                   max_block_range=max_block_range)
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

    async def _logs(self, start: int, end: int, topic0s: Sequence[str]) -> list[Mapping[str, Any]]:
        """This contract's logs with one of ``topic0s`` in ``start..end``, in bounded chunks."""
        _check_range(start, end)
        found: dict[tuple[str, int], Mapping[str, Any]] = {}
        for lo in range(start, end + 1, self._max_range):
            hi = min(lo + self._max_range - 1, end)
            params: Any = {"fromBlock": lo, "toBlock": hi, "address": self.address,
                           "topics": [list(topic0s)]}
            logs = await self._call(f"getLogs({lo}..{hi})", _get_logs(params))
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

    async def _transact(self, op: str, build: Callable[[Any], Any], *, timeout_s: float,
                        extra_gas: Callable[[int], int] = lambda gas: gas // 5
                        ) -> Mapping[str, Any]:
        """Estimate, sign, send and wait for one call on this contract; the receipt if mined.

        Raises:
            ConfigError: the client has no sender key.
            TxRejected: the estimate reverted (decoded reason, ``tx_id`` None) or the mined
                transaction reverted (``tx_id`` set).
            RpcUnavailable: the node could not be reached while sending (the transaction may or
                may not have been broadcast: re-check chain state before sending again).
        """
        if self._key is None:
            raise ConfigError("sender_key", f"{op} sends a transaction; no key was given")
        # The estimate runs outside the send lock: concurrent calls (a batch of liquidations or
        # settlements) estimate in parallel; only the nonce and the send are serialized.
        async with self._send_lock:
            sender = await self._get_sender()
        call = build(sender.w3.eth.contract(address=self.address, abi=self._abi))
        try:
            gas = await call.estimate_gas({"from": sender.address})
        except ContractLogicError as exc:
            raise TxRejected(self.chain.key, None, self._reason(exc)) from exc
        except TRANSIENT as exc:
            async with self._send_lock:
                if self._sender is sender:
                    self._drop_sender()
            raise RpcUnavailable(self.chain.key, str(sender.w3.provider), repr(exc)) from exc
        except Web3Exception as exc:
            raise TxRejected(self.chain.key, None, f"{op}: {exc}") from exc
        # INVARIANT: never above the block gas limit: such a transaction is never mined and
        # its nonce would block every later one from this sender.
        limit = min(gas + extra_gas(gas), await self._block_gas_limit(sender))
        async with self._send_lock:  # INVARIANT: one nonce at a time per client
            sender = await self._get_sender()
            call = build(sender.w3.eth.contract(address=self.address, abi=self._abi))
            try:
                tx_hash = await sender.send(_WithGas(call, limit))
            except TxRejected as exc:
                self._drop_sender()  # the local nonce may now be wrong: re-read it next time
                if isinstance(exc.__cause__, TRANSIENT):
                    endpoint = str(sender.w3.provider)
                    raise RpcUnavailable(self.chain.key, endpoint, exc.reason) from exc
                raise
        return await sender.wait(tx_hash, timeout_s=timeout_s)

    async def _block_gas_limit(self, sender: TxSender) -> int:
        """The latest block's gas limit, re-read at most every ``_GAS_LIMIT_TTL_S``."""
        now = time.monotonic()
        if self._gas_limit is None or now - self._gas_limit[1] > _GAS_LIMIT_TTL_S:
            block = await sender.w3.eth.get_block("latest")
            self._gas_limit = (int(block["gasLimit"]), now)
        return self._gas_limit[0]

    async def _get_sender(self) -> TxSender:
        if self._sender is None:
            assert self._key is not None
            sender = await TxSender.connect(self._rpc.current_url, self._key,
                                            chain=self.chain.key, timeout_s=self._retry.timeout_s)
            if sender.chain_id != self.chain.chain_id:  # SECURITY: never sign for another chain
                await sender.aclose()
                raise ConfigError(f"chains.{self.chain.key}", f"chain id {sender.chain_id}")
            self._sender = sender
        return self._sender

    def _drop_sender(self) -> None:
        if self._sender is not None:
            self._retired.append(self._sender)  # a waiter may still hold it; closed in aclose
            self._sender = None

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

    async def aclose(self) -> None:
        await self._rpc.aclose()
        for sender in [*self._retired, *([self._sender] if self._sender else [])]:
            await sender.aclose()
        self._sender, self._retired = None, []


class VenueClient(_ContractClient):
    """``IsolatedMarginVenue`` on the venue chain: credit attested locks, request releases, trade
    and liquidate positions, read margins, and (owner / RISK role) set markets and buffers."""

    _ARTIFACT = "IsolatedMarginVenue"

    @classmethod
    async def connect(cls, rpc_urls: Sequence[str], venue: str, *, chain: ChainRef,
                      sender_key: str | None = None, retry: RetrySettings,
                      max_block_range: int = 2_000) -> VenueClient:
        """Connect and check the chain id and that ``venue`` has code.

        Args:
            sender_key: signs transactions (relayer for credits, position owner for
                ``request_release``); None gives a read-only client.

        Raises:
            RpcUnavailable: no endpoint answered. ConfigError: wrong chain or no contract.
        """
        return await cls._open(rpc_urls, venue, chain=chain, sender_key=sender_key, retry=retry,
                               max_block_range=max_block_range)

    def _receipt_events(self, receipt: Mapping[str, Any]) -> list[Any]:
        events = (decode_venue_log(log, chain=self.chain.key, error_abis=self._error_abis)
                  for log in receipt["logs"] if self._emitted(log))
        return [e for e in events if e is not None]

    async def is_consumed(self, src_chain_id: int, src_vault: bytes, lock_id: bytes) -> bool:
        """True once the lock was credited or queued (its replay key is spent)."""
        return bool(await self._view("isConsumed", lock_key(src_chain_id, src_vault, lock_id)))

    async def collateral_of(
        self, position_key: bytes, src_chain_id: int, src_asset: bytes
    ) -> int:
        """Credited collateral of a position from one (source chain, asset), 18 decimals."""
        return int(await self._view("collateralOf", _b32(position_key, "position_key"),
                                    src_chain_id, _b32(src_asset, "src_asset")))

    async def lock_credit(self, lock_key: bytes) -> LockCredit:
        """The venue's record of one lock (status NONE if never seen)."""
        return lock_credit_from_tuple(await self._view("lockCredit", _b32(lock_key, "lock_key")))

    async def credit_batch(self, items: Sequence[tuple[LockAttestation, Sequence[bytes]]], *,
                           timeout_s: float = 60) -> CreditOutcome:
        """Send ``creditBatch``: refused items are skipped on chain, the rest credited/queued.

        Raises:
            InputError: no items. AttestationMalformed: a field out of range (nothing sent).
            TxRejected: the whole transaction reverted (paused, length mismatch...).
            RpcUnavailable, ChainError: see ``_transact``.
        """
        if not items:
            raise InputError("items", "credit_batch needs at least one attestation")
        atts = [lock_attestation_tuple(a) for a, _ in items]
        sigs = [[bytes(s) for s in bundle] for _, bundle in items]
        # Items run in try/catch frames, so an estimate can fit a batch where an item runs out
        # of gas and is skipped; unused gas is refunded, so leave ample room per item.
        receipt = await self._transact(
            "creditBatch", lambda c: c.functions.creditBatch(atts, sigs), timeout_s=timeout_s,
            extra_gas=lambda gas: gas // 2 + 60_000 * len(items))
        outcome = self._outcome(receipt)
        if len(outcome.credited) + len(outcome.queued) + len(outcome.skipped) != len(items):
            raise ChainError(f"{self.chain.key}: creditBatch receipt does not account for "
                             f"every item (0x{bytes(receipt['transactionHash']).hex()})")
        return outcome

    async def credit(self, a: LockAttestation, sigs: Sequence[bytes], *,
                     timeout_s: float = 60) -> CreditOutcome:
        """Send ``credit`` for one attested lock (credited or queued).

        Raises:
            AlreadyConsumed: the lock was credited or queued before (an idempotency hit).
            TxRejected: refused for any other reason, decoded (``QuorumNotReached(2, 3)``).
        """
        key = lock_key(a.src_chain_id, a.src_vault, a.lock_id)
        if await self.is_consumed(a.src_chain_id, a.src_vault, a.lock_id):
            raise AlreadyConsumed("0x" + key.hex())
        att, bundle = lock_attestation_tuple(a), [bytes(s) for s in sigs]
        try:
            receipt = await self._transact("credit", lambda c: c.functions.credit(att, bundle),
                                           timeout_s=timeout_s)
        except TxRejected as exc:
            # SECURITY: a lost race with another relayer is success, not a failure to retry.
            if exc.reason.startswith("AlreadyConsumed(") or (
                exc.tx_id is not None
                and await self.is_consumed(a.src_chain_id, a.src_vault, a.lock_id)
            ):
                raise AlreadyConsumed("0x" + key.hex()) from exc
            raise
        return self._outcome(receipt)

    async def release_queued(self, lock_key: bytes, *,
                             timeout_s: float = 60) -> QueuedCreditReleasedEvent:
        """Credit a queued lock whose time has come. Raises: TxRejected (NotQueued,
        QueuedUntil, WindowFull...)."""
        key = _b32(lock_key, "lock_key")
        receipt = await self._transact("releaseQueued", lambda c: c.functions.releaseQueued(key),
                                       timeout_s=timeout_s)
        return self._mined(receipt, QueuedCreditReleasedEvent, "releaseQueued")

    async def request_release(self, position_key: bytes, src_chain_id: int, src_vault: bytes,
                              lock_id: bytes, amount: int, *,
                              timeout_s: float = 60) -> SettlementRequestedEvent:
        """As the position owner (``sender_key``), ask for ``amount`` source units of one lock
        back. Not idempotent: every call that lands is a new settlement request.

        Raises:
            InputError: a malformed argument. TxRejected: NotPositionOwner, NotCredited,
            ExceedsLockCredit; with an open trade also InsufficientMargin(E after, IM),
            LiquidationPending, StalePrice, PriceOutOfBounds...
        """
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InputError("amount", f"must be a positive int of base units, got {amount!r}")
        args = (_b32(position_key, "position_key"), src_chain_id, _b32(src_vault, "src_vault"),
                _b32(lock_id, "lock_id"), amount)
        receipt = await self._transact("requestRelease",
                                       lambda c: c.functions.requestRelease(*args),
                                       timeout_s=timeout_s)
        return self._mined(receipt, SettlementRequestedEvent, "requestRelease")

    async def events(
        self, start: int, end: int
    ) -> list[CreditedEvent | CreditQueuedEvent | SettlementRequestedEvent]:
        """Credited, CreditQueued and SettlementRequested logs of this venue in ``start..end``
        (inclusive), in chain order. Raises: LogMalformed, RpcUnavailable, InputError."""
        topics = (CREDITED_TOPIC0, CREDIT_QUEUED_TOPIC0, SETTLEMENT_REQUESTED_TOPIC0)
        found = [self._decode(raw) for raw in await self._logs(start, end, topics)]
        return [e for e in found if isinstance(e, (CreditedEvent, CreditQueuedEvent,
                                                   SettlementRequestedEvent))]

    async def released_events(self, start: int, end: int) -> list[QueuedCreditReleasedEvent]:
        """QueuedCreditReleased logs (queued locks credited later) in ``start..end``."""
        raws = await self._logs(start, end, (QUEUED_CREDIT_RELEASED_TOPIC0,))
        found = [self._decode(raw) for raw in raws]
        return [e for e in found if isinstance(e, QueuedCreditReleasedEvent)]

    # ----- trading (DESIGN §2.5, §3) ---------------------------------------------------------

    async def position_of(self, position_key: bytes) -> PositionState:
        """The position's trade (market, size, entry) and equity ledger (``positionOf``)."""
        return position_state_from_tuple(
            await self._view("positionOf", _b32(position_key, "position_key")))

    async def margin_of(self, position_key: bytes) -> MarginState:
        """(C, E, IM, MM, N) at the oracle's latest prices (``marginOf``; no age check).

        Raises: ChainError (e.g. ``CollateralNotPriced``, ``PriceUnavailable``), RpcUnavailable.
        """
        return margin_state_from_tuple(
            await self._view("marginOf", _b32(position_key, "position_key")))

    async def market_of(self, market: bytes) -> tuple[MarketParams, int]:
        """(owner-set parameters, current buffer ppm) of a market (oracle id 0: unknown)."""
        params, buffer_ppm = await self._view("marketOf", _b32(market, "market"))
        return market_params_from_tuple(params), int(buffer_ppm)

    async def position_locks(self, position_key: bytes) -> list[bytes]:
        """Lock keys (remaining > 0) backing the position."""
        keys = await self._view("positionLocks", _b32(position_key, "position_key"))
        return [bytes(k) for k in keys]

    async def insurance_fund(self) -> int:
        """Insurance fund balance, usd_e18 (negative: an uncovered deficit is recorded)."""
        return int(await self._view("insuranceFund"))

    async def fee_pool(self) -> int:
        """Taker fees charged so far, usd_e18."""
        return int(await self._view("feePool"))

    async def open_position(self, position_key: bytes, market: bytes, size_e18: int, *,
                            timeout_s: float = 60) -> TradeOutcome:
        """As the position owner, open a trade of ``size_e18`` (signed, long > 0) on a flat
        position at the oracle mark. Not idempotent.

        Raises:
            InputError: a malformed argument (nothing sent). TxRejected: NotPositionOwner,
            PositionOpen, UnknownMarket, StalePrice, PriceOutOfBounds,
            InsufficientMargin(E, IM), EnforcedPause...
        """
        size = _signed_size(size_e18, "size_e18")
        args = (_b32(position_key, "position_key"), _b32(market, "market"), size)
        return await self._trade("open", args, timeout_s)

    async def increase_position(self, position_key: bytes, delta_e18: int, *,
                                timeout_s: float = 60) -> TradeOutcome:
        """Add ``delta_e18`` (> 0) to the open trade, same side. Raises: as ``open_position``."""
        args = (_b32(position_key, "position_key"), _size(delta_e18, "delta_e18"))
        return await self._trade("increase", args, timeout_s)

    async def reduce_position(self, position_key: bytes, delta_e18: int, *,
                              timeout_s: float = 60) -> TradeOutcome:
        """Close ``delta_e18`` (0 < delta <= |size|) of the trade; realized PnL and the fee are
        booked to the position's ledger. Raises: TxRejected (ReduceExceedsSize, NoOpenTrade...).
        """
        args = (_b32(position_key, "position_key"), _size(delta_e18, "delta_e18"))
        return await self._trade("reduce", args, timeout_s)

    async def close_position(self, position_key: bytes, *,
                             timeout_s: float = 60) -> TradeOutcome:
        """Close the whole trade; a booked loss is seized from the position's own locks
        (``settlements``), any excess recorded as ``shortfall``. Raises: TxRejected."""
        return await self._trade("close", (_b32(position_key, "position_key"),), timeout_s)

    async def liquidate(self, position_key: bytes, fraction_ppm: int, *,
                        timeout_s: float = 60) -> TradeOutcome:
        """Keeper: liquidate ``fraction_ppm`` (1..1e6; 1e6 = full) of a position. The venue
        re-checks E < MM on its own oracle and applies the plan rules (forced full, cooldown,
        step max, dust). A second call for the same trigger is refused (state changed or
        cooldown), so a retry after an unknown outcome is safe.

        Raises:
            InputError: bad fraction. TxRejected: NotLiquidatable(E, MM), NoOpenTrade,
            LiquidationCooldown(until), StepTooLarge, StalePrice, PriceOutOfBounds...
        """
        if (isinstance(fraction_ppm, bool) or not isinstance(fraction_ppm, int)
                or not 0 < fraction_ppm <= _PPM):
            raise InputError("fraction_ppm", f"must be an int in 1..1000000, got {fraction_ppm!r}")
        args = (_b32(position_key, "position_key"), fraction_ppm)
        return await self._trade("liquidate", args, timeout_s)

    async def set_market(self, market: bytes, params: MarketParams, *,
                         timeout_s: float = 60) -> str:
        """Owner: create or change a market. Returns the tx hash.
        Raises: InputError (the contract's rules, checked first), TxRejected."""
        args = (_b32(market, "market"), market_params_tuple(params))
        return await self._send("setMarket", args, timeout_s)

    async def set_buffer(self, market: bytes, buffer_ppm: int, *,
                         timeout_s: float = 60) -> BufferSetEvent:
        """RISK role: set a market's maintenance buffer (<= its buffer_max_ppm).
        Raises: InputError, TxRejected (NotRiskUpdater, BufferAboveMax, UnknownMarket)."""
        if isinstance(buffer_ppm, bool) or not isinstance(buffer_ppm, int) or buffer_ppm < 0:
            raise InputError("buffer_ppm", f"must be a non-negative int, got {buffer_ppm!r}")
        args = (_b32(market, "market"), buffer_ppm)
        receipt = await self._transact("setBuffer", lambda c: c.functions.setBuffer(*args),
                                       timeout_s=timeout_s)
        return self._mined(receipt, BufferSetEvent, "setBuffer")

    async def collateral_config_of(self, src_chain_id: int, src_asset: bytes
                                   ) -> CollateralConfig:
        """Oracle id, haircut and price bounds of a collateral lane (oracle id 0: unpriced)."""
        return collateral_config_from_tuple(
            await self._view("collateralConfigOf", src_chain_id, _b32(src_asset, "src_asset")))

    async def set_collateral(self, src_chain_id: int, src_asset: bytes,
                             config: CollateralConfig, *, timeout_s: float = 60) -> str:
        """Owner: price the collateral lane (src_chain_id, src_asset). Returns the tx hash.
        Raises: InputError (the contract's rules, checked first), TxRejected."""
        args = ((src_chain_id, _b32(src_asset, "src_asset"), collateral_config_tuple(config)),)
        return await self._send("setCollateral", args, timeout_s)

    async def set_oracle(self, oracle: str, *, timeout_s: float = 60) -> str:
        """Owner: the PriceOracle the venue reads. Returns the tx hash."""
        return await self._send("setOracle", (_address(oracle),), timeout_s)

    async def set_risk_updater(self, account: str, *, timeout_s: float = 60) -> str:
        """Owner: name the RISK role (who may call ``set_buffer``). Returns the tx hash."""
        return await self._send("setRiskUpdater", (_address(account),), timeout_s)

    async def risk_events(
        self, start: int, end: int
    ) -> list[TradedEvent | LiquidatedEvent | ShortfallEvent | BufferSetEvent]:
        """Traded, Liquidated, Shortfall and BufferSet logs in ``start..end``, in chain order."""
        topics = (TRADED_TOPIC0, LIQUIDATED_TOPIC0, SHORTFALL_TOPIC0, BUFFER_SET_TOPIC0)
        found = [self._decode(raw) for raw in await self._logs(start, end, topics)]
        return [e for e in found
                if isinstance(e, (TradedEvent, LiquidatedEvent, ShortfallEvent, BufferSetEvent))]

    async def _trade(self, fn: str, args: tuple[Any, ...], timeout_s: float) -> TradeOutcome:
        receipt = await self._transact(fn, lambda c: c.functions[fn](*args), timeout_s=timeout_s)
        events = self._receipt_events(receipt)
        traded = [e for e in events if isinstance(e, TradedEvent)]
        liquidated = [e for e in events if isinstance(e, LiquidatedEvent)]
        shortfall = [e for e in events if isinstance(e, ShortfallEvent)]
        if len(traded) + len(liquidated) != 1 or len(shortfall) > 1:
            raise ChainError(f"{self.chain.key}: {fn} mined without exactly one trade event")
        return TradeOutcome(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            traded=traded[0] if traded else None,
            liquidated=liquidated[0] if liquidated else None,
            settlements=[e for e in events if isinstance(e, SettlementRequestedEvent)],
            shortfall=shortfall[0] if shortfall else None,
            events=events,
        )

    async def _send(self, fn: str, args: tuple[Any, ...], timeout_s: float) -> str:
        receipt = await self._transact(fn, lambda c: c.functions[fn](*args), timeout_s=timeout_s)
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def _decode(self, raw: Mapping[str, Any]) -> VenueEvent:
        event = decode_venue_log(raw, chain=self.chain.key, error_abis=self._error_abis)
        assert event is not None  # the topic filter only lets known events through
        return event

    def _outcome(self, receipt: Mapping[str, Any]) -> CreditOutcome:
        events = self._receipt_events(receipt)
        return CreditOutcome(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            credited=[e.lock_key for e in events if isinstance(e, CreditedEvent)],
            queued=[e.lock_key for e in events if isinstance(e, CreditQueuedEvent)],
            skipped=[(e.lock_key, e.reason) for e in events if isinstance(e, CreditSkippedEvent)],
            events=events,
        )

    # ----- automated top-up (DESIGN §3 "Automated rebalancing") ------------------------------

    async def set_topup_rule(self, position_key: bytes, source_key: bytes, threshold_ppm: int,
                             max_usd_e18: int, *, timeout_s: float = 60) -> str:
        """As the owner of both positions, register (or replace) the top-up rule of
        ``position_key`` drawing on the reserve ``source_key``. Returns the tx hash.

        Raises:
            InputError: threshold_ppm not in 1000001..2^32-1, max_usd_e18 not positive, or
                the two keys equal (nothing sent). TxRejected: NotPositionOwner,
                InvalidTopUpRule.
        """
        pos, src = _b32(position_key, "position_key"), _b32(source_key, "source_key")
        if pos == src:
            raise InputError("source_key", "the reserve must be another position")
        if (isinstance(threshold_ppm, bool) or not isinstance(threshold_ppm, int)
                or not _PPM < threshold_ppm < 2**32):
            raise InputError("threshold_ppm", f"must be an int in 1000001..2^32-1, got "
                             f"{threshold_ppm!r}")
        if (isinstance(max_usd_e18, bool) or not isinstance(max_usd_e18, int)
                or not 0 < max_usd_e18 < 2**256):
            raise InputError("max_usd_e18", f"must be a positive int, got {max_usd_e18!r}")
        return await self._send("setTopUpRule", (pos, src, threshold_ppm, max_usd_e18),
                                timeout_s)

    async def clear_topup_rule(self, position_key: bytes, *, timeout_s: float = 60) -> str:
        """As the position owner, remove its top-up rule. Returns the tx hash.
        Raises: TxRejected (NotPositionOwner, NoTopUpRule)."""
        return await self._send("clearTopUpRule", (_b32(position_key, "position_key"),),
                                timeout_s)

    async def topup_rule_of(self, position_key: bytes) -> TopUpRuleState | None:
        """The position's top-up rule, or None."""
        source, threshold, max_usd, used = await self._view(
            "topUpRuleOf", _b32(position_key, "position_key"))
        if bytes(source) == bytes(32):
            return None
        return TopUpRuleState("0x" + bytes(source).hex(), int(threshold), int(max_usd),
                              int(used))

    async def topup_rule_changes(self, start: int, end: int) -> list[tuple[str, bool]]:
        """``(position key hex, has a rule now)`` per ``TopUpRuleSet`` / ``TopUpRuleCleared``
        log in ``start..end``, in chain order."""
        logs = await self._logs(start, end, [TOPUP_RULE_SET_TOPIC0, TOPUP_RULE_CLEARED_TOPIC0])
        return [("0x" + bytes(raw["topics"][1]).hex(), _topic0(raw) == TOPUP_RULE_SET_TOPIC0)
                for raw in logs if len(raw["topics"]) >= 2]

    async def block_number(self) -> int:
        return int(await self._call("blockNumber", lambda w3: w3.eth.block_number))

    async def top_up(self, position_key: bytes, lock_key: bytes, *,
                     timeout_s: float = 60) -> ToppedUp:
        """Keeper (anyone): move the whole reserve lock ``lock_key`` into ``position_key`` under
        its rule; the venue re-checks every condition. A second call for the same lock is
        refused (``LockNotInPosition``), so a retry after an unknown outcome is safe.

        Returns: the mined :class:`ToppedUp`.
        Raises:
            TxRejected: NoTopUpRule, PositionOpen (reserve trading), NotCredited,
            LockNotInPosition, NoOpenTrade, LiquidationPending, TopUpNotNeeded(E, MM, t),
            TopUpAboveMax(used, value, max), TooManyLocks, StalePrice, PriceOutOfBounds...
        """
        args = (_b32(position_key, "position_key"), _b32(lock_key, "lock_key"))
        receipt = await self._transact("topUp", lambda c: c.functions.topUp(*args),
                                       timeout_s=timeout_s)
        topic0 = _TOPPED_UP_TOPIC0
        found = []
        for log in receipt["logs"]:
            topics = [bytes(t) for t in log["topics"]]
            if self._emitted(log) and len(topics) == 4 and topics[0] == topic0:
                data = bytes(log["data"])
                if len(data) != 64:
                    raise ChainError(f"{self.chain.key}: ToppedUp with {len(data)} data bytes")
                found.append(ToppedUp(
                    "0x" + topics[1].hex(), "0x" + topics[2].hex(), "0x" + topics[3].hex(),
                    int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big"),
                    "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["blockNumber"])))
        if len(found) != 1:
            raise ChainError(f"{self.chain.key}: topUp mined with {len(found)} ToppedUp")
        return found[0]

    # ----- operator admin (owner; DESIGN §2.7, §5 `bulkhead admin`) --------------------------

    async def owner(self) -> str:
        """The venue's owner: the only account that may pause, set limits and ceilings."""
        return str(to_checksum_address(await self._view("owner")))

    async def is_paused(self) -> bool:
        """True while credits, queued releases and user trades are stopped."""
        return bool(await self._view("paused"))

    async def pause(self, *, timeout_s: float = 60) -> str:
        """Owner: stop credits, ``releaseQueued`` and user trades (liquidations go on).
        Returns the tx hash. Raises: TxRejected (EnforcedPause, OwnableUnauthorizedAccount)."""
        return await self._send("pause", (), timeout_s)

    async def unpause(self, *, timeout_s: float = 60) -> str:
        """Owner: resume after ``pause``. Returns the tx hash.
        Raises: TxRejected (ExpectedPause, OwnableUnauthorizedAccount)."""
        return await self._send("unpause", (), timeout_s)

    async def chain_time(self) -> tuple[int, int]:
        """(height, timestamp) of the latest block: the clock ``releaseQueued`` is judged by."""
        block = await self._call("getBlock", lambda w3: w3.eth.get_block("latest"))
        return int(block["number"]), int(block["timestamp"])

    async def rate_limit(self, src_chain_id: int, src_asset: bytes) -> dict[str, int]:
        """The governor of (src_chain_id, src_asset), source base units: ``cap``,
        ``large_threshold``, ``delay_s``, ``window_start`` (chain time) and ``used`` in that
        window. All zero: no limit set (credits of that pair are refused, NoRateLimit)."""
        cap, large, delay, window_start, used = await self._view(
            "rateLimit", self._admin_uint(src_chain_id, 64, "src_chain_id"),
            _b32(src_asset, "src_asset"))
        return {"cap": int(cap), "large_threshold": int(large), "delay_s": int(delay),
                "window_start": int(window_start), "used": int(used)}

    async def lane_asset(self, src_chain_id: int, src_vault: bytes,
                         src_asset: bytes) -> dict[str, int]:
        """The accountant's lane (chain, vault, asset), source base units: ``registered``
        (0/1), ``decimals``, ``ceiling`` and ``outstanding`` (credited incl. queued - released -
        seized)."""
        registered, decimals, ceiling, outstanding = await self._view(
            "laneAsset", self._admin_uint(src_chain_id, 64, "src_chain_id"),
            _b32(src_vault, "src_vault"), _b32(src_asset, "src_asset"))
        return {"registered": int(bool(registered)), "decimals": int(decimals),
                "ceiling": int(ceiling), "outstanding": int(outstanding)}

    async def set_rate_limit(self, src_chain_id: int, src_asset: bytes, cap: int,
                             large_threshold: int, delay_s: int, *,
                             timeout_s: float = 60) -> str:
        """Owner: set the governor of (src_chain_id, src_asset). Returns the tx hash.

        Raises:
            InputError: not 0 < large_threshold <= cap < 2^128, or delay_s not in 0..2^64-1
                (checked before anything is sent). TxRejected: OwnableUnauthorizedAccount.
        """
        cap = self._admin_uint(cap, 128, "cap")
        large = self._admin_uint(large_threshold, 128, "large_threshold")
        if cap == 0 or large == 0:
            raise InputError("cap" if cap == 0 else "large_threshold", "must be greater than zero")
        if large > cap:
            raise InputError("large_threshold", f"{large} is above the cap {cap}")
        args = (self._admin_uint(src_chain_id, 64, "src_chain_id"), _b32(src_asset, "src_asset"), cap,
                large, self._admin_uint(delay_s, 64, "delay_s"))
        return await self._send("setRateLimit", args, timeout_s)

    async def set_lane_ceiling(self, src_chain_id: int, src_vault: bytes, src_asset: bytes,
                               ceiling: int, *, timeout_s: float = 60) -> str:
        """Owner: the accountant ceiling of a registered lane (source units; below the
        outstanding amount it blocks new credits until releases bring it down).

        Raises: InputError (ceiling not in 0..2^128-1), TxRejected (UnregisteredLaneAsset,
        OwnableUnauthorizedAccount).
        """
        args = (self._admin_uint(src_chain_id, 64, "src_chain_id"), _b32(src_vault, "src_vault"),
                _b32(src_asset, "src_asset"), self._admin_uint(ceiling, 128, "ceiling"))
        return await self._send("setLaneCeiling", args, timeout_s)

    async def queued_events(self, start: int, end: int) -> list[CreditQueuedEvent]:
        """CreditQueued logs (credits held by the governor) in ``start..end``, in chain order."""
        found = [self._decode(raw) for raw in await self._logs(start, end,
                                                               (CREDIT_QUEUED_TOPIC0,))]
        return [e for e in found if isinstance(e, CreditQueuedEvent)]

    @staticmethod
    def _admin_uint(value: int, bits: int, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
            raise InputError(name, f"must be an int in 0..2^{bits}-1, got {value!r}")
        return value


class VaultClient(_ContractClient):
    """``CollateralVault`` on a collateral chain: execute attested settlements (the way back)."""

    _ARTIFACT = "CollateralVault"

    @classmethod
    async def connect(cls, rpc_urls: Sequence[str], vault: str, *, chain: ChainRef,
                      sender_key: str | None = None, retry: RetrySettings,
                      max_block_range: int = 2_000) -> VaultClient:
        """Connect and check the chain id and that ``vault`` has code.

        Raises:
            RpcUnavailable: no endpoint answered. ConfigError: wrong chain or no contract.
        """
        return await cls._open(rpc_urls, vault, chain=chain, sender_key=sender_key, retry=retry,
                               max_block_range=max_block_range)

    def _receipt_events(self, receipt: Mapping[str, Any]) -> list[Any]:
        return [decode_settled(log, chain=self.chain.key) for log in receipt["logs"]
                if self._emitted(log) and _topic0(log) == SETTLED_TOPIC0]

    async def is_settled(self, settlement_id: bytes) -> bool:
        return bool(await self._view("isSettled", _b32(settlement_id, "settlement_id")))

    async def locked_total(self, asset: str) -> int:
        """Sum of measured lock amounts of ``asset`` (never decreases)."""
        return int(await self._view("lockedTotal", _address(asset)))

    async def lock_of(self, nonce: int) -> VaultLock:
        """One lock (all zero if the nonce was never used)."""
        return vault_lock_from_tuple(await self._view("lockOf", nonce))

    async def settle(self, s: Settlement, sigs: Sequence[bytes], *,
                     timeout_s: float = 60) -> SettledEvent:
        """Execute one attested settlement.

        Raises:
            AlreadyConsumed: this settlement id was executed before (an idempotency hit).
            TxRejected: refused for any other reason (WrongVault, ExceedsLock, quorum...).
        """
        sid = "0x" + bytes(s.settlement_id).hex()
        if await self.is_settled(s.settlement_id):
            raise AlreadyConsumed(sid)
        arg, bundle = settlement_tuple(s), [bytes(x) for x in sigs]
        try:
            receipt = await self._transact("settle", lambda c: c.functions.settle(arg, bundle),
                                           timeout_s=timeout_s)
        except TxRejected as exc:
            if exc.reason.startswith("AlreadyConsumed(") or (
                exc.tx_id is not None and await self.is_settled(s.settlement_id)
            ):
                raise AlreadyConsumed(sid) from exc
            raise
        return self._mined(receipt, SettledEvent, "settle")

    async def settled_events(self, start: int, end: int) -> list[SettledEvent]:
        """This vault's Settled logs in ``start..end`` (inclusive), in chain order."""
        raws = await self._logs(start, end, (SETTLED_TOPIC0,))
        return [decode_settled(raw, chain=self.chain.key) for raw in raws]


def _get_logs(params: Any) -> Callable[[Web3], Awaitable[Any]]:
    return lambda w3: w3.eth.get_logs(params)


def _check_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise InputError("range", f"need 0 <= start <= end, got {start}..{end}")


def _b32(value: bytes, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise InputError(name, "must be exactly 32 bytes")
    return bytes(value)


def _size(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < _SIZE_LIMIT:
        raise InputError(name, f"must be an int in 1..2^127-1 (size_e18), got {value!r}")
    return value


def _signed_size(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value == 0:
        raise InputError(name, f"must be a non-zero int (size_e18, long > 0), got {value!r}")
    _size(abs(value), name)
    return value


def _address(value: str) -> str:
    if not is_hex_address(value):
        raise InputError("address", f"not an address: {value!r}")
    return to_checksum_address(value)


def _topic0(log: Mapping[str, Any]) -> str:
    topics: Iterable[Any] = log.get("topics") or []
    first = next(iter(topics), b"")
    return first.lower() if isinstance(first, str) else "0x" + bytes(first).hex()

