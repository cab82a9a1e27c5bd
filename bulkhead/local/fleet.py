"""Start the bridge's real Celery worker processes against a devnet home, and stop them.

Each role runs as ``python -m bulkhead worker --role ...`` exactly as an operator would,
with its log in ``logs``; callers (the e2e tests, the bridge benchmark) stop every process in a
``finally``, even on failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devnet.process import pid_alive, stop_pid

__all__ = ["WorkerFleet"]


@dataclass
class WorkerFleet:
    home: Path
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    specs: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def start(self, label: str, role: str, *extra: str,
              wrapper: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        """Start one worker; ``wrapper`` prefixes the command (e.g. ``faketime -f +300s``)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
               "BULKHEAD_HOME": str(self.home), **self.env}
        log = (self.logs / f"{label}.log").open("ab")
        proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "bulkhead", "worker", "--role", role, *extra],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[label] = proc
        self.specs[label] = (role, extra, wrapper)
        return proc

    def exited(self) -> list[str]:
        """Labels of workers whose process has exited."""
        return [label for label, p in self.procs.items() if p.poll() is not None]

    def restart(self, label: str) -> subprocess.Popen[bytes]:
        """Start an exited worker again with the same role and arguments."""
        role, extra, wrapper = self.specs[label]
        self.restarts[label] = self.restarts.get(label, 0) + 1
        return self.start(label, role, *extra, wrapper=wrapper)

    def start_all(self, attesters: list[str], *, relayer_pool: str = "prefork") -> None:
        self.start("beat", "beat")
        self.start("watcher", "watcher", "--pool", "solo")
        self.start("reconciler", "reconciler", "--pool", "solo")
        self.start("relayer", "relayer", "--pool", relayer_pool)
        self.start("risk", "risk", "--pool", "solo")
        self.start("accountant", "accountant", "--pool", "solo")
        for name in attesters:
            self.start(name, "attester", "--name", name, "--pool", "solo")

    def kill(self, label: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[label]
        os.killpg(proc.pid, sig)
        proc.wait(timeout=10)

    def children(self, label: str) -> list[int]:
        """Pool children of a prefork worker (pids whose parent is the worker)."""
        parent = self.procs[label].pid
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                out.append(int(stat.parent.name))
        return out

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                stop_pid(proc.pid, timeout_s=5)
        deadline = time.monotonic() + 10
        while any(pid_alive(p.pid) for p in self.procs.values()) and time.monotonic() < deadline:
            time.sleep(0.1)

    def log_tail(self, label: str, lines: int = 40) -> str:
        path = self.logs / f"{label}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
