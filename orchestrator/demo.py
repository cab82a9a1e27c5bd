"""``make demo`` / ``bulkhead demo``: the main job on the embedded local default.

Today's scope (foundation): bring the three chains up, deploy, lock collateral on ``evm-a``
(alice, 125.5 USDC) and on ``solana`` (bob, 250 USDC), and follow both locks through
``seen -> safe -> finalized`` with the watchers, then shut everything down. The demo runs in its
own home (``<home>/demo``) so it never touches a devnet you started yourself.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from chains.devnet.stack import DevnetOptions, down, up
from orchestrator import views
from orchestrator.lock_store import RedisLockStore
from orchestrator.locks import LockState
from orchestrator.positions import position_key
from orchestrator.settings import Settings, load_settings
from orchestrator.trading import TraderKeys, build_lock_request, submit_lock
from orchestrator.watch_service import sync_once

__all__ = ["run_demo"]

LOCKS = (("alice", "evm-a", "125.5"), ("bob", "solana", "250"))
TIMEOUT_S = 120.0


def run_demo(home: Path, console: Console, *, keep: bool = False) -> int:
    demo_home = home / "demo"
    down(demo_home)  # a previous interrupted demo
    started = time.monotonic()
    with console.status("starting devnet") as status:
        manifest = up(demo_home, DevnetOptions(), progress=status.update)
    console.print(views.manifest_table(manifest))
    console.print(f"devnet ready in {manifest['devnet']['ready_s']} s")
    try:
        settings = load_settings(home=demo_home, chains=manifest["chains"],
                                 redis_url=manifest["redis_url"])
        ok = asyncio.run(_locks_to_finality(settings, manifest, console))
    finally:
        if not keep:
            down(demo_home)
            console.print("devnet stopped")
    console.print(f"demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


async def _locks_to_finality(settings: Settings, manifest: dict, console: Console) -> bool:  # type: ignore[type-arg]
    venue_chain_id, venue = settings.venue()
    for trader, chain, amount in LOCKS:
        keys = TraderKeys.from_devnet(manifest, trader)
        owner = manifest["devnet"]["traders"][trader]["evm_address"]
        key = position_key(venue_chain_id, venue, owner, trader.encode().ljust(32, b"\0"))
        req = build_lock_request(settings, chain=chain, asset="USDC", amount=amount,
                                 position=key, beneficiary=owner)
        result = await submit_lock(req, keys)
        console.print(f"{trader} locked {amount} USDC on {chain}: {result.tx_id}")
    store = RedisLockStore(str(settings.redis_url))
    deadline = time.monotonic() + TIMEOUT_S
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            await sync_once(settings, store)
            rows = [views.lock_row(r) for r in store.all_records()]
            live.update(views.locks_table(rows))
            done = len(rows) == len(LOCKS) and all(
                r["state"] == LockState.FINALIZED for r in rows)
            if done or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    store.close()
    return done
