"""``make demo`` / ``bulkhead demo``: the main job on the embedded local default.

1. bring the three chains and Redis up and deploy (vaults, venue, oracle, SPL multisig vault);
2. start the real workers: watcher, 4 attesters (3 of 4), relayer, reconciler, beat;
3. alice locks 125.5 USDC on ``evm-a`` and bob 250 USDC on ``solana``, each for a position
   on the venue on ``evm-b``; the live table follows both through
   ``seen -> safe -> finalized -> attested -> credited``;
4. alice withdraws 25.5 USDC and bob 50 USDC of margin; the attesters sign the venue's release
   and the relayer executes it on the source chains (``CollateralVault.settle`` and a 3-of-4
   SPL multisig transfer);
5. ``bulkhead audit`` must be clean; everything is shut down.

The demo runs in its own home (``<home>/demo``) so it never touches a devnet you started.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from chains.devnet.stack import DevnetOptions, down, up
from orchestrator import views
from orchestrator.lock_store import RedisLockStore
from orchestrator.positions import position_key
from orchestrator.settings import Settings, load_settings
from orchestrator.trading import TraderKeys, build_lock_request, request_withdrawal, submit_lock

__all__ = ["run_demo"]

LOCKS = (("alice", "evm-a", "125.5", "25.5"), ("bob", "solana", "250", "50"))
ATTESTERS = ["att-1", "att-2", "att-3", "att-4"]
TIMEOUT_S = 150.0
DEMO_CLOCKS = DevnetOptions(block_time_s=1.0, slots_in_an_epoch=2, slot_ms=200,
                            solana_finality_lag=16)


def run_demo(home: Path, console: Console, *, keep: bool = False) -> int:
    from workers.fleet import WorkerFleet

    demo_home = home / "demo"
    down(demo_home)  # a previous interrupted demo
    started = time.monotonic()
    with console.status("starting devnet") as status:
        manifest = up(demo_home, DEMO_CLOCKS, progress=status.update)
    console.print(views.manifest_table(manifest))
    console.print(f"devnet ready in {manifest['devnet']['ready_s']} s")
    fleet = WorkerFleet(demo_home, demo_home / "logs")
    try:
        with console.status("starting workers: watcher, 4 attesters, relayer, reconciler, beat"):
            fleet.start_all(ATTESTERS)
        settings = load_settings(home=demo_home, chains=manifest["chains"],
                                 redis_url=manifest["redis_url"],
                                 attesters=manifest["attesters"])
        ok = asyncio.run(_journey(settings, manifest, console))
        ok = ok and _audit(demo_home, console)
    finally:
        fleet.stop()
        if not keep:
            down(demo_home)
            console.print("workers and devnet stopped")
    console.print(f"demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s "
                  f"(worker logs: {demo_home / 'logs'})")
    return 0 if ok else 1


async def _journey(settings: Settings, manifest: dict[str, Any], console: Console) -> bool:
    venue_chain_id, venue = settings.venue()
    positions, tx_ids = {}, set()
    for trader, chain, amount, _ in LOCKS:
        owner = manifest["devnet"]["traders"][trader]["evm_address"]
        key = position_key(venue_chain_id, venue, owner, trader.encode().ljust(32, b"\0"))
        positions[trader] = key
        req = build_lock_request(settings, chain=chain, asset="USDC", amount=amount,
                                 position=key, beneficiary=owner)
        result = await submit_lock(req, TraderKeys.from_devnet(manifest, trader))
        tx_ids.add(result.tx_id)
        console.print(f"{trader} locked {amount} USDC on {chain} for position {key[:10]}…")

    def all_credited(rows: list[dict[str, Any]]) -> bool:
        return all(r["state"] == "credited" for r in rows)

    rows = await _follow(settings, tx_ids, all_credited, console, "credits")
    if rows is None:
        return False
    console.print("both locks credited on the venue (evm-b); withdrawing part of the margin")
    for trader, chain, _, back in LOCKS:
        row = next(r for r in rows if r["chain"] == chain)
        res = await request_withdrawal(settings, TraderKeys.from_devnet(manifest, trader),
                                       position=positions[trader], lock=row["key"], amount=back)
        console.print(f"{trader} withdraws {back} USDC: settlement {res.settlement_id[:10]}…")

    def all_released(rows: list[dict[str, Any]]) -> bool:
        return all(r["released"] != "0" for r in rows)

    return await _follow(settings, tx_ids, all_released, console, "releases") is not None


async def _follow(settings: Settings, tx_ids: set[str],
                  done: Callable[[list[dict[str, Any]]], bool], console: Console,
                  what: str) -> list[dict[str, Any]] | None:
    """Show the live lock table until ``done`` holds for every demo lock (or time out)."""
    from bridges.settlement_store import SettlementStore

    store = RedisLockStore(str(settings.redis_url))
    settlements = SettlementStore(str(settings.redis_url))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        with Live(console=console, refresh_per_second=4) as live:
            while time.monotonic() < deadline:
                settled = views.settled_by_lock(settlements.all())
                rows = [views.lock_row(r, settled=settled.get(r.key))
                        for r in store.all_records() if r.event.tx_id in tx_ids]
                live.update(views.locks_table(rows))
                if len(rows) == len(tx_ids) and done(rows):
                    return rows
                await asyncio.sleep(0.5)
    finally:
        store.close()
    console.print(f"[red]timed out waiting for {what}[/]")
    return None


def _audit(home: Path, console: Console) -> bool:
    env = {**os.environ, "BULKHEAD_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "audit", "--json"], env=env,
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
