"""Run the API as an operator would (``bulkhead api``, via ``python -m bulkhead``) against
a devnet home, on a free loopback port; stopped in a ``finally`` even when a test fails."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

__all__ = ["ApiProcess", "free_port", "running_api"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiProcess:
    def __init__(self, home: Path, log_path: Path) -> None:
        self.home, self.log_path = home, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 60) -> str:
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
               "BULKHEAD_HOME": str(self.home), "BULKHEAD_CONFIG": str(self.home / "none.toml")}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bulkhead", "api", "--port", str(port),
                 "--loglevel", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"API exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"API not up within {timeout_s}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_api(home: Path) -> Iterator[str]:
    """The API on the devnet in ``home`` (log: ``home/logs/api.log``); yields its base URL."""
    proc = ApiProcess(home, home / "logs" / "api.log")
    url = proc.start()
    try:
        yield url
    finally:
        proc.stop()
