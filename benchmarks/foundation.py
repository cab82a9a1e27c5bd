"""Foundation figures: time from `devnet up` to ready, and `bulkhead locks` over 1,000 locks.

Brings up its own devnet (anvil auto-mining so 1,000 locks land quickly; Solana 400 ms slots),
sends 1,000 locks on evm-a with pipelined nonces, then measures:
- ``devnet_up_s``: stack.up() wall time (processes + deploy + manifest);
- ``first_sync_s``: one watcher pass that discovers all 1,000 locks (the cold rescan cost, also
  what a Redis loss costs);
- ``locks_cli_s`` / ``locks_cli_nosync_s``: the real ``bulkhead locks --json`` subprocess, with
  and without the watcher pass, median of 3.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chains.evm.artifacts import load_artifact
from chains.evm.sender import TxSender
from devnet.stack import DevnetOptions, down, up
from orchestrator.watch.service import sync_once
from shared.settings import load_settings
from workers.stores.locks import RedisLockStore

N_LOCKS = 1_000


async def send_locks(manifest: dict[str, Any], n: int) -> None:
    chain = manifest["chains"]["evm-a"]
    alice = manifest["devnet"]["traders"]["alice"]
    sender = await TxSender.connect(chain["rpc_urls"][0], alice["evm_key"])
    usdc = chain["assets"]["USDC"]["address"]
    token = sender.w3.eth.contract(address=usdc, abi=load_artifact("TestToken").abi)
    vault = sender.w3.eth.contract(address=chain["vaults"][0],
                                   abi=load_artifact("CollateralVault").abi)
    await sender.wait(await sender.send(token.functions.approve(vault.address, 2**255)))
    venue = manifest["chains"]["evm-b"]["contracts"]["venue"]
    last = ""
    for i in range(n):
        last = await sender.send(vault.functions.lock(
            usdc, 1_000_000 + i, (i + 1).to_bytes(32, "big"), 31338, venue, alice["evm_address"]))
    await sender.wait(last)


def cli_locks(home: Path, *extra: str) -> float:
    env = {**os.environ, "BULKHEAD_HOME": str(home)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bulkhead", "locks", "--json", *extra],
                         env=env, capture_output=True, text=True, check=True)
    took = time.perf_counter() - start
    assert len(json.loads(out.stdout)) >= N_LOCKS
    return took


def main() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bh-bench-"))
    started = time.perf_counter()
    manifest = up(home, DevnetOptions(block_time_s=None, detach=False))
    up_s = time.perf_counter() - started
    try:
        asyncio.run(send_locks(manifest, N_LOCKS))
        settings = load_settings(home=home, chains=manifest["chains"],
                                 redis_url=manifest["redis_url"])
        store = RedisLockStore(manifest["redis_url"])
        t0 = time.perf_counter()
        asyncio.run(sync_once(settings, store))
        first_sync = time.perf_counter() - t0
        assert len(store.all_records()) >= N_LOCKS
        with_sync = statistics.median(cli_locks(home) for _ in range(3))
        no_sync = statistics.median(cli_locks(home, "--no-sync") for _ in range(3))
    finally:
        down(home)
    return {"benchmark": "foundation", "locks": N_LOCKS, "devnet_up_s": round(up_s, 3),
            "first_sync_s": round(first_sync, 3), "locks_cli_s": round(with_sync, 3),
            "locks_cli_nosync_s": round(no_sync, 3)}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
