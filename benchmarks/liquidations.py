"""Liquidation figure: N positions made liquidatable by one price tick on the devnet, every one
liquidated by the real risk worker and its collateral seized back on the source chain by the
real attesters and relayer.

Set-up (not timed): the devnet with fast clocks (anvil 0.5 s blocks), the whole worker fleet;
alice locks 32 USDC on ``evm-a`` for each of N positions (one lock per position, pipelined), the
bridge credits them; alice opens a 0.1 ETH long on each (about 9.4x) at 3,000 USD/ETH.
Timed: the feeder publishes 1,650 (a 45 % gap through every bankruptcy price) in one tick.

Measured from the chains. Three clocks, each figure says which (``resolution``):
- block timestamps (1 s steps; both anvils stamp blocks with this host's clock):
  ``to_liquidation_s`` / ``to_settlement_s``: per position, the ``Liquidated`` block time on
  evm-b / the evm-a vault's ``Settled`` (seize) block time minus the tick's publish time; p50 /
  p99 / max, and the last one;
- block numbers x the anvil block time (0.5 s steps, same chain only; ``anvil_pace`` checks that
  the chain kept its interval over the window): ``stages.tick_to_liquidated.blocks_s``;
- the block clock (a 100 ms poll of both chains' ``eth_blockNumber`` from this process: when
  each block was first seen, on one host clock across the two chains; each block is known to
  within ``block_clock.per_chain.*.window_ms``): ``stages.*.host_s``.

Stages: tick -> ``Liquidated`` (evm-b); ``Liquidated`` -> ``SettlementRequested`` (the same
transaction by construction: counted, 0 s); ``SettlementRequested`` (evm-b) -> ``Settled`` (evm-a),
per settlement id; tick -> ``Settled``; and, from the workers' JSON logs (host clock), when each
pipeline task that did work after the tick first started and last ended, relative to the tick
block's sighting (risk tick, execute_liquidations, poll_venue, attest_settlements,
relay_settlements): the split of the settlement side that the chains cannot show. Transactions: every ``liquidateBatch`` to the venue and
``settleBatch`` to the vault in the window, read back from the chains: count, items sent and
done, skipped items by reason, gas per item (gasUsed / items done, and per item sent).
Also counts (every position liquidated once, settled once) and the risk worker's largest
screen seen (``bh:risk:last_screen``: positions, candidates, the vectorized screen's own
duration in µs).

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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import redis
from web3 import Web3

from benchmarks.bridge import _CELERY_TASK, _json_lines, _log_ms
from benchmarks.common import (
    ATTESTERS,
    READY_TIMEOUT_S,
    BlockClock,
    WithGas,
    contract_transactions,
    dist,
    tx_summary,
    wait_ready,
)
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
# The buffer is off here: the figure is the liquidation path alone, and a buffer push would
# share the risk key with the liquidation batches.
CLOCKS = DevnetOptions(block_time_s=0.5, slots_in_an_epoch=2, slot_ms=100, solana_finality_lag=10,
                       detach=False, buffer_markets=())
STALL_S = 240.0
KIND_SEIZE = 2


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
        hashes = [await sender.send(WithGas(call(k), gas)) for k in keys]
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
        hashes = [await sender.send(WithGas(call(k), gas)) for k in keys]
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


def block_times(w3: Web3, heights: Iterable[int]) -> dict[int, int]:
    return {h: int(w3.eth.get_block(h)["timestamp"]) for h in set(heights)}


def wait_outcomes(manifest: dict[str, Any], keys: set[bytes], tick_block: int, start_a: int,
                  timeout_s: float) -> dict[str, Any]:
    """Poll the Liquidated and SettlementRequested (evm-b) and Settled (evm-a) logs until every
    position has been liquidated and seized; also keep the risk worker's largest screen
    (``bh:risk:last_screen``) seen meanwhile."""
    b, a = manifest["chains"]["evm-b"], manifest["chains"]["evm-a"]
    w3b, w3a = Web3(Web3.HTTPProvider(b["rpc_urls"][0])), Web3(Web3.HTTPProvider(a["rpc_urls"][0]))
    venue = w3b.eth.contract(address=b["contracts"]["venue"],
                             abi=load_artifact("IsolatedMarginVenue").abi)
    vault = w3a.eth.contract(address=a["vaults"][0], abi=load_artifact("CollateralVault").abi)
    deadline, last_progress, best = time.monotonic() + timeout_s, time.monotonic(), -1
    liquidated: list[Any] = []
    requested: list[Any] = []
    settled: list[Any] = []
    screens = redis.Redis.from_url(manifest["redis_url"], decode_responses=True)
    largest: dict[str, int] = {}
    try:
        while time.monotonic() < deadline and time.monotonic() - last_progress < STALL_S:
            liquidated = [e for e in venue.events.Liquidated().get_logs(from_block=tick_block)
                          if e.args.positionKey in keys]
            settled = [e for e in vault.events.Settled().get_logs(from_block=start_a)
                       if int(e.args.kind) == KIND_SEIZE]
            screen = {str(k): int(v) for k, v in screens.hgetall("bh:risk:last_screen").items()}
            if (screen.get("positions", 0), screen.get("candidates", 0)) > (
                    largest.get("positions", -1), largest.get("candidates", -1)):
                largest = screen
            progress = len(liquidated) + len(settled)
            if progress > best:
                best, last_progress = progress, time.monotonic()
            if len({e.args.positionKey for e in liquidated}) >= len(keys) \
                    and len(settled) >= len(keys):
                break
            time.sleep(0.5)
        requested = [e for e in venue.events.SettlementRequested().get_logs(from_block=tick_block)
                     if int(e.args.kind) == KIND_SEIZE]
    finally:
        screens.close()
    return {"liquidated": liquidated, "requested": requested, "settled": settled,
            "wall_end": time.monotonic(), "screen": largest}


PIPELINE_TASKS = ("bulkhead.risk.tick", "bulkhead.risk.execute_liquidations",
                  "bulkhead.settle.poll_venue", "bulkhead.settle.attest_settlements",
                  "bulkhead.settle.relay_settlements")
_IDLE_RESULTS = {"0", "None", "[]", "{}", "''", "False"}


def worker_timeline(logs: Path, origin_ms: int | None) -> dict[str, Any]:
    """From the workers' JSON logs: each pipeline task's runs that did something (a result
    other than 0 / empty) after ``origin_ms``: how many, when the first started and the last
    ended (seconds from ``origin_ms``; log timestamps are host clock, µs; a start is the end
    minus the duration Celery logged) and their summed durations."""
    if origin_ms is None:
        return {}
    runs: dict[str, list[tuple[int, int]]] = {name: [] for name in PIPELINE_TASKS}
    for path in sorted(logs.glob("*.log")):
        for entry in _json_lines(path):
            m = _CELERY_TASK.match(str(entry.get("event", "")))
            if m is None or m.group(1) not in runs or m.group(3) is None:
                continue
            if m.group(4).strip() in _IDLE_RESULTS:
                continue
            end = _log_ms(str(entry["timestamp"]))
            start = end - int(float(m.group(3)) * 1000)
            if end >= origin_ms:
                runs[m.group(1)].append((start, end))
    return {name.rsplit(".", 1)[1]: {
        "runs": len(rows),
        "first_start_s": round((min(r[0] for r in rows) - origin_ms) / 1000, 3) if rows else None,
        "last_end_s": round((max(r[1] for r in rows) - origin_ms) / 1000, 3) if rows else None,
        "busy_s": round(sum(r[1] - r[0] for r in rows) / 1000, 3)} for name, rows in runs.items()}


def tick_block_of(w3b: Web3, oracle: str, from_block: int, publish_time: int,
                  price_e8: int) -> int:
    """The evm-b block where the crash tick became the mark (ETH-USD's ``EmaUpdated`` at that
    publish time and price)."""
    contract = w3b.eth.contract(address=Web3.to_checksum_address(oracle),
                                abi=load_artifact("MarkOracle").abi)
    eth = market_id("ETH-USD")
    for e in contract.events.EmaUpdated().get_logs(from_block=from_block):
        if bytes(e.args.id) == eth and int(e.args.publishTime) == publish_time \
                and int(e.args.markE8) == price_e8:
            return int(e.blockNumber)
    raise RuntimeError("the crash tick's EmaUpdated was not found")


def host_ms(clock: BlockClock, chain: str, block: int, origin: int | None) -> float | None:
    seen = clock.seen_ms(chain, block)
    return None if seen is None or origin is None else float(seen - origin)


def anvil_pace(clock: BlockClock, chain: str, first: int, last: int,
               block_time_s: float) -> dict[str, Any]:
    """Did the chain keep its block interval over ``first..last``? Block-number time vs the
    host time between the two blocks' first sightings."""
    a, b = clock.seen_ms(chain, first), clock.seen_ms(chain, last)
    if a is None or b is None or last <= first:
        return {"blocks": max(0, last - first), "host_s": None, "by_numbers_s": None}
    by_numbers = (last - first) * block_time_s
    host = (b - a) / 1000
    return {"blocks": last - first, "by_numbers_s": round(by_numbers, 1),
            "host_s": round(host, 1), "host_over_numbers": round(host / by_numbers, 3)}


def transactions(manifest: dict[str, Any], start_b: int, end_b: int, start_a: int,
                 end_a: int) -> dict[str, Any]:
    """The venue's and the vault's transactions in the window, by function."""
    b, a = manifest["chains"]["evm-b"], manifest["chains"]["evm-a"]
    w3b = Web3(Web3.HTTPProvider(b["rpc_urls"][0], request_kwargs={"timeout": 60}))
    w3a = Web3(Web3.HTTPProvider(a["rpc_urls"][0], request_kwargs={"timeout": 60}))
    venue = w3b.eth.contract(address=b["contracts"]["venue"],
                             abi=load_artifact("IsolatedMarginVenue").abi)
    vault = w3a.eth.contract(address=a["vaults"][0], abi=load_artifact("CollateralVault").abi)
    on_b = contract_transactions(w3b, venue, start_b, end_b)
    on_a = contract_transactions(w3a, vault, start_a, end_a)
    out = {"liquidateBatch": tx_summary(on_b.get("liquidateBatch", []), "Liquidated"),
           "settleBatch": tx_summary(on_a.get("settleBatch", []), "Settled")}
    out["other_venue_txs"] = {k: len(v) for k, v in on_b.items() if k != "liquidateBatch"}
    out["other_vault_txs"] = {k: len(v) for k, v in on_a.items() if k != "settleBatch"}
    return out


def analyse(manifest: dict[str, Any], found: Mapping[str, Any], clock: BlockClock,
            tick_block: int, tick_ts: int, start_a: int) -> dict[str, Any]:
    w3b = Web3(Web3.HTTPProvider(manifest["chains"]["evm-b"]["rpc_urls"][0]))
    w3a = Web3(Web3.HTTPProvider(manifest["chains"]["evm-a"]["rpc_urls"][0]))
    block_time = float(manifest["devnet"]["options"]["block_time_s"])
    liquidated, requested, settled = found["liquidated"], found["requested"], found["settled"]
    tb = block_times(w3b, [e.blockNumber for e in liquidated])
    ta = block_times(w3a, [e.blockNumber for e in settled])
    tick_seen = clock.seen_ms("evm-b", tick_block)

    # timestamps, 1 s
    to_liq = [(tb[e.blockNumber] - tick_ts) * 1000 for e in liquidated]
    to_settle = [(ta[e.blockNumber] - tick_ts) * 1000 for e in settled]
    # block numbers x block time, 0.5 s, evm-b only
    liq_blocks = [(e.blockNumber - tick_block) * block_time * 1000 for e in liquidated]
    # the block clock, host ms across both chains
    liq_host = [v for e in liquidated
                if (v := host_ms(clock, "evm-b", e.blockNumber, tick_seen)) is not None]
    settle_host = [v for e in settled
                   if (v := host_ms(clock, "evm-a", e.blockNumber, tick_seen)) is not None]
    requested_at = {bytes(e.args.settlementId): e.blockNumber for e in requested}
    req_to_settled = []
    for e in settled:
        req_block = requested_at.get(bytes(e.args.settlementId))
        if req_block is not None:
            origin = clock.seen_ms("evm-b", req_block)
            if (v := host_ms(clock, "evm-a", e.blockNumber, origin)) is not None:
                req_to_settled.append(v)
    liq_txs = {bytes(e.transactionHash) for e in liquidated}
    req_txs = Counter(bytes(e.transactionHash) for e in requested)
    same_tx = sum(1 for e in liquidated if req_txs[bytes(e.transactionHash)] > 0)

    end_b = max((e.blockNumber for e in [*liquidated, *requested]), default=tick_block)
    end_a = max((e.blockNumber for e in settled), default=start_a)
    per_key = Counter(e.args.positionKey for e in liquidated)
    return {
        "liquidated_positions": len(per_key),
        "liquidations_per_position_max": max(per_key.values(), default=0),
        "full": sum(1 for e in liquidated if e.args.full),
        "settlement_requests": len(requested),
        "seize_settlements": len(settled),
        "settled_ids_distinct": len({bytes(e.args.settlementId) for e in settled}),
        "to_liquidation_s": dist(to_liq),
        "to_settlement_s": dist(to_settle),
        "last_liquidation_s": max(to_liq, default=0) / 1000,
        "last_settlement_s": max(to_settle, default=0) / 1000,
        "stages": {
            "tick_to_liquidated": {"host_s": dist(liq_host), "blocks_s": dist(liq_blocks),
                                   "timestamps_s": dist(to_liq)},
            "liquidated_to_settlement_requested": {
                "same_tx": same_tx, "liquidated": len(liquidated),
                "liquidation_txs": len(liq_txs), "s": 0.0},
            "settlement_requested_to_settled": {"host_s": dist(req_to_settled)},
            "tick_to_settled": {"host_s": dist(settle_host), "timestamps_s": dist(to_settle)},
        },
        "last_liquidated_host_s": round(max(liq_host, default=0) / 1000, 3),
        "last_settled_host_s": round(max(settle_host, default=0) / 1000, 3),
        "transactions": transactions(manifest, tick_block, end_b, start_a, end_a),
        "anvil_pace": {"evm-b": anvil_pace(clock, "evm-b", tick_block, end_b, block_time),
                       "evm-a": anvil_pace(clock, "evm-a", start_a, end_a, block_time)},
        "block_clock": clock.resolution(),
        "resolution": {
            "to_liquidation_s, to_settlement_s, *.timestamps_s, last_*_s":
                "block timestamps: 1 s steps (host clock, both chains)",
            "*.blocks_s": f"evm-b block numbers x {block_time} s: {block_time} s steps, "
                          "assuming the chain kept its interval (see anvil_pace)",
            "*.host_s, last_*_host_s": "the block clock: when each block was first seen by a "
                                       "100 ms poll, one host clock across both chains (see "
                                       "block_clock.per_chain.*.window_ms)",
        },
    }


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

        b, a = manifest["chains"]["evm-b"], manifest["chains"]["evm-a"]
        w3b, w3a = Web3(Web3.HTTPProvider(b["rpc_urls"][0])), Web3(Web3.HTTPProvider(a["rpc_urls"][0]))
        with BlockClock({"evm-b": b["rpc_urls"][0], "evm-a": a["rpc_urls"][0]}) as clock:
            time.sleep(1.0)  # the clock has seen the blocks before the tick
            before_b, start_a = int(w3b.eth.block_number), int(w3a.eth.block_number)
            tick = asyncio.run(set_price(settings, feeder, market="ETH-USD", price=CRASH_PRICE))
            wall0 = time.monotonic()
            tick_block = tick_block_of(w3b, b["contracts"]["oracle"], before_b,
                                       int(tick["publish_time"]), int(tick["price_e8"]))
            raw = {bytes.fromhex(k[2:]) for k in keys}
            found = wait_outcomes(manifest, raw, tick_block, start_a, timeout_s=300 + 2.0 * n)
            time.sleep(0.3)  # one more poll of the block clock
        result = analyse(manifest, found, clock, tick_block, int(tick["publish_time"]), start_a)
        result["stages"]["worker_tasks_after_tick"] = worker_timeline(
            fleet.logs, clock.seen_ms("evm-b", tick_block))
        return {
            "benchmark": "liquidations", "positions": n, "opened": opened,
            **result,
            "wall_s": round(found["wall_end"] - wall0, 1),
            "risk_screen_largest": found["screen"],
            "setup": {"credit_s": round(setup_credit_s, 1)},
            "devnet": dict(manifest["devnet"]["options"]), "home": str(home),
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
