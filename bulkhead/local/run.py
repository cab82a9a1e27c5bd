"""``bulkhead run``: the whole local default in one process tree until Ctrl-C.

Devnet (two anvils, the local Solana RPC, Redis; deployed), the worker fleet (watcher, four
attesters, relayer, reconciler, risk worker, accountant, beat), the calm feeder (``bulkhead
feed --keep-fresh``: every devnet price re-stamped before it turns stale, never moved) and the
HTTP API with its dashboard. A devnet
already running in the home is reused and left running afterwards; one started here is stopped
here. A worker or the API that exits is restarted (the supervisor; ``/readyz`` names a role
with no live worker meanwhile). SIGINT or SIGTERM stops the API, then the workers (each gets SIGTERM, then SIGKILL after
5 s), then the devnet — in that order, so no worker is left retrying against a dead chain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from devnet.process import pid_alive, stop_pid
from devnet.stack import DevnetOptions, down, read_manifest, running_processes, up

__all__ = ["run_local"]

ATTESTERS = ["att-1", "att-2", "att-3", "att-4"]
RESTART_EVERY_S = 2.0


def _devnet_running(home: Path) -> bool:
    return any(pid_alive(int(p["pid"])) for p in running_processes(home).values())


def run_local(home: Path, console: Console, *, opts: DevnetOptions, api_host: str,
              api_port: int, stop_after_s: float | None = None,
              calm_feeder: bool = True) -> int:
    """Bring everything up, wait for a signal (or ``stop_after_s``), shut down cleanly."""
    from bulkhead.local.fleet import WorkerFleet

    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        console.print(f"received {signal.Signals(signum).name}: shutting down")
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    reuse = _devnet_running(home)
    fleet = WorkerFleet(home, home / "logs")
    api: subprocess.Popen[bytes] | None = None
    feeder: subprocess.Popen[bytes] | None = None
    try:
        if reuse:
            manifest = read_manifest(home)
            console.print("reusing the devnet already running in this home")
        else:
            with console.status("starting devnet") as status:
                manifest = up(home, opts, progress=status.update)
            console.print(f"devnet ready in {manifest['devnet']['ready_s']} s")
        with console.status("starting workers"):
            fleet.start_all(ATTESTERS)
        api = _start_api(home, api_host, api_port)
        if calm_feeder:
            feeder = _start_feeder(home)
        console.print(_summary(manifest, home, api_host, api_port))
        console.print("running; Ctrl-C stops everything")
        last_restart: dict[str, float] = {}
        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        while not stopping.wait(0.5):
            if deadline is not None and time.monotonic() >= deadline:
                break
            # The supervisor: a worker (or the API) that exits is started again, at most once
            # per RESTART_EVERY_S each, and said so; a role is never left without a consumer.
            now = time.monotonic()
            for label in fleet.exited():
                if now - last_restart.get(label, 0.0) >= RESTART_EVERY_S:
                    last_restart[label] = now
                    fleet.restart(label)
                    console.print(f"[yellow]{label} exited; restarted "
                                  f"({fleet.restarts[label]}x, logs in {home / 'logs'})[/]")
            if api is not None and api.poll() is not None and \
                    now - last_restart.get("api", 0.0) >= RESTART_EVERY_S:
                last_restart["api"] = now
                api = _start_api(home, api_host, api_port)
                console.print("[yellow]api exited; restarted[/]")
            if feeder is not None and feeder.poll() is not None and \
                    now - last_restart.get("feeder", 0.0) >= RESTART_EVERY_S:
                last_restart["feeder"] = now
                feeder = _start_feeder(home)
                console.print("[yellow]calm feeder exited; restarted[/]")
        return 0
    finally:
        if feeder is not None and feeder.poll() is None:
            stop_pid(feeder.pid, timeout_s=5)
        if api is not None and api.poll() is None:
            stop_pid(api.pid, timeout_s=5)
        fleet.stop()
        if not reuse:
            down(home)
        for s, handler in previous.items():
            signal.signal(s, handler)
        console.print("api, workers" + ("" if reuse else " and devnet") + " stopped")


def _start_api(home: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
           "BULKHEAD_HOME": str(home)}
    with (logs / "api.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "bulkhead", "api", "--host", host,
                                 "--port", str(port), "--require-workers"], env=env,
                                stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _start_feeder(home: Path) -> subprocess.Popen[bytes]:
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
           "BULKHEAD_HOME": str(home)}
    with (logs / "feeder.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "bulkhead", "feed", "--keep-fresh",
                                 "--json"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _summary(manifest: dict[str, object], home: Path, host: str, port: int) -> Table:
    table = Table(title="bulkhead run", show_header=False)
    table.add_column("what")
    table.add_column("where")
    chains = manifest.get("chains", {})
    assert isinstance(chains, dict)
    for key, chain in sorted(chains.items()):
        table.add_row(f"chain {key}", str(chain["rpc_urls"][0]))
    table.add_row("redis", str(manifest.get("redis_url")))
    table.add_row("workers", "watcher, att-1..att-4, relayer, reconciler, risk, accountant, "
                             "beat")
    table.add_row("dashboard", f"http://{host}:{port}/")
    table.add_row("API docs", f"http://{host}:{port}/docs")
    table.add_row("metrics", f"http://{host}:{port}/metrics")
    table.add_row("logs", str(home / "logs"))
    return table
