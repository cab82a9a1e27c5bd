"""The EWMA volatility buffer, fed by the oracle tick history and pushed on chain (I/O).

Flow per risk tick (DESIGN §3 "buffer = clamp(k * sigma * sqrt(horizon), 0, buffer_max)"):

1. :meth:`BufferUpdater.observe` scans the mark's history since each market's cursor (the
   oracle's ``EmaUpdated`` logs: one mark per poke, at most one per block, so the buffer
   follows the median of the sources, never one feed) and records every observation
   ``(market, mark_e8, publish_time)`` in a
   :class:`TickHistory` (in Redis: one sorted set per market, scored by publish time,
   deduplicated by publish time, capped to the newest ``cap`` ticks). The chain is the record: after a restart
   the history is already there, and after a Redis loss it is rebuilt from the logs (the last
   ``rebuild_blocks`` blocks, never before the venue chain's deployment height).
2. :meth:`BufferUpdater.update` folds the stored ticks with the pure estimator
   (:mod:`orchestrator.risk.volatility`: time-normalised EWMA of log returns, buffer rounded UP
   to ppm, clamped to the market's on-chain ``buffer_max_ppm``) and calls
   ``VenueClient.set_buffer`` with the RISK key only when :func:`should_push` says the change
   is worth a transaction (hysteresis), so a calm market costs no transaction per tick.

Ticks at or beyond the market's price bounds are left out of sigma: a feed stuck on a bound has
zero returns and would narrow the buffer (I9). The EWMA is recomputed from the stored window on
every tick (with ``lambda`` 0.94 per tick, ticks older than a few hundred weigh nothing), so the
result depends only on the ticks, never on a worker's memory. Ticks come from the latest block:
a tick later reorged away stays in the statistic until it ages out (it is a rate estimate, not
an amount; the venue re-checks margins on its own oracle).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from chains.evm.oracle import OracleClient, PriceUpdate
from orchestrator.risk.volatility import BufferRule, sigma_ppb_up, vol_state_from_prices
from shared.errors import InputError, TxRejected
from shared.positions import market_id

__all__ = [
    "BufferTuning",
    "BufferUpdater",
    "Tick",
    "TickHistory",
    "should_push",
]

log = structlog.get_logger(__name__)
PPM = 1_000_000

@dataclass(frozen=True, slots=True)
class Tick:
    """One oracle observation of a market's feed."""

    market: str
    price_e8: int
    publish_time_s: int


class TickHistory(Protocol):
    """Per-market oracle ticks and each market's log-scan cursor (``workers.stores.ticks``
    keeps them in Redis; the oracle's logs are the record)."""

    def record(self, tick: Tick) -> bool:
        """Store ``tick``; False if one with its publish time is already stored."""
        ...

    def record_many(self, ticks: Iterable[Tick]) -> int: ...
    def ticks(self, market: str) -> list[Tick]: ...
    def cursor(self, market: str) -> int | None: ...
    def set_cursor(self, market: str, height: int) -> None: ...
    def clear(self, market: str) -> None: ...


@dataclass(frozen=True, slots=True)
class BufferTuning:
    """The off-chain estimator of the buffer and when to push it.

    ``k_ppm`` (3 sigma), ``horizon_s``, ``lambda_ppm`` (EWMA decay per tick) and ``sigma0_ppb``
    (sigma per sqrt(s) before any return) as in :class:`~orchestrator.risk.params.RiskParams`;
    ``max_ppm`` an optional cap below the market's on-chain ``buffer_max_ppm``;
    ``hysteresis_ppm``: a change of at most this much is not pushed (see :func:`should_push`).
    """

    k_ppm: int = 3_000_000
    horizon_s: int = 600
    lambda_ppm: int = 940_000
    sigma0_ppb: int = 0
    hysteresis_ppm: int = 1_000
    max_ppm: int | None = None

    def rule(self, market_max_ppm: int) -> BufferRule:
        """The pure rule for a market whose on-chain cap is ``market_max_ppm``.

        Raises: InvalidRiskParams naming a bad field."""
        cap = market_max_ppm if self.max_ppm is None else min(self.max_ppm, market_max_ppm)
        return BufferRule(self.k_ppm, self.horizon_s, cap, self.lambda_ppm, self.sigma0_ppb)


def should_push(target_ppm: int, onchain_ppm: int, *, hysteresis_ppm: int,
                max_ppm: int) -> bool:
    """Whether to send ``set_buffer(target)`` when the venue holds ``onchain``.

    Push when the buffer moved by more than ``hysteresis_ppm`` either way, or when it reaches
    an end of its range (0 or the cap) it is not already at, so a market in full stress gets
    exactly the cap and a market whose estimator says 0 does not keep a stale buffer forever.
    """
    if target_ppm == onchain_ppm:
        return False
    if abs(target_ppm - onchain_ppm) > hysteresis_ppm:
        return True
    return target_ppm in (0, max_ppm)


class BufferUpdater:
    """Observes the oracle into a :class:`TickHistory` and keeps each market's on-chain buffer.

    Args:
        venue: a ``chains.evm.venue.VenueClient`` whose key holds the venue's RISK role.
        oracle: an :class:`OracleClient` (read-only is enough).
        history: where the ticks live.
        tuning: the estimator and the hysteresis.
        start_height: never scan logs below this block (the venue chain's deployment height).
        rebuild_blocks: how far back to rebuild a market with no cursor (a fresh Redis).
        max_block_range: blocks per ``eth_getLogs`` call.
    """

    def __init__(self, venue: Any, oracle: OracleClient, history: TickHistory, *,
                 tuning: BufferTuning | None = None, start_height: int = 0,
                 rebuild_blocks: int = 50_000, max_block_range: int = 1_000) -> None:
        self.venue, self.oracle, self.history = venue, oracle, history
        self.tuning = tuning or BufferTuning()
        self.start_height, self.rebuild_blocks = start_height, rebuild_blocks
        self.max_block_range = max_block_range

    async def _oracle_ids(self, markets: Sequence[str]) -> dict[str, tuple[bytes, Any, int]]:
        found = {}
        for name in markets:
            params, buffer_ppm = await self.venue.market_of(market_id(name))
            if params.oracle_id == bytes(32):
                raise InputError("market", f"{name} is not a market of the venue")
            found[name] = (params.oracle_id, params, buffer_ppm)
        return found

    async def observe(self, markets: Sequence[str]) -> dict[str, int]:
        """Record the oracle's new ticks of ``markets``; returns how many were new per market.

        Raises:
            InputError: a name that is not a venue market. RpcUnavailable, StoreError.
        """
        return await self._observe(await self._oracle_ids(markets))

    async def _observe(self, info: dict[str, tuple[bytes, Any, int]]) -> dict[str, int]:
        latest = await self.oracle.block_number()
        floor = max(self.start_height, latest - self.rebuild_blocks)
        starts = {}
        for name in info:
            cursor = self.history.cursor(name)
            starts[name] = floor if cursor is None else max(cursor + 1, self.start_height)
        new = dict.fromkeys(info, 0)
        first = min(starts.values(), default=latest + 1)
        updates: list[PriceUpdate] = []
        if first <= latest:
            updates = await self.oracle.price_updates(
                first, latest, [oracle_id for oracle_id, _, _ in info.values()],
                max_block_range=self.max_block_range)
        for name, (oracle_id, _, _) in info.items():
            ticks = [Tick(name, u.price_e8, u.publish_time_s) for u in updates
                     if u.oracle_id == oracle_id and u.block_number >= starts[name]]
            if not ticks and not self.history.ticks(name):  # history older than the window
                current = await self.oracle.price_of(oracle_id)
                ticks = [Tick(name, *current)] if current else []
            new[name] = self.history.record_many(ticks)
            self.history.set_cursor(name, latest)
        return new

    async def update(self, market: str, params: Any, onchain_ppm: int) -> dict[str, Any]:
        """Compute ``market``'s buffer from its history and push it if :func:`should_push`."""
        rule = self.tuning.rule(params.buffer_max_ppm)
        # SECURITY (I9): a price on a bound is what a clamped feed reports; its zero returns
        # would narrow the buffer while the real price runs away.
        points = [(t.price_e8, t.publish_time_s) for t in self.history.ticks(market)
                  if params.min_price_e8 < t.price_e8 < params.max_price_e8]
        state = vol_state_from_prices(points, rule)
        target = rule.buffer_ppm(state)
        row: dict[str, Any] = {
            "ticks": len(points), "returns": state.returns, "sigma_ppb": sigma_ppb_up(state),
            "buffer_ppm": target, "onchain_ppm": onchain_ppm, "updated": False, "tx": None,
        }
        if should_push(target, onchain_ppm, hysteresis_ppm=self.tuning.hysteresis_ppm,
                       max_ppm=rule.max_ppm):
            try:
                event = await self.venue.set_buffer(market_id(market), target)
            except TxRejected as exc:  # e.g. the cap changed under us: next tick re-reads it
                log.warning("buffer_refused", market=market, buffer_ppm=target, reason=exc.reason)
                row["error"] = exc.reason
                return row
            row.update(updated=True, tx=event.tx_id, onchain_ppm=event.buffer_ppm)
            log.info("buffer_set", market=market, buffer_ppm=target, previous_ppm=onchain_ppm,
                     sigma_ppb=row["sigma_ppb"], tx=event.tx_id)
        return row

    async def observe_and_update(self, markets: Iterable[str]) -> dict[str, dict[str, Any]]:
        """One risk tick: record new oracle ticks, then push each market's buffer if it moved.

        Returns ``{market: {new_ticks, ticks, returns, sigma_ppb, buffer_ppm, onchain_ppm,
        updated, tx[, error]}}``; ``onchain_ppm`` is the venue's buffer after this call.

        Raises:
            InputError: a name that is not a venue market. RpcUnavailable (retryable),
            StoreError, ChainError.
        """
        info = await self._oracle_ids(list(dict.fromkeys(markets)))
        new = await self._observe(info)
        result = {}
        for name, (_, params, onchain) in info.items():
            result[name] = {"new_ticks": new[name], **await self.update(name, params, onchain)}
        return result
