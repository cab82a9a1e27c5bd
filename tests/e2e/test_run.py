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

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(240)]


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
