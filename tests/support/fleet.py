"""The worker fleet fixture (real ``bulkhead worker`` processes on a module's devnet) and the
wait for locks to be credited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bulkhead.local.fleet import WorkerFleet
from tests.support.stack import Cli, wait_for

__all__ = ["ATTESTERS", "credited", "fleet", "open_longs"]

ATTESTERS = ["att-1", "att-2", "att-3", "att-4"]


@pytest.fixture(scope="module")
def fleet(devnet: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFleet]:
    workers = WorkerFleet(devnet["home"], tmp_path_factory.mktemp("worker-logs"))
    workers.start_all(ATTESTERS)
    try:
        yield workers
    finally:
        workers.stop()


def credited(cli: Cli, tx_ids: set[str], fleet: WorkerFleet) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        rows = [r for r in cli.json("locks", "--no-sync") if r["tx_id"] in tx_ids]
        return rows if len(rows) == len(tx_ids) and all(
            r["state"] == "credited" for r in rows) else None

    try:
        return wait_for(done, 180, "locks credited")
    except AssertionError:
        for label in fleet.procs:
            print(f"--- {label}\n{fleet.log_tail(label)}")
        raise


def open_longs(cli: Cli, fleet: WorkerFleet, positions: list[str], *, usdc: str = "320",
               size: str = "1") -> None:
    """Back each position with ``usdc`` USDC locked on evm-a, wait until all are credited,
    then open a ``size`` ETH long on each at 3,000 USD (USDC at 1)."""
    locks = [cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", usdc,
                      "--position", p) for p in positions]
    credited(cli, {lock["tx_id"] for lock in locks}, fleet)
    cli.json("price", "--market", "ETH-USD", "--set", "3000")
    cli.json("price", "--market", "USDC", "--set", "1")
    for position in positions:
        cli.json("trade", "open", "--position", position, "--size", size)
