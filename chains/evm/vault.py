"""The source vault's client (``CollateralVault``): settlements verified by the same quorum,
the settled set, lock records. I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.evm.bridge_codec import (
    SETTLED_TOPIC0,
    SETTLEMENT_SKIPPED_TOPIC0,
    SettledEvent,
    SkippedItem,
    VaultLock,
    decode_settled,
    decode_skipped_item,
    settlement_tuple,
    vault_lock_from_tuple,
)
from chains.evm.contract import (
    ContractClient,
    address_arg,
    b32,
    topic0,
)
from chains.evm.sender import FeePolicy, SendEvent
from shared.chain import ChainRef
from shared.errors import (
    AlreadyConsumed,
    InputError,
    TxRejected,
)
from shared.messages import Settlement
from shared.settings import RetrySettings

__all__ = ["SettleBatchOutcome", "VaultClient"]


@dataclass(frozen=True, slots=True)
class SettleBatchOutcome:
    """A mined ``settleBatch``: settled events and skipped reasons by settlement id."""

    tx_hash: str
    block_number: int
    gas_used: int
    settled: dict[bytes, SettledEvent]
    skipped: dict[bytes, str]





class VaultClient(ContractClient):
    """``CollateralVault`` on a collateral chain: execute attested settlements (the way back)."""

    _ARTIFACT = "CollateralVault"

    @classmethod
    async def connect(cls, rpc_urls: Sequence[str], vault: str, *, chain: ChainRef,
                      sender_key: str | None = None, retry: RetrySettings,
                      max_block_range: int = 2_000,
                      fees: FeePolicy | None = None,
                      on_send: Callable[[SendEvent], None] | None = None) -> VaultClient:
        """Connect and check the chain id and that ``vault`` has code.

        Raises:
            RpcUnavailable: no endpoint answered. ConfigError: wrong chain or no contract.
        """
        return await cls._open(rpc_urls, vault, chain=chain, sender_key=sender_key, retry=retry,
                               max_block_range=max_block_range,
                               fees=fees, on_send=on_send)

    def _receipt_events(self, receipt: Mapping[str, Any]) -> list[Any]:
        events: list[Any] = []
        for log in receipt["logs"]:
            if not self._emitted(log):
                continue
            if topic0(log) == SETTLED_TOPIC0:
                events.append(decode_settled(log, chain=self.chain.key))
            elif topic0(log) == SETTLEMENT_SKIPPED_TOPIC0:
                events.append(decode_skipped_item(log, name="SettlementSkipped",
                                                  chain=self.chain.key,
                                                  error_abis=self._error_abis))
        return events

    async def is_settled(self, settlement_id: bytes) -> bool:
        return bool(await self._view("isSettled", b32(settlement_id, "settlement_id")))

    async def locked_total(self, asset: str) -> int:
        """Sum of measured lock amounts of ``asset`` (never decreases)."""
        return int(await self._view("lockedTotal", address_arg(asset)))

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

    async def settle_batch(self, items: Sequence[tuple[Settlement, Sequence[bytes]]], *,
                           timeout_s: float = 60) -> SettleBatchOutcome:
        """``settleBatch``: every attested settlement in its own frame, one quorum check each;
        a refused item (already consumed, bad quorum...) is skipped and never reverts the others.

        Raises:
            InputError: no items. TxRejected: the whole transaction reverted. RpcUnavailable.
        """
        if not items:
            raise InputError("items", "settle_batch needs at least one settlement")
        args = [settlement_tuple(s) for s, _ in items]
        sigs = [[bytes(x) for x in bundle] for _, bundle in items]
        receipt = await self._transact(
            "settleBatch", lambda c: self._encoded(c, "settleBatch", [args, sigs]), timeout_s=timeout_s,
            extra_gas=lambda gas: gas // 10 + 100_000)
        events = self._receipt_events(receipt)
        return SettleBatchOutcome(
            "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["blockNumber"]),
            int(receipt["gasUsed"]),
            settled={e.settlement_id: e for e in events if isinstance(e, SettledEvent)},
            skipped={e.key: e.reason for e in events if isinstance(e, SkippedItem)})

    async def settled_events(self, start: int, end: int) -> list[SettledEvent]:
        """This vault's Settled logs in ``start..end`` (inclusive), in chain order."""
        raws = await self._logs(start, end, (SETTLED_TOPIC0,))
        return [decode_settled(raw, chain=self.chain.key) for raw in raws]
