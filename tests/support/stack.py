"""The whole devnet (``devnet.stack.up``) in a temp home, driven through the real CLI.

Processes are tied to the test process (``detach=False``); the stack is torn down even when a
test fails. Fast clocks keep finality seconds away: anvil 0.5 s blocks with finalized = latest-4,
Solana 100 ms slots with finalized = processed-10.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from chains.evm.artifacts import load_artifact
from devnet.stack import DevnetOptions, down, up
from shared.positions import market_id
from tests.support.chain import rpc

# The e2e suites check liquidation arithmetic against the market's fixed maintenance rate, so
# their devnet leaves the volatility buffer to the owner (0); the buffer is tested on its own
# (tests/integration/test_feeder.py) and in the demo (tests/e2e/test_demo.py), where it is on.
FAST = DevnetOptions(block_time_s=0.5, slots_in_an_epoch=2, slot_ms=100, solana_finality_lag=10,
                     detach=False, buffer_markets=())


class Cli:
    """Runs ``bulkhead`` as a real subprocess against one devnet home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
                    "BULKHEAD_HOME": str(home), "BULKHEAD_CONFIG": str(home / "none.toml"),
                    "COLUMNS": "160"}

    def run(self, *args: str, ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "bulkhead", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def risk_ticks(devnet: dict[str, Any], n: int = 2, timeout_s: float = 60) -> None:
    """Wait until the risk worker has screened ``n`` more times (each screen rewrites
    ``bh:risk:last_screen``): the progress a "nothing was liquidated" check waits on."""
    import redis

    client = redis.Redis.from_url(devnet["redis_url"])
    try:
        seen = client.hget("bh:risk:last_screen", "at_ms")
        for i in range(n):
            def moved(before: Any = seen) -> Any:
                now = client.hget("bh:risk:last_screen", "at_ms")
                return now if now is not None and now != before else None
            seen = wait_for(moved, timeout_s, f"risk screen {i + 1} of {n}")
    finally:
        client.close()


def queues_drained(devnet: dict[str, Any], *queues: str, timeout_s: float = 60) -> None:
    """Wait until none of ``queues`` holds a message (every redelivery has been taken)."""
    import redis

    client = redis.Redis.from_url(devnet["redis_url"])
    try:
        wait_for(lambda: all(client.llen(q) == 0 for q in queues), timeout_s,
                 f"{', '.join(queues)} drained")
    finally:
        client.close()


@contextmanager
def started_devnet(tmp_path_factory: pytest.TempPathFactory,
                   name: str = "devnet-home") -> Iterator[dict[str, Any]]:
    """A fresh devnet (fast clocks) in its own temp home; its manifest carries ``home``."""
    home = tmp_path_factory.mktemp(name)
    manifest = up(home, FAST)
    manifest["home"] = home
    try:
        yield manifest
    finally:
        down(home)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with started_devnet(tmp_path_factory) as manifest:
        yield manifest


@pytest.fixture(scope="module")
def cli(devnet: dict[str, Any]) -> Cli:
    return Cli(devnet["home"])


def publish_while_stalled(cli: Cli, devnet: dict[str, Any], market: str, price: str) -> None:
    """``bulkhead price --set`` on the stalled venue chain: mine one block at a time until the
    oracle reads the new price, then no more."""
    b = devnet["chains"]["evm-b"]
    w3 = Web3(Web3.HTTPProvider(b["rpc_urls"][0]))
    oracle = w3.eth.contract(address=b["contracts"]["oracle"],
                             abi=load_artifact("MarkOracle").abi)
    want = int(Decimal(price) * 10**8)
    proc = subprocess.Popen([sys.executable, "-m", "bulkhead", "price", "--market", market,
                             "--set", price, "--json"], env=cli.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def landed() -> bool:
            if oracle.functions.getMark(market_id(market), 2**256 - 1).call()[0] == want:
                return True
            rpc(b["rpc_urls"][0], "evm_mine")
            return False

        wait_for(landed, 60, f"{market} at {price} mined on the stalled chain")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
