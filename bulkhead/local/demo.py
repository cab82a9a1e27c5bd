"""``make demo`` / ``bulkhead demo``: the main job on the embedded local default.

1. bring the three chains and Redis up and deploy (vaults, venue, oracle, SPL multisig vault),
   then start the real workers: watcher, 4 attesters (3 of 4), relayer, reconciler, risk, beat;
2. two traders lock USDC: alice backs position A (about 8.6x long) with locks on ``evm-a`` *and*
   ``solana``, and position B (1.5x long, same owner, same asset, same vault) with a lock on
   ``evm-a``; bob backs C (a short) on ``solana``. The live table follows every lock through
   ``seen -> finalized -> attested -> credited`` on the venue on ``evm-b``;
3. the positions open at 3,000 USD/ETH; a calm stretch, then a volatile one (ETH swinging
   +-0.4 % a tick) in which the risk worker widens the market's volatility buffer, fed from
   the mark, to its cap, so maintenance is wider before the crash; a scripted crash follows:
   first to the mark where A's
   E / MM is 0.8 (the risk worker liquidates A *partially*), then 3 % through A's bankruptcy
   price (a gap: A is liquidated *fully*, the loss beyond its collateral is a recorded shortfall
   paid by the insurance fund). A's collateral is seized on both source chains by the quorum;
   B's position, locks and liquidation price are compared bit for bit before and after;
4. B and C close and withdraw: their collateral is released on ``evm-a`` and ``solana``;
5. the report: every lock's journey with timings, every position's fate, a PNG chart of the
   margin ratios (``<home>/demo/margin_ratios.png``) and ``report.json``; ``bulkhead audit``
   must be clean; everything is shut down; exit 0 only if every step held.

The crash prices are computed from A's own margin state on chain (no magic numbers), so the
script holds for any market parameters that admit a partial step. The demo runs in its own home
(``<home>/demo``) so it never touches a devnet you started.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from bulkhead.cli import views
from bulkhead.local.demo_chart import write_ratio_chart
from bulkhead.local.demo_report import (
    BufferStory,
    PositionFate,
    RatioSeries,
    buffer_report_table,
    crash_price_e8,
    gap_price_e8,
    lock_journey,
    locks_report_table,
    positions_report_table,
    ratio_ppm,
)
from devnet.stack import DevnetOptions, down, up
from orchestrator.actions.collateral import (
    TraderKeys,
    build_lock_request,
    request_withdrawal,
    submit_lock,
)
from orchestrator.actions.inputs import format_amount
from shared.positions import position_key
from shared.settings import Settings, load_settings
from workers.stores.locks import RedisLockStore
from workers.stores.settlements import RedisSettlementStore

__all__ = ["run_demo"]


@dataclass(frozen=True)
class PositionPlan:
    label: str
    trader: str
    side: str
    size: str
    locks: tuple[tuple[str, str], ...]  # (chain, USDC amount)


PLAN = (
    PositionPlan("A", "alice", "long", "1", (("evm-a", "200"), ("solana", "150"))),
    PositionPlan("B", "alice", "long", "0.5", (("evm-a", "1000"),)),
    PositionPlan("C", "bob", "short", "0.5", (("solana", "400"),)),
)
ATTESTERS = ["att-1", "att-2", "att-3", "att-4"]
OPEN_PRICE_E8 = 3_000 * 10**8
PARTIAL_AT_RATIO_PPM = 800_000  # the first crash tick: A at E / MM = 0.8 (a partial step)
GAP_PPM = 30_000  # the second: 3 % through A's bankruptcy price
CALM_TICKS = 3  # the calm stretch: +-5 ppm, the buffer stays within its hysteresis
SWING_PPM = 4_000  # the volatile stretch: +-0.4 % a tick, until the buffer reaches its cap
STEP_TIMEOUT_S = 90.0
DEMO_CLOCKS = DevnetOptions(block_time_s=0.5, slots_in_an_epoch=2, slot_ms=100,
                            solana_finality_lag=10)


class DemoFailed(Exception):
    """A step of the demo did not hold; the message says which."""


def run_demo(home: Path, console: Console, *, keep: bool = False) -> int:
    from bulkhead.local.fleet import WorkerFleet

    demo_home = home / "demo"
    down(demo_home)  # a previous interrupted demo
    started = time.monotonic()
    with console.status("starting devnet") as status:
        manifest = up(demo_home, DEMO_CLOCKS, progress=status.update)
    console.print(views.manifest_table(manifest))
    console.print(f"devnet ready in {manifest['devnet']['ready_s']} s")
    fleet = WorkerFleet(demo_home, demo_home / "logs")
    ok = False
    try:
        with console.status("starting workers: watcher, 4 attesters, relayer, reconciler, "
                            "risk, beat"):
            fleet.start_all(ATTESTERS)
        settings = load_settings(home=demo_home, chains=manifest["chains"],
                                 redis_url=manifest["redis_url"],
                                 attesters=manifest["attesters"])
        try:
            report = asyncio.run(Journey(settings, manifest, console, demo_home).run())
        except DemoFailed as exc:
            console.print(f"[red]demo step failed: {exc}[/]")
        else:
            report["audit_clean"] = _audit(demo_home, console)
            report["elapsed_s"] = round(time.monotonic() - started, 1)
            (demo_home / "report.json").write_text(json.dumps(report, indent=2))
            ok = report["audit_clean"]
    finally:
        fleet.stop()
        if not keep:
            down(demo_home)
            console.print("workers and devnet stopped")
    console.print(f"demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s "
                  f"(report: {demo_home / 'report.json'}, worker logs: {demo_home / 'logs'})")
    return 0 if ok else 1


class Journey:
    """The scripted story against the running stack (everything through the public paths:
    the traders' own keys, the feeder's oracle, the workers doing the rest)."""

    def __init__(self, settings: Settings, manifest: dict[str, Any], console: Console,
                 home: Path) -> None:
        self.settings, self.manifest, self.console, self.home = settings, manifest, console, home
        self.keys = {p.label: self._key(p) for p in PLAN}
        self.fates = {p.label: PositionFate(p.label, p.trader, self.keys[p.label], p.side, p.size)
                      for p in PLAN}
        self.series = RatioSeries()
        self.submitted_ms: dict[str, int] = {}  # tx id -> wall ms when sent
        self.label_of_tx: dict[str, str] = {}
        self.price_lock = asyncio.Lock()
        self.t0 = 0.0
        self.venue: Any = None
        self.w3: Any = None
        self.prices: dict[str, int] = {}  # what the feeder last published, per market
        self.stopping = asyncio.Event()
        self.buffer: BufferStory | None = None

    def _key(self, p: PositionPlan) -> str:
        chain_id, venue = self.settings.venue()
        owner = self.manifest["devnet"]["traders"][p.trader]["evm_address"]
        return position_key(chain_id, venue, owner, f"demo-{p.label}".encode().ljust(32, b"\0"))

    def trader_keys(self, trader: str) -> TraderKeys:
        return TraderKeys.from_devnet(self.manifest, trader)

    async def run(self) -> dict[str, Any]:
        from chains.evm.rpc import make_web3
        from orchestrator.actions.trading import connect_venue

        self.venue = await connect_venue(self.settings, None)
        self.w3 = make_web3(str(self.settings.chain(self.settings.venue_chain).rpc_urls[0]), 10)
        try:
            await self.set_price("USDC", 10**8)
            await self.set_price("ETH-USD", OPEN_PRICE_E8)
            background = [asyncio.create_task(self.keep_prices_fresh())]
            try:
                await self.lock_all()
                await self.open_all()
                background.append(asyncio.create_task(self.sample_ratios()))
                await self.volatility()
                await self.crash()
                await self.close_survivors()
            finally:
                # Stopped, not cancelled: a web3 request cancelled mid-flight can leave the
                # library's process-wide session lock held (web3.py issue #3867).
                self.stopping.set()
                await asyncio.gather(*background, return_exceptions=True)
            return await self.report()
        finally:
            await self.venue.aclose()
            await self.w3.provider.disconnect()

    # ----- steps ---------------------------------------------------------------------------

    async def lock_all(self) -> None:
        for p in PLAN:
            owner = self.manifest["devnet"]["traders"][p.trader]["evm_address"]
            for chain, amount in p.locks:
                req = build_lock_request(self.settings, chain=chain, asset="USDC", amount=amount,
                                         position=self.keys[p.label], beneficiary=owner)
                sent_ms = int(time.time() * 1000)
                result = await submit_lock(req, self.trader_keys(p.trader))
                self.submitted_ms[result.tx_id] = sent_ms
                self.label_of_tx[result.tx_id] = p.label
                self.console.print(f"{p.trader} locked {amount} USDC on {chain} for position "
                                   f"{p.label} ({self.keys[p.label][:10]}…)")
        await self.follow_locks(lambda rows: all(r["state"] == "credited" for r in rows),
                                "every lock credited on evm-b")
        self.console.print("every lock is credited on the venue (evm-b)")

    async def open_all(self) -> None:
        from orchestrator.actions.trading import open_trade

        await self.set_price("ETH-USD", OPEN_PRICE_E8)
        for p in PLAN:
            row = await open_trade(self.settings, self.trader_keys(p.trader).evm_key or "",
                                   position=self.keys[p.label], market="ETH-USD", size=p.size,
                                   side=p.side)
            self.console.print(f"{p.trader} opened {p.label}: {p.side} {p.size} ETH at "
                               f"{format_amount(row['price_e8'] or 0, 8)} USD")
        self.t0 = time.monotonic()
        self.series.mark(0.0, "open at 3,000")

    async def volatility(self) -> None:
        """A calm stretch, then a volatile one: the risk worker feeds the EWMA volatility
        buffer from the mark's history and widens the market's maintenance rate to its cap
        before the crash comes (the crash prices below are computed with it)."""
        from orchestrator.risk.price_paths import calm

        market, buffer = await self.venue.market_of(_market_id())
        story = BufferStory(mmr_ppm=market.mmr_ppm, cap_ppm=market.buffer_max_ppm)
        for price in calm(OPEN_PRICE_E8, CALM_TICKS, amplitude_ppm=5, seed=1):
            await self.set_price("ETH-USD", price)
        await self.set_price("ETH-USD", OPEN_PRICE_E8)
        _, story.calm_ppm = await self.venue.market_of(_market_id())
        started = time.monotonic()
        self.series.mark(started - self.t0, "volatile stretch")
        self.console.print(f"calm stretch: buffer {story.calm_ppm} ppm; now ETH swings "
                           f"+-{SWING_PPM} ppm a tick")
        while buffer < market.buffer_max_ppm:
            if time.monotonic() - started > STEP_TIMEOUT_S:
                raise DemoFailed(f"the buffer stayed at {buffer} ppm through the volatility")
            sign = 1 if story.volatile_ticks % 2 == 0 else -1
            await self.set_price("ETH-USD", OPEN_PRICE_E8 * (10**6 + sign * SWING_PPM) // 10**6)
            story.volatile_ticks += 1
            _, buffer = await self.venue.market_of(_market_id())
        story.widened_after_s = round(time.monotonic() - started, 1)
        await self.set_price("ETH-USD", OPEN_PRICE_E8)
        _, story.at_crash_ppm = await self.venue.market_of(_market_id())
        self.buffer = story
        self.console.print(f"the risk worker widened the buffer to {story.at_crash_ppm} ppm: "
                           f"maintenance rate {story.mmr_ppm + story.at_crash_ppm} ppm instead "
                           f"of {story.mmr_ppm} ppm")

    async def crash(self) -> None:
        a = bytes.fromhex(self.keys["A"][2:])
        b_before = await self.b_snapshot()
        pos, margin = await self.venue.position_of(a), await self.venue.margin_of(a)
        mark = await self.mark_e8()
        first = crash_price_e8(size_e18=pos.size_e18, mark_e8=mark,
                               equity_usd_e18=margin.equity_usd_e18,
                               maintenance_usd_e18=margin.maintenance_usd_e18,
                               target_ratio_ppm=PARTIAL_AT_RATIO_PPM)
        start = await self.venue_height()
        await self.crash_tick(first, "A below maintenance")
        partial = await self.wait_liquidation(a, start, full=False)
        self.console.print(f"risk worker liquidated A partially at {_usd(partial.mark_e8)}: "
                           f"closed {format_amount(abs(partial.closed_size_e18), 18)} ETH")
        pos, margin = await self.venue.position_of(a), await self.venue.margin_of(a)
        second = gap_price_e8(size_e18=pos.size_e18, mark_e8=await self.mark_e8(),
                              equity_usd_e18=margin.equity_usd_e18, gap_ppm=GAP_PPM)
        start = partial.height + 1  # the partial step's own block is already counted
        await self.crash_tick(second, "gap through A's bankruptcy")
        full = await self.wait_liquidation(a, start, full=True)
        self.console.print(f"risk worker liquidated A in full at {_usd(full.mark_e8)}")
        await self.follow_locks(self.position_settled("A"), "A's collateral seized on both chains")
        self.fates["B"].untouched_by_crash = await self.b_snapshot() == b_before
        if not self.fates["B"].untouched_by_crash:
            raise DemoFailed("position B changed while A was liquidated")
        self.console.print("A's collateral is seized on evm-a and solana; B is bit-identical")

    async def close_survivors(self) -> None:
        from chains.evm.bridge_codec import lock_key
        from orchestrator.actions.collateral import parse_lock_key
        from orchestrator.actions.trading import close_trade

        rows = await self.lock_rows()
        for label in ("B", "C"):
            p = next(p for p in PLAN if p.label == label)
            keys = self.trader_keys(p.trader)
            await close_trade(self.settings, keys.evm_key or "", position=self.keys[label])
            self.fates[label].closed = True
            for row in (r for r in rows if r["position_key"] == self.keys[label]):
                credit = await self.venue.lock_credit(lock_key(*parse_lock_key(row["key"])))
                if credit.remaining:
                    await request_withdrawal(self.settings, keys, position=self.keys[label],
                                             lock=row["key"], amount=str(credit.remaining),
                                             base_units=True)
            self.console.print(f"{p.trader} closed {label} and withdrew its collateral")
        self.series.mark(time.monotonic() - self.t0, "B and C close")
        await self.follow_locks(lambda rows: all(self.position_settled(lbl)(rows)
                                                 for lbl in ("B", "C")),
                                "B's and C's collateral released")

    # ----- reading the chains ----------------------------------------------------------------

    async def b_snapshot(self) -> tuple[Any, ...]:
        """B's trade, locks, each lock's credit and its row of ``bulkhead positions`` minus
        the fields that move with the mark (equity and ratio): the venue's state, bit for bit."""
        b = bytes.fromhex(self.keys["B"][2:])
        locks = await self.venue.position_locks(b)
        credits = [await self.venue.lock_credit(k) for k in locks]
        rows = await asyncio.to_thread(self.cli_json, "positions")
        row = next((r for r in rows if r["position"] == self.keys["B"]), {})
        fixed = {k: row.get(k) for k in ("size_e18", "entry_e8", "liquidation_price_e8",
                                           "bankruptcy_price_e8")}
        return (await self.venue.position_of(b), tuple(locks), tuple(credits), fixed)

    def cli_json(self, *args: str) -> Any:
        env = {**os.environ, "BULKHEAD_HOME": str(self.home)}
        proc = subprocess.run([sys.executable, "-m", "bulkhead", *args, "--json"], env=env,
                              capture_output=True, text=True, check=False, timeout=60)
        if proc.returncode != 0:
            raise DemoFailed(f"bulkhead {' '.join(args)}: {proc.stderr.strip()}")
        return json.loads(proc.stdout)

    async def venue_height(self) -> int:
        return int(await self.w3.eth.block_number)

    async def mark_e8(self) -> int:
        from chains.evm.artifacts import load_artifact
        from shared.positions import market_id

        cfg = self.settings.chain(self.settings.venue_chain)
        oracle = self.w3.eth.contract(address=cfg.contracts["oracle"],
                                      abi=load_artifact("MarkOracle").abi)
        price, _, _ = await oracle.functions.getMark(market_id("ETH-USD"), 2**256 - 1).call()
        return int(price)

    async def wait_liquidation(self, key: bytes, start: int, *, full: bool) -> Any:
        from chains.evm.venue_codec import LiquidatedEvent, ShortfallEvent

        deadline = time.monotonic() + STEP_TIMEOUT_S
        while time.monotonic() < deadline:
            events = await self.venue.risk_events(start, await self.venue_height())
            mine = [e for e in events if isinstance(e, LiquidatedEvent) and e.position_key == key]
            if mine:
                self.fates["A"].shortfall_usd_e18 += sum(
                    e.usd_e18 for e in events
                    if isinstance(e, ShortfallEvent) and e.position_key == key)
                for ev in mine:
                    self.fates["A"].liquidations.append(
                        {"full": ev.full, "mark_e8": ev.mark_e8, "fee_usd_e18": str(ev.fee_usd_e18),
                         "closed_size_e18": str(ev.closed_size_e18), "height": ev.height})
                    self.series.mark(time.monotonic() - self.t0,
                                     "A liquidated " + ("in full" if ev.full else "partially"))
                if mine[-1].full != full:
                    raise DemoFailed(f"expected a {'full' if full else 'partial'} liquidation, "
                                     f"the venue did a {'full' if mine[-1].full else 'partial'} one")
                return mine[-1]
            await asyncio.sleep(0.5)
        raise DemoFailed(f"no {'full' if full else 'partial'} liquidation of A within "
                         f"{STEP_TIMEOUT_S:.0f} s")

    def position_settled(self, label: str) -> Callable[[list[dict[str, Any]]], bool]:
        """Every lock of the position fully settled back (released + seized = amount)."""
        def done(rows: list[dict[str, Any]]) -> bool:
            mine = [r for r in rows if r["position_key"] == self.keys[label]]
            return bool(mine) and all(int(r["released"]) + int(r["seized"]) == int(r["amount"])
                                      for r in mine)
        return done

    async def lock_rows(self) -> list[dict[str, Any]]:

        store = RedisLockStore(str(self.settings.redis_url))
        settlements = RedisSettlementStore(str(self.settings.redis_url))
        try:
            settled = views.settled_by_lock(settlements.all())
            return [views.lock_row(r, settled=settled.get(r.key)) for r in store.all_records()
                    if r.event.tx_id in self.submitted_ms]
        finally:
            store.close()
            settlements.close()

    async def follow_locks(self, done: Callable[[list[dict[str, Any]]], bool], what: str) -> None:
        """The live lock table until ``done`` holds for every demo lock."""
        deadline = time.monotonic() + STEP_TIMEOUT_S
        with Live(console=self.console, refresh_per_second=4) as live:
            while time.monotonic() < deadline:
                rows = await self.lock_rows()
                live.update(views.locks_table(rows))
                if len(rows) == len(self.submitted_ms) and done(rows):
                    return
                await asyncio.sleep(0.5)
        raise DemoFailed(f"timed out after {STEP_TIMEOUT_S:.0f} s waiting for {what}")

    # ----- prices and samples ------------------------------------------------------------------

    async def set_price(self, market: str, price_e8: int) -> None:
        from devnet.feeder import set_price

        async with self.price_lock:
            self.prices[market] = price_e8
            await set_price(self.settings, self.manifest["devnet"]["feeder_key"], market=market,
                            price=format_amount(price_e8, 8))

    async def republish(self) -> None:
        """Publish every market's current price again, holding the lock throughout so a crash
        tick can never be overwritten by the price it replaced."""
        from devnet.feeder import set_price

        async with self.price_lock:
            for market, price_e8 in self.prices.items():
                await set_price(self.settings, self.manifest["devnet"]["feeder_key"],
                                market=market, price=format_amount(price_e8, 8))

    async def crash_tick(self, price_e8: int, why: str) -> None:
        self.console.print(f"oracle: ETH-USD -> {_usd(price_e8)} ({why})")
        self.series.mark(time.monotonic() - self.t0, f"ETH {_usd(price_e8)}")
        await self.set_price("ETH-USD", price_e8)

    async def keep_prices_fresh(self) -> None:
        """Re-publish the current prices so user actions never meet a stale oracle."""
        while not await self.pause(5):
            await self.republish()

    async def sample_ratios(self) -> None:
        while not self.stopping.is_set():
            t = time.monotonic() - self.t0
            for label, key in self.keys.items():
                m = await self.venue.margin_of(bytes.fromhex(key[2:]))
                self.series.add(label, t, ratio_ppm(m.equity_usd_e18, m.maintenance_usd_e18))
            self.series.add_buffer(t, (await self.venue.market_of(_market_id()))[1])
            await self.pause(0.5)

    async def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until the demo stops; True when it stops."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # ----- the report --------------------------------------------------------------------------

    async def report(self) -> dict[str, Any]:
        rows = await self.lock_rows()
        journeys = []
        for row in sorted(rows, key=lambda r: (self.label_of_tx[r["tx_id"]], r["chain"])):
            j = lock_journey(row, self.submitted_ms[row["tx_id"]])
            j["position_label"] = self.label_of_tx[row["tx_id"]]
            journeys.append(j)
            fate = self.fates[j["position_label"]]
            fate.locks.append(row["key"])
            for kind in ("released", "seized"):
                amount = int(row[kind])
                if amount:
                    getattr(fate, kind)[row["chain"]] = getattr(fate, kind).get(row["chain"], 0) \
                        + amount
        fates = [self.fates[p.label] for p in PLAN]
        self.console.print(locks_report_table(journeys))
        self.console.print(positions_report_table(fates))
        if self.buffer is not None:
            self.console.print(buffer_report_table(self.buffer))
        market, _ = await self.venue.market_of(_market_id())
        chart = write_ratio_chart(self.series, self.home / "margin_ratios.png",
                                  full_ratio_ppm=market.full_ratio_ppm)
        self.console.print(f"margin ratio chart: {chart}")
        return {"locks": journeys, "positions": [f.to_dict() for f in fates],
                "chart": str(chart),
                "series": {k: [[t, r] for t, r in v] for k, v in self.series.points.items()},
                "marks": self.series.marks,
                "buffer": {**(self.buffer.to_dict() if self.buffer else {}),
                           "series": [[t, b] for t, b in self.series.buffer]}}


def _market_id() -> bytes:
    from shared.positions import market_id

    return market_id("ETH-USD")


def _usd(price_e8: int) -> str:
    return format_amount(price_e8, 8) + " USD"


def _audit(home: Path, console: Console) -> bool:
    env = {**os.environ, "BULKHEAD_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "bulkhead", "audit", "--json"], env=env,
                          capture_output=True, text=True, check=False)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        console.print(f"[red]audit failed to run[/]\n{proc.stderr}")
        return False
    clean = proc.returncode == 0 and report.get("clean", False)
    console.print(f"bulkhead audit: {'clean' if clean else 'VIOLATIONS'} "
                  f"({len(report.get('violations', []))} violations)")
    return clean
