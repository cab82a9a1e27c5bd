"""Read the venue chain into a :class:`RiskAuditInput` for the risk invariants I6–I10 (I/O).

The rules are in :mod:`orchestrator.audit.risk_rules`. Everything comes from the venue chain,
never from Redis: the venue's ``Traded``, ``Liquidated``, ``Shortfall``, ``Credited``,
``CreditQueued``, ``QueuedCreditReleased``, ``SettlementRequested`` and ``InsuranceFunded``
logs, the mark each operation read recomputed by the pure rule from the oracle's sources
(:class:`_Marks`: their state at the block before, then the publisher's and the oracle's logs
replayed in log order, so a price published earlier in the same block counts), and the venue's
state at the block BEFORE each operation, read with ``eth_call`` at that block number
(``positionOf``, ``marketOf``, ``positionLocks``, ``collateralOf``, ``collateralConfigOf``).
A lock's lane and position (``lockCredit``) never change, so they are read at the head.

The lock store's records are read only as the JSON documents I10 inspects for floats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.evm.bridge_codec import lock_credit_from_tuple
from chains.evm.bridge_codec import lock_key as _lock_key
from chains.evm.event_reader import EvmEventReader
from chains.evm.venue_codec import (
    collateral_config_from_tuple,
    market_params_from_tuple,
    position_state_from_tuple,
)
from orchestrator.audit.risk_rules import (
    CreditConversion,
    FeedRead,
    Lane,
    MarketView,
    OpKind,
    PositionView,
    RiskAuditInput,
    RiskOp,
    Seizure,
    Touch,
)
from orchestrator.risk.errors import TooFewSources
from orchestrator.risk.mark import MarkParams, SourceKind, SourceReading, compute_mark
from shared.locks import LockRecord
from shared.settings import Settings

__all__ = ["collect_risk"]

KIND_RELEASE, KIND_SEIZE = 1, 2
_PYTH_EXPO = -8  # FeedPublisher.PYTH_EXPO
_VENUE = "IsolatedMarginVenue"
_VENUE_EVENTS = ("Credited", "CreditQueued", "QueuedCreditReleased", "SettlementRequested",
                 "Traded", "Liquidated", "Shortfall")


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def _tx(e: Any) -> str:
    return str(e["transactionHash"])


def _at(e: Any) -> tuple[int, int]:
    return int(e["blockNumber"]), int(e["logIndex"])


@dataclass(frozen=True, slots=True)
class _Credit:
    position_key: str
    src_chain_id: int
    src_asset: str
    decimals: int


class _Marks:
    """The mark an operation read, recomputed with the pure rule
    (:func:`orchestrator.risk.mark.compute_mark`) for the operation's class (its max age) at
    its block time, from the sources in effect at (block, log): their readings, the oracle's
    parameters and EMA at the block before (``eth_call`` at that height), then the
    ``SourcesPublished`` writes of the devnet's publisher and the ``EmaUpdated`` pokes earlier
    in the same block, replayed in log order. Sources written by anything else within the
    operation's own block are not seen (on the devnet only the publisher writes them)."""

    def __init__(self, raw: EvmEventReader, oracle: str | None, published: Sequence[Any],
                 pokes: Sequence[Any]) -> None:
        self.raw, self.oracle = raw, oracle
        self._published: dict[tuple[str, int], list[Any]] = defaultdict(list)
        self._pokes: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for e in published:
            self._published[(_hex(e["args"]["id"]), int(e["blockNumber"]))].append(e)
        for e in pokes:
            self._pokes[(_hex(e["args"]["id"]), int(e["blockNumber"]))].append(e)
        self._cache: dict[tuple[Any, ...], Any] = {}

    async def _call(self, name: str, *args: Any, block: int) -> Any:
        key = (name, args, block)
        if key not in self._cache:
            self._cache[key] = await self.raw.call(str(self.oracle), "MarkOracle", name, *args,
                                                   block=block)
        return self._cache[key]

    async def at(self, feed: str, where: tuple[int, int], max_age_s: int
                 ) -> tuple[int | None, int | None]:
        """(mark_e8, publish_time) the venue read at ``where`` for ``max_age_s``; (None,
        None) when there was no mark (too few valid sources, or no oracle)."""
        if self.oracle is None:
            return None, None
        height, log_index = where
        oid = bytes.fromhex(feed[2:])
        readings = [SourceReading.from_tuple(t)
                    for t in await self._call("readSources", oid, block=height - 1)]
        if not readings:
            return None, None
        params = MarkParams.validated(dict(zip(
            MarkParams.model_fields, await self._call("params", oid, block=height - 1),
            strict=True)))
        ema_e8 = int((await self._call("ema", oid, block=height - 1))[0])
        for e in self._published.get((feed, height), []):
            if int(e["logIndex"]) < log_index:
                readings = _overlay(readings, e["args"])
        for e in self._pokes.get((feed, height), []):
            if int(e["logIndex"]) < log_index:
                ema_e8 = int(e["args"]["emaE8"])
        try:
            got = compute_mark(readings, params, await self.raw.timestamp(height), max_age_s,
                               ema_e8, oracle_id=feed)
        except TooFewSources:
            return None, None
        return got.mark_e8, got.publish_time_s


def _overlay(readings: Sequence[SourceReading], args: Mapping[str, Any]) -> list[SourceReading]:
    """The readings after one ``SourcesPublished``: a price of 0 leaves its source as it was;
    Chainlink answers scale by the feed's decimals as the publisher does (floor down)."""
    out, t = list(readings), int(args["publishTime"])
    for i, (price, conf) in enumerate(zip(args["pricesE8"], args["confsE8"], strict=True)):
        if not price or i >= len(out):
            continue
        r = out[i]
        if r.kind is SourceKind.PYTH:
            out[i] = SourceReading.pyth(int(price), int(conf), _PYTH_EXPO, t)
        else:
            decimals = -r.expo if r.readable else 8
            answer = (int(price) * 10 ** (decimals - 8) if decimals >= 8
                      else int(price) // 10 ** (8 - decimals))
            out[i] = SourceReading.chainlink(answer, decimals, t)
    return out


class _Reader:
    """Venue views at a block, cached (many operations share a block and a lock)."""

    def __init__(self, raw: EvmEventReader, venue: str) -> None:
        self.raw, self.venue = raw, venue
        self._cache: dict[tuple[Any, ...], Any] = {}

    async def _view(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        key = (name, args, block)
        if key not in self._cache:
            self._cache[key] = await self.raw.call(self.venue, _VENUE, name, *args, block=block)
        return self._cache[key]

    async def credit(self, lock_key: bytes) -> _Credit:
        c = lock_credit_from_tuple(await self._view("lockCredit", lock_key))
        return _Credit(_hex(c.position_key), c.src_chain_id, _hex(c.src_asset), c.decimals)

    async def position(self, key: bytes, block: int) -> tuple[bytes, PositionView]:
        p = position_state_from_tuple(await self._view("positionOf", key, block=block))
        return p.market, PositionView(p.size_e18, p.entry_e8, p.realized_usd_e18,
                                      p.last_liquidation)

    async def market(self, market: bytes, block: int) -> tuple[MarketView, int, int]:
        """(view, min price, max price) of a market at ``block``."""
        params, buffer = await self._view("marketOf", market, block=block)
        p = market_params_from_tuple(params)
        view = MarketView(_hex(p.oracle_id), p.imr_ppm, p.mmr_ppm, int(buffer), p.liq_fee_ppm,
                          p.liq_fee_cap_usd_e18, p.max_age_user_s, p.max_age_liq_s,
                          p.full_ratio_ppm, p.cooldown_s)
        return view, p.min_price_e8, p.max_price_e8

    async def lanes(self, key: bytes, block: int, prices: _Marks,
                    where: tuple[int, int], max_age_s: int) -> tuple[Lane, ...]:
        seen: dict[tuple[int, str], Lane] = {}
        for lock in await self._view("positionLocks", key, block=block):
            c = await self.credit(bytes(lock))
            lane = (c.src_chain_id, c.src_asset)
            if lane in seen:
                continue
            asset = bytes.fromhex(c.src_asset[2:])
            amount18 = int(await self._view("collateralOf", key, c.src_chain_id, asset,
                                            block=block))
            cfg = collateral_config_from_tuple(
                await self._view("collateralConfigOf", c.src_chain_id, asset, block=block))
            feed = _hex(cfg.oracle_id)
            price, publish = await prices.at(feed, where, max_age_s)
            seen[lane] = Lane(c.src_chain_id, c.src_asset, amount18, cfg.haircut_ppm,
                              FeedRead(feed, price, publish, cfg.min_price_e8, cfg.max_price_e8))
        return tuple(seen.values())


def _kind_of_trade(a: Mapping[str, Any]) -> OpKind:
    after, delta = int(a["sizeE18"]), int(a["sizeDeltaE18"])
    before = after - delta
    if after == 0:
        return OpKind.CLOSE
    if abs(after) < abs(before):
        return OpKind.REDUCE
    return OpKind.OPEN if before == 0 else OpKind.INCREASE


async def _op(reader: _Reader, prices: _Marks, kind: OpKind, key: bytes, market: bytes | None,
              where: tuple[int, int], tx: str, exact: bool, **fields: Any) -> RiskOp:
    height = where[0]
    pre_market, before = await reader.position(key, height - 1)
    market = market or pre_market
    view, lo, hi = await reader.market(market, height - 1)
    max_age = view.max_age_liq_s if kind == OpKind.LIQUIDATE else view.max_age_user_s
    price, publish = await prices.at(view.oracle_id, where, max_age)
    return RiskOp(kind=kind, position_key=_hex(key), tx_id=tx, height=height,
                  log_index=where[1], timestamp=await reader.raw.timestamp(height),
                  before=before, market=view, mark=FeedRead(view.oracle_id, price, publish, lo, hi),
                  lanes=await reader.lanes(key, height - 1, prices, where, max_age), exact=exact, **fields)


async def _touches(reader: _Reader, logs: Mapping[str, list[Any]]) -> list[Touch]:
    out = []
    for name in _VENUE_EVENTS:
        for e in logs[name]:
            a = e["args"]
            if name == "SettlementRequested":
                lock = _lock_key(int(a["srcChainId"]), a["srcVault"], a["lockId"])
                key = (await reader.credit(lock)).position_key
            else:
                key = _hex(a["positionKey"])
            out.append(Touch(_tx(e), int(e["blockNumber"]), int(e["logIndex"]), name, key))
    return out


def _exact(touches: Sequence[Touch], key: str, tx: str, where: tuple[int, int]) -> bool:
    """True unless another transaction touched the position earlier in the same block."""
    return not any(t.position_key == key and t.height == where[0] and t.tx_id != tx
                   and t.log_index < where[1] for t in touches)


async def _ops(reader: _Reader, prices: _Marks, logs: Mapping[str, list[Any]],
               touches: Sequence[Touch]) -> list[RiskOp]:
    by_tx: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for name in ("Traded", "Liquidated", "Shortfall", "SettlementRequested"):
        for e in logs[name]:
            by_tx[_tx(e)][name].append(e)
    ops = []
    for tx, events in by_tx.items():
        shortfall = sum(int(e["args"]["usdE18"]) for e in events["Shortfall"]) \
            if events["Shortfall"] else None
        seized, releases = [], []
        for e in events["SettlementRequested"]:
            a = e["args"]
            lock = _lock_key(int(a["srcChainId"]), a["srcVault"], a["lockId"])
            credit = await reader.credit(lock)
            if int(a["kind"]) == KIND_SEIZE:
                seized.append(Seizure(credit.src_chain_id, credit.src_asset, int(a["amount"]),
                                      credit.decimals))
            else:
                releases.append((e, credit))
        for e in events["Traded"]:
            a, where = e["args"], _at(e)
            key = _hex(a["positionKey"])
            ops.append(await _op(
                reader, prices, _kind_of_trade(a), bytes(a["positionKey"]), bytes(a["market"]),
                where, tx, _exact(touches, key, tx, where), price_e8=int(a["priceE8"]),
                fee_usd_e18=int(a["feeUsdE18"]), realized_pnl_usd_e18=int(a["realizedPnlUsdE18"]),
                size_after_e18=int(a["sizeE18"]), entry_after_e8=int(a["entryE8"]),
                seized=tuple(seized), shortfall_usd_e18=shortfall))
        for e in events["Liquidated"]:
            a, where = e["args"], _at(e)
            key = _hex(a["positionKey"])
            ops.append(await _op(
                reader, prices, OpKind.LIQUIDATE, bytes(a["positionKey"]), bytes(a["market"]),
                where, tx, _exact(touches, key, tx, where), price_e8=int(a["markE8"]),
                fee_usd_e18=int(a["feeUsdE18"]), closed_size_e18=int(a["closedSizeE18"]),
                full=bool(a["full"]), plan_tick=int(a["planTick"]), seized=tuple(seized),
                shortfall_usd_e18=shortfall))
        if events["Traded"] or events["Liquidated"]:
            continue  # releases of a close or a full liquidation are not user actions
        for e, credit in releases:
            where = _at(e)
            amount18 = int(e["args"]["amount"]) * 10 ** (18 - credit.decimals)
            ops.append(await _op(
                reader, prices, OpKind.RELEASE, bytes.fromhex(credit.position_key[2:]), None,
                where, tx, _exact(touches, credit.position_key, tx, where),
                released=(credit.src_chain_id, credit.src_asset, amount18)))
    return sorted(ops, key=lambda o: (o.height, o.log_index))


async def _conversions(reader: _Reader, logs: Mapping[str, list[Any]]) -> list[CreditConversion]:
    out = []
    for e in logs["Credited"]:
        a = e["args"]
        lock = _lock_key(int(a["srcChainId"]), a["srcVault"], a["lockId"])
        out.append(CreditConversion(_hex(lock), int(a["amount"]), int(a["amount18"]),
                                    (await reader.credit(lock)).decimals))
    for e in logs["QueuedCreditReleased"]:
        a = e["args"]
        out.append(CreditConversion(_hex(a["lockKey"]), int(a["amount"]), int(a["amount18"]),
                                    (await reader.credit(bytes(a["lockKey"]))).decimals))
    return out


async def collect_risk(settings: Settings, raw: EvmEventReader, end: int,
                       records: Sequence[LockRecord] = ()) -> RiskAuditInput:
    """Read the venue chain from its deployment height to ``end`` (see the module docstring).

    ``raw`` is the venue chain's ``audit_io._RawEvm``. Raises: RpcUnavailable, ChainError.
    """
    cfg = settings.chain(settings.venue_chain)
    _, venue = settings.venue()
    start = min(cfg.deployment_height, end)
    logs = {name: await raw.events(venue, _VENUE, name, start, end) for name in _VENUE_EVENTS}
    oracle, feeds = cfg.contracts.get("oracle"), cfg.contracts.get("feeds")
    prices = _Marks(
        raw, oracle,
        await raw.events(feeds, "FeedPublisher", "SourcesPublished", start, end) if feeds else [],
        await raw.events(oracle, "MarkOracle", "EmaUpdated", start, end) if oracle else [])
    reader = _Reader(raw, venue)
    touches = await _touches(reader, logs)
    funded = await raw.events(venue, _VENUE, "InsuranceFunded", start, end)
    return RiskAuditInput(
        touches=touches, ops=await _ops(reader, prices, logs, touches),
        conversions=await _conversions(reader, logs),
        insurance_fund_usd_e18=int(await raw.call(venue, _VENUE, "insuranceFund", block=end)),
        insurance_funded_usd_e18=[int(e["args"]["usdE18"]) for e in funded],
        shortfalls_usd_e18=[int(e["args"]["usdE18"]) for e in logs["Shortfall"]],
        fee_pool_usd_e18=int(await raw.call(venue, _VENUE, "feePool", block=end)),
        documents={f"store:{r.key}": r.to_dict() for r in records},
    )
