"""The reference venue (``IsolatedMarginVenue`` + its ``MarkOracle``) as a VenueAdapter (I/O).

Registered as the built-in venue ``reference`` (:mod:`orchestrator.venues.registry`).

Reads go through :class:`chains.evm.batch_calls.BatchReader`: every snapshot is read at ONE block
height in five concurrent rounds of batched ``eth_call`` s — positions; the venue's oracle,
markets and position locks; lock records; collateral configurations and amounts; oracle
prices — so market parameters, collateral configurations and prices are read once per call
whatever the number of positions. Sends (liquidations, credits) and event scans go through
:class:`chains.evm.venue.VenueClient` (serialized nonces, decoded refusals).

A snapshot values collateral the way the venue does (``VenueCore._collateralValue``): one lot
per distinct (source chain, asset) lane with a non-zero amount, each floored on its own, named
by the lane's oracle feed so a lot priced by the market's own feed moves with the mark. The
market parameters are the venue's own record; only the volatility estimator's knobs come from
:class:`RiskTuning`. Finality: the snapshot is read at ``latest``; the venue re-checks
``E < MM`` on its own oracle when the liquidation lands, so nothing here needs finality.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import structlog

from chains.evm.artifacts import load_artifact
from chains.evm.batch_calls import BatchReader, Call, Reverted, ViewFunction, view_functions
from chains.evm.bridge_codec import SettlementRequestedEvent, lock_credit_from_tuple
from chains.evm.sender import FeePolicy, SendEvent
from chains.evm.venue import VenueClient
from chains.evm.venue_codec import (
    CollateralConfig,
    MarketParams,
    PositionState,
    collateral_config_from_tuple,
    margin_state_from_tuple,
    market_params_from_tuple,
    position_state_from_tuple,
)
from orchestrator.risk import CollateralLot, CollateralParams, MissingPrice, RiskParams
from orchestrator.risk import Position as CorePosition
from orchestrator.venues.errors import LiquidationRefused, refusal_from_reason
from orchestrator.venues.protocol import (
    CreditReceipt,
    LiquidationOutcome,
    PositionSnapshot,
    PriceQuote,
    RiskTuning,
    SettlementRequest,
    VenueMargin,
)
from shared.chain import ChainKind, ChainRef
from shared.errors import ChainError, ConfigError, InputError, TxRejected
from shared.messages import LockAttestation
from shared.settings import RetrySettings, Settings

__all__ = ["ReferenceVenue", "open_reference_venue", "position_snapshot"]

_ANY_AGE = 2**256 - 1  # getMark max age of a view: the venue values positions at any age

log = structlog.get_logger(__name__)
Lane = tuple[int, bytes]  # (source chain id, source asset)


@functools.cache
def _fns(artifact: str) -> dict[str, ViewFunction]:
    return view_functions(load_artifact(artifact).abi)


@functools.cache
def _config_topics() -> list[str]:
    from eth_utils.abi import event_abi_to_log_topic

    abi = load_artifact("IsolatedMarginVenue").abi
    return ["0x" + event_abi_to_log_topic(cast(Any, e)).hex() for e in abi
            if e.get("type") == "event" and e.get("name") in ("MarketSet", "CollateralConfigSet")]


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def _key(value: str | bytes, field: str = "position_key") -> bytes:
    if isinstance(value, (bytes, bytearray)) and len(value) == 32:
        return bytes(value)
    if isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise InputError(field, f"must be 0x + 64 hex digits, got {value!r}")


def position_snapshot(key: bytes, pos: PositionState, market: MarketParams, buffer_ppm: int,
                      lanes: Sequence[tuple[CollateralConfig, int]],
                      quotes: Mapping[str, PriceQuote], *, venue_name: str, tuning: RiskTuning,
                      height: int = 0, venue_margin: VenueMargin | None = None,
                      params_cache: dict[Any, RiskParams] | None = None) -> PositionSnapshot:
    """One open position as the core sees it, from the venue's records (pure).

    ``lanes`` are the position's (collateral config, amount18) per distinct lane, in the
    venue's lock order; lanes with amount 0 are skipped, as the venue skips them. Lanes sharing
    a feed with different haircuts keep the highest (the core prices a feed one way).

    Raises:
        MissingPrice: a needed feed has no quote, or a non-empty lane is not priced.
    """
    base = _hex(market.oracle_id)
    lots: list[CollateralLot] = []
    collateral: dict[str, CollateralParams] = {}
    for cfg, amount18 in lanes:
        if amount18 == 0:
            continue
        if not any(cfg.oracle_id):
            raise MissingPrice(f"unpriced collateral lane of {_hex(key)}")
        feed = _hex(cfg.oracle_id)
        lots.append(CollateralLot(feed, amount18))
        known = collateral.get(feed)
        if known is None or cfg.haircut_ppm > known.haircut_ppm:
            collateral[feed] = CollateralParams(haircut_ppm=cfg.haircut_ppm, stable=feed != base,
                                                min_price_e8=cfg.min_price_e8,
                                                max_price_e8=cfg.max_price_e8)
    if not collateral:  # an open trade with no collateral left: still valued (C = 0)
        collateral[base] = CollateralParams(haircut_ppm=0, min_price_e8=market.min_price_e8,
                                            max_price_e8=market.max_price_e8)
    prices: dict[str, int] = {}
    publish = 0
    for feed in {base, *(lot.asset for lot in lots)}:
        quote = quotes.get(feed)
        if quote is None:
            raise MissingPrice(feed)
        prices[feed], publish = quote.price_e8, max(publish, quote.publish_time)
    cache_key = (market, tuple(sorted(collateral.items())))
    params = params_cache.get(cache_key) if params_cache is not None else None
    if params is None:
        params = _risk_params(market, base, collateral, venue_name, tuning)
        if params_cache is not None:
            params_cache[cache_key] = params
    # The venue keeps no version counter; the last liquidation time changes with every step,
    # so (key, last step, price tick) names one trigger (the plan id).
    core = CorePosition(key=_hex(key), version=pos.last_liquidation, size_e18=pos.size_e18,
                        entry_e8=pos.entry_e8,
                        collateral=tuple(sorted(lots, key=lambda lot: lot.asset)),
                        accrued_fees_usd_e18=-pos.realized_usd_e18)
    return PositionSnapshot(_hex(key), _hex(pos.market), core, params, prices, publish,
                            buffer_ppm, pos.last_liquidation, height, venue_margin)


def _risk_params(market: MarketParams, base: str, collateral: dict[str, CollateralParams],
                 venue_name: str, tuning: RiskTuning) -> RiskParams:
    return RiskParams(
        venue=venue_name, market=base, base_asset=base, imr_ppm=market.imr_ppm,
        mmr_ppm=market.mmr_ppm, buffer_k_ppm=tuning.buffer_k_ppm,
        buffer_horizon_s=tuning.buffer_horizon_s, buffer_max_ppm=market.buffer_max_ppm,
        vol_lambda_ppm=tuning.vol_lambda_ppm, vol_sigma0_ppb=0,
        liq_fee_ppm=market.liq_fee_ppm, fee_cap_usd_e18=market.liq_fee_cap_usd_e18,
        step_max_ppm=market.step_max_ppm, full_ratio_ppm=market.full_ratio_ppm,
        dust_usd_e18=market.dust_notional_usd_e18, cooldown_s=market.cooldown_s,
        max_price_age_user_s=market.max_age_user_s,
        max_price_age_liquidation_s=market.max_age_liq_s,
        min_price_e8=market.min_price_e8, max_price_e8=market.max_price_e8,
        collateral=collateral,
    )


def _strict(answers: Sequence[Any], chain: str) -> Sequence[Any]:
    """Views that never revert on the reference venue: a revert means a wrong contract."""
    if any(isinstance(a, Reverted) for a in answers):
        raise ChainError(f"{chain}: a venue view reverted (is this an IsolatedMarginVenue?)")
    return answers


def _settlement(e: SettlementRequestedEvent) -> SettlementRequest:
    return SettlementRequest(_hex(e.settlement_id), e.src_chain_id, _hex(e.src_vault),
                             _hex(e.lock_id), _hex(e.recipient), e.amount, e.kind, e.height,
                             e.tx_id, e.log_index)


class ReferenceVenue:
    """``IsolatedMarginVenue`` on one EVM chain, behind :class:`VenueAdapter`."""

    def __init__(self, client: VenueClient, reader: BatchReader, *,
                 tuning: RiskTuning | None = None, with_venue_margin: bool = False,
                 deployment_height: int = 0, max_block_range: int = 2_000) -> None:
        self.client, self.reader = client, reader
        self.chain: ChainRef = client.chain
        self.address = client.address
        self.name = f"{client.chain.key}:{client.address}"
        self.tuning = tuning or RiskTuning()
        self.with_venue_margin = with_venue_margin
        self._feeds: set[str] = set()
        self._feed_cursor, self._max_range = deployment_height, max_block_range

    @classmethod
    async def connect(cls, rpc_urls: Sequence[str], venue: str, *, chain: ChainRef,
                      retry: RetrySettings, sender_key: str | None = None,
                      tuning: RiskTuning | None = None, batch_size: int = 100,
                      max_in_flight: int = 8, with_venue_margin: bool = False,
                      deployment_height: int = 0, max_block_range: int = 2_000,
                      fees: FeePolicy | None = None,
                      on_send: Callable[[SendEvent], None] | None = None) -> ReferenceVenue:
        """Connect (checks the chain id and the venue's code).

        Args:
            sender_key: signs liquidations and credits; None gives a read-only adapter.
            batch_size, max_in_flight: calls per JSON-RPC batch; batches open at once.
            with_venue_margin: also read the venue's ``marginOf`` into each snapshot.
            fees, on_send: the sending layer's pricing and its event observer.

        Raises:
            RpcUnavailable: no endpoint answered. ConfigError: wrong chain or no contract.
        """
        client = await VenueClient.connect(rpc_urls, venue, chain=chain, sender_key=sender_key,
                                           retry=retry, max_block_range=max_block_range,
                                           fees=fees, on_send=on_send)
        reader = BatchReader(chain, rpc_urls, retry=retry, batch_size=batch_size,
                             max_in_flight=max_in_flight)
        return cls(client, reader, tuning=tuning, with_venue_margin=with_venue_margin,
                   deployment_height=deployment_height, max_block_range=max_block_range)

    # ----- reads --------------------------------------------------------------------------

    def _venue(self, fn: str, *args: Any) -> Call:
        return Call(self.address, _fns("IsolatedMarginVenue")[fn], args)

    async def read_positions(self, keys: Sequence[str]) -> list[PositionSnapshot]:
        """Every open position among ``keys`` at one height (see the module docstring).

        A position that cannot be valued (a feed without a price, an unpriced lane) is left
        out and logged. Raises: InputError (a malformed key), RpcUnavailable, ChainError.
        """
        raw = list(dict.fromkeys(_key(k) for k in keys))
        if not raw:
            return []
        height = await self.reader.block_number()
        at = functools.partial(self.reader.call_many, block=height)
        chain = self.chain.key
        states = [position_state_from_tuple(s) for s in _strict(
            await at([self._venue("positionOf", k) for k in raw]), chain)]
        opened = [(k, s) for k, s in zip(raw, states, strict=True) if s.is_open]
        if not opened:
            return []
        markets = sorted({s.market for _, s in opened})
        calls = [self._venue("oracle")] + [self._venue("marketOf", m) for m in markets]
        calls += [self._venue("positionLocks", k) for k, _ in opened]
        if self.with_venue_margin:
            calls += [self._venue("marginOf", k) for k, _ in opened]
        answers = await at(calls)
        n_markets, n_open = len(markets), len(opened)
        _strict(answers[:1 + n_markets + n_open], chain)
        oracle = str(answers[0])
        market_of = {m: (market_params_from_tuple(a[0]), int(a[1]))
                     for m, a in zip(markets, answers[1:1 + n_markets], strict=True)}
        locks_of = [[bytes(x) for x in a] for a in answers[1 + n_markets:1 + n_markets + n_open]]
        margins = answers[1 + n_markets + n_open:]
        lanes_of = await self._lanes(at, locks_of)
        amounts, configs = await self._amounts(at, opened, lanes_of)
        feeds = {_hex(p.oracle_id) for p, _ in market_of.values()}
        feeds |= {_hex(c.oracle_id) for c in configs.values() if any(c.oracle_id)}
        quotes = await self._quotes(at, oracle, sorted(feeds))
        self._feeds |= feeds
        out: list[PositionSnapshot] = []
        cache: dict[Any, RiskParams] = {}
        for i, (key, state) in enumerate(opened):
            market, buffer_ppm = market_of[state.market]
            lanes = [(configs[lane], amounts[(key, lane)]) for lane in lanes_of[i]]
            margin = None
            if self.with_venue_margin and not isinstance(margins[i], Reverted):
                m = margin_state_from_tuple(margins[i])
                margin = VenueMargin(m.collateral_usd_e18, m.equity_usd_e18, m.initial_usd_e18,
                                     m.maintenance_usd_e18, m.notional_usd_e18)
            try:
                out.append(position_snapshot(
                    key, state, market, buffer_ppm, lanes, quotes, venue_name=self.name,
                    tuning=self.tuning, height=height, venue_margin=margin, params_cache=cache))
            except MissingPrice as exc:
                log.warning("position_not_valued", venue=self.name, position=_hex(key),
                            height=height, reason=str(exc))
        return out

    async def _lanes(self, at: Any, locks_of: list[list[bytes]]) -> list[list[Lane]]:
        """Distinct (source chain, asset) lanes of each position, in its lock order."""
        lock_keys = sorted({k for locks in locks_of for k in locks})
        credits = _strict(await at([self._venue("lockCredit", k) for k in lock_keys]),
                          self.chain.key)
        lane_of = {}
        for k, raw in zip(lock_keys, credits, strict=True):
            c = lock_credit_from_tuple(raw)
            lane_of[k] = (c.src_chain_id, c.src_asset)
        return [list(dict.fromkeys(lane_of[k] for k in locks)) for locks in locks_of]

    async def _amounts(self, at: Any, opened: list[tuple[bytes, PositionState]],
                       lanes_of: list[list[Lane]]
                       ) -> tuple[dict[tuple[bytes, Lane], int], dict[Lane, CollateralConfig]]:
        lanes = sorted({lane for lanes in lanes_of for lane in lanes})
        pairs = [(key, lane) for (key, _), ls in zip(opened, lanes_of, strict=True)
                 for lane in ls]
        calls = [self._venue("collateralConfigOf", *lane) for lane in lanes]
        calls += [self._venue("collateralOf", key, *lane) for key, lane in pairs]
        answers = _strict(await at(calls), self.chain.key)
        configs = {lane: collateral_config_from_tuple(a)
                   for lane, a in zip(lanes, answers[:len(lanes)], strict=True)}
        amounts = {pair: int(a) for pair, a in zip(pairs, answers[len(lanes):], strict=True)}
        return amounts, configs

    async def _quotes(self, at: Any, oracle: str, feeds: Sequence[str]) -> dict[str, PriceQuote]:
        """Marks of ``feeds`` at any age (as the venue's views read them); a feed without a
        mark (fewer valid sources than its minimum) is left out."""
        get_mark = _fns("MarkOracle")["getMark"]
        answers = await at([Call(oracle, get_mark, (bytes.fromhex(f[2:]), _ANY_AGE))
                            for f in feeds])
        return {f: PriceQuote(f, int(a[0]), int(a[1]))
                for f, a in zip(feeds, answers, strict=True) if not isinstance(a, Reverted)}

    async def prices(self) -> Mapping[str, PriceQuote]:
        """Latest price of every feed the venue's markets and collateral lanes name.

        Feeds are found from the venue's MarketSet / CollateralConfigSet logs (scanned once,
        then incrementally) and from the snapshots read so far.
        """
        height = await self.reader.block_number()
        await self._scan_feeds(height)
        at = functools.partial(self.reader.call_many, block=height)
        oracle = str((await at([self._venue("oracle")]))[0])
        return await self._quotes(at, oracle, sorted(self._feeds))

    async def _scan_feeds(self, head: int) -> None:
        for lo in range(self._feed_cursor, head + 1, self._max_range):
            hi = min(lo + self._max_range - 1, head)
            logs = await self.reader.request("eth_getLogs", [{
                "fromBlock": hex(lo), "toBlock": hex(hi), "address": self.address,
                "topics": [_config_topics()]}])
            for entry in logs or []:
                # SECURITY: the node's address filter is a promise; check the emitter too.
                if entry.get("removed") or str(entry.get("address", "")).lower() != (
                        self.address.lower()):
                    continue
                data = bytes.fromhex(str(entry.get("data", "0x"))[2:])
                if len(data) >= 32 and any(data[:32]):  # the struct's first word: oracle id
                    self._feeds.add(_hex(data[:32]))
            self._feed_cursor = hi + 1

    async def chain_time(self) -> int:
        """Timestamp of the newest block (the venue's clock)."""
        block = await self.reader.request("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict) or "timestamp" not in block:
            raise ChainError(f"{self.chain.key}: no latest block")
        return int(block["timestamp"], 16)

    async def settlement_events(self, start: int, end: int) -> list[SettlementRequest]:
        """SettlementRequested logs of the venue in ``start..end``, in chain order."""
        events = await self.client.events(start, end)
        return [_settlement(e) for e in events if isinstance(e, SettlementRequestedEvent)]

    # ----- sends --------------------------------------------------------------------------

    async def submit_liquidation(self, position_key: str, fraction_ppm: int
                                 ) -> LiquidationOutcome:
        """``liquidate(key, fraction_ppm)`` with the sender key; the venue re-checks E < MM.

        Raises:
            LiquidationRefused: typed from the venue's custom error (``NotLiquidatable`` ->
                PositionNotLiquidatable, ``NoOpenTrade`` -> NoOpenPosition, ...).
            InputError, ConfigError (no sender key), RpcUnavailable, ChainError.
        """
        key = _key(position_key)
        before = await self.client.position_of(key)
        try:
            out = await self.client.liquidate(key, fraction_ppm)
        except TxRejected as exc:
            handled = await self._handled_meanwhile(key, before) if exc.tx_id else None
            if handled is not None:
                # A redelivered task raced the first attempt's transaction (RT-01): the venue
                # took the trigger once; this mined revert is the no-op it looks like.
                raise refusal_from_reason(self.chain.key, _hex(key), handled,
                                          exc.tx_id) from exc
            raise refusal_from_reason(self.chain.key, _hex(key), exc.reason, exc.tx_id) from exc
        liq = out.liquidated
        if liq is None:
            raise ChainError(f"{self.chain.key}: liquidate {out.tx_hash} emitted no Liquidated")
        return LiquidationOutcome(
            position_key=_hex(key), tx_id=out.tx_hash, height=out.block_number, full=liq.full,
            closed_size_e18=liq.closed_size_e18, mark_e8=liq.mark_e8,
            fee_usd_e18=liq.fee_usd_e18, plan_tick=liq.plan_tick,
            settlements=tuple(_settlement(e) for e in out.settlements),
            shortfall_usd_e18=out.shortfall.usd_e18 if out.shortfall else 0)

    async def submit_liquidations(self, plans: Sequence[tuple[str, int]]
                                  ) -> list[LiquidationOutcome | LiquidationRefused]:
        """``liquidateBatch`` over ``(position key, fraction ppm)`` in the order given; one
        result per plan: its outcome, or the typed refusal of an item the venue skipped.

        Raises:
            LiquidationRefused: the whole transaction was refused (nothing liquidated).
            InputError, ConfigError (no sender key), RpcUnavailable, ChainError.
        """
        items = [(_key(k), fraction) for k, fraction in plans]
        try:
            out = await self.client.liquidate_batch(items)
        except TxRejected as exc:
            raise LiquidationRefused(self.chain.key, _hex(items[0][0]), exc.reason,
                                     tx_id=exc.tx_id) from exc
        results: list[LiquidationOutcome | LiquidationRefused] = []
        for item in out.items:
            liq = item.liquidated
            if liq is None:
                results.append(refusal_from_reason(self.chain.key, _hex(item.position_key),
                                                   item.skipped or "unknown", out.tx_hash))
                continue
            results.append(LiquidationOutcome(
                position_key=_hex(item.position_key), tx_id=out.tx_hash,
                height=out.block_number, full=liq.full, closed_size_e18=liq.closed_size_e18,
                mark_e8=liq.mark_e8, fee_usd_e18=liq.fee_usd_e18, plan_tick=liq.plan_tick,
                settlements=tuple(_settlement(e) for e in item.settlements),
                shortfall_usd_e18=item.shortfall.usd_e18 if item.shortfall else 0))
        return results

    async def _handled_meanwhile(self, key: bytes, before: Any) -> str | None:
        """The no-op reason if the position was closed or liquidated after ``before`` was
        read (``NoOpenTrade`` / ``LiquidationCooldown``), else None."""
        now = await self.client.position_of(key)
        if not now.is_open:
            return "NoOpenTrade"
        if now.last_liquidation != before.last_liquidation or now.size_e18 != before.size_e18:
            return "LiquidationCooldown"
        return None

    async def credit(self, attestation: LockAttestation, sigs: Sequence[bytes]
                     ) -> CreditReceipt:
        """Credit one attested lock. Raises: AlreadyConsumed (a replay), TxRejected."""
        out = await self.client.credit(attestation, sigs)
        return CreditReceipt(out.tx_hash, out.block_number,
                             tuple(_hex(k) for k in out.credited),
                             tuple(_hex(k) for k in out.queued))

    async def aclose(self) -> None:
        await asyncio.gather(self.client.aclose(), self.reader.aclose())


async def open_reference_venue(settings: Settings, *, sender_key: str | None = None,
                               tuning: RiskTuning | None = None, **options: Any
                               ) -> ReferenceVenue:
    """The registry's factory: the venue of ``settings.venue_chain`` (``contracts.venue``).

    Raises: ConfigError (not an EVM chain, no venue configured), RpcUnavailable.
    """
    key = settings.venue_chain
    cfg = settings.chain(key)
    if cfg.kind != ChainKind.EVM:
        raise ConfigError(f"chains.{key}.kind", "the reference venue runs on an EVM chain")
    if "venue" not in cfg.contracts:
        raise ConfigError(f"chains.{key}.contracts.venue", "not configured")
    return await ReferenceVenue.connect(
        [str(u) for u in cfg.rpc_urls], cfg.contracts["venue"],
        chain=ChainRef(key, ChainKind.EVM, cfg.chain_id), retry=settings.retry,
        sender_key=sender_key, tuning=tuning, deployment_height=cfg.deployment_height,
        max_block_range=cfg.max_block_range, fees=FeePolicy.from_settings(settings.fees),
        **options)
