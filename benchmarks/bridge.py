"""Bridge figure (DESIGN's bridge target): a burst of locks, half on evm-a and half on solana,
credited on the venue by the real workers (beat, watcher, reconciler, relayer, risk, 4 attesters
with threshold 3) on this machine; every lock must be credited exactly once.

Brings up its own devnet with fast finality (anvil 1 s blocks, finalized = latest-4; Solana
200 ms slots, finalized = processed-10) so the figure is about the bridge, starts the worker
fleet, waits until every worker is ready, then sends the burst as a burst: alice's EVM locks
(approve once, then one ``lock`` per lock) and bob's Solana locks (TransferChecked + memo) are
all signed first, then sent at once in JSON-RPC batches, so they land within a few blocks and
slots (sent one at a time, the driver itself spread them over ~22 s and capped the figure
near 80 credits/s). Positions: round robin over enough keys per trader
that none gets more than ``LOCKS_PER_POSITION`` locks (the venue caps credited locks per
position at ``MAX_POSITION_LOCKS``; one more goes to position 0 for the single-credit gas).

Measured (from the chains, the lock records, the ``bh:ready`` stream and the worker logs; every
clock below is this host's, in ms, unless it says otherwise):
- ``credited`` / ``duplicates`` / ``missing``: distinct burst locks with a venue ``Credited``
  event, locks with more than one (must be 0), locks with none; ``queued`` (``CreditQueued``);
- ``wall_s``: first lock sent -> last credit (``credited.at_ms`` of the records);
- ``credits_per_s``: credited / (last credit - first finalized), and over the whole burst;
- ``finality_to_credit_s``: per lock ``credited.at_ms - finalized.at_ms``, p50/p95/p99/max;
- ``gas``: the relayer's ``creditBatch`` gas per credit, vs one single ``credit`` (sent after
  the fleet is stopped, signed here with 3 of the devnet attester keys);
- ``where_the_time_goes``: per-lock stages (``stages_s``: seen -> finalized -> quorum ->
  relayer picked up -> credit block seen -> credited record; see ``clocks`` in the output for
  how each moment is measured and its resolution), the relayer's transactions read back from
  the venue chain (batch sizes, gas, skipped items by reason), what each attester's ``attested``
  log lines add up to, per-task durations from the Celery JSON logs, and CPU seconds per process
  over the burst (workers with their pool children, the devnet processes, this driver);
- ``audit``: ``bulkhead audit --json`` after the fleet stopped (exit code, violations).

``--fault`` (``python -m benchmarks.run bridge --fault``, stored as ``bridge_fault``): once half
of the burst's lock records are credited, SIGKILL the relayer (its process group) and one
attester, FLUSHALL Redis, and restart both at once as a supervisor would; the run then reports
that every lock was credited exactly once, how long recovery took and the audit. Per-lock
stage times are not reported for it: the flush makes the watcher rebuild every record, so their
transition times after the fault are rediscovery times.

``python -m benchmarks.run bridge --locks 200`` for a quick run; the default is 2,000.
Worker and devnet logs stay under the printed ``home``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from web3 import Web3

from benchmarks.common import (
    ATTESTERS,
    READY_TIMEOUT_S,
    BlockClock,
    ReadyTap,
    WithGas,
    contract_transactions,
    cpu_snapshot,
    dist,
    now_ms,
    ready_count,
    tx_summary,
    wait_ready,
    worker_cpu_s,
)
from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import CreditedEvent, CreditQueuedEvent
from chains.evm.sender import TxSender
from devnet.evm_specs import _default_limits
from devnet.stack import DevnetOptions, down, up
from shared.locks import LockRecord, LockState
from shared.positions import position_key
from shared.settings import Settings, load_settings
from workers.stores import keys as store_keys
from workers.stores.locks import RedisLockStore

N_LOCKS = 2_000
FAST = DevnetOptions(block_time_s=1.0, slots_in_an_epoch=2, slot_ms=200, solana_finality_lag=10,
                     detach=False, buffer_markets=())
LOCKS_PER_POSITION = 10  # under the venue's MAX_POSITION_LOCKS, with room for one more
AMOUNT = 1_000_000  # 1 USDC (6 decimals); lock i locks AMOUNT + i base units
SOLANA_IN_FLIGHT = 50
STALL_S = 240.0  # stop waiting when no lock was credited for this long
UNSEEN_S = 60.0  # ... or when all seen locks are credited and no new lock appeared for this long
POLL_S = 2.0
TIMELINE_EVERY_S = 10.0
FAULT_AT = 0.5  # fraction of the burst credited (records) when the fault is injected
FAULT_ATTESTER = "att-2"
WORKER_LABELS = ["beat", "watcher", "reconciler", "relayer", "risk", *ATTESTERS]


def check_amounts(n_per_lane: int) -> None:
    """The burst must fit the devnet governor of each lane: no lock above the large-transfer
    threshold (it would be queued for the delay) and the sum under the 24 h cap."""
    limits = _default_limits(6)
    biggest = AMOUNT + 2 * n_per_lane
    total = sum(AMOUNT + i for i in range(2 * n_per_lane))
    if biggest > limits["large_threshold"] or total > limits["cap"]:
        raise SystemExit(f"burst does not fit the lane limits {limits}: largest {biggest}, "
                         f"total {total}")


# ----- the burst --------------------------------------------------------------------------------


def positions_for(n_locks: int) -> int:
    return max(1, -(-n_locks // LOCKS_PER_POSITION))


def trader_positions(manifest: dict[str, Any], trader: str, count: int,
                     start: int = 0) -> list[str]:
    venue_b = manifest["chains"]["evm-b"]
    owner = manifest["devnet"]["traders"][trader]["evm_address"]
    return [position_key(venue_b["chain_id"], venue_b["contracts"]["venue"], owner,
                         f"bench-{trader}-{i}".encode().ljust(32, b"\0"))
            for i in range(start, start + count)]


def check_position_cap(manifest: dict[str, Any]) -> int | None:
    """The venue's per-position lock cap, if it has one; refuse a burst that would hit it."""
    b = manifest["chains"]["evm-b"]
    w3 = Web3(Web3.HTTPProvider(b["rpc_urls"][0]))
    venue = w3.eth.contract(address=b["contracts"]["venue"],
                            abi=load_artifact("IsolatedMarginVenue").abi)
    if not any(f.get("name") == "MAX_POSITION_LOCKS" for f in venue.abi):
        return None
    cap = int(venue.functions.MAX_POSITION_LOCKS().call())
    if LOCKS_PER_POSITION + 1 > cap:
        raise SystemExit(f"LOCKS_PER_POSITION={LOCKS_PER_POSITION} (+1) exceeds the venue's "
                         f"MAX_POSITION_LOCKS={cap}")
    return cap


async def approve_evm(manifest: dict[str, Any]) -> None:
    chain = manifest["chains"]["evm-a"]
    sender = await TxSender.connect(chain["rpc_urls"][0],
                                    manifest["devnet"]["traders"]["alice"]["evm_key"])
    try:
        token = sender.w3.eth.contract(address=chain["assets"]["USDC"]["address"],
                                       abi=load_artifact("TestToken").abi)
        await sender.wait(await sender.send(token.functions.approve(chain["vaults"][0], 2**255)))
    finally:
        await sender.aclose()


def evm_locks(manifest: dict[str, Any], vault: Any, n: int, offset: int,
              start_position: int = 0) -> Callable[[int], Any]:
    """Alice's i-th ``lock`` call of a run of ``n`` on ``vault`` (the CollateralVault contract
    of the w3 that will send it): amount AMOUNT + offset + i, positions round robin."""
    chain = manifest["chains"]["evm-a"]
    alice = manifest["devnet"]["traders"]["alice"]
    venue = manifest["chains"]["evm-b"]["contracts"]["venue"]
    positions = trader_positions(manifest, "alice", positions_for(n), start_position)
    usdc = chain["assets"]["USDC"]["address"]

    def call(i: int) -> Any:
        return vault.functions.lock(usdc, AMOUNT + offset + i,
                                    bytes.fromhex(positions[i % len(positions)][2:]), 31338,
                                    venue, alice["evm_address"])

    return call


def solana_locks(manifest: dict[str, Any], n: int, offset: int,
                 start_position: int = 0) -> tuple[Any, Callable[[int], list[Any]]]:
    """Bob's keypair and the instructions of his i-th lock of a run of ``n`` (TransferChecked
    + memo, amount AMOUNT + offset + i, positions round robin)."""
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey

    from chains.solana.locker import lock_instructions

    sol = manifest["chains"]["solana"]
    bob = manifest["devnet"]["traders"]["bob"]
    trader = Keypair.from_bytes(bytes(bob["solana_secret"]))
    mint = Pubkey.from_string(sol["assets"]["USDC"]["address"])
    source = Pubkey.from_string(bob["solana_token_accounts"]["USDC"])
    vault = Pubkey.from_string(sol["vaults"][0])
    venue = manifest["chains"]["evm-b"]["contracts"]["venue"]
    positions = trader_positions(manifest, "bob", positions_for(n), start_position)

    def instructions(i: int) -> list[Any]:
        return lock_instructions(
            trader=trader, trader_token_account=source, vault_token_account=vault, mint=mint,
            decimals=int(sol["assets"]["USDC"]["decimals"]), amount=AMOUNT + offset + i,
            dst_chain_id=31338, dst_venue=venue, position_key=positions[i % len(positions)],
            beneficiary=bob["evm_address"])

    return trader, instructions


async def send_evm(manifest: dict[str, Any], n: int, offset: int,
                   start_position: int = 0) -> tuple[list[str], int]:
    """``n`` pipelined locks from alice; returns the tx hashes and when the last one mined."""
    chain = manifest["chains"]["evm-a"]
    sender = await TxSender.connect(chain["rpc_urls"][0],
                                    manifest["devnet"]["traders"]["alice"]["evm_key"])
    try:
        vault = sender.w3.eth.contract(address=chain["vaults"][0],
                                       abi=load_artifact("CollateralVault").abi)
        call = evm_locks(manifest, vault, n, offset, start_position)
        gas = int(await call(0).estimate_gas({"from": sender.address}) * 3 // 2)
        hashes = []
        for i in range(n):
            hashes.append(await sender.send(WithGas(call(i), gas)))
            if i % 50 == 49:
                await asyncio.sleep(0)  # let the Solana sender run between sends
        await sender.wait(hashes[-1], timeout_s=120)
        return hashes, now_ms()
    finally:
        await sender.aclose()


async def send_solana(manifest: dict[str, Any], n: int, offset: int,
                      start_position: int = 0) -> tuple[list[str], int]:
    """``n`` locks from bob, ``SOLANA_IN_FLIGHT`` at a time, each awaited to ``confirmed``."""
    from solana.rpc.async_api import AsyncClient

    from chains.solana.locker import send_instructions

    trader, instructions = solana_locks(manifest, n, offset, start_position)
    gate = asyncio.Semaphore(SOLANA_IN_FLIGHT)

    async with AsyncClient(manifest["chains"]["solana"]["rpc_urls"][0], timeout=60) as client:
        async def one(i: int) -> str:
            ixs = instructions(i)
            async with gate:
                return await send_instructions(client, trader, ixs)

        sigs = await asyncio.gather(*(one(i) for i in range(n)))
    return list(sigs), now_ms()


async def _rpc_batch(client: httpx.AsyncClient, url: str, method: str,
                     params: Sequence[list[Any]], chunk: int = 200) -> list[Any]:
    """``method`` over every params list, as JSON-RPC batches of ``chunk``; the results in
    order (an error answer raises: a burst transaction refused is a broken benchmark)."""
    out: list[Any] = []
    for at in range(0, len(params), chunk):
        body = [{"jsonrpc": "2.0", "id": at + i, "method": method, "params": p}
                for i, p in enumerate(params[at:at + chunk])]
        answers = sorted((await client.post(url, json=body, timeout=120)).json(),
                         key=lambda a: a["id"])
        for answer in answers:
            if "error" in answer:
                raise SystemExit(f"bridge: {method} refused: {answer['error']}")
            out.append(answer["result"])
    return out


def presign_evm(manifest: dict[str, Any], n: int, offset: int) -> list[bytes]:
    """``n`` signed ``lock`` transactions from alice, consecutive nonces, a fixed gas limit and
    twice the current base fee (so none waits on the fee market)."""
    from eth_account import Account

    chain = manifest["chains"]["evm-a"]
    alice = manifest["devnet"]["traders"]["alice"]
    w3 = Web3(Web3.HTTPProvider(chain["rpc_urls"][0]))
    vault = w3.eth.contract(address=chain["vaults"][0], abi=load_artifact("CollateralVault").abi)
    call = evm_locks(manifest, vault, n, offset)
    sender = Web3.to_checksum_address(alice["evm_address"])
    gas = int(call(0).estimate_gas({"from": sender}) * 3 // 2)
    nonce = w3.eth.get_transaction_count(sender, "pending")
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tx = {"from": sender, "gas": gas, "maxFeePerGas": 2 * base + 10**9,
          "maxPriorityFeePerGas": 10**9, "chainId": int(chain["chain_id"])}
    return [bytes(Account.sign_transaction(call(i).build_transaction({**tx, "nonce": nonce + i}),
                                           alice["evm_key"]).raw_transaction)
            for i in range(n)]


def presign_solana(manifest: dict[str, Any], n: int, offset: int, blockhash: Any) -> list[Any]:
    """``n`` signed lock transactions from bob over one recent blockhash (each its own
    amount, so each its own signature)."""
    from solders.message import MessageV0
    from solders.transaction import VersionedTransaction

    trader, instructions = solana_locks(manifest, n, offset)
    return [VersionedTransaction(MessageV0.try_compile(trader.pubkey(), instructions(i), [],
                                                       blockhash), [trader])
            for i in range(n)]


async def burst_evm(url: str, raws: Sequence[bytes]) -> tuple[list[str], int]:
    """Send the pre-signed locks in JSON-RPC batches; returns the hashes and when the last
    one was mined (polled)."""
    async with httpx.AsyncClient() as client:
        hashes = [str(h) for h in await _rpc_batch(
            client, url, "eth_sendRawTransaction", [["0x" + r.hex()] for r in raws])]
        while True:
            receipt = (await _rpc_batch(client, url, "eth_getTransactionReceipt",
                                        [[hashes[-1]]]))[0]
            if receipt is not None:
                return hashes, now_ms()
            await asyncio.sleep(0.1)


async def burst_solana(url: str, txs: Sequence[Any]) -> tuple[list[str], int]:
    """Send the pre-signed locks in JSON-RPC batches (preflight skipped: each is a known-good
    lock); returns the signatures and when every one was ``confirmed`` (polled)."""
    import base64

    async with httpx.AsyncClient() as client:
        config = {"encoding": "base64", "skipPreflight": True}
        sigs = [str(s) for s in await _rpc_batch(
            client, url, "sendTransaction",
            [[base64.b64encode(bytes(tx)).decode(), config] for tx in txs])]
        waiting = list(sigs)
        while waiting:
            statuses = []
            for at in range(0, len(waiting), 256):
                statuses += (await _rpc_batch(client, url, "getSignatureStatuses",
                                              [[waiting[at:at + 256]]]))[0]["value"]
            failed = [s for s, st in zip(waiting, statuses, strict=True) if st and st["err"]]
            if failed:
                raise SystemExit(f"bridge: {len(failed)} Solana locks failed, e.g. {failed[0]}")
            waiting = [s for s, st in zip(waiting, statuses, strict=True)
                       if not st or st["confirmationStatus"] not in ("confirmed", "finalized")]
            if waiting:
                await asyncio.sleep(0.1)
        return sigs, now_ms()


async def send_burst(manifest: dict[str, Any], n_evm: int, n_sol: int) -> dict[str, Any]:
    """The burst, as a burst: every lock is signed first, then all are sent at once in JSON-RPC
    batches, so they land within a few blocks and slots (the figure is about the bridge, not
    about how fast this driver signs; sent one by one, the locks spread over ~22 s)."""
    from solders.hash import Hash

    await approve_evm(manifest)
    sol_url = manifest["chains"]["solana"]["rpc_urls"][0]
    raws = presign_evm(manifest, n_evm, 0)
    async with httpx.AsyncClient() as client:
        latest = (await _rpc_batch(client, sol_url, "getLatestBlockhash",
                                   [[{"commitment": "confirmed"}]]))[0]
    txs = presign_solana(manifest, n_sol, n_evm, Hash.from_string(latest["value"]["blockhash"]))
    first = now_ms()
    (evm, evm_done), (sol, sol_done) = await asyncio.gather(
        burst_evm(manifest["chains"]["evm-a"]["rpc_urls"][0], raws), burst_solana(sol_url, txs))
    return {"first_ms": first, "evm": evm, "solana": sol, "evm_done_ms": evm_done,
            "solana_done_ms": sol_done, "presigned": True}


# ----- the stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    home: Path
    manifest: dict[str, Any]
    fleet: WorkerFleet
    settings: Settings
    ready_s: float

    @property
    def venue_url(self) -> str:
        return str(self.manifest["chains"]["evm-b"]["rpc_urls"][0])

    def venue_head(self) -> int:
        return int(Web3(Web3.HTTPProvider(self.venue_url)).eth.block_number)


@contextmanager
def bridge_stack(prefix: str = "bh-bench-bridge-",
                 venue_gas_limit: int | None = None) -> Iterator[Stack]:
    """Its own devnet (``FAST`` clocks; the venue chain's block gas limit lifted when given)
    and the whole worker fleet, ready; both stopped after."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    manifest = up(home, replace(FAST, venue_gas_limit=venue_gas_limit))
    fleet = WorkerFleet(home, home / "worker-logs",
                        env={"BULKHEAD_CONFIG": str(home / "none.toml")})
    try:
        settings = load_settings(home=home, chains=manifest["chains"],
                                 redis_url=manifest["redis_url"])
        fleet.start_all(ATTESTERS)
        ready_s = wait_ready(fleet, READY_TIMEOUT_S)
        yield Stack(home, manifest, fleet, settings, ready_s)
    finally:
        fleet.stop()
        down(home)


# ----- the fault --------------------------------------------------------------------------------


@dataclass
class Fault:
    """SIGKILL the relayer and one attester, FLUSHALL, restart both (as a supervisor would)."""

    fleet: WorkerFleet
    redis_url: str
    total: int
    victims: tuple[str, ...] = ("relayer", FAULT_ATTESTER)
    fired_ms: int | None = None
    credited_at_fault: int = 0
    cpu_before_kill: dict[str, float] = field(default_factory=dict)
    ready_before: dict[str, int] = field(default_factory=dict)
    ready_ms: dict[str, int] = field(default_factory=dict)

    def due(self, credited: int) -> bool:
        return self.fired_ms is None and credited >= max(1, int(self.total * FAULT_AT))

    def fire(self, credited: int) -> None:
        self.credited_at_fault = credited
        for label in self.victims:
            self.cpu_before_kill[label] = worker_cpu_s(self.fleet, label)
            self.ready_before[label] = ready_count(self.fleet, label)
        self.fired_ms = now_ms()
        for label in self.victims:
            self.fleet.kill(label)
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushall()
        finally:
            client.close()
        for label in self.victims:
            self.fleet.restart(label)
        print(f"bridge: fault injected at {credited}/{self.total} credited", file=sys.stderr)

    def watch(self) -> None:
        """Note when each restarted worker says it is ready again."""
        for label in self.victims:
            if label not in self.ready_ms and label in self.ready_before and \
                    ready_count(self.fleet, label) > self.ready_before[label]:
                self.ready_ms[label] = now_ms()


# ----- waiting ----------------------------------------------------------------------------------


def wait_credited(store: RedisLockStore, tx_ids: set[str], started_ms: int, timeout_s: float,
                  fault: Fault | None = None) -> tuple[list[LockRecord], list[list[float]], int]:
    """Poll the records until every lock of the burst is credited (or stalls / times out);
    returns our records, a coarse timeline [t_s, seen, finalized, attested, credited] (counts of
    locks that reached each state, t from the first lock sent) and when the wait ended (ms).
    With ``fault``, injects it once half the burst is credited (the records are then rebuilt
    from the chains by the watcher, so the counts drop and climb again)."""
    deadline = time.monotonic() + timeout_s
    last_progress, best = time.monotonic(), -1
    last_new, n_seen = time.monotonic(), -1
    timeline: list[list[float]] = []
    ours: list[LockRecord] = []
    while True:
        ours = [r for r in store.all_records() if r.event.tx_id in tx_ids]
        credited = sum(1 for r in ours if r.state == LockState.CREDITED)
        t_s = round((now_ms() - started_ms) / 1000, 1)
        if fault is not None and fault.due(credited):
            timeline.append([t_s, len(ours),
                             sum(1 for r in ours if r.reached(LockState.FINALIZED)),
                             sum(1 for r in ours if r.reached(LockState.ATTESTED)), credited])
            fault.fire(credited)
            last_progress, best = time.monotonic(), -1
            last_new, n_seen = time.monotonic(), -1
            continue
        if fault is not None:
            fault.watch()
        done = credited >= len(tx_ids) and (fault is None or fault.fired_ms is not None)
        if credited > best:
            best, last_progress = credited, time.monotonic()
        if len(ours) > n_seen:
            n_seen, last_new = len(ours), time.monotonic()
        unseen = (credited == len(ours) and time.monotonic() - last_new > UNSEEN_S)
        stalled = unseen or time.monotonic() - last_progress > STALL_S
        timed_out = time.monotonic() > deadline
        due = not timeline or t_s - timeline[-1][0] >= TIMELINE_EVERY_S
        if done or stalled or timed_out or due:
            timeline.append([t_s, len(ours),
                             sum(1 for r in ours if r.reached(LockState.FINALIZED)),
                             sum(1 for r in ours if r.reached(LockState.ATTESTED)), credited])
        if done:
            break
        if stalled or timed_out:
            why = ("never seen: the rest" if unseen else "stalled") if stalled else "timed out"
            print(f"bridge: {why} at {credited}/{len(tx_ids)} credited", file=sys.stderr)
            break
        # until the fault is injected, look often so it lands close to the halfway mark
        time.sleep(0.5 if fault is not None and fault.fired_ms is None else POLL_S)
    return ours, timeline, now_ms()


# ----- analysis ---------------------------------------------------------------------------------


def at(record: LockRecord, state: LockState) -> int | None:
    t = record.reached(state)
    return None if t is None else t.at_ms


def diffs(records: Iterable[LockRecord], a: LockState, b: LockState) -> list[float]:
    out = []
    for r in records:
        ta, tb = at(r, a), at(r, b)
        if ta is not None and tb is not None:
            out.append(float(tb - ta))
    return out


_CELERY_TASK = re.compile(
    r"^Task ([\w.]+)\[[\w-]+\] (succeeded in ([\d.]+)s: (.*)|retry: .*|raised .*)$")


def _log_ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                yield entry


def parse_logs(logs: Path, labels: Iterable[str], since_ms: int) -> dict[str, Any]:
    """From the workers' JSON logs, lines at or after ``since_ms``: per task name, runs,
    retries, errors and durations; per attester, what its ``attested`` lines (one per range
    with something new to post) add up to; the relayer's ``relayed`` lines."""
    runs: dict[str, list[float]] = defaultdict(list)
    retries: Counter[str] = Counter()
    raised: Counter[str] = Counter()
    attested: dict[str, dict[str, int]] = {}
    relayed = Counter[str]()
    for label in labels:
        for entry in _json_lines(logs / f"{label}.log"):
            stamp = entry.get("timestamp")
            if not stamp or _log_ms(str(stamp)) < since_ms:
                continue
            event = str(entry.get("event", ""))
            if event == "attested":
                row = attested.setdefault(label, {"ranges": 0, "posted": 0, "already": 0,
                                                  "ready": 0})
                row["ranges"] += 1
                for k in ("posted", "already", "ready"):
                    row[k] += int(entry.get(k, 0))
                continue
            if event == "relayed":
                relayed["lines"] += 1
                for k in ("credited", "queued", "skipped"):
                    relayed[k] += int(entry.get(k, 0))
                continue
            m = _CELERY_TASK.match(event)
            if m is None:
                continue
            name = m.group(1)
            if m.group(2).startswith("succeeded"):
                runs[name].append(float(m.group(3)) * 1000)
            elif m.group(2).startswith("retry"):
                retries[name] += 1
            else:
                raised[name] += 1
    tasks = {name: {"runs": len(v), "busy_s": round(sum(v) / 1000, 2), **{
        k: val for k, val in dist(v).items() if k in ("p50", "p95", "max")},
        "retries": retries[name], "raised": raised[name]} for name, v in sorted(runs.items())}
    for name in set(retries) | set(raised):
        tasks.setdefault(name, {"runs": 0, "retries": retries[name], "raised": raised[name]})
    return {"tasks": tasks, "attested": attested, "relayed": dict(relayed)}


async def venue_credits(settings: Settings, head: int) -> tuple[list[CreditedEvent], int]:
    """Every Credited event of the venue up to ``head`` and the number of CreditQueued events."""
    from chains.evm.venue import VenueClient
    from shared.chain import ChainKind, ChainRef

    cfg = settings.chain("evm-b")
    client = await VenueClient.connect([str(u) for u in cfg.rpc_urls], cfg.contracts["venue"],
                                       chain=ChainRef("evm-b", ChainKind.EVM, cfg.chain_id),
                                       retry=settings.retry)
    try:
        events = await client.events(cfg.deployment_height, head)
    finally:
        await client.aclose()
    return ([e for e in events if isinstance(e, CreditedEvent)],
            sum(1 for e in events if isinstance(e, CreditQueuedEvent)))


def relayer_transactions(manifest: dict[str, Any], start_block: int) -> dict[str, Any]:
    """Every transaction the relayer sent to the venue since ``start_block``, from the chain."""
    b = manifest["chains"]["evm-b"]
    w3 = Web3(Web3.HTTPProvider(b["rpc_urls"][0], request_kwargs={"timeout": 60}))
    venue = w3.eth.contract(address=b["contracts"]["venue"],
                            abi=load_artifact("IsolatedMarginVenue").abi)
    relayer = w3.eth.account.from_key(manifest["devnet"]["relayer_key"]).address
    return contract_transactions(w3, venue, start_block, int(w3.eth.block_number),
                                 sender=relayer)


@dataclass
class Credits:
    """What the venue says about the burst's locks."""

    per_key: Counter[bytes]  # venue lock key -> Credited events
    block: dict[bytes, int]  # venue lock key -> block of its first Credited event
    queued: int
    expected: int

    @property
    def credited(self) -> int:
        return len(self.per_key)

    @property
    def duplicates(self) -> int:
        return sum(1 for c in self.per_key.values() if c > 1)


def read_credits(stack: Stack, records: Sequence[LockRecord], expected: int) -> Credits:
    from bridges.relay import venue_lock_key

    events, queued = asyncio.run(venue_credits(stack.settings, stack.venue_head()))
    ours = {venue_lock_key(r.key) for r in records}
    per_key: Counter[bytes] = Counter()
    block: dict[bytes, int] = {}
    for e in events:
        if e.lock_key in ours:
            per_key[e.lock_key] += 1
            block.setdefault(e.lock_key, e.height)
    return Credits(per_key, block, queued, expected)


def stage_samples(records: Sequence[LockRecord], quorum_ms: Mapping[str, int],
                  credit_seen_ms: Mapping[str, int]) -> dict[str, list[float]]:
    """Per lock, the ms between consecutive moments of its way to the venue (a lock missing a
    moment is left out of the two stages around it)."""
    moments: list[tuple[str, Any]] = [
        ("seen", lambda r: at(r, LockState.SEEN)),
        ("finalized", lambda r: at(r, LockState.FINALIZED)),
        ("quorum", lambda r: quorum_ms.get(r.key)),
        ("relayer picked up", lambda r: at(r, LockState.ATTESTED)),
        ("credit block seen", lambda r: credit_seen_ms.get(r.key)),
        ("credited record", lambda r: at(r, LockState.CREDITED)),
    ]
    out: dict[str, list[float]] = {}
    for (a, fa), (b, fb) in itertools.pairwise(moments):
        out[f"{a} -> {b}"] = [float(tb - ta) for r in records
                              if (ta := fa(r)) is not None and (tb := fb(r)) is not None]
    return out


def stages(records: Sequence[LockRecord], quorum_ms: Mapping[str, int],
           credit_seen_ms: Mapping[str, int]) -> dict[str, Any]:
    """:func:`stage_samples` as p50/p95/p99/max/mean seconds (the means add up to seen ->
    credited record)."""
    return {k: dist(v) for k, v in stage_samples(records, quorum_ms, credit_seen_ms).items()}


CLOCKS = {
    "seen, finalized": "lock records, written by the watcher (host clock, ms; the watcher "
                       "polls each chain about once a second)",
    "quorum": "id of the lock's first bh:ready stream entry (Redis clock = host clock, ms): "
              "the moment the signature that completed the quorum was posted; the entries are "
              "copied every 100 ms before the relayer deletes them",
    "relayer picked up": "the lock record's attested transition, written by the relayer just "
                         "before it sends the batch (host clock, ms)",
    "credit block seen": "first poll of the venue chain's eth_blockNumber (every 100 ms) that saw "
                         "the block with the lock's Credited event: known to within "
                         "block_clock.per_chain.evm-b.window_ms; the relayer often has the "
                         "receipt before the poll sees the block, so credit block seen -> "
                         "credited record is below this clock's resolution and can be negative",
    "credited record": "the lock record's credited transition, written by the relayer after "
                       "the receipt (host clock, ms)",
}


def run_audit(home: Path) -> dict[str, Any]:
    """``bulkhead audit --json`` against the devnet home: exit code and violations."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
           "BULKHEAD_HOME": str(home), "BULKHEAD_CONFIG": str(home / "none.toml")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bulkhead", "audit", "--json"], env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    took = round(time.monotonic() - started, 1)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return {"exit_code": done.returncode, "violations": None, "s": took,
                "stderr": done.stderr[-2000:]}
    violations = report.get("violations", [])
    return {"exit_code": done.returncode, "violations": len(violations),
            "clean": report.get("clean"), "s": took,
            "checked": {k: v.get("checked") for k, v in
                        report.get("summary", {}).get("invariants", {}).items()},
            "first_violations": violations[:5]}


async def single_credit_gas(manifest: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """One lock on evm-a credited alone with ``credit`` (fleet stopped: this process signs as 3
    of the 4 devnet attesters and sends as the relayer), to an existing position."""
    from bridges.observation import attestation_for
    from bridges.quorum import AttesterSet
    from bridges.verifier import verify
    from chains.evm.locker import lock_on_evm
    from chains.evm.venue import VenueClient
    from chains.factory import adapter_for
    from shared.chain import ChainKind, ChainRef
    from shared.ids import Bytes32Hex
    from shared.messages import Domain, sign

    a, b = manifest["chains"]["evm-a"], manifest["chains"]["evm-b"]
    alice = manifest["devnet"]["traders"]["alice"]
    receipt = await lock_on_evm(
        a["rpc_urls"][0], private_key=alice["evm_key"], vault=a["vaults"][0],
        asset=a["assets"]["USDC"]["address"], amount=AMOUNT,
        position_key=Bytes32Hex(trader_positions(manifest, "alice", 1)[0]),
        dst_chain_id=b["chain_id"],
        dst_venue=b["contracts"]["venue"], beneficiary=alice["evm_address"])
    adapter = adapter_for("evm-a", settings.chain("evm-a"), settings.retry)
    try:
        events = await adapter.lock_events(receipt.block_number, receipt.block_number)
    finally:
        await adapter.aclose()
    event = next(e for e in events if e.tx_id.lower() == receipt.tx_hash.lower())
    attestation = attestation_for(event, manifest["attesters"]["set_index"])
    domain = Domain(b["chain_id"], b["contracts"]["venue"])
    keys = [manifest["devnet"]["attester_keys"][m["name"]]["evm_key"]
            for m in manifest["attesters"]["members"]]
    sigs = [sign(attestation, domain, k) for k in keys[:3]]
    members = AttesterSet.of(manifest["attesters"]["set_index"],
                             [m["address"] for m in manifest["attesters"]["members"]],
                             manifest["attesters"]["threshold"])
    verified = verify(attestation, domain, sigs, members)
    venue = await VenueClient.connect(
        [str(u) for u in settings.chain("evm-b").rpc_urls], b["contracts"]["venue"],
        chain=ChainRef("evm-b", ChainKind.EVM, b["chain_id"]),
        sender_key=manifest["devnet"]["relayer_key"], retry=settings.retry)
    try:
        outcome = await venue.credit(attestation, verified.signatures)
    finally:
        await venue.aclose()
    return {"gas": outcome.gas_used, "credited": len(outcome.credited)}


def cpu_figures(before: Mapping[str, float], after: Mapping[str, float],
                carried: Mapping[str, float], elapsed_ms: float) -> dict[str, Any]:
    """CPU seconds per process over the burst; ``carried`` adds what killed processes used
    before they were killed (their replacements start from zero)."""
    used = {}
    for label in sorted(after):
        if label in carried:
            used[label] = carried[label] - before.get(label, 0.0) + after[label]
        else:
            used[label] = after[label] - before.get(label, 0.0)
    total = sum(used.values())
    return {"cpu_s": {k: round(v, 1) for k, v in used.items()},
            "cpu_s_total": round(total, 1),
            "cpu_busy_of_all_cores": round(total / max(1.0, elapsed_ms / 1000)
                                           / (os.cpu_count() or 1), 2)}


def analyse(stack: Stack, burst: dict[str, Any], records: list[LockRecord],
            credits: Credits, txs: dict[str, list[dict[str, Any]]], logs: dict[str, Any],
            clock: BlockClock, tap: ReadyTap, fault: Fault | None) -> dict[str, Any]:
    from bridges.relay import venue_lock_key

    n = len(burst["evm"]) + len(burst["solana"])
    first_ms = burst["first_ms"]
    credited_r = [r for r in records if r.reached(LockState.CREDITED)]
    fin = [t for r in records if (t := at(r, LockState.FINALIZED)) is not None]
    cred = [t for r in credited_r if (t := at(r, LockState.CREDITED)) is not None]
    last_credit = max(cred) if cred else None
    first_final = min(fin) if fin else None
    span_ms = (last_credit - first_final) if last_credit and first_final else None
    wall_ms = (last_credit - first_ms) if last_credit else None

    batch = tx_summary(txs.get("creditBatch", []), "Credited")
    credit_seen = {}
    for r in records:
        height = credits.block.get(venue_lock_key(r.key))
        seen = None if height is None else clock.seen_ms("evm-b", height)
        if seen is not None:
            credit_seen[r.key] = seen

    result: dict[str, Any] = {
        "locks": n,
        "locks_evm": len(burst["evm"]),
        "locks_solana": len(burst["solana"]),
        "never_seen": {"evm-a": len(set(burst["evm"]) - {r.event.tx_id for r in records}),
                       "solana": len(set(burst["solana"]) - {r.event.tx_id for r in records})},
        "credited": credits.credited,
        "credited_records": len(credited_r),
        "duplicates": credits.duplicates,
        "missing": n - credits.credited,
        "exactly_once": credits.credited == n and credits.duplicates == 0,
        "credited_events_for_burst": sum(credits.per_key.values()),
        "queued": credits.queued,
        "send_s": {"evm": round((burst["evm_done_ms"] - first_ms) / 1000, 2),
                   "solana": round((burst["solana_done_ms"] - first_ms) / 1000, 2)},
        "wall_s": None if wall_ms is None else round(wall_ms / 1000, 2),
        "first_finalized_s": None if first_final is None else round((first_final - first_ms)
                                                                     / 1000, 2),
        "credits_per_s": None if not span_ms else round(credits.credited / (span_ms / 1000), 1),
        "credits_per_s_whole_burst": None if not wall_ms else round(
            credits.credited / (wall_ms / 1000), 1),
        "gas": {
            "credit_batch_total": batch["gas_total"],
            "per_credit_batched": batch["gas_per_item_done"],
            "per_item_sent_batched": batch["gas_per_item_sent"],
            "single_credit": None,  # filled after the fleet is stopped
            "batched_saving_pct": None,
            "note": "per_credit_batched is the relayer's creditBatch gasUsed over the Credited "
                    "events in them: it includes items the venue skipped (already consumed, "
                    "see where_the_time_goes.relayer.creditBatch.skip_reasons); single_credit "
                    "is one credit() of one lock to an existing position",
        },
    }
    where: dict[str, Any] = {
        "clocks": CLOCKS,
        "relayer": {
            "creditBatch": batch,
            "other_txs": {name: len(rows) for name, rows in txs.items()
                          if name != "creditBatch"},
            "relayed_log_lines": logs["relayed"],
        },
        "attesters": logs["attested"],
        "tasks": logs["tasks"],
        "block_clock": clock.resolution(),
        "ready_stream": {"entries": len(tap.entries), "locks_with_quorum_entry": len(
            {r.key for r in records} & set(tap.quorum_ms())),
            "reconciler_repushes": tap.repushes(), "tap_errors": tap.errors},
    }
    if fault is None:
        result["finality_to_credit_s"] = dist(diffs(credited_r, LockState.FINALIZED,
                                                    LockState.CREDITED))
        where["stages_s"] = stages(credited_r, tap.quorum_ms(), credit_seen)
        where["stages_s"]["finalized -> credited record (total)"] = result["finality_to_credit_s"]
        where["per_chain"] = {}
        for chain in ("evm-a", "solana"):
            rs = [r for r in credited_r if r.event.chain == chain]
            where["per_chain"][chain] = {
                "credited": len(rs),
                "seen_to_finalized_s": dist(diffs(rs, LockState.SEEN, LockState.FINALIZED)),
                "finality_to_credit_s": dist(diffs(rs, LockState.FINALIZED,
                                                   LockState.CREDITED))}
    else:
        where["stages_s"] = ("not measured with --fault: the FLUSHALL made the watcher rebuild "
                             "every lock record, so transition times after it are rediscovery "
                             "times")
        fired = fault.fired_ms or 0
        seen_blocks = sorted(credit_seen.values())
        result["fault"] = {
            "what": f"SIGKILL {', '.join(fault.victims)} (process groups), FLUSHALL, restart "
                    "both at once",
            "when": f"once {FAULT_AT:.0%} of the burst's lock records were credited",
            "injected": fault.fired_ms is not None,
            "at_s": round((fired - first_ms) / 1000, 2) if fault.fired_ms else None,
            "credited_records_at_fault": fault.credited_at_fault,
            "credited_on_chain_at_fault": sum(1 for t in seen_blocks if t <= fired),
            "credited_on_chain_after_fault": sum(1 for t in seen_blocks if t > fired),
            "restarted_ready_after_s": {k: round((v - fired) / 1000, 1)
                                        for k, v in fault.ready_ms.items()},
            "last_credit_block_after_fault_s": round((seen_blocks[-1] - fired) / 1000, 1)
            if seen_blocks and fault.fired_ms and seen_blocks[-1] > fired else None,
            "records_all_credited_after_fault_s": round((last_credit - fired) / 1000, 1)
            if last_credit and fault.fired_ms else None,
            "credit_items_resent": batch["skip_reasons"].get("AlreadyConsumed", 0),
        }
    result["where_the_time_goes"] = where
    return result


# ----- main -------------------------------------------------------------------------------------


def main(locks: int = N_LOCKS, fault: bool = False,
         venue_gas_limit: int | None = None) -> dict[str, Any]:
    n_evm, n_sol = locks - locks // 2, locks // 2
    check_amounts(max(n_evm, n_sol))
    with bridge_stack(venue_gas_limit=venue_gas_limit) as stack:
        manifest, fleet = stack.manifest, stack.fleet
        position_cap = check_position_cap(manifest)
        start_block_b = stack.venue_head()
        store = RedisLockStore(manifest["redis_url"])
        injector = Fault(fleet, manifest["redis_url"], locks) if fault else None
        clock = BlockClock({"evm-b": stack.venue_url})
        tap = ReadyTap(manifest["redis_url"], store_keys.ready())
        try:
            with clock, tap:
                cpu_before = cpu_snapshot(fleet, manifest["devnet"]["processes"])
                burst = asyncio.run(send_burst(manifest, n_evm, n_sol))
                tx_ids = {*burst["evm"], *burst["solana"]}
                records, timeline, ended_ms = wait_credited(
                    store, tx_ids, burst["first_ms"], timeout_s=180 + 0.6 * locks,
                    fault=injector)
                cpu_after = cpu_snapshot(fleet, manifest["devnet"]["processes"])
                time.sleep(0.3)  # one more poll of the block clock
            fleet.stop()
            credits = read_credits(stack, records, locks)
            txs = relayer_transactions(manifest, start_block_b)
            logs = parse_logs(fleet.logs, WORKER_LABELS, burst["first_ms"])
            result = analyse(stack, burst, records, credits, txs, logs, clock, tap, injector)
            last = max((at(r, LockState.CREDITED) or 0 for r in records), default=0)
            elapsed = max(1.0, (last or ended_ms) - burst["first_ms"])
            result["where_the_time_goes"].update(cpu_figures(
                cpu_before, cpu_after, injector.cpu_before_kill if injector else {}, elapsed))
            result["audit"] = run_audit(stack.home)
            single = asyncio.run(single_credit_gas(manifest, stack.settings))["gas"]
            result["gas"]["single_credit"] = single
            per = result["gas"]["per_credit_batched"]
            result["gas"]["batched_saving_pct"] = round(100 * (1 - per / single), 1) \
                if per and single else None
            result["timeline"] = {"columns": ["t_s", "seen", "finalized", "attested",
                                              "credited"], "rows": timeline}
        finally:
            store.close()
    name = "bridge_fault" if fault else "bridge"
    if venue_gas_limit:
        name += f"_venue_gas_{venue_gas_limit // 1_000_000}m"
    return {"benchmark": name, **result,
            "workers_ready_s": round(stack.ready_s, 1),
            "positions_per_trader": positions_for(max(n_evm, n_sol)),
            "venue_max_position_locks": position_cap,
            "devnet": dict(manifest["devnet"]["options"]), "home": str(stack.home)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.bridge")
    parser.add_argument("--locks", type=int, default=N_LOCKS,
                        help="locks in the burst, half on evm-a and half on solana")
    parser.add_argument("--fault", action="store_true",
                        help="kill the relayer and one attester and FLUSHALL mid-burst")
    parser.add_argument("--venue-gas-limit", type=int, default=None,
                        help="the venue chain's block gas limit (anvil's 30M by default)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    opts = parse_args(sys.argv[1:])
    print(json.dumps(main(opts.locks, opts.fault, opts.venue_gas_limit), indent=2))
