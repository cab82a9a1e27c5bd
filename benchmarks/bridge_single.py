"""Single-lock latency: one lock alone on an idle bridge, finality -> credited.

Same devnet clocks and worker fleet as the bridge burst (anvil 1 s blocks, finalized =
latest-4; Solana 200 ms slots, finalized = processed-10; 4 attesters, threshold 3). Sends one
lock, waits until its record is credited, lets the fleet settle, and sends the next:
``singles`` locks on evm-a and as many on solana, alternating. Per lock:

- ``finality_to_credit_s``: ``credited.at_ms - finalized.at_ms`` of the lock record (host clock,
  ms; the finalized moment is when the watcher recorded it, the credited one when the relayer
  had the receipt);
- ``finality_to_credit_venue_blocks``: the venue block of the credit minus the venue head when
  the lock was recorded finalized (that head from a 100 ms poll of ``eth_blockNumber``): 1 means
  the credit landed in the first venue block after finality was recorded;
- ``sent_to_credit_s``: from the lock's send (EVM: receipt awaited; Solana: ``confirmed``) to the
  credited record, what a trader waits;
- ``stages_s``: the same per-lock stages as the bridge burst (``benchmarks.bridge.stage_samples``:
  seen -> finalized -> quorum -> relayer picked up -> credit block seen -> credited record).

Figures are medians (with min and max) over the single locks, per source chain and over all.

``python -m benchmarks.run bridge_single [--singles N]`` (default 5 per chain).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.bridge import (
    CLOCKS,
    LOCKS_PER_POSITION,
    approve_evm,
    at,
    bridge_stack,
    send_evm,
    send_solana,
    stage_samples,
)
from benchmarks.common import BlockClock, ReadyTap, now_ms
from shared.locks import LockRecord, LockState
from workers.stores import keys as store_keys
from workers.stores.locks import RedisLockStore

SINGLES = 5
SETTLE_S = 3.0  # idle time between two locks
TIMEOUT_S = 120.0


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "samples": []}
    return {"n": len(values), "median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits),
            "samples": [round(v, digits) for v in values]}


def wait_one(store: RedisLockStore, tx_id: str, timeout_s: float) -> LockRecord | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in store.all_records():
            if record.event.tx_id == tx_id and record.state == LockState.CREDITED:
                return record
        time.sleep(0.2)
    return None


def main(singles: int = SINGLES) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    records: list[LockRecord] = []
    with bridge_stack("bh-bench-single-") as stack:
        manifest = stack.manifest
        asyncio.run(approve_evm(manifest))
        store = RedisLockStore(manifest["redis_url"])
        clock = BlockClock({"evm-b": stack.venue_url})
        tap = ReadyTap(manifest["redis_url"], store_keys.ready())
        try:
            with clock, tap:
                time.sleep(SETTLE_S)
                for i in range(singles):
                    for chain in ("evm-a", "solana"):
                        send = send_evm if chain == "evm-a" else send_solana
                        sent_ms = now_ms()
                        txs, mined_ms = asyncio.run(send(manifest, 1, i, i // LOCKS_PER_POSITION))
                        record = wait_one(store, txs[0], TIMEOUT_S)
                        if record is None:
                            print(f"bridge_single: {chain} lock {i} not credited in "
                                  f"{TIMEOUT_S:.0f} s", file=sys.stderr)
                            rows.append({"chain": chain, "credited": False})
                            continue
                        records.append(record)
                        fin = at(record, LockState.FINALIZED)
                        cred = record.reached(LockState.CREDITED)
                        head = clock.head_at("evm-b", fin) if fin is not None else None
                        rows.append({
                            "chain": chain, "credited": True,
                            "finality_to_credit_ms": None if fin is None or cred is None
                            else cred.at_ms - fin,
                            "venue_blocks": None if head is None or cred is None
                            else cred.height - head,
                            "sent_to_credit_ms": None if cred is None else cred.at_ms - sent_ms,
                            "send_ms": mined_ms - sent_ms})
                        time.sleep(SETTLE_S)
                time.sleep(0.3)
            credit_seen = {}
            for r in records:
                cred = r.reached(LockState.CREDITED)
                seen = None if cred is None else clock.seen_ms("evm-b", cred.height)
                if seen is not None:
                    credit_seen[r.key] = seen
            stage_ms = stage_samples(records, tap.quorum_ms(), credit_seen)
        finally:
            store.close()

    def pick(chain: str | None, field: str, scale: float = 1.0) -> list[float]:
        return [r[field] / scale for r in rows if r.get("credited") and r.get(field) is not None
                and (chain is None or r["chain"] == chain)]

    out: dict[str, Any] = {"benchmark": "bridge_single", "locks_per_chain": singles,
                           "credited": sum(1 for r in rows if r.get("credited")),
                           "locks": len(rows)}
    for name, field, scale, digits in (
            ("finality_to_credit_s", "finality_to_credit_ms", 1000.0, 3),
            ("finality_to_credit_venue_blocks", "venue_blocks", 1.0, 1),
            ("sent_to_credit_s", "sent_to_credit_ms", 1000.0, 3)):
        out[name] = {"all": spread(pick(None, field, scale), digits),
                     **{c: spread(pick(c, field, scale), digits) for c in ("evm-a", "solana")}}
    out["stages_s"] = {k: spread([v / 1000 for v in samples]) for k, samples in stage_ms.items()}
    out["clocks"] = {**CLOCKS, "venue blocks": "credit block (record) minus the venue head "
                     "first seen at or before the finalized record (100 ms poll)"}
    out["block_clock"] = clock.resolution()
    out["devnet"] = dict(manifest["devnet"]["options"])
    out["home"] = str(stack.home)
    out["note"] = ("each lock sent alone, the previous one credited and the fleet idle for "
                   f"{SETTLE_S:.0f} s; the record's credited height is the venue block of the "
                   "credit")
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.bridge_single")
    parser.add_argument("--singles", type=int, default=SINGLES, help="locks per source chain")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(main(parse_args(sys.argv[1:]).singles), indent=2))
