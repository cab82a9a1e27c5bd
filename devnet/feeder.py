"""The devnet price feeder: push scripted paths to every source of the venue chain's marks (I/O).

:class:`Feeder` publishes a :class:`~orchestrator.risk.price_paths.Scenario`'s prices tick by
tick through :class:`chains.evm.oracle.OracleClient` with the FEEDER key, the same price to
every source of a mark unless the scenario makes one misbehave (``faults``: a source that
jumps, freezes, sits on a bound or reports a wide confidence); ``bulkhead feed``,
``bulkhead price --set`` and the demo drive it.

Time (I14): every publish time is the venue chain's latest block timestamp, never the host's
clock. The publisher refuses a publish time that is not strictly after the market's last one or
that is after the block's, so a tick waits until the chain's clock has moved past the last
publish time of each market it updates; ``interval_s`` is only the wall-clock pause between
ticks. All markets of one tick share a publish time and are pipelined into one block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chains.evm.oracle import OracleClient
from orchestrator.actions.inputs import parse_amount
from orchestrator.risk.price_paths import Scenario, SourceTick, scenario_from_text, source_ticks
from shared.errors import ChainError, InputError, RetryableError
from shared.settings import Settings

__all__ = ["Feeder", "PushedTick", "devnet_feeds", "feed_scenario", "keep_fresh",
           "load_scenario", "set_price"]


@dataclass(frozen=True, slots=True)
class PushedTick:
    """One price the feeder published (``index`` counts the scenario's ticks from 0)."""

    index: int
    market: str
    price_e8: int
    publish_time_s: int
    tx_hash: str
    block_number: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Feeder:
    """Publishes per-market price lists tick by tick, chain-time aware.

    Args:
        oracle: an :class:`OracleClient` with the feeder key.
        interval_s: wall-clock pause between ticks (>= 0).
        progress: called with every :class:`PushedTick`, in order.
        max_wait_s: how long to wait for the chain's clock to pass a market's last publish
            time before giving up with :class:`ChainError` (a chain that stopped producing
            blocks).
    """

    def __init__(self, oracle: OracleClient, *, interval_s: float = 1.0,
                 progress: Callable[[PushedTick], None] | None = None,
                 max_wait_s: float = 30.0, poll_s: float = 0.1) -> None:
        if not 0 <= interval_s <= 3_600:
            raise InputError("interval", f"must be within 0..3600 s, got {interval_s!r}")
        self.oracle, self.interval_s, self.progress = oracle, interval_s, progress
        self.max_wait_s, self.poll_s = max_wait_s, poll_s

    async def run(self, plan: Mapping[str, Sequence[int | SourceTick]]) -> list[PushedTick]:
        """Publish ``plan[market][i]`` for every market at tick ``i`` (an int to every source
        of the market, a :class:`SourceTick` source by source); returns every tick."""
        last = {m: await self.oracle.last_published(m) for m in plan}
        pushed: list[PushedTick] = []
        for index in range(max((len(p) for p in plan.values()), default=0)):
            started = time.monotonic()
            ticks = {m: p[index] for m, p in plan.items() if index < len(p)}
            now = await self._chain_time_after(max(last[m] for m in ticks))
            mined = await self.oracle.publish(
                {m: t.prices_e8 if isinstance(t, SourceTick) else t for m, t in ticks.items()},
                now, conf_ppm={m: t.conf_ppm for m, t in ticks.items()
                               if isinstance(t, SourceTick)})
            for market, value in ticks.items():
                last[market] = now
                price = value.price_e8 if isinstance(value, SourceTick) else value
                tick = PushedTick(index, market, price, now, *mined[market])
                pushed.append(tick)
                if self.progress is not None:
                    self.progress(tick)
            if index + 1 < max(len(p) for p in plan.values()):
                await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
        return pushed

    async def _chain_time_after(self, last_s: int) -> int:
        # INVARIANT (I14): publish time = the chain's clock, strictly after the last publish.
        deadline = time.monotonic() + self.max_wait_s
        while (now := await self.oracle.chain_time()) <= last_s:
            if time.monotonic() > deadline:
                raise ChainError(f"{self.oracle.chain}: chain time stuck at {now} <= last "
                                 f"publish {last_s} for {self.max_wait_s}s")
            await asyncio.sleep(self.poll_s)
        return now


async def feed_scenario(settings: Settings, feeder_key: str, scenario: Scenario, *,
                        progress: Callable[[PushedTick], None] | None = None,
                        interval_s: float | None = None) -> list[PushedTick]:
    """Push ``scenario`` to the venue chain's oracle as the feeder (the CLI's and demo's way).

    A feed without a start continues from the oracle's current price of its market.

    Raises:
        InputError: a feed without a start whose market has no price yet, or a path out of
            range. TxRejected, RpcUnavailable, ChainError: from the chain.
    """
    oracle = await OracleClient.from_settings(settings, feeder_key=feeder_key)
    try:
        current = {}
        for feed in scenario.feeds:
            if feed.start_price_e8 is None and (found := await oracle.price_of(feed.market)):
                current[feed.market] = found[0]
        plan: dict[str, list[int | SourceTick]] = {}
        for market, prices in scenario.prices(current).items():
            faults = next(f.faults for f in scenario.feeds if f.market == market)
            plan[market] = (source_ticks(prices, faults, len(await oracle.sources(market)))
                            if faults else list(prices))
        feeder = Feeder(oracle, progress=progress,
                        interval_s=scenario.interval_s if interval_s is None else interval_s)
        return await feeder.run(plan)
    finally:
        await oracle.aclose()


def load_scenario(path: Path) -> Scenario:
    """Read a ``.toml`` or ``.json`` scenario file (by suffix; anything else is read as TOML).

    Raises:
        InputError: unreadable or malformed file (field ``scenario``), or a bad field.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError("scenario", f"{path}: {exc.strerror or exc}") from exc
    return scenario_from_text(text, name=str(path), json_format=path.suffix.lower() == ".json")


async def set_price(settings: Settings, feeder_key: str, *, market: str,
                    price: str) -> dict[str, Any]:
    """Publish a price as the oracle's feeder: a one-tick feed, stamped with the venue chain's
    own time once that clock has passed the market's last publish (two prices in one chain
    second would be refused as not later)."""
    price_e8 = parse_amount(price, 8, field="price")
    oracle = await OracleClient.from_settings(settings, feeder_key=feeder_key)
    try:
        [tick] = await Feeder(oracle, interval_s=0).run({market: [price_e8]})
    finally:
        await oracle.aclose()
    return {"market": market, "price_e8": price_e8, "publish_time": tick.publish_time_s}


def devnet_feeds() -> list[str]:
    """Every oracle feed the devnet deploys and seeds (markets and collateral prices)."""
    from devnet.evm_specs import DEFAULT_VENUE_MARKETS

    return sorted(DEFAULT_VENUE_MARKETS.seed_prices())


async def keep_fresh(settings: Settings, feeder_key: str, *, markets: Sequence[str],
                     every_s: float = 20.0, rounds: int | None = None, poll_s: float = 2.0,
                     progress: Callable[[PushedTick], None] | None = None,
                     on_error: Callable[[Exception], None] | None = None) -> int:
    """The calm feeder: a heartbeat that republishes each feed's *current* price, at chain
    time, once that price is ``every_s`` old, so a devnet left idle still values user actions
    (their max age is 60 s there). It never changes a price: a scenario or ``bulkhead price``
    moves it, and the heartbeat only re-stamps what it reads. Just before publishing it reads
    each feed again and skips any that moved since its first read, so it does not overwrite a
    price published meanwhile (a publish landing in the same block as its own is the one race
    left; the oracle then keeps the later publish time). A failed round (RPC down, a refused
    send) is reported to ``on_error`` and the next round tries again.

    Runs ``rounds`` rounds (None: until cancelled); returns how many prices it republished.

    Raises:
        InputError: ``every_s`` outside 1..3600, or no market given.
    """
    if not 1 <= every_s <= 3_600:
        raise InputError("every", f"must be within 1..3600 s, got {every_s!r}")
    if not markets:
        raise InputError("market", "nothing to keep fresh")
    oracle = await OracleClient.from_settings(settings, feeder_key=feeder_key)
    published, done = 0, 0
    try:
        while rounds is None or done < rounds:
            done += 1
            try:
                published += await _refresh(oracle, markets, every_s, progress)
            except (ChainError, RetryableError) as exc:
                if on_error is not None:
                    on_error(exc)
            if rounds is None or done < rounds:
                await asyncio.sleep(poll_s)
    finally:
        await oracle.aclose()
    return published


async def _refresh(oracle: OracleClient, markets: Sequence[str], every_s: float,
                   progress: Callable[[PushedTick], None] | None) -> int:
    now = await oracle.chain_time()
    seen = {m: p for m in markets if (p := await oracle.price_of(m)) is not None}
    stale = {m: p for m, p in seen.items() if now - p[1] >= every_s}
    still = {m: p for m, p in stale.items() if await oracle.price_of(m) == p}
    if not still:
        return 0
    ticks = await Feeder(oracle, interval_s=0, progress=progress).run(
        {m: [price] for m, (price, _) in still.items()})
    return len(ticks)
