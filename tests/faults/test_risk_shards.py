"""RISK-01: the risk screen shared by two risk workers (``risk.shards`` = 2), one of them
SIGKILLed before a crash tick. Both workers screen while both live; after the kill the live one
screens both shards, and every position of both shards is liquidated exactly once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from orchestrator.liquidation.shards import shard_of
from tests.support.chain import key_for
from tests.support.fleet import open_longs
from tests.support.stack import Cli, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

ATTESTERS = ["att-1", "att-2", "att-3", "att-4"]
SHARDS = 2


@pytest.fixture(scope="module")
def fleet(devnet: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFleet]:
    workers = WorkerFleet(devnet["home"], tmp_path_factory.mktemp("shard-logs"),
                          env={"BULKHEAD_RISK__SHARDS": str(SHARDS)})
    workers.start_all(ATTESTERS)
    workers.start("risk-2", "risk", "--pool", "solo")
    try:
        yield workers
    finally:
        workers.stop()


def screened(log: Path, since: int = 0) -> list[dict[str, Any]]:
    """The ``risk_shard_screened`` lines of a worker's log after its first ``since`` lines."""
    if not log.exists():
        return []
    rows = []
    for line in log.read_text(errors="replace").splitlines()[since:]:
        if '"risk_shard_screened"' in line:
            rows.append(json.loads(line[line.index("{"):]))
    return rows


def test_risk_01_two_risk_workers_share_the_screen_and_one_takes_over_the_dead_ones_shard(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    by_shard: dict[int, list[str]] = {s: [] for s in range(SHARDS)}
    i = 0
    while min(len(v) for v in by_shard.values()) < 2:
        key = key_for(devnet, "alice", f"shard-{i}".encode())
        if len(by_shard[shard_of(key, SHARDS)]) < 2:
            by_shard[shard_of(key, SHARDS)].append(key)
        i += 1
    positions = [k for keys in by_shard.values() for k in keys]
    open_longs(cli, fleet, positions)

    # Both workers share the ticks: each has screened, and both shards were screened.
    logs = {label: fleet.logs / f"{label}.log" for label in ("risk", "risk-2")}
    wait_for(lambda: all(screened(p) for p in logs.values()), 60,
             "both risk workers screening")
    wait_for(lambda: {r["shard"] for p in logs.values() for r in screened(p)} == {0, 1}, 60,
             "both shards screened")

    fleet.kill("risk-2")  # SIGKILL: its share of the ticks is left to the live worker
    seen = len(logs["risk"].read_text(errors="replace").splitlines())
    cli.json("price", "--market", "ETH-USD", "--set", "2730")  # E < MM / 2: a full close each
    started = time.monotonic()
    b = devnet["chains"]["evm-b"]
    venue = Web3(Web3.HTTPProvider(b["rpc_urls"][0])).eth.contract(
        address=b["contracts"]["venue"], abi=load_artifact("IsolatedMarginVenue").abi)
    raws = [bytes.fromhex(p[2:]) for p in positions]
    wait_for(lambda: all(venue.functions.positionOf(r).call()[1] == 0 for r in raws), 60,
             "every position of both shards liquidated by the live worker")
    print(f"RISK-01: {len(raws)} positions in {SHARDS} shards liquidated "
          f"{time.monotonic() - started:.1f} s after the crash tick, one risk worker dead")
    assert {r["shard"] for r in screened(logs["risk"], seen)} == {0, 1}
    events = venue.events.Liquidated().get_logs(from_block=0)
    for raw in raws:
        assert len([e for e in events if e.args.positionKey == raw]) == 1  # exactly once
