"""The price feeder and the volatility buffer on a real devnet (anvil evm-b, redis).

- ``bulkhead feed`` pushes a 45 % crash to every source of the real MarkOracle, chain-time stamped, and the
  oracle reads it back; a scenario file feeds two markets in lockstep.
- ``bulkhead price --set`` publishes one price through the same oracle client.
- TickHistory records the real oracle's ticks in Redis (deduplicated, kept across a restart,
  rebuilt from the oracle's logs after a loss); a calm path within the hysteresis sends no
  transaction, a crash puts the cap on chain through ``set_buffer`` (read back with
  ``market_of``), and a calm tick right after it sends nothing again.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest
import redis

from chains.evm.oracle import OracleClient
from chains.evm.venue import VenueClient
from devnet.feeder import Feeder, PushedTick
from orchestrator.liquidation.buffers import BufferTuning, BufferUpdater
from orchestrator.risk.price_paths import calm, crash_target_e8
from shared.chain import ChainKind, ChainRef
from shared.positions import market_id
from shared.settings import Settings, load_settings
from tests.support.stack import Cli, cli, devnet  # noqa: F401 - fixtures
from workers.stores.ticks import RedisTickHistory

pytestmark = [pytest.mark.integration, pytest.mark.slow]

E8 = 10**8
T = TypeVar("T")
ETH = "ETH-USD"


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(fn())  # type: ignore[arg-type]


def settings_for(runner: Cli) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.update(runner.env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def feed_cli(runner: Cli, *args: str) -> list[dict[str, Any]]:
    """``bulkhead feed ... --json`` as a real subprocess (the sub-app, until cli.py mounts it)."""
    code = "from bulkhead.cli.feed import feed_app; feed_app(prog_name='bulkhead feed')"
    proc = subprocess.run([sys.executable, "-c", code, *args, "--json"], env=runner.env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_cli_feeds_a_crash_and_the_oracle_reads_it_back(cli: Cli) -> None:  # noqa: F811
    ticks = feed_cli(cli, "--market", ETH, "--path", "crash", "--from", "3000", "--pct", "45",
                     "--steps", "1", "--interval", "1")
    assert [t["price_e8"] for t in ticks] == [3_000 * E8, 1_650 * E8]
    assert ticks[0]["publish_time_s"] < ticks[1]["publish_time_s"]
    cfg = settings_for(cli)

    async def read_back() -> tuple[Any, int, list[Any]]:
        oracle = await OracleClient.from_settings(cfg)
        try:
            latest = await oracle.block_number()
            logs = await oracle.price_updates(ticks[0]["block_number"], latest, [market_id(ETH)])
            return await oracle.price_of(ETH), await oracle.chain_time(), logs
        finally:
            await oracle.aclose()

    (price, published), now, logs = run(read_back)
    assert (price, published) == (1_650 * E8, ticks[1]["publish_time_s"])
    assert published <= now  # stamped with the chain's clock, never ahead of it
    assert [(u.price_e8, u.publish_time_s) for u in logs] == [
        (t["price_e8"], t["publish_time_s"]) for t in ticks]

    refused = subprocess.run(
        [sys.executable, "-c", "from bulkhead.cli.feed import feed_app; feed_app()",
         "--market", ETH, "--path", "crash", "--pct", "100", "--steps", "1"],
        env=cli.env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "pct_ppm" in refused.stderr


def test_scenario_file_feeds_two_markets_in_lockstep(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(
        'interval_s = 0\n'
        '[[feeds]]\nmarket = "ETH-USD"\nstart = "2000"\n'
        '[[feeds.segments]]\npath = "spike"\nsteps = 2\npct_ppm = 100000\n'
        '[[feeds]]\nmarket = "USDC"\n'
        '[[feeds.segments]]\npath = "calm"\nsteps = 3\namplitude_ppm = 100\nseed = 3\n')
    ticks = feed_cli(cli, "--scenario", str(scenario))
    eth = [t for t in ticks if t["market"] == ETH]
    usdc = [t for t in ticks if t["market"] == "USDC"]
    assert [t["price_e8"] for t in eth] == [2_000 * E8, 2_200 * E8, 2_000 * E8]
    assert [t["price_e8"] for t in usdc] == calm(E8, 3, amplitude_ppm=100, seed=3)
    for a, b in zip(eth, usdc, strict=True):  # one tick: one publish time for every market
        assert a["publish_time_s"] == b["publish_time_s"] and a["index"] == b["index"]


def test_price_command_publishes_once_at_chain_time(cli: Cli) -> None:  # noqa: F811
    """``bulkhead price --set``: one publish as the devnet feeder, read back from the oracle."""
    row = cli.json("price", "--market", ETH, "--set", "2999.5")
    assert (row["market"], row["price_e8"]) == (ETH, 299_950_000_000)
    cfg = settings_for(cli)

    async def read_back() -> tuple[Any, int]:
        oracle = await OracleClient.from_settings(cfg)
        try:
            return await oracle.price_of(ETH), await oracle.chain_time()
        finally:
            await oracle.aclose()

    (price, published), now = run(read_back)
    assert (price, published) == (row["price_e8"], row["publish_time"])
    assert published <= now

    # without --set: the mark (the row `bulkhead marks` prints) and every source's verdict
    shown = cli.json("price", "--market", ETH)
    user = shown["user"]
    assert (shown["market"], user["mark_e8"], user["publish_time"]) == (
        ETH, str(row["price_e8"]), row["publish_time"])
    assert [(s["kind"], s["price_e8"], s["reason"]) for s in shown["sources"]] == [
        ("chainlink", str(row["price_e8"]), "ok"), ("chainlink", str(row["price_e8"]), "ok"),
        ("pyth", str(row["price_e8"]), "ok")]
    assert user["valid_sources"] == 3 and all(s["age_s"] >= 0 for s in shown["sources"])
    bad = cli.run("price", "--market", "NOPE-USD", "--json", ok=False)
    assert bad.returncode != 0 and "market" in bad.stderr + bad.stdout


def test_calm_feeder_restamps_every_devnet_feed_and_never_moves_a_price(cli: Cli) -> None:  # noqa: F811
    """``keep_fresh`` (what ``bulkhead run`` starts): once a price is ``every_s`` old on the
    chain's clock it is published again with the same value and a later publish time; a feed
    younger than that is left alone; a bad ``every`` is refused naming the field."""
    from devnet.feeder import devnet_feeds, keep_fresh
    from devnet.stack import read_manifest
    from shared.errors import InputError

    cfg = settings_for(cli)
    key = read_manifest(cfg.home)["devnet"]["feeder_key"]
    feeds = devnet_feeds()
    assert {"ETH-USD", "USDC"} <= set(feeds)

    async def prices() -> dict[str, tuple[int, int]]:
        oracle = await OracleClient.from_settings(cfg)
        try:
            return {m: p for m in feeds if (p := await oracle.price_of(m)) is not None}
        finally:
            await oracle.aclose()

    async def chain_now() -> int:
        oracle = await OracleClient.from_settings(cfg)
        try:
            return await oracle.chain_time()
        finally:
            await oracle.aclose()

    before = run(prices)
    assert set(before) == set(feeds)
    oldest = min(t for _, t in before.values())
    while run(chain_now) - oldest < 2:  # progress to wait on: the chain's own clock
        run(lambda: asyncio.sleep(0.2))
    ticks: list[PushedTick] = []
    n = run(lambda: keep_fresh(cfg, key, markets=feeds, every_s=2, rounds=1,
                               progress=ticks.append))
    after = run(prices)
    restamped = {t.market for t in ticks}
    assert n == len(ticks) >= 1 and restamped <= set(feeds)
    for market in feeds:
        assert after[market][0] == before[market][0]  # never moved
        if market in restamped:
            assert after[market][1] > before[market][1]
    # Just re-stamped, so younger than 60 s on the chain's clock: nothing is sent.
    assert run(lambda: keep_fresh(cfg, key, markets=sorted(restamped), every_s=60,
                                  rounds=1)) == 0
    with pytest.raises(InputError) as err:
        run(lambda: keep_fresh(cfg, key, markets=feeds, every_s=0.5, rounds=1))
    assert err.value.field == "every"


class Rig:
    """Feeder (feeder key), updater (risk key) and a private Redis prefix on the devnet."""

    def __init__(self, manifest: dict[str, Any], cfg: Settings, prefix: str) -> None:
        self.devnet, self.cfg, self.prefix = manifest, cfg, prefix
        self.redis = redis.Redis.from_url(manifest["redis_url"])

    async def __aenter__(self) -> Self:
        b = self.cfg.chain("evm-b")
        self.venue = await VenueClient.connect(
            [str(u) for u in b.rpc_urls], b.contracts["venue"],
            chain=ChainRef("evm-b", ChainKind.EVM, b.chain_id),
            sender_key=self.devnet["devnet"]["risk_key"], retry=self.cfg.retry)
        self.feeder_oracle = await OracleClient.from_settings(
            self.cfg, feeder_key=self.devnet["devnet"]["feeder_key"])
        self.reader = await OracleClient.from_settings(self.cfg)
        # the next block: a tick an earlier test published in the current one is not ours
        self.start = await self.reader.block_number() + 1
        return self

    async def __aexit__(self, *_: object) -> None:
        for client in (self.venue, self.feeder_oracle, self.reader):
            await client.aclose()
        self.redis.close()

    def updater(self) -> BufferUpdater:
        return BufferUpdater(self.venue, self.reader, RedisTickHistory(self.redis, prefix=self.prefix),
                             tuning=BufferTuning(hysteresis_ppm=1_000),
                             start_height=self.start)

    async def feed(self, prices: list[int]) -> list[PushedTick]:
        seen: list[PushedTick] = []
        await Feeder(self.feeder_oracle, interval_s=0, progress=seen.append).run({ETH: prices})
        return seen

    async def onchain_buffer(self) -> int:
        return (await self.venue.market_of(market_id(ETH)))[1]


def test_buffer_follows_volatility_with_hysteresis(devnet: dict[str, Any], cli: Cli) -> None:  # noqa: F811
    cfg = settings_for(cli)
    prefix = f"test:ticks:{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        async with Rig(devnet, cfg, prefix) as rig:
            assert await rig.onchain_buffer() == 0
            current = (await rig.reader.price_of(ETH))
            assert current is not None
            updater = rig.updater()
            pushed: list[PushedTick] = []
            # Calm: +-5 ppm a tick -> sigma ~ 5e-6 per sqrt(s) -> buffer ~ 370 ppm, within the
            # 1,000 ppm hysteresis: the estimator moves, the chain is left alone.
            for i, price in enumerate(calm(current[0], 4, amplitude_ppm=5, seed=11)):
                pushed += await rig.feed([price])
                row = (await updater.observe_and_update([ETH]))[ETH]
                assert row["new_ticks"] == 1 and row["ticks"] == i + 1
                assert row["updated"] is False and row["tx"] is None
                assert row["buffer_ppm"] <= 1_000
                assert await rig.onchain_buffer() == 0
            assert row["returns"] == 3

            # Crash 45 % in one tick: the buffer jumps to the market's cap, on chain.
            target = crash_target_e8(pushed[-1].price_e8, 450_000)
            pushed += await rig.feed([target])
            row = (await updater.observe_and_update([ETH]))[ETH]
            assert row["updated"] is True and row["tx"]
            assert row["buffer_ppm"] == row["onchain_ppm"] == 50_000
            params, buffer_ppm = await rig.venue.market_of(market_id(ETH))
            assert buffer_ppm == 50_000 == params.buffer_max_ppm

            # One calm tick after the crash: still at the cap, no transaction.
            pushed += await rig.feed([target + 1])
            row = (await updater.observe_and_update([ETH]))[ETH]
            assert row["updated"] is False and row["buffer_ppm"] == 50_000
            assert await rig.onchain_buffer() == 50_000

            # Idempotent: the same observation twice records nothing new.
            again = (await updater.observe_and_update([ETH]))[ETH]
            assert again["new_ticks"] == 0 and again["ticks"] == row["ticks"]

            # A restarted worker finds the history in Redis...
            history = RedisTickHistory(rig.redis, prefix=prefix)
            stored = history.ticks(ETH)
            assert [(t.price_e8, t.publish_time_s) for t in stored] == [
                (p.price_e8, p.publish_time_s) for p in pushed]
            # ...and after losing Redis it is rebuilt from the oracle's logs, identically.
            history.clear(ETH)
            assert history.ticks(ETH) == [] and history.cursor(ETH) is None
            rebuilt = (await rig.updater().observe_and_update([ETH]))[ETH]
            assert rebuilt["new_ticks"] == len(pushed) and history.ticks(ETH) == stored
            assert rebuilt["buffer_ppm"] == 50_000 and rebuilt["updated"] is False

    run(body)
    keys = redis.Redis.from_url(devnet["redis_url"])
    try:
        for key in keys.scan_iter(f"{prefix}:*"):
            keys.delete(key)
    finally:
        keys.close()
