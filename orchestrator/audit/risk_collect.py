"""Read the venue chain into a :class:`RiskAuditInput` for the risk invariants I6–I10 (I/O).

The rules are in :mod:`orchestrator.audit.risk_rules`. Everything comes from the venue chain,
never from Redis: the venue's ``Traded``, ``Liquidated``, ``Shortfall``, ``Credited``,
``CreditQueued``, ``QueuedCreditReleased``, ``SettlementRequested`` and ``InsuranceFunded``
logs, the oracle's ``PriceUpdated`` logs (replayed in log order, so the price in effect at any
operation is known even when it was published earlier in the same block), and the venue's
state at the block BEFORE each operation, read with ``eth_call`` at that block number
(``positionOf``, ``marketOf``, ``positionLocks``, ``collateralOf``, ``collateralConfigOf``).
A lock's lane and position (``lockCredit``) never change, so they are read at the head.

The lock store's records are read only as the JSON documents I10 inspects for floats.
"""

from __future__ import annotations

from bisect import bisect_left
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
from shared.locks import LockRecord
from shared.settings import Settings

__all__ = ["collect_risk"]

KIND_RELEASE, KIND_SEIZE = 1, 2
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


class _Prices:
    """Every ``PriceUpdated`` per feed, to answer "which price was in effect at (block, log)"."""

    def __init__(self, updates: Sequence[Any]) -> None:
        self._by_feed: dict[str, list[tuple[tuple[int, int], int, int]]] = defaultdict(list)
        for e in updates:
            self._by_feed[_hex(e["args"]["market"])].append(
                (_at(e), int(e["args"]["priceE8"]), int(e["args"]["publishTime"])))
        for rows in self._by_feed.values():
            rows.sort()

    def at(self, feed: str, where: tuple[int, int]) -> tuple[int | None, int | None]:
        rows = self._by_feed.get(feed, [])
        i = bisect_left(rows, (where,))
        return (rows[i - 1][1], rows[i - 1][2]) if i else (None, None)


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

    async def lanes(self, key: bytes, block: int, prices: _Prices,
                    where: tuple[int, int]) -> tuple[Lane, ...]:
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
            price, publish = prices.at(feed, where)
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


async def _op(reader: _Reader, prices: _Prices, kind: OpKind, key: bytes, market: bytes | None,
              where: tuple[int, int], tx: str, exact: bool, **fields: Any) -> RiskOp:
    height = where[0]
    pre_market, before = await reader.position(key, height - 1)
    market = market or pre_market
    view, lo, hi = await reader.market(market, height - 1)
    price, publish = prices.at(view.oracle_id, where)
    return RiskOp(kind=kind, position_key=_hex(key), tx_id=tx, height=height,
                  log_index=where[1], timestamp=await reader.raw.timestamp(height),
                  before=before, market=view, mark=FeedRead(view.oracle_id, price, publish, lo, hi),
                  lanes=await reader.lanes(key, height - 1, prices, where), exact=exact, **fields)


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


async def _ops(reader: _Reader, prices: _Prices, logs: Mapping[str, list[Any]],
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
    oracle = cfg.contracts.get("oracle")
    prices = _Prices(await raw.events(oracle, "PriceOracle", "PriceUpdated", start, end)
                     if oracle else [])
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
