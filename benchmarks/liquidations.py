"""Liquidation figure: N positions made liquidatable by one price tick on the devnet, every one
liquidated by the real risk worker and its collateral seized back on the source chain by the
real attesters and relayer.

Set-up (not timed): the devnet with fast clocks (anvil 0.5 s blocks), the whole worker fleet;
alice locks 32 USDC on ``evm-a`` for each of N positions (one lock per position, pipelined), the
bridge credits them; alice opens a 0.1 ETH long on each (about 9.4x) at 3,000 USD/ETH.
Timed: the feeder publishes 1,650 (a 45 % gap through every bankruptcy price) in one tick.

Measured from the chains (block timestamps of one host clock, 1 s resolution):
- ``to_liquidation_s``: per position, ``Liquidated`` block time on evm-b - the tick's block time;
- ``to_settlement_s``: per position, the evm-a vault's ``Settled`` (seize) block time - the tick;
- p50 / p99 / max of both, the last one, and counts (every position liquidated once, settled
  once); the risk worker's largest screen seen (``bh:risk:last_screen``: positions,
  candidates, the vectorized screen's own duration in µs).

``python -m benchmarks.run liquidations [--positions N]`` (default 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from web3 import Web3

from benchmarks.bridge import ATTESTERS, READY_TIMEOUT_S, _WithGas, dist, wait_ready
from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from chains.evm.sender import TxSender
from devnet.feeder import set_price
from devnet.stack import DevnetOptions, down, up
from shared.locks import LockState
from shared.positions import market_id, position_key
from shared.settings import load_settings
from workers.stores.locks import RedisLockStore

N_POSITIONS = 1_000
LOCK_UNITS = 32 * 10**6  # 32 USDC per position
SIZE_E18 = 10**17  # 0.1 ETH
OPEN_PRICE, CRASH_PRICE = "3000", "1650"
CLOCKS = DevnetOptions(block_time_s=0.5, slots_in_an_epoch=2, slot_ms=100, solana_finality_lag=10,
                       detach=False)
STALL_S = 240.0


def positions(manifest: dict[str, Any], n: int) -> list[str]:
    b = manifest["chains"]["evm-b"]
    owner = manifest["devnet"]["traders"]["alice"]["evm_address"]
    return [position_key(b["chain_id"], b["contracts"]["venue"], owner,
                         f"liq-bench-{i}".encode().ljust(32, b"\0")) for i in range(n)]


async def lock_all(manifest: dict[str, Any], keys: list[str]) -> set[str]:
    chain = manifest["chains"]["evm-a"]
    alice = manifest["devnet"]["traders"]["alice"]
    venue = manifest["chains"]["evm-b"]["contracts"]["venue"]
    sender = await TxSender.connect(chain["rpc_urls"][0], alice["evm_key"])
    try:
        usdc = chain["assets"]["USDC"]["address"]
        token = sender.w3.eth.contract(address=usdc, abi=load_artifact("TestToken").abi)
        await sender.wait(await sender.send(token.functions.approve(chain["vaults"][0], 2**255)))
        vault = sender.w3.eth.contract(address=chain["vaults"][0],
                                       abi=load_artifact("CollateralVault").abi)

        def call(key: str) -> Any:
            return vault.functions.lock(usdc, LOCK_UNITS, bytes.fromhex(key[2:]), 31338, venue,
                                        alice["evm_address"])

        gas = int(await call(keys[0]).estimate_gas({"from": sender.address}) * 3 // 2)
        hashes = [await sender.send(_WithGas(call(k), gas)) for k in keys]
        await sender.wait(hashes[-1], timeout_s=180)
        return set(hashes)
    finally:
        await sender.aclose()


async def open_all(manifest: dict[str, Any], keys: list[str]) -> int:
    """Alice opens every position, pipelined; returns how many opened (Traded events)."""
    b = manifest["chains"]["evm-b"]
    sender = await TxSender.connect(b["rpc_urls"][0],
                                    manifest["devnet"]["traders"]["alice"]["evm_key"])
    try:
        venue = sender.w3.eth.contract(address=b["contracts"]["venue"],
                                       abi=load_artifact("IsolatedMarginVenue").abi)
        eth = market_id("ETH-USD")

        def call(key: str) -> Any:
            return venue.functions.open(bytes.fromhex(key[2:]), eth, SIZE_E18)

        gas = int(await call(keys[0]).estimate_gas({"from": sender.address}) * 3 // 2)
        hashes = [await sender.send(_WithGas(call(k), gas)) for k in keys]
        receipts = [await sender.wait(h, timeout_s=180) for h in hashes]
        return sum(1 for r in receipts if int(r["status"]) == 1)
    finally:
        await sender.aclose()


def wait_credited(store: RedisLockStore, tx_ids: set[str], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    credited = 0
    while time.monotonic() < deadline:
        credited = sum(1 for r in store.all_records()
                       if r.event.tx_id in tx_ids and r.state == LockState.CREDITED)
        if credited >= len(tx_ids):
            break
        time.sleep(2)
    return credited


def block_times(w3: Web3, heights: set[int]) -> dict[int, int]:
    return {h: int(w3.eth.get_block(h)["timestamp"]) for h in heights}


def wait_outcomes(manifest: dict[str, Any], keys: set[bytes], tick_block: int,
                  timeout_s: float) -> tuple[list[Any], list[Any], float, dict[str, int]]:
    """Poll the Liquidated (evm-b) and Settled (evm-a) logs until every position has both;
    also keep the risk worker's largest screen (``bh:risk:last_screen``) seen meanwhile."""
    b, a = manifest["chains"]["evm-b"], manifest["chains"]["evm-a"]
    w3b, w3a = Web3(Web3.HTTPProvider(b["rpc_urls"][0])), Web3(Web3.HTTPProvider(a["rpc_urls"][0]))
    venue = w3b.eth.contract(address=b["contracts"]["venue"],
                             abi=load_artifact("IsolatedMarginVenue").abi)
    vault = w3a.eth.contract(address=a["vaults"][0], abi=load_artifact("CollateralVault").abi)
    start_a = 0
    deadline, last_progress, best = time.monotonic() + timeout_s, time.monotonic(), -1
    liquidated: list[Any] = []
    settled: list[Any] = []
    screens = redis.Redis.from_url(manifest["redis_url"])
    largest: dict[str, int] = {}
    while time.monotonic() < deadline and time.monotonic() - last_progress < STALL_S:
        liquidated = [e for e in venue.events.Liquidated().get_logs(from_block=tick_block)
                      if e.args.positionKey in keys]
        settled = [e for e in vault.events.Settled().get_logs(from_block=start_a)
                   if int(e.args.kind) == 2]
        screen = {k.decode(): int(v) for k, v in screens.hgetall("bh:risk:last_screen").items()}
        if screen.get("positions", 0) > largest.get("positions", -1):
            largest = screen
        progress = len(liquidated) + len(settled)
        if progress > best:
            best, last_progress = progress, time.monotonic()
        if len({e.args.positionKey for e in liquidated}) >= len(keys) and len(settled) >= len(keys):
            break
        time.sleep(0.5)
    return liquidated, settled, time.monotonic(), largest


def main(n: int = N_POSITIONS) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bh-bench-liq-"))
    manifest = up(home, CLOCKS)
    fleet = WorkerFleet(home, home / "worker-logs",
                        env={"BULKHEAD_CONFIG": str(home / "none.toml")})
    try:
        settings = load_settings(home=home, chains=manifest["chains"],
                                 redis_url=manifest["redis_url"])
        feeder = manifest["devnet"]["feeder_key"]
        fleet.start_all(ATTESTERS)
        wait_ready(fleet, READY_TIMEOUT_S)
        keys = positions(manifest, n)
        asyncio.run(set_price(settings, feeder, market="USDC", price="1"))
        asyncio.run(set_price(settings, feeder, market="ETH-USD", price=OPEN_PRICE))
        t = time.monotonic()
        tx_ids = asyncio.run(lock_all(manifest, keys))
        store = RedisLockStore(manifest["redis_url"])
        credited = wait_credited(store, tx_ids, timeout_s=120 + 0.5 * n)
        store.close()
        setup_credit_s = time.monotonic() - t
        if credited < n:
            raise SystemExit(f"liquidations: only {credited}/{n} locks credited")
        asyncio.run(set_price(settings, feeder, market="USDC", price="1"))
        asyncio.run(set_price(settings, feeder, market="ETH-USD", price=OPEN_PRICE))
        opened = asyncio.run(open_all(manifest, keys))

        tick = asyncio.run(set_price(settings, feeder, market="ETH-USD", price=CRASH_PRICE))
        w3b = Web3(Web3.HTTPProvider(manifest["chains"]["evm-b"]["rpc_urls"][0]))
        tick_block = int(w3b.eth.block_number)
        tick_ts = int(tick["publish_time"])
        wall0 = time.monotonic()
        raw = {bytes.fromhex(k[2:]) for k in keys}
        liquidated, settled, wall_end, screen = wait_outcomes(manifest, raw, tick_block,
                                                      timeout_s=300 + 2.0 * n)
        w3a = Web3(Web3.HTTPProvider(manifest["chains"]["evm-a"]["rpc_urls"][0]))
        tb = block_times(w3b, {e.blockNumber for e in liquidated})
        ta = block_times(w3a, {e.blockNumber for e in settled})
        per_key = Counter(e.args.positionKey for e in liquidated)
        to_liq = [(tb[e.blockNumber] - tick_ts) * 1000 for e in liquidated]
        to_settle = [(ta[e.blockNumber] - tick_ts) * 1000 for e in settled]
        return {
            "benchmark": "liquidations", "positions": n, "opened": opened,
            "liquidated_positions": len(per_key),
            "liquidations_per_position_max": max(per_key.values(), default=0),
            "full": sum(1 for e in liquidated if e.args.full),
            "seize_settlements": len(settled),
            "to_liquidation_s": dist(to_liq),
            "to_settlement_s": dist(to_settle),
            "last_liquidation_s": max(to_liq, default=0) / 1000,
            "last_settlement_s": max(to_settle, default=0) / 1000,
            "wall_s": round(wall_end - wall0, 1),
            "risk_screen_largest": screen,
            "setup": {"credit_s": round(setup_credit_s, 1)},
            "devnet": dict(manifest["devnet"]["options"]), "home": str(home),
            "resolution": "block timestamps, 1 s",
        }
    finally:
        fleet.stop()
        down(home)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.liquidations")
    parser.add_argument("--positions", type=int, default=N_POSITIONS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(main(parse_args(sys.argv[1:]).positions), indent=2))
