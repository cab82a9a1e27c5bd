"""``bulkhead run``: the whole local default in one process tree, then a clean Ctrl-C.

The API answers, every devnet process and worker is alive while it runs, the calm feeder
re-stamps the devnet's prices, and after SIGINT the command exits 0 with no process of the tree
left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from devnet.process import pid_alive
from devnet.stack import running_processes
from tests.integration.api.apiproc import free_port
from tests.support.chain import key_for, rpc
from tests.support.stack import Cli, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(360)]


def get_json(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def readme_steps_after_idle(home: Path, feeder_log: Path) -> None:
    cli = Cli(home)
    devnet = json.loads((home / "devnet" / "manifest.json").read_text())
    url = devnet["chains"]["evm-b"]["rpc_urls"][0]
    rpc(url, "evm_increaseTime", hex(120))
    rpc(url, "evm_mine")
    seen = len(feeder_log.read_text().splitlines())
    feeds = {"ETH-USD", "USDC"}

    def restamped_all() -> bool:
        lines = feeder_log.read_text().splitlines()[seen:]
        return {json.loads(x)["market"] for x in lines if x.startswith("{")} >= feeds

    wait_for(restamped_all, 90, "every feed re-stamped after the idle stretch")
    key = key_for(devnet, "alice", b"readme-idle")
    lock = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "500",
                    "--position", key)
    wait_for(lambda: any(r["tx_id"] == lock["tx_id"] and r["state"] == "credited"
                         for r in cli.json("locks", "--no-sync")), 120, "the lock credited")
    cli.json("price", "--market", "ETH-USD", "--set", "3012.34")
    opened = cli.json("trade", "open", "--position", key, "--size", "0.1")
    assert int(opened["price_e8"]) == 301_234_000_000


def test_run_serves_everything_and_shuts_down_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
           "BULKHEAD_HOME": str(tmp_path), "COLUMNS": "160"}
    proc = subprocess.Popen([sys.executable, "-m", "bulkhead", "run", "--block-time", "0.5",
                             "--slot-ms", "100", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = get_json(f"http://127.0.0.1:{port}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert status == 200, "the API never answered"
        devnet = running_processes(tmp_path)
        assert set(devnet) == {"redis", "evm-a", "evm-b", "solana"}
        assert all(pid_alive(int(p["pid"])) for p in devnet.values())
        tree = descendants(proc.pid)
        assert len(tree) >= 12  # devnet (4), workers (10), the calm feeder, the API
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every chain adapter connects: ready
            status, body = get_json(f"http://127.0.0.1:{port}/readyz")
            if status == 200:
                break
            time.sleep(1)
        assert status == 200, body
        # The calm feeder re-stamps the devnet's prices (20 s old on the chain's clock).
        feeder_log = tmp_path / "logs" / "feeder.log"
        deadline, restamped = time.monotonic() + 90, set()
        while time.monotonic() < deadline and not restamped:
            lines = feeder_log.read_text().splitlines() if feeder_log.exists() else []
            restamped = {json.loads(x)["market"] for x in lines if x.startswith("{")}
            time.sleep(1)
        assert restamped, "the calm feeder re-stamped no price"

        # The README's trading steps after the devnet sat idle past the user-action max age
        # (60 s): the venue chain's clock jumps 120 s, the calm feeder re-stamps every feed,
        # and a lock, `bulkhead price --set` and `bulkhead trade open` go through.
        readme_steps_after_idle(tmp_path, feeder_log)

        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
        assert b"stopped" in out
        left = [pid for pid in tree if pid_alive(pid)]
        assert left == [], f"left behind: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
