"""The one EVM sending layer: every key's transactions are priced, sent, watched and replaced here.

:class:`TxSender` signs with one key and tracks nonces locally, so several transactions can be
in flight at once (the relayer's credit batches, the keeper's liquidation batches, the settler,
the deployer). Every caller that sends goes through it: relayer, keeper, settler, top-up keeper,
feeder, deployer and the CLI.

Pricing (EIP-1559, :class:`FeePolicy`): ``maxFeePerGas = base fee of the next block *
base_fee_pct / 100 + tip`` and ``maxPriorityFeePerGas = max(node's suggestion, min tip)``, read
at most once per ``price_ttl_s``. Three things keep a transaction landing under congestion:

- **Re-pricing a refused send.** A node that refuses a transaction for its price (``max fee per
  gas less than block base fee``, ``underpriced``, ``fee too low``) gets it again, re-priced from
  the newest base fee and at least doubled, up to ``max_fee``.
- **Replacement.** :meth:`TxSender.wait` re-sends a transaction that is not mined within
  ``replace_after_blocks`` blocks under the same nonce with both fees bumped by ``bump_pct`` (a
  node accepts a replacement only with higher fees); any of its hashes may be the one mined.
  A dropped transaction is covered by the same path.
- **Nonce repair.** ``nonce too low`` (another process sent with this key) re-reads the pending
  nonce and sends again; so does a fresh send refused as an underpriced *replacement* (another
  process's transaction is pending at that nonce: it is never out-bid and dropped). A
  transaction of ours displaced at its nonce anyway (another process's was mined there) never
  ran, so :meth:`TxSender.wait` sends the same call again at a fresh nonce (``displaced``, at
  most ``_MAX_RESENDS`` times). A nonce this sender reserved but could not send is filled with a
  0-value self-transfer so later transactions are not stuck behind a gap.

Limits: no bid above ``max_fee`` per gas, and at most ``budget_wei_per_hour`` of fees (mined
gas times effective price) per rolling hour; past either, :class:`FeeBudgetExhausted`. Every
decision is reported to ``on_event`` (the worker turns them into logs and metrics).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_typing import HexStr
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3Exception

from chains.evm.artifacts import load_artifact
from chains.evm.codec import decode_revert
from chains.evm.rpc import TRANSIENT, Web3, make_web3
from shared.errors import ChainError, FeeBudgetExhausted, RpcUnavailable, TxRejected

__all__ = ["FeePolicy", "SendEvent", "TxSender"]

_ERROR_SOURCES = ("CollateralVault", "TestToken", "FeeToken", "MarkOracle", "FeedPublisher",
                  "IsolatedMarginVenue")
_GWEI = 10**9
_PRICE_MARKERS = ("base fee", "underpriced", "fee too low", "feecap", "fee cap", "max fee")
_NONCE_MARKERS = ("nonce too low", "nonce has already been used", "already imported")
_KNOWN_MARKERS = ("already known", "known transaction")
_MAX_REPRICES = 8
_MAX_RESENDS = 3  # a call displaced by another process's transaction is sent again this often
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """How one key prices its transactions (from ``shared.settings.FeeSettings``)."""

    base_fee_pct: int = 200
    min_tip_wei: int = _GWEI
    bump_pct: int = 25
    replace_after_blocks: int = 3
    max_fee_wei: int = 5_000 * _GWEI
    budget_wei_per_hour: int = 10 * 10**18
    price_ttl_s: float = 0.25

    @classmethod
    def from_settings(cls, fees: Any) -> FeePolicy:
        """From a ``FeeSettings`` (duck-typed: chains does not read settings itself)."""
        return cls(base_fee_pct=fees.base_fee_pct, min_tip_wei=fees.min_tip_wei,
                   bump_pct=fees.bump_pct, replace_after_blocks=fees.replace_after_blocks,
                   max_fee_wei=fees.max_fee_gwei * _GWEI,
                   budget_wei_per_hour=fees.budget_gwei_per_hour * _GWEI)


@dataclass(frozen=True, slots=True)
class SendEvent:
    """One decision of the sending layer: ``kind`` is ``sent``, ``repriced``, ``replaced``,
    ``rebroadcast`` (the node had lost it: the same bytes sent again),
    ``nonce_resync``, ``gap_filled``, ``cancelled``, ``mined`` or ``budget_exhausted``."""

    kind: str
    chain: str
    sender: str
    nonce: int
    tx_hash: str | None = None
    max_fee_wei: int = 0
    tip_wei: int = 0
    detail: str = ""


@dataclass
class _Pending:
    nonce: int
    call: Any
    gas: int | None
    max_fee: int
    tip: int
    sent_block: int
    hashes: list[str] = field(default_factory=list)
    resent: int = 0  # times the call was sent again after another process took its nonce


def _known_error_abis() -> list[list[dict[str, Any]]]:
    return [load_artifact(name).abi for name in _ERROR_SOURCES]


def _revert_reason(exc: ContractLogicError) -> str:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if data is None and isinstance(exc.message, str) and exc.message.startswith("0x"):
        data = exc.message
    if data is None:
        return exc.message or "reverted"
    return decode_revert(data, _known_error_abis())


def _message(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, dict):
        return str(arg.get("message", arg))
    return str(arg)


class TxSender:
    """Signs with one key, prices, sends, watches and replaces (see the module docstring)."""

    def __init__(self, w3: Web3, private_key: str, *, chain: str, chain_id: int, nonce: int,
                 fees: FeePolicy | None = None,
                 on_event: Callable[[SendEvent], None] | None = None) -> None:
        self.w3, self.chain, self.chain_id = w3, chain, chain_id
        self.fees = fees or FeePolicy()
        self._account = Account.from_key(private_key)
        self._nonce = nonce
        self._on_event = on_event
        self._lock = asyncio.Lock()
        self._pending: dict[str, _Pending] = {}
        self._price: tuple[int, int, float] | None = None  # (base fee, tip, monotonic time)
        self._spent: deque[tuple[float, int]] = deque()  # (monotonic time, wei)
        self._block: tuple[int, float] | None = None
        self._block_poll: asyncio.Future[int] | None = None
        self._nonce_at: tuple[int, int] | None = None  # (head, the key's nonce at that head)
        self._raw: dict[str, bytes] = {}  # signed bytes of every hash still pending

    @classmethod
    async def connect(cls, rpc_url: str, private_key: str, *, chain: str | None = None,
                      timeout_s: float = 30.0, fees: FeePolicy | None = None,
                      on_event: Callable[[SendEvent], None] | None = None) -> TxSender:
        """Connect to ``rpc_url`` and read the key's pending nonce.

        Raises:
            RpcUnavailable: the endpoint did not answer.
        """
        w3 = make_web3(rpc_url, timeout_s)
        try:
            chain_id = await w3.eth.chain_id
            address = Account.from_key(private_key).address
            nonce = await w3.eth.get_transaction_count(address, "pending")
        except (OSError, Web3Exception, *TRANSIENT) as exc:
            await w3.provider.disconnect()
            raise RpcUnavailable(chain or "evm", rpc_url, repr(exc)) from exc
        return cls(w3, private_key, chain=chain or f"evm:{chain_id}", chain_id=chain_id,
                   nonce=nonce, fees=fees, on_event=on_event)

    @property
    def address(self) -> str:
        return str(self._account.address)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _emit(self, kind: str, nonce: int, tx_hash: str | None = None, max_fee: int = 0,
              tip: int = 0, detail: str = "") -> None:
        if self._on_event is not None:
            self._on_event(SendEvent(kind, self.chain, self.address, nonce, tx_hash, max_fee,
                                     tip, detail))

    # ----- pricing --------------------------------------------------------------------------

    async def _market_price(self, *, fresh: bool = False) -> tuple[int, int]:
        """(next block's base fee, tip) as the node sees them now."""
        now = time.monotonic()
        if not fresh and self._price is not None and now - self._price[2] < self.fees.price_ttl_s:
            return self._price[0], self._price[1]
        pending = await self.w3.eth.get_block("pending")
        base = int(pending.get("baseFeePerGas") or 0)
        try:
            tip = int(await self.w3.eth.max_priority_fee)
        except (Web3Exception, ValueError):
            tip = 0
        tip = max(tip, self.fees.min_tip_wei)
        self._price = (base, tip, now)
        return base, tip

    def _offer(self, base: int, tip: int) -> tuple[int, int]:
        max_fee = base * self.fees.base_fee_pct // 100 + tip
        return min(max_fee, self.fees.max_fee_wei), min(tip, self.fees.max_fee_wei)

    def _bumped(self, max_fee: int, tip: int, base: int) -> tuple[int, int]:
        """Both fees up by ``bump_pct`` (rounded up), and at least what the market asks now."""
        pct = 100 + self.fees.bump_pct
        tip2 = max(-(-tip * pct // 100), tip + 1)
        fee2 = max(-(-max_fee * pct // 100), base * self.fees.base_fee_pct // 100 + tip2)
        return fee2, tip2

    def _check_budget(self, nonce: int, gas: int, max_fee: int) -> None:
        now = time.monotonic()
        while self._spent and now - self._spent[0][0] > 3600:
            self._spent.popleft()
        spent = sum(w for _, w in self._spent)
        if spent + gas * max_fee > self.fees.budget_wei_per_hour:
            self._emit("budget_exhausted", nonce, max_fee=max_fee,
                       detail=f"spent {spent} wei in the last hour")
            raise FeeBudgetExhausted(self.chain, self.address,
                                     f"{spent} wei spent this hour + {gas} gas at {max_fee} "
                                     f"> budget {self.fees.budget_wei_per_hour}")

    # ----- sending --------------------------------------------------------------------------

    async def send(self, call: Any, *, gas: int | None = None) -> str:
        """Price, sign and send a contract call or constructor; returns the transaction hash.

        ``gas`` None estimates (through ``build_transaction``). Concurrent sends get
        consecutive nonces.

        Raises:
            TxRejected: the node's estimate reverted (the custom error decoded), or the node
                refused the transaction for a reason other than its price or nonce.
            FeeBudgetExhausted: the price it would take is above ``max_fee`` or the budget.
            RpcUnavailable: the node could not be reached (the nonce is re-read next time).
        """
        async with self._lock:
            nonce = self._nonce
            base, tip = await self._guard(self._market_price())
            max_fee, tip = self._offer(base, tip)
            try:
                tx_hash, max_fee, tip, nonce = await self._send_priced(call, gas, nonce,
                                                                       max_fee, tip)
            except BaseException:
                await self._resync()
                raise
            self._nonce = nonce + 1
            sent_block = await self._guard(self._head())
            self._pending[tx_hash] = _Pending(nonce, call, gas, max_fee, tip, sent_block,
                                              [tx_hash])
        self._emit("sent", nonce, tx_hash, max_fee, tip)
        return tx_hash

    async def _send_priced(self, call: Any, gas: int | None, nonce: int, max_fee: int,
                           tip: int) -> tuple[str, int, int, int]:
        """Send at ``nonce``, re-pricing on a price refusal and re-reading the nonce when it
        was taken; returns (hash, max fee, tip, nonce used)."""
        for _ in range(_MAX_REPRICES):
            tx = await self._build(call, gas, nonce, max_fee, tip)
            self._check_budget(nonce, int(tx["gas"]), max_fee)
            try:
                return await self._raw_send(tx), max_fee, tip, nonce
            except _Refused as refused:
                text = refused.text.lower()
                if any(m in text for m in _KNOWN_MARKERS):
                    return refused.tx_hash, max_fee, tip, nonce
                ours = any(p.nonce == nonce for p in self._pending.values())
                if any(m in text for m in _NONCE_MARKERS) or (
                        "replacement" in text and not ours):
                    # Taken: mined, or (a replacement refused for a nonce this sender never
                    # used) pending from another process with this key. Never bid to replace
                    # another process's transaction: move past its nonce.
                    chain_nonce = await self._guard(self.w3.eth.get_transaction_count(
                        self.address, "pending"))
                    nonce = max(chain_nonce, nonce + 1) if not any(
                        m in text for m in _NONCE_MARKERS) else chain_nonce
                    self._emit("nonce_resync", nonce, detail=refused.text)
                    continue
                if not any(m in text for m in _PRICE_MARKERS):
                    raise TxRejected(self.chain, None, refused.text) from None
                if max_fee >= self.fees.max_fee_wei:
                    self._emit("budget_exhausted", nonce, max_fee=max_fee, detail=refused.text)
                    raise FeeBudgetExhausted(self.chain, self.address,
                                             f"refused at the fee cap {max_fee}: "
                                             f"{refused.text}") from None
                base, _ = await self._guard(self._market_price(fresh=True))
                fee2, tip2 = self._bumped(max_fee, tip, base)
                max_fee, tip = min(max(fee2, 2 * max_fee), self.fees.max_fee_wei), tip2
                self._emit("repriced", nonce, None, max_fee, tip, refused.text)
        raise FeeBudgetExhausted(self.chain, self.address,
                                 f"still refused after {_MAX_REPRICES} re-pricings")

    async def _build(self, call: Any, gas: int | None, nonce: int, max_fee: int,
                     tip: int) -> dict[str, Any]:
        base = {"from": self.address, "nonce": nonce, "chainId": self.chain_id,
                "maxFeePerGas": max_fee, "maxPriorityFeePerGas": min(tip, max_fee)}
        if gas is not None:
            base["gas"] = gas
        try:
            return dict(await call.build_transaction(base))
        except ContractLogicError as exc:
            raise TxRejected(self.chain, None, _revert_reason(exc)) from exc
        except TRANSIENT as exc:
            raise RpcUnavailable(self.chain, str(self.w3.provider), repr(exc)) from exc
        except (OSError, Web3Exception, ValueError) as exc:
            raise TxRejected(self.chain, None, f"{type(exc).__name__}: {exc}") from exc

    async def _raw_send(self, tx: Mapping[str, Any]) -> str:
        signed = self._account.sign_transaction(tx)
        tx_hash = "0x" + bytes(signed.hash).hex()
        self._raw[tx_hash] = bytes(signed.raw_transaction)  # to broadcast again if lost
        try:
            sent = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except TRANSIENT as exc:
            raise RpcUnavailable(self.chain, str(self.w3.provider), repr(exc)) from exc
        except (Web3Exception, ValueError) as exc:
            raise _Refused(_message(exc), tx_hash) from exc
        return "0x" + bytes(sent).hex()

    async def _resync(self) -> None:
        """After a failed send: re-read the nonce (another process may have used this key) and
        fill any gap below our own in-flight transactions, so they are not stuck behind it."""
        try:
            chain_nonce = int(await self.w3.eth.get_transaction_count(self.address, "pending"))
        except (OSError, Web3Exception, *TRANSIENT):
            return
        taken = {p.nonce for p in self._pending.values()}
        top = max(taken, default=chain_nonce - 1)
        for gap in range(chain_nonce, top):
            if gap not in taken:
                await self._fill_gap(gap)
        self._nonce = max(chain_nonce, top + 1)

    async def _fill_gap(self, nonce: int) -> None:
        base, tip = await self._market_price(fresh=True)
        max_fee, tip = self._offer(base, tip)
        tx = {"from": self.address, "to": self.address, "value": 0, "gas": 21_000,
              "nonce": nonce, "chainId": self.chain_id, "maxFeePerGas": max_fee,
              "maxPriorityFeePerGas": tip}
        try:
            tx_hash = await self._raw_send(tx)
        except (_Refused, RpcUnavailable) as exc:
            self._emit("gap_fill_failed", nonce, detail=str(exc))
            return
        self._emit("gap_filled", nonce, tx_hash, max_fee, tip)

    # ----- waiting and replacing ------------------------------------------------------------

    async def _head(self) -> int:
        """The latest block number, shared by every waiter polling at the same moment."""
        now = time.monotonic()
        if self._block is not None and now - self._block[1] < _POLL_S:
            return self._block[0]
        if self._block_poll is None or self._block_poll.done():
            self._block_poll = asyncio.ensure_future(self.w3.eth.block_number)
        number = int(await asyncio.shield(self._block_poll))
        self._block = (number, time.monotonic())
        return number

    async def wait(self, tx_hash: str, *, timeout_s: float = 60.0) -> Mapping[str, Any]:
        """Wait for the transaction (or a replacement of it) to be mined; its receipt.

        Looks at every new head: a transaction the next base fee prices out is bumped at once;
        one the node lost is broadcast again as it was; one waiting in line behind this key's
        earlier transactions at a fair price waits (a higher bid cannot pass them); any other
        is bumped every ``replace_after_blocks`` blocks it is not mined.

        Raises:
            TxRejected: mined and reverted (``tx_id`` set), or its nonce was consumed by a
                transaction that is not one of ours.
            FeeBudgetExhausted: a replacement would bid above the cap or the budget.
            ChainError: not mined within ``timeout_s``. RpcUnavailable.
        """
        pending = self._pending.get(tx_hash)
        if pending is None:  # not sent by this sender: plain wait
            return await self._wait_plain(tx_hash, timeout_s)
        deadline = time.monotonic() + timeout_s
        last = -1
        while True:
            head = await self._guard(self._head())
            if head != last:
                last = head
                receipt = await self._any_receipt(pending)
                if receipt is not None:
                    return self._settle(pending, receipt)
                if await self._priced_out(pending):
                    pending = await self._replace_or_detect(pending, head, "priced out")
                elif await self._lost(pending):
                    await self._broadcast_again(pending)
                elif await self._waiting_in_line(pending, head):
                    pending.sent_block = head
                elif head - pending.sent_block >= self.fees.replace_after_blocks:
                    pending = await self._replace_or_detect(pending, head)
            if time.monotonic() > deadline:
                raise ChainError(f"{self.chain}: {tx_hash} not mined within {timeout_s}s "
                                 f"({len(pending.hashes)} fee levels tried)")
            await asyncio.sleep(_POLL_S)

    async def _any_receipt(self, pending: _Pending) -> Mapping[str, Any] | None:
        for h in reversed(pending.hashes):
            try:
                receipt = await self.w3.eth.get_transaction_receipt(HexStr(h))
            except TransactionNotFound:
                continue
            except TRANSIENT as exc:
                raise RpcUnavailable(self.chain, str(self.w3.provider), repr(exc)) from exc
            if receipt is not None:
                return receipt
        return None

    def _settle(self, pending: _Pending, receipt: Mapping[str, Any]) -> Mapping[str, Any]:
        for h in pending.hashes:
            self._pending.pop(h, None)
            self._raw.pop(h, None)
        price = int(receipt.get("effectiveGasPrice") or 0)
        self._spent.append((time.monotonic(), int(receipt.get("gasUsed") or 0) * price))
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        self._emit("mined", pending.nonce, tx_hash, pending.max_fee, pending.tip,
                   f"block {int(receipt['blockNumber'])}")
        if receipt["status"] != 1:
            raise TxRejected(self.chain, tx_hash, "reverted on chain")
        return receipt

    async def _replace_or_detect(self, pending: _Pending, head: int,
                                 why: str = "") -> _Pending:
        """Replace a transaction not mined for ``replace_after_blocks`` blocks; if another
        process with this key had a transaction mined at its nonce instead, ours never ran:
        send the same call again at a fresh nonce. Returns what to wait for now."""
        mined_nonce = await self._mined_nonce(head)
        if mined_nonce > pending.nonce:
            receipt = await self._any_receipt(pending)
            if receipt is not None:
                return pending
            for h in pending.hashes:
                self._pending.pop(h, None)
                self._raw.pop(h, None)
            if pending.resent >= _MAX_RESENDS:
                raise TxRejected(self.chain, pending.hashes[-1],
                                 f"nonce {pending.nonce} was used by another transaction")
            self._emit("displaced", pending.nonce, pending.hashes[-1], pending.max_fee,
                       pending.tip, "another transaction took this nonce; sent again")
            fresh = self._pending[await self.send(pending.call, gas=pending.gas)]
            fresh.resent = pending.resent + 1
            return fresh
        if pending.gas is not None:
            latest = await self._guard(self.w3.eth.get_block("latest"))
            if pending.gas > int(latest["gasLimit"]):
                await self._cancel(pending, head)
                raise TxRejected(self.chain, pending.hashes[-1],
                                 f"gas {pending.gas} above the block gas limit "
                                 f"{int(latest['gasLimit'])}: cancelled; send smaller batches")
        async with self._lock:
            base, _ = await self._guard(self._market_price(fresh=True))
            max_fee, tip = self._bumped(pending.max_fee, pending.tip, base)
            if max_fee > self.fees.max_fee_wei:
                if pending.max_fee >= self.fees.max_fee_wei:
                    pending.sent_block = head  # keep waiting at the cap
                    return pending
                max_fee = self.fees.max_fee_wei
                tip = min(tip, max_fee)
            tx = await self._build(pending.call, pending.gas, pending.nonce, max_fee, tip)
            self._check_budget(pending.nonce, int(tx["gas"]), max_fee)
            try:
                new_hash = await self._raw_send(tx)
            except _Refused as refused:
                text = refused.text.lower()
                if any(m in text for m in _KNOWN_MARKERS):
                    new_hash = refused.tx_hash
                elif any(m in text for m in _NONCE_MARKERS):
                    return pending  # mined meanwhile: the next poll finds the receipt
                else:
                    pending.sent_block = head
                    self._emit("replace_refused", pending.nonce, None, max_fee, tip,
                               refused.text)
                    return pending
            pending.max_fee, pending.tip, pending.sent_block = max_fee, tip, head
            if new_hash not in pending.hashes:
                pending.hashes.append(new_hash)
            self._pending[new_hash] = pending
        self._emit("replaced", pending.nonce, new_hash, max_fee, tip,
                   why or f"not mined after {self.fees.replace_after_blocks} blocks")
        return pending

    async def _priced_out(self, pending: _Pending) -> bool:
        """Whether the next block's base fee is above what ``pending`` may pay: it cannot be
        mined at all (nor anything of ours behind it), so it is bumped at once rather than
        after ``replace_after_blocks`` (a burst that fills blocks raises the base fee 12.5 % a
        block; left alone, the key's whole line stops and blocks go empty)."""
        base, _ = await self._guard(self._market_price())
        return pending.max_fee < base and pending.max_fee < self.fees.max_fee_wei

    async def _lost(self, pending: _Pending) -> bool:
        """Whether the node no longer knows ``pending``'s latest transaction (and it is not
        mined: the caller found no receipt). Nodes drop transactions; anvil drops the ones
        queued behind a transaction of the same key that did not fit a full block."""
        try:
            await self.w3.eth.get_transaction(HexStr(pending.hashes[-1]))
        except TransactionNotFound:
            return True
        except TRANSIENT as exc:
            raise RpcUnavailable(self.chain, str(self.w3.provider), repr(exc)) from exc
        return False

    async def _broadcast_again(self, pending: _Pending) -> None:
        """Send the same signed bytes again (same hash, same price): what was lost is back in
        the pool at once, without waiting ``replace_after_blocks`` or paying a bump. Refusals
        are left to the usual clock (mined meanwhile: the next poll finds the receipt)."""
        raw = self._raw.get(pending.hashes[-1])
        if raw is None:
            return
        try:
            await self.w3.eth.send_raw_transaction(raw)
        except TRANSIENT as exc:
            raise RpcUnavailable(self.chain, str(self.w3.provider), repr(exc)) from exc
        except (Web3Exception, ValueError) as exc:
            self._emit("rebroadcast_refused", pending.nonce, pending.hashes[-1],
                       pending.max_fee, pending.tip, _message(exc))
            return
        self._emit("rebroadcast", pending.nonce, pending.hashes[-1], pending.max_fee,
                   pending.tip, "the node had lost it")

    async def _waiting_in_line(self, pending: _Pending, head: int) -> bool:
        """Whether ``pending`` waits behind an earlier transaction of ours at a fair price.

        A block takes a key's transactions in nonce order, so while one still bids what the
        market asks, a higher bid cannot get it in sooner (a relayer with several batches in
        flight would only churn replacements): its clock restarts each block it waits in line
        and runs once it is first. A bid the market has passed is not waiting in line: it is
        bumped on the usual clock wherever it stands, so a fee spike re-prices the whole line.
        """
        if not any(p.nonce < pending.nonce for p in self._pending.values()):
            return False
        mined_nonce = await self._mined_nonce(head)
        if not any(mined_nonce <= p.nonce < pending.nonce for p in self._pending.values()):
            return False
        base, tip = await self._guard(self._market_price())
        return pending.max_fee >= base + tip and pending.tip >= tip

    async def _mined_nonce(self, head: int) -> int:
        """The key's nonce in the latest block, read once per head (every waiter asks)."""
        if self._nonce_at is None or self._nonce_at[0] != head:
            nonce = int(await self._guard(self.w3.eth.get_transaction_count(self.address,
                                                                             "latest")))
            self._nonce_at = (head, nonce)
        return self._nonce_at[1]

    async def _cancel(self, pending: _Pending, head: int) -> None:
        """Replace a transaction that can never be mined (it no longer fits a block) with a
        0-value self-transfer at its nonce, so the transactions after it are not stuck."""
        async with self._lock:
            base, _ = await self._guard(self._market_price(fresh=True))
            max_fee, tip = self._bumped(pending.max_fee, pending.tip, base)
            tx = {"from": self.address, "to": self.address, "value": 0, "gas": 21_000,
                  "nonce": pending.nonce, "chainId": self.chain_id,
                  "maxFeePerGas": min(max_fee, self.fees.max_fee_wei),
                  "maxPriorityFeePerGas": min(tip, self.fees.max_fee_wei)}
            try:
                tx_hash = await self._raw_send(tx)
            except _Refused as refused:
                self._emit("cancel_refused", pending.nonce, detail=refused.text)
                tx_hash = None
            for h in pending.hashes:
                self._pending.pop(h, None)
                self._raw.pop(h, None)
        self._emit("cancelled", pending.nonce, tx_hash, max_fee, tip,
                   f"gas {pending.gas} no longer fits a block")

    async def _wait_plain(self, tx_hash: str, timeout_s: float) -> Mapping[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                receipt = await self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
            except TransactionNotFound:
                receipt = None
            except TRANSIENT as exc:
                raise RpcUnavailable(self.chain, str(self.w3.provider), repr(exc)) from exc
            if receipt is not None:
                if receipt["status"] != 1:
                    raise TxRejected(self.chain, tx_hash, "reverted on chain")
                return receipt
            if time.monotonic() > deadline:
                raise ChainError(f"{self.chain}: {tx_hash} not mined within {timeout_s}s")
            await asyncio.sleep(_POLL_S)

    async def _guard(self, awaitable: Any) -> Any:
        """Await a node call with its transport errors converted."""
        try:
            return await awaitable
        except TRANSIENT as exc:
            raise RpcUnavailable(self.chain, str(self.w3.provider), repr(exc)) from exc
        except Web3Exception as exc:
            raise ChainError(f"{self.chain}: {exc}") from exc

    async def aclose(self) -> None:
        await self.w3.provider.disconnect()


class _Refused(Exception):
    """The node refused a raw transaction (message text kept for classification)."""

    def __init__(self, text: str, tx_hash: str) -> None:
        super().__init__(text)
        self.text, self.tx_hash = text, tx_hash
