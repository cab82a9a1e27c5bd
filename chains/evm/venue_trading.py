"""The venue client's trading part: positions, trades, liquidation, markets, buffers,
collateral configuration and automated top-ups (DESIGN §2.5, §3). I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak

from chains.evm.contract import (
    address_arg,
    b32,
    signed_size_arg,
    size_arg,
    topic0,
)
from chains.evm.venue_base import (
    BatchLiquidationOutcome,
    TradeOutcome,
    VenueContract,
    split_liquidations,
)
from chains.evm.venue_codec import (
    BUFFER_SET_TOPIC0,
    LIQUIDATED_TOPIC0,
    SHORTFALL_TOPIC0,
    TOPUP_RULE_CLEARED_TOPIC0,
    TOPUP_RULE_SET_TOPIC0,
    TRADED_TOPIC0,
    BufferSetEvent,
    CollateralConfig,
    LiquidatedEvent,
    MarginState,
    MarketParams,
    PositionState,
    ShortfallEvent,
    ToppedUp,
    TopUpRuleState,
    TradedEvent,
    collateral_config_from_tuple,
    collateral_config_tuple,
    margin_state_from_tuple,
    market_params_from_tuple,
    market_params_tuple,
    position_state_from_tuple,
)
from shared.errors import (
    ChainError,
    InputError,
)

__all__ = ["VenueTrading"]

_PPM = 10**6
_TOPPED_UP_TOPIC0 = keccak(text="ToppedUp(bytes32,bytes32,bytes32,uint256,uint256)")




class VenueTrading(VenueContract):
    """Trading, liquidation and the RISK role's market settings on ``IsolatedMarginVenue``."""

    # ----- trading (DESIGN §2.5, §3) ---------------------------------------------------------

    async def position_of(self, position_key: bytes) -> PositionState:
        """The position's trade (market, size, entry) and equity ledger (``positionOf``)."""
        return position_state_from_tuple(
            await self._view("positionOf", b32(position_key, "position_key")))

    async def margin_of(self, position_key: bytes) -> MarginState:
        """(C, E, IM, MM, N) at the oracle's latest prices (``marginOf``; no age check).

        Raises: ChainError (e.g. ``CollateralNotPriced``, ``PriceUnavailable``), RpcUnavailable.
        """
        return margin_state_from_tuple(
            await self._view("marginOf", b32(position_key, "position_key")))

    async def market_of(self, market: bytes) -> tuple[MarketParams, int]:
        """(owner-set parameters, current buffer ppm) of a market (oracle id 0: unknown)."""
        params, buffer_ppm = await self._view("marketOf", b32(market, "market"))
        return market_params_from_tuple(params), int(buffer_ppm)

    async def position_locks(self, position_key: bytes) -> list[bytes]:
        """Lock keys (remaining > 0) backing the position."""
        keys = await self._view("positionLocks", b32(position_key, "position_key"))
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
        size = signed_size_arg(size_e18, "size_e18")
        args = (b32(position_key, "position_key"), b32(market, "market"), size)
        return await self._trade("open", args, timeout_s)

    async def increase_position(self, position_key: bytes, delta_e18: int, *,
                                timeout_s: float = 60) -> TradeOutcome:
        """Add ``delta_e18`` (> 0) to the open trade, same side. Raises: as ``open_position``."""
        args = (b32(position_key, "position_key"), size_arg(delta_e18, "delta_e18"))
        return await self._trade("increase", args, timeout_s)

    async def reduce_position(self, position_key: bytes, delta_e18: int, *,
                              timeout_s: float = 60) -> TradeOutcome:
        """Close ``delta_e18`` (0 < delta <= |size|) of the trade; realized PnL and the fee are
        booked to the position's ledger. Raises: TxRejected (ReduceExceedsSize, NoOpenTrade...).
        """
        args = (b32(position_key, "position_key"), size_arg(delta_e18, "delta_e18"))
        return await self._trade("reduce", args, timeout_s)

    async def close_position(self, position_key: bytes, *,
                             timeout_s: float = 60) -> TradeOutcome:
        """Close the whole trade; a booked loss is seized from the position's own locks
        (``settlements``), any excess recorded as ``shortfall``. Raises: TxRejected."""
        return await self._trade("close", (b32(position_key, "position_key"),), timeout_s)

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
        args = (b32(position_key, "position_key"), fraction_ppm)
        return await self._trade("liquidate", args, timeout_s)

    async def liquidate_batch(self, items: Sequence[tuple[bytes, int]], *,
                              timeout_s: float = 60) -> BatchLiquidationOutcome:
        """Keeper: ``liquidateBatch`` over ``(position key, fraction ppm)`` items, in the order
        given (the keeper puts the most underwater first). Each item is re-checked on chain in
        its own frame; one that no longer qualifies is skipped and never reverts the others.

        Raises:
            InputError: no items or a bad fraction (nothing sent). TxRejected: the whole
            transaction reverted (e.g. out of gas for the first item). RpcUnavailable.
        """
        if not items:
            raise InputError("items", "liquidate_batch needs at least one position")
        keys, fractions = [], []
        for key, fraction in items:
            if (isinstance(fraction, bool) or not isinstance(fraction, int)
                    or not 0 < fraction <= _PPM):
                raise InputError("fraction_ppm", f"must be an int in 1..1000000, got {fraction!r}")
            keys.append(b32(key, "position_key"))
            fractions.append(fraction)
        # The venue reverts a batch short of BATCH_ITEM_GAS before any item, so the estimate
        # covers every item; a small margin lets a block hold more batches.
        receipt = await self._transact(
            "liquidateBatch", lambda c: self._encoded(c, "liquidateBatch", [keys, fractions]),
            timeout_s=timeout_s, extra_gas=lambda gas: gas // 10 + 100_000)
        return BatchLiquidationOutcome(
            "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["blockNumber"]),
            int(receipt["gasUsed"]), split_liquidations(keys, self._receipt_events(receipt)))

    async def set_market(self, market: bytes, params: MarketParams, *,
                         timeout_s: float = 60) -> str:
        """Owner: create or change a market. Returns the tx hash.
        Raises: InputError (the contract's rules, checked first), TxRejected."""
        args = (b32(market, "market"), market_params_tuple(params))
        return await self._send("setMarket", args, timeout_s)

    async def set_buffer(self, market: bytes, buffer_ppm: int, *,
                         timeout_s: float = 60) -> BufferSetEvent:
        """RISK role: set a market's maintenance buffer (<= its buffer_max_ppm).
        Raises: InputError, TxRejected (NotRiskUpdater, BufferAboveMax, UnknownMarket)."""
        if isinstance(buffer_ppm, bool) or not isinstance(buffer_ppm, int) or buffer_ppm < 0:
            raise InputError("buffer_ppm", f"must be a non-negative int, got {buffer_ppm!r}")
        args = (b32(market, "market"), buffer_ppm)
        receipt = await self._transact("setBuffer", lambda c: c.functions.setBuffer(*args),
                                       timeout_s=timeout_s)
        return self._mined(receipt, BufferSetEvent, "setBuffer")

    async def collateral_config_of(self, src_chain_id: int, src_asset: bytes
                                   ) -> CollateralConfig:
        """Oracle id, haircut and price bounds of a collateral lane (oracle id 0: unpriced)."""
        return collateral_config_from_tuple(
            await self._view("collateralConfigOf", src_chain_id, b32(src_asset, "src_asset")))

    async def set_collateral(self, src_chain_id: int, src_asset: bytes,
                             config: CollateralConfig, *, timeout_s: float = 60) -> str:
        """Owner: price the collateral lane (src_chain_id, src_asset). Returns the tx hash.
        Raises: InputError (the contract's rules, checked first), TxRejected."""
        args = ((src_chain_id, b32(src_asset, "src_asset"), collateral_config_tuple(config)),)
        return await self._send("setCollateral", args, timeout_s)

    async def set_oracle(self, oracle: str, *, timeout_s: float = 60) -> str:
        """Owner: the MarkOracle the venue reads. Returns the tx hash."""
        return await self._send("setOracle", (address_arg(oracle),), timeout_s)

    async def set_risk_updater(self, account: str, *, timeout_s: float = 60) -> str:
        """Owner: name the RISK role (who may call ``set_buffer``). Returns the tx hash."""
        return await self._send("setRiskUpdater", (address_arg(account),), timeout_s)

    async def risk_events(
        self, start: int, end: int
    ) -> list[TradedEvent | LiquidatedEvent | ShortfallEvent | BufferSetEvent]:
        """Traded, Liquidated, Shortfall and BufferSet logs in ``start..end``, in chain order."""
        topics = (TRADED_TOPIC0, LIQUIDATED_TOPIC0, SHORTFALL_TOPIC0, BUFFER_SET_TOPIC0)
        found = [self._decode(raw) for raw in await self._logs(start, end, topics)]
        return [e for e in found
                if isinstance(e, (TradedEvent, LiquidatedEvent, ShortfallEvent, BufferSetEvent))]

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
        pos, src = b32(position_key, "position_key"), b32(source_key, "source_key")
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
        return await self._send("clearTopUpRule", (b32(position_key, "position_key"),),
                                timeout_s)

    async def topup_rule_of(self, position_key: bytes) -> TopUpRuleState | None:
        """The position's top-up rule, or None."""
        source, threshold, max_usd, used = await self._view(
            "topUpRuleOf", b32(position_key, "position_key"))
        if bytes(source) == bytes(32):
            return None
        return TopUpRuleState("0x" + bytes(source).hex(), int(threshold), int(max_usd),
                              int(used))

    async def topup_rule_changes(self, start: int, end: int) -> list[tuple[str, bool]]:
        """``(position key hex, has a rule now)`` per ``TopUpRuleSet`` / ``TopUpRuleCleared``
        log in ``start..end``, in chain order."""
        logs = await self._logs(start, end, [TOPUP_RULE_SET_TOPIC0, TOPUP_RULE_CLEARED_TOPIC0])
        return [("0x" + bytes(raw["topics"][1]).hex(), topic0(raw) == TOPUP_RULE_SET_TOPIC0)
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
        args = (b32(position_key, "position_key"), b32(lock_key, "lock_key"))
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
