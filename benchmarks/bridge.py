"""Bridge figure (DESIGN's bridge target): a burst of locks, half on evm-a and half on solana,
credited on the venue by the real workers (beat, watcher, reconciler, relayer, 4 attesters with
threshold 3) on this machine; every lock must be credited exactly once.

Brings up its own devnet with fast finality (anvil 1 s blocks, finalized = latest-4; Solana
200 ms slots, finalized = processed-10) so the figure is about the bridge, starts the worker
fleet, waits until every worker is ready, then sends the burst: alice's EVM locks pipelined
with ``TxSender`` (approve once, then one ``lock`` per lock) and, concurrently, bob's Solana
locks (TransferChecked + memo, 50 in flight). Positions: round robin over enough keys per trader
that none gets more than ``LOCKS_PER_POSITION`` locks (the venue caps credited locks per
position at ``MAX_POSITION_LOCKS``; one more goes to position 0 for the single-credit gas).

Measured (all from the chains, the lock records and the worker logs):
- ``credited`` / ``duplicates``: distinct lock keys with a venue ``Credited`` event, and lock
  keys with more than one (must be 0); ``queued`` (``CreditQueued``, must be 0 at these sizes);
- ``wall_s``: first lock sent -> last credit (``credited.at_ms`` of the records);
- ``credits_per_s``: credited / (last credit - first finalized), and over the whole burst;
- ``finality_to_credit_s``: per lock ``credited.at_ms - finalized.at_ms``, p50/p95/p99/max;
- ``gas``: the relayer's ``creditBatch`` gas / credits, vs one single ``credit`` (sent after the
  fleet is stopped, signed here with 3 of the devnet attester keys);
- ``where``: stage latencies (finalized -> attested -> credited from the records; the quorum
  moment from the attesters' logs), relayer transactions and batch sizes, per-task durations
  from the Celery logs, and CPU seconds per process over the burst.

``python -m benchmarks.run bridge --locks 200`` for a quick run; the default is 2,000.
Worker and devnet logs stay under the printed ``home``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from web3 import Web3

from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import CREDITED_TOPIC0, CreditedEvent, CreditQueuedEvent
from chains.evm.sender import TxSender
from devnet.evm_specs import _default_limits
from devnet.stack import DevnetOptions, down, up
from shared.locks import LockRecord, LockState
from shared.positions import position_key
from shared.settings import Settings, load_settings
from workers.stores.locks import RedisLockStore

N_LOCKS = 2_000
ATTESTERS = ["att-1", "att-2", "att-3", "att-4"]
FAST = DevnetOptions(block_time_s=1.0, slots_in_an_epoch=2, slot_ms=200, solana_finality_lag=10,
                     detach=False)
LOCKS_PER_POSITION = 10  # under the venue's MAX_POSITION_LOCKS, with room for one more
AMOUNT = 1_000_000  # 1 USDC (6 decimals); lock i locks AMOUNT + i base units
SOLANA_IN_FLIGHT = 50
READY_TIMEOUT_S = 120.0
STALL_S = 240.0  # stop waiting when no lock was credited for this long (a slow relayer pass
# verifies every pending lock before its first batch: minutes at 2,000 locks)
UNSEEN_S = 60.0  # ... or when all seen locks are credited and no new lock appeared for this long
POLL_S = 2.0
TIMELINE_EVERY_S = 10.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def dist(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max (and mean) of millisecond samples, in seconds."""
    def s(v: float | None) -> float | None:
        return None if v is None else round(v / 1000, 3)

    return {"n": len(values_ms), "p50": s(percentile(values_ms, 50)),
            "p95": s(percentile(values_ms, 95)), "p99": s(percentile(values_ms, 99)),
            "max": s(max(values_ms) if values_ms else None),
            "mean": s(statistics.fmean(values_ms) if values_ms else None)}


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


class _WithGas:
    """A contract call sent with a fixed gas limit (skips one estimate per lock)."""

    def __init__(self, call: Any, gas: int) -> None:
        self._call, self._gas = call, gas

    async def build_transaction(self, tx: Mapping[str, Any]) -> Any:
        return await self._call.build_transaction({**tx, "gas": self._gas})


def positions_for(n_locks: int) -> int:
    return max(1, -(-n_locks // LOCKS_PER_POSITION))


def trader_positions(manifest: dict[str, Any], trader: str, count: int) -> list[str]:
    venue_b = manifest["chains"]["evm-b"]
    owner = manifest["devnet"]["traders"][trader]["evm_address"]
    return [position_key(venue_b["chain_id"], venue_b["contracts"]["venue"], owner,
                         f"bench-{trader}-{i}".encode().ljust(32, b"\0"))
            for i in range(count)]


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


async def send_evm(manifest: dict[str, Any], n: int, offset: int) -> tuple[list[str], int]:
    """``n`` pipelined locks from alice; returns the tx hashes and when the last one mined."""
    chain = manifest["chains"]["evm-a"]
    alice = manifest["devnet"]["traders"]["alice"]
    venue = manifest["chains"]["evm-b"]["contracts"]["venue"]
    positions = trader_positions(manifest, "alice", positions_for(n))
    sender = await TxSender.connect(chain["rpc_urls"][0], alice["evm_key"])
    try:
        usdc = chain["assets"]["USDC"]["address"]
        vault = sender.w3.eth.contract(address=chain["vaults"][0],
                                       abi=load_artifact("CollateralVault").abi)

        def call(i: int) -> Any:
            return vault.functions.lock(usdc, AMOUNT + offset + i,
                                        bytes.fromhex(positions[i % len(positions)][2:]), 31338,
                                        venue, alice["evm_address"])

        gas = int(await call(0).estimate_gas({"from": sender.address}) * 3 // 2)
        hashes = []
        for i in range(n):
            hashes.append(await sender.send(_WithGas(call(i), gas)))
            if i % 50 == 49:
                await asyncio.sleep(0)  # let the Solana sender run between sends
        await sender.wait(hashes[-1], timeout_s=120)
        return hashes, now_ms()
    finally:
        await sender.aclose()


async def send_solana(manifest: dict[str, Any], n: int, offset: int) -> tuple[list[str], int]:
    """``n`` locks from bob, ``SOLANA_IN_FLIGHT`` at a time, each awaited to ``confirmed``."""
    from solana.rpc.async_api import AsyncClient
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey

    from chains.solana.locker import lock_instructions, send_instructions

    sol = manifest["chains"]["solana"]
    bob = manifest["devnet"]["traders"]["bob"]
    trader = Keypair.from_bytes(bytes(bob["solana_secret"]))
    mint = Pubkey.from_string(sol["assets"]["USDC"]["address"])
    source = Pubkey.from_string(bob["solana_token_accounts"]["USDC"])
    vault = Pubkey.from_string(sol["vaults"][0])
    venue = manifest["chains"]["evm-b"]["contracts"]["venue"]
    positions = trader_positions(manifest, "bob", positions_for(n))
    gate = asyncio.Semaphore(SOLANA_IN_FLIGHT)

    async with AsyncClient(sol["rpc_urls"][0], timeout=60) as client:
        async def one(i: int) -> str:
            ixs = lock_instructions(
                trader=trader, trader_token_account=source, vault_token_account=vault,
                mint=mint, decimals=int(sol["assets"]["USDC"]["decimals"]),
                amount=AMOUNT + offset + i, dst_chain_id=31338, dst_venue=venue,
                position_key=positions[i % len(positions)], beneficiary=bob["evm_address"])
            async with gate:
                return await send_instructions(client, trader, ixs)

        sigs = await asyncio.gather(*(one(i) for i in range(n)))
    return list(sigs), now_ms()


async def send_burst(manifest: dict[str, Any], n_evm: int, n_sol: int) -> dict[str, Any]:
    await approve_evm(manifest)
    first = now_ms()
    (evm, evm_done), (sol, sol_done) = await asyncio.gather(
        send_evm(manifest, n_evm, 0), send_solana(manifest, n_sol, n_evm))
    return {"first_ms": first, "evm": evm, "solana": sol, "evm_done_ms": evm_done,
            "solana_done_ms": sol_done}


# ----- waiting ----------------------------------------------------------------------------------


def wait_credited(store: RedisLockStore, tx_ids: set[str], started_ms: int,
                  timeout_s: float) -> tuple[list[LockRecord], list[list[float]]]:
    """Poll the records until every lock of the burst is credited (or stalls / times out);
    returns our records and a coarse timeline [t_s, seen, finalized, attested, credited]
    (counts of locks that reached each state, t from the first lock sent)."""
    deadline = time.monotonic() + timeout_s
    last_progress, best = time.monotonic(), -1
    last_new, n_seen = time.monotonic(), -1
    timeline: list[list[float]] = []
    ours: list[LockRecord] = []
    while True:
        ours = [r for r in store.all_records() if r.event.tx_id in tx_ids]
        credited = sum(1 for r in ours if r.state == LockState.CREDITED)
        t_s = round((now_ms() - started_ms) / 1000, 1)
        done = credited >= len(tx_ids)
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
        time.sleep(POLL_S)
    return ours, timeline


def wait_ready(fleet: WorkerFleet, timeout_s: float) -> float:
    started = time.monotonic()
    deadline = started + timeout_s
    pending = set(fleet.procs)
    while pending and time.monotonic() < deadline:
        for label in list(pending):
            if fleet.procs[label].poll() is not None:
                raise RuntimeError(f"worker {label} exited:\n{fleet.log_tail(label)}")
            text = (fleet.logs / f"{label}.log").read_text(errors="replace") \
                if (fleet.logs / f"{label}.log").exists() else ""
            if (" ready." in text) if label != "beat" else ("beat: Starting" in text):
                pending.discard(label)
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"workers not ready after {timeout_s}s: {sorted(pending)}")
    return time.monotonic() - started


# ----- CPU accounting ---------------------------------------------------------------------------

_TICK = 100.0  # USER_HZ


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def cpu_snapshot(fleet: WorkerFleet, devnet: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for label, proc in fleet.procs.items():
        out[label] = cpu_s(proc.pid) + sum(cpu_s(c) for c in fleet.children(label))
    for name, info in devnet.items():
        out[name] = cpu_s(int(info["pid"]))
    return out


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


def _task_line(line: str) -> tuple[int, re.Match[str]] | None:
    """(ms, match) for a Celery task-outcome line of a worker's JSON log (structlog: one
    object per line with ``timestamp`` and ``event``)."""
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    m = _CELERY_TASK.match(str(entry.get("event", "")))
    return (_log_ms(str(entry.get("timestamp", ""))), m) if m else None


def _log_ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def parse_celery(logs: Path, labels: Iterable[str]
                 ) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """Per task name: runs, retries, errors and durations; and digest -> attester -> when it
    first logged a signature for it (a re-asked attester re-signing does not count again)."""
    runs: dict[str, list[float]] = defaultdict(list)
    retries: Counter[str] = Counter()
    raised: Counter[str] = Counter()
    signed: dict[str, dict[str, int]] = defaultdict(dict)
    for label in labels:
        path = logs / f"{label}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parsed = _task_line(line)
            if parsed is None:
                continue
            at_ms, m = parsed
            name = m.group(1)
            if m.group(2).startswith("succeeded"):
                runs[name].append(float(m.group(3)) * 1000)
                value = m.group(4).strip("'\"")
                if name == "bulkhead.attest.attest_lock" and value.startswith("0x"):
                    signed[value].setdefault(label, at_ms)
            elif m.group(2).startswith("retry"):
                retries[name] += 1
            else:
                raised[name] += 1
    tasks = {name: {"runs": len(v), "busy_s": round(sum(v) / 1000, 2), **{
        k: val for k, val in dist(v).items() if k in ("p50", "p95", "max")},
        "retries": retries[name], "raised": raised[name]} for name, v in sorted(runs.items())}
    for name in set(retries) | set(raised):
        tasks.setdefault(name, {"runs": 0, "retries": retries[name], "raised": raised[name]})
    return tasks, signed


def quorum_times(redis_url: str, keys: Sequence[str], signed: Mapping[str, dict[str, int]],
                 threshold: int) -> dict[str, int]:
    """lock key -> when its ``threshold``-th distinct attester signature was logged."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.smembers(f"bh:digests:{key}")
        digests = pipe.execute()
    finally:
        client.close()
    out = {}
    for key, digs in zip(keys, digests, strict=True):
        times = sorted(t for d in digs for t in signed.get(d, {}).values())
        if len(times) >= threshold:
            out[key] = times[threshold - 1]
    return out


def relayer_transactions(manifest: dict[str, Any], start_block: int) -> dict[str, Any]:
    """Every transaction the relayer sent to the venue since ``start_block``, from the chain."""
    b = manifest["chains"]["evm-b"]
    w3 = Web3(Web3.HTTPProvider(b["rpc_urls"][0], request_kwargs={"timeout": 60}))
    venue = w3.eth.contract(address=b["contracts"]["venue"],
                            abi=load_artifact("IsolatedMarginVenue").abi)
    relayer = w3.eth.account.from_key(manifest["devnet"]["relayer_key"]).address.lower()
    txs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for number in range(start_block, w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if str(tx["from"]).lower() != relayer or str(tx["to"]).lower() != venue.address.lower():
                continue
            fn, args = venue.decode_function_input(tx["input"])
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            credited = sum(1 for log in receipt["logs"] if log["topics"]
                           and "0x" + bytes(log["topics"][0]).hex() == CREDITED_TOPIC0)
            txs[fn.fn_name].append({"gas": int(receipt["gasUsed"]), "credited": credited,
                                    "block": number, "status": int(receipt["status"]),
                                    "items": len(args.get("atts", [None]))})
    return {name: rows for name, rows in txs.items()}


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
    from shared.messages import Domain, sign

    a, b = manifest["chains"]["evm-a"], manifest["chains"]["evm-b"]
    alice = manifest["devnet"]["traders"]["alice"]
    receipt = await lock_on_evm(
        a["rpc_urls"][0], private_key=alice["evm_key"], vault=a["vaults"][0],
        asset=a["assets"]["USDC"]["address"], amount=AMOUNT,
        position_key=trader_positions(manifest, "alice", 1)[0], dst_chain_id=b["chain_id"],
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


def analyse(manifest: dict[str, Any], settings: Settings, burst: dict[str, Any],
            records: list[LockRecord], logs: Path, start_block_b: int) -> dict[str, Any]:
    n = len(burst["evm"]) + len(burst["solana"])
    first_ms = burst["first_ms"]
    credited_r = [r for r in records if r.reached(LockState.CREDITED)]
    fin = [at(r, LockState.FINALIZED) for r in records if r.reached(LockState.FINALIZED)]
    cred = [at(r, LockState.CREDITED) for r in credited_r]
    last_credit = max(cred) if cred else None  # type: ignore[type-var]
    first_final = min(fin) if fin else None  # type: ignore[type-var]

    head_b = Web3(Web3.HTTPProvider(manifest["chains"]["evm-b"]["rpc_urls"][0])).eth.block_number
    events, queued = asyncio.run(venue_credits(settings, head_b))
    ours = {r.key for r in records}
    from bridges.relay import venue_lock_key

    venue_keys = {venue_lock_key(k): k for k in ours}
    per_key = Counter(e.lock_key for e in events if e.lock_key in venue_keys)
    credited_venue = len(per_key)
    duplicates = sum(1 for c in per_key.values() if c > 1)

    txs = relayer_transactions(manifest, start_block_b)
    batches = txs.get("creditBatch", [])
    batch_gas = sum(t["gas"] for t in batches)
    batch_credits = sum(t["credited"] for t in batches)

    labels = ["beat", "watcher", "reconciler", "relayer", *ATTESTERS]
    tasks, signed = parse_celery(logs, labels)
    keys = [r.key for r in credited_r]
    quorum = quorum_times(manifest["redis_url"], keys, signed,
                          int(manifest["attesters"]["threshold"]))
    by_key = {r.key: r for r in credited_r}
    fin_to_quorum = [float(q - at(by_key[k], LockState.FINALIZED)) for k, q in quorum.items()]
    quorum_to_att = [float(at(by_key[k], LockState.ATTESTED) - q) for k, q in quorum.items()
                     if by_key[k].reached(LockState.ATTESTED)]

    per_chain = {}
    for chain in ("evm-a", "solana"):
        rs = [r for r in credited_r if r.event.chain == chain]
        per_chain[chain] = {
            "credited": len(rs),
            "seen_to_finalized_s": dist(diffs(rs, LockState.SEEN, LockState.FINALIZED)),
            "finality_to_credit_s": dist(diffs(rs, LockState.FINALIZED, LockState.CREDITED)),
        }

    span_ms = (last_credit - first_final) if last_credit and first_final else None
    wall_ms = (last_credit - first_ms) if last_credit else None
    return {
        "locks": n,
        "locks_evm": len(burst["evm"]),
        "locks_solana": len(burst["solana"]),
        "never_seen": {"evm-a": len(set(burst["evm"]) - {r.event.tx_id for r in records}),
                       "solana": len(set(burst["solana"]) - {r.event.tx_id for r in records})},
        "credited": credited_venue,
        "credited_records": len(credited_r),
        "duplicates": duplicates,
        "credited_events_for_burst": sum(per_key.values()),
        "queued": queued,
        "send_s": {"evm": round((burst["evm_done_ms"] - first_ms) / 1000, 2),
                   "solana": round((burst["solana_done_ms"] - first_ms) / 1000, 2)},
        "wall_s": None if wall_ms is None else round(wall_ms / 1000, 2),
        "first_finalized_s": None if first_final is None else round((first_final - first_ms)
                                                                     / 1000, 2),
        "credits_per_s": None if not span_ms else round(credited_venue / (span_ms / 1000), 1),
        "credits_per_s_whole_burst": None if not wall_ms else round(
            credited_venue / (wall_ms / 1000), 1),
        "finality_to_credit_s": dist(diffs(credited_r, LockState.FINALIZED,
                                           LockState.CREDITED)),
        "gas": {
            "credit_batch_total": batch_gas,
            "per_credit_batched": round(batch_gas / batch_credits) if batch_credits else None,
            "single_credit": None,  # filled after the fleet is stopped
        },
        "where": {
            "finalized_to_attested_s": dist(diffs(credited_r, LockState.FINALIZED,
                                                  LockState.ATTESTED)),
            "attested_to_credited_s": dist(diffs(credited_r, LockState.ATTESTED,
                                                 LockState.CREDITED)),
            "finalized_to_quorum_s": dist(fin_to_quorum),
            "quorum_to_attested_record_s": dist(quorum_to_att),
            "seen_to_finalized_s": dist(diffs(records, LockState.SEEN, LockState.FINALIZED)),
            "relayer_txs": {name: len(rows) for name, rows in txs.items()},
            "relayer_reverted": sum(1 for rows in txs.values() for t in rows if t["status"] != 1),
            "batch_size_mean": round(batch_credits / len(batches), 1) if batches else None,
            "batch_size_max": max((t["items"] for t in batches), default=None),
            "batch_gas_max": max((t["gas"] for t in batches), default=None),
            "relayer_blocks": len({t["block"] for t in batches}),
            "per_chain": per_chain,
            "tasks": tasks,
        },
    }


# ----- main -------------------------------------------------------------------------------------


def main(locks: int = N_LOCKS) -> dict[str, Any]:
    n_evm, n_sol = locks - locks // 2, locks // 2
    check_amounts(max(n_evm, n_sol))
    home = Path(tempfile.mkdtemp(prefix="bh-bench-bridge-"))
    logs = home / "worker-logs"
    manifest = up(home, FAST)
    fleet = WorkerFleet(home, logs, env={"BULKHEAD_CONFIG": str(home / "none.toml")})
    try:
        settings = load_settings(home=home, chains=manifest["chains"],
                                 redis_url=manifest["redis_url"])
        position_cap = check_position_cap(manifest)
        fleet.start_all(ATTESTERS)
        ready_s = wait_ready(fleet, READY_TIMEOUT_S)
        start_block_b = Web3(Web3.HTTPProvider(
            manifest["chains"]["evm-b"]["rpc_urls"][0])).eth.block_number
        store = RedisLockStore(manifest["redis_url"])
        cpu_before = cpu_snapshot(fleet, manifest["devnet"]["processes"])
        burst = asyncio.run(send_burst(manifest, n_evm, n_sol))
        tx_ids = {*burst["evm"], *burst["solana"]}
        records, timeline = wait_credited(store, tx_ids, burst["first_ms"],
                                          timeout_s=180 + 0.6 * locks)
        cpu_after = cpu_snapshot(fleet, manifest["devnet"]["processes"])
        fleet.stop()
        result = analyse(manifest, settings, burst, records, logs, start_block_b)
        result["gas"]["single_credit"] = asyncio.run(single_credit_gas(manifest, settings))["gas"]
        last = max((at(r, LockState.CREDITED) or 0 for r in records), default=0)
        elapsed = max(1.0, (last or now_ms()) - burst["first_ms"])
        result["where"]["cpu_s"] = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 1)
                                    for k in sorted(cpu_after)}
        result["where"]["cpu_busy_of_2_cores"] = round(
            sum(cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after)
            / (elapsed / 1000) / 2, 2)
        result["timeline"] = {"columns": ["t_s", "seen", "finalized", "attested", "credited"],
                              "rows": timeline}
        store.close()
    finally:
        fleet.stop()
        down(home)
    return {"benchmark": "bridge", **result, "workers_ready_s": round(ready_s, 1),
            "positions_per_trader": positions_for(max(n_evm, n_sol)),
            "venue_max_position_locks": position_cap,
            "devnet": dict(manifest["devnet"]["options"]), "home": str(home)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.bridge")
    parser.add_argument("--locks", type=int, default=N_LOCKS,
                        help="locks in the burst, half on evm-a and half on solana")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(main(parse_args(sys.argv[1:]).locks), indent=2))
