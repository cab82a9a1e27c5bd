"""The venue client (``IsolatedMarginVenue`` on the venue chain), used by the relayer,
attesters, the risk worker and the operator commands. I/O.

One client, split by purpose: credits, releases and bridge events here; trading, liquidation
and top-ups in :mod:`chains.evm.venue_trading`; owner actions in :mod:`chains.evm.venue_admin`;
the shared base (ABI, decoding, outcomes) in :mod:`chains.evm.venue_base` over
:mod:`chains.evm.contract`. The source vault's client is :mod:`chains.evm.vault`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chains.evm.bridge_codec import (
    CREDIT_QUEUED_TOPIC0,
    CREDITED_TOPIC0,
    QUEUED_CREDIT_RELEASED_TOPIC0,
    SETTLEMENT_REQUESTED_TOPIC0,
    CreditedEvent,
    CreditQueuedEvent,
    LockCredit,
    QueuedCreditReleasedEvent,
    SettlementRequestedEvent,
    lock_attestation_tuple,
    lock_credit_from_tuple,
    lock_key,
)
from chains.evm.contract import (
    b32,
)
from chains.evm.sender import FeePolicy, SendEvent
from chains.evm.venue_admin import VenueAdmin
from chains.evm.venue_base import CreditOutcome
from chains.evm.venue_trading import VenueTrading
from shared.chain import ChainRef
from shared.errors import (
    AlreadyConsumed,
    ChainError,
    InputError,
    TxRejected,
)
from shared.messages import LockAttestation
from shared.settings import RetrySettings

__all__ = ["VenueClient"]





class VenueClient(VenueTrading, VenueAdmin):
    """``IsolatedMarginVenue`` on the venue chain: credit attested locks, request releases, trade
    and liquidate positions, read margins, and (owner / RISK role) set markets and buffers."""

    @classmethod
    async def connect(cls, rpc_urls: Sequence[str], venue: str, *, chain: ChainRef,
                      sender_key: str | None = None, retry: RetrySettings,
                      max_block_range: int = 2_000,
                      fees: FeePolicy | None = None,
                      on_send: Callable[[SendEvent], None] | None = None) -> VenueClient:
        """Connect and check the chain id and that ``venue`` has code.

        Args:
            sender_key: signs transactions (relayer for credits, position owner for
                ``request_release``); None gives a read-only client.

        Raises:
            RpcUnavailable: no endpoint answered. ConfigError: wrong chain or no contract.
        """
        return await cls._open(rpc_urls, venue, chain=chain, sender_key=sender_key, retry=retry,
                               max_block_range=max_block_range,
                               fees=fees, on_send=on_send)

    async def is_consumed(self, src_chain_id: int, src_vault: bytes, lock_id: bytes) -> bool:
        """True once the lock was credited or queued (its replay key is spent)."""
        return bool(await self._view("isConsumed", lock_key(src_chain_id, src_vault, lock_id)))

    async def collateral_of(
        self, position_key: bytes, src_chain_id: int, src_asset: bytes
    ) -> int:
        """Credited collateral of a position from one (source chain, asset), 18 decimals."""
        return int(await self._view("collateralOf", b32(position_key, "position_key"),
                                    src_chain_id, b32(src_asset, "src_asset")))

    async def lock_credit(self, lock_key: bytes) -> LockCredit:
        """The venue's record of one lock (status NONE if never seen)."""
        return lock_credit_from_tuple(await self._view("lockCredit", b32(lock_key, "lock_key")))

    async def credit_batch(self, items: Sequence[tuple[LockAttestation, Sequence[bytes]]], *,
                           timeout_s: float = 60, gas_limit: int | None = None) -> CreditOutcome:
        """Send ``creditBatch``: refused items are skipped on chain, the rest credited/queued.
        ``gas_limit`` given: sent with it, without the node's estimate (the relayer's bound
        from what batches cost; a batch short of gas reverts whole, ``TxRejected`` with its
        transaction id, and nothing of it is consumed).

        Raises:
            InputError: no items. AttestationMalformed: a field out of range (nothing sent).
            TxRejected: the whole transaction reverted (paused, length mismatch...).
            RpcUnavailable, ChainError: see ``_transact``.
        """
        if not items:
            raise InputError("items", "credit_batch needs at least one attestation")
        atts = [lock_attestation_tuple(a) for a, _ in items]
        sigs = [[bytes(s) for s in bundle] for _, bundle in items]
        # The venue reverts a batch that is short of BATCH_ITEM_GAS before any item, so the
        # estimate covers every item and a small margin suffices (state may move a little
        # before the block); a small limit lets a block hold more batches (it packs by limit).
        receipt = await self._transact(
            "creditBatch", lambda c: self._encoded(c, "creditBatch", [atts, sigs]),
            timeout_s=timeout_s, extra_gas=lambda gas: gas // 10 + 100_000, gas=gas_limit)
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
        key = b32(lock_key, "lock_key")
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
        args = (b32(position_key, "position_key"), src_chain_id, b32(src_vault, "src_vault"),
                b32(lock_id, "lock_id"), amount)
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
