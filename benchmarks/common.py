"""Helpers the benchmarks share: statistics, worker readiness, CPU accounting, and two observers
that run in a thread of the benchmark process while a figure is measured:

- :class:`BlockClock` polls ``eth_blockNumber`` of some EVM chains and records, per block
  number, the host time (ms) of the first poll that saw it. Block timestamps have 1 s
  resolution; this clock has the poll interval's (plus one RPC round trip), and both are on the
  same host clock as the lock records and the Redis stream ids. ``resolution_ms`` reports the
  window each block's appearance is known to within.
- :class:`ReadyTap` copies the entries of the ``bh:ready`` stream (lock key, digest, entry id)
  before the relayer acknowledges and deletes them; an entry id is ``<Redis-clock ms>-<seq>``,
  the moment the signature that completed the quorum was posted.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import redis
import requests

from bulkhead.local.fleet import WorkerFleet

ATTESTERS = ["att-1", "att-2", "att-3", "att-4"]
READY_TIMEOUT_S = 120.0


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


class WithGas:
    """A contract call sent with a fixed gas limit (skips one estimate per transaction)."""

    def __init__(self, call: Any, gas: int) -> None:
        self._call, self._gas = call, gas

    async def build_transaction(self, tx: Mapping[str, Any]) -> Any:
        return await self._call.build_transaction({**tx, "gas": self._gas})


# ----- workers ----------------------------------------------------------------------------------


def _log_text(fleet: WorkerFleet, label: str) -> str:
    path = fleet.logs / f"{label}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def ready_count(fleet: WorkerFleet, label: str) -> int:
    """How many times the worker's log says it is ready (the log is appended across restarts)."""
    text = _log_text(fleet, label)
    return text.count("beat: Starting") if label == "beat" else text.count(" ready.")


def wait_ready(fleet: WorkerFleet, timeout_s: float) -> float:
    started = time.monotonic()
    deadline = started + timeout_s
    pending = set(fleet.procs)
    while pending and time.monotonic() < deadline:
        for label in list(pending):
            if fleet.procs[label].poll() is not None:
                raise RuntimeError(f"worker {label} exited:\n{fleet.log_tail(label)}")
            if ready_count(fleet, label):
                pending.discard(label)
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"workers not ready after {timeout_s}s: {sorted(pending)}")
    return time.monotonic() - started


_TICK = float(os.sysconf("SC_CLK_TCK"))


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def worker_cpu_s(fleet: WorkerFleet, label: str) -> float:
    """CPU seconds of one worker and its live pool children."""
    return cpu_s(fleet.procs[label].pid) + sum(cpu_s(c) for c in fleet.children(label))


def cpu_snapshot(fleet: WorkerFleet, devnet: Mapping[str, Any]) -> dict[str, float]:
    out = {label: worker_cpu_s(fleet, label) for label in fleet.procs}
    for name, info in devnet.items():
        out[name] = cpu_s(int(info["pid"]))
    out["benchmark_driver"] = time.process_time()
    return out


# ----- observers --------------------------------------------------------------------------------


class _Poller(threading.Thread):
    def __init__(self, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self._stop_event = threading.Event()
        self.errors = 0

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - an observer never takes the figure down
                self.errors += 1
            self._stop_event.wait(self.interval_s)

    def poll(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BlockClock(_Poller):
    """Host ms at which each block number of each chain was first seen by a poll."""

    def __init__(self, urls: Mapping[str, str], interval_s: float = 0.1) -> None:
        super().__init__(interval_s)
        self.urls = dict(urls)
        self.seen: dict[str, dict[int, int]] = {c: {} for c in urls}
        self.window_ms: dict[str, list[int]] = {c: [] for c in urls}  # per new block
        self.jumps: dict[str, int] = dict.fromkeys(urls, 0)  # polls that revealed > 1 block
        self._last: dict[str, tuple[int, int]] = {}  # chain -> (head, ms of that poll)
        self._session = requests.Session()
        self._lock = threading.Lock()

    def poll(self) -> None:
        for chain, url in self.urls.items():
            reply = self._session.post(url, json={"jsonrpc": "2.0", "id": 1,
                                                  "method": "eth_blockNumber", "params": []},
                                       timeout=5)
            head, at = int(reply.json()["result"], 16), now_ms()
            with self._lock:
                last = self._last.get(chain)
                if last is None:
                    self.seen[chain][head] = at
                elif head > last[0]:
                    for number in range(last[0] + 1, head + 1):
                        self.seen[chain][number] = at
                    self.window_ms[chain].append(at - last[1])
                    if head > last[0] + 1:
                        self.jumps[chain] += 1
                self._last[chain] = (max(head, last[0]) if last else head, at)

    def seen_ms(self, chain: str, number: int) -> int | None:
        with self._lock:
            return self.seen[chain].get(number)

    def head_at(self, chain: str, at_ms: int) -> int | None:
        """The highest block of ``chain`` first seen at or before ``at_ms``."""
        with self._lock:
            heads = [n for n, t in self.seen[chain].items() if t <= at_ms]
        return max(heads) if heads else None

    def resolution(self) -> dict[str, Any]:
        with self._lock:
            out = {}
            for chain, windows in self.window_ms.items():
                out[chain] = {"blocks_seen": len(self.seen[chain]),
                              "window_ms_p50": percentile(windows, 50),
                              "window_ms_max": max(windows, default=None),
                              "polls_revealing_more_than_one_block": self.jumps[chain]}
            return {"poll_interval_ms": int(self.interval_s * 1000), "errors": self.errors,
                    "per_chain": out}


class ReadyTap(_Poller):
    """Every ``bh:ready`` stream entry seen, before the relayer acknowledges and deletes it."""

    def __init__(self, redis_url: str, stream: str = "bh:ready", interval_s: float = 0.1) -> None:
        super().__init__(interval_s)
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.stream = stream
        self.entries: list[tuple[str, str, str]] = []  # (entry id, item key, digest)
        self._after = "0-0"
        self._lock = threading.Lock()

    def poll(self) -> None:
        while True:
            rows: list[tuple[str, dict[str, str]]] = self._redis.xrange(
                self.stream, min=f"({self._after}", max="+", count=1000)  # type: ignore[assignment]
            if not rows:
                return
            with self._lock:
                self.entries += [(str(eid), str(f.get("key", "")), str(f.get("digest", "")))
                                 for eid, f in rows]
            self._after = str(rows[-1][0])

    def stop(self) -> None:
        super().stop()
        try:
            self.poll()  # whatever is still there
        except redis.RedisError:
            self.errors += 1
        self._redis.close()

    def quorum_ms(self) -> dict[str, int]:
        """Item key -> Redis-clock ms of its first entry pushed by a posting that reached the
        threshold (entries with an empty digest are the reconciler's re-pushes: not counted)."""
        out: dict[str, int] = {}
        with self._lock:
            for eid, key, dig in self.entries:
                if dig and key not in out:
                    out[key] = int(eid.split("-")[0])
        return out

    def repushes(self) -> int:
        with self._lock:
            return sum(1 for _, _, dig in self.entries if not dig)


# ----- transactions read back from a chain ------------------------------------------------------


def _topics(contract: Any) -> dict[str, str]:
    from eth_utils.abi import event_abi_to_log_topic

    return {"0x" + event_abi_to_log_topic(e).hex(): e["name"]
            for e in contract.abi if e.get("type") == "event"}


def _errors(contract: Any) -> dict[bytes, str]:
    from eth_utils.abi import abi_to_signature
    from eth_utils.crypto import keccak

    return {keccak(text=abi_to_signature(e))[:4]: e["name"]
            for e in contract.abi if e.get("type") == "error"}


def contract_transactions(w3: Any, contract: Any, start: int, end: int, *,
                          sender: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every transaction to ``contract`` mined in blocks ``start..end`` (from ``sender`` when
    given), by function name: block, gas used, status, items (length of the first list
    argument), the contract's own events in the receipt by name, and the reasons of
    ``*Skipped`` items by custom error name."""
    topics, errors = _topics(contract), _errors(contract)
    target = contract.address.lower()
    out: dict[str, list[dict[str, Any]]] = {}
    for number in range(start, end + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if str(tx.get("to") or "").lower() != target:
                continue
            if sender is not None and str(tx["from"]).lower() != sender.lower():
                continue
            try:
                fn, args = contract.decode_function_input(tx["input"])
                name = fn.fn_name
            except ValueError:
                name, args = "unknown", {}
            lists = [v for v in args.values() if isinstance(v, (list, tuple))]
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            events: dict[str, int] = {}
            reasons: dict[str, int] = {}
            for log in receipt["logs"]:
                if str(log["address"]).lower() != target or not log["topics"]:
                    continue
                event = topics.get("0x" + bytes(log["topics"][0]).hex(), "unknown")
                events[event] = events.get(event, 0) + 1
                if event.endswith("Skipped"):
                    reason = bytes(getattr(contract.events, event)().process_log(log)
                                   ["args"]["reason"])
                    label = errors.get(reason[:4], reason[:4].hex() or "empty")
                    reasons[label] = reasons.get(label, 0) + 1
            out.setdefault(name, []).append({
                "hash": "0x" + bytes(tx["hash"]).hex(), "block": number,
                "gas": int(receipt["gasUsed"]), "limit": int(tx["gas"]),
                "block_gas_limit": int(block["gasLimit"]), "status": int(receipt["status"]),
                "items": len(lists[0]) if lists else 1, "events": events,
                "skip_reasons": reasons})
    return out


def tx_summary(rows: Sequence[Mapping[str, Any]], done_event: str) -> dict[str, Any]:
    """Count, items sent and done (``done_event`` logs), gas per done item and per item sent."""
    gas = sum(r["gas"] for r in rows)
    items = sum(r["items"] for r in rows)
    done = sum(r["events"].get(done_event, 0) for r in rows)
    reasons: dict[str, int] = {}
    for r in rows:
        for k, v in r["skip_reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    return {"txs": len(rows), "reverted": sum(1 for r in rows if r["status"] != 1),
            "items_sent": items, "items_done": done, "items_skipped": sum(reasons.values()),
            "skip_reasons": reasons, "gas_total": gas,
            "gas_per_item_done": round(gas / done) if done else None,
            "gas_per_item_sent": round(gas / items) if items else None,
            "items_per_tx_mean": round(items / len(rows), 1) if rows else None,
            "items_per_tx_max": max((r["items"] for r in rows), default=None),
            "gas_per_tx_max": max((r["gas"] for r in rows), default=None),
            "blocks": len({r["block"] for r in rows}),
            **_block_fill(rows)}


def _block_fill(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How full these transactions kept the blocks from the first one's to the last one's:
    blocks in that span, and per block [number, txs, items, gas used, sum of gas limits] (a
    block packs transactions by their limits, so the limits are what fills it)."""
    if not rows:
        return {}
    first, last = min(r["block"] for r in rows), max(r["block"] for r in rows)
    per: dict[int, list[int]] = {n: [n, 0, 0, 0, 0] for n in range(first, last + 1)}
    for r in rows:
        row = per[r["block"]]
        row[1] += 1
        row[2] += r["events"].get("Credited", 0) + r["events"].get("Liquidated", 0)
        row[3] += r["gas"]
        row[4] += r.get("limit", 0)
    limit = max(r.get("block_gas_limit", 0) for r in rows)
    return {"blocks_spanned": last - first + 1, "block_gas_limit": limit,
            "gas_used_of_span_pct": round(100 * sum(r["gas"] for r in rows)
                                          / max(1, limit * (last - first + 1)), 1),
            "per_block": list(per.values())}
