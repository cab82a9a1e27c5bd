"""Start and stop local service processes (anvil, the Solana RPC, redis-server).

Children started for a test are tied to their parent with ``PR_SET_PDEATHSIG`` so a crashed
test run leaves no process behind; ``detach=True`` (``bulkhead devnet up``) starts them in their
own session instead and the caller records their pids for ``devnet down``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.errors import DevnetError

__all__ = ["ManagedProcess", "free_port", "pid_alive", "spawn", "stop_pid"]

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def stop_pid(pid: int, timeout_s: float = 5.0) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL it if still alive after the timeout."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                return
            time.sleep(0.05)


@dataclass
class ManagedProcess:
    """A started service: its pid, port and log file."""

    name: str
    pid: int
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def stop(self, timeout_s: float = 5.0) -> None:
        stop_pid(self.pid, timeout_s)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=1)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    log_path: Path,
    ready_pattern: str,
    ready_timeout_s: float = 30.0,
    env: dict[str, str] | None = None,
    detach: bool = False,
) -> ManagedProcess:
    """Start ``argv``, wait until its log matches ``ready_pattern``, return the handle.

    Raises:
        DevnetError: the binary is missing, the process exited, or it was not ready in time
            (the log tail is included so the cause is visible).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    try:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=detach,
            preexec_fn=None if detach else _die_with_parent,  # noqa: PLW1509 - prctl only
        )
    except FileNotFoundError as exc:
        raise DevnetError(f"{name}: cannot start {argv[0]!r}: {exc}") from exc
    finally:
        log.close()
    proc = ManagedProcess(name=name, pid=popen.pid, port=port, log_path=log_path, popen=popen)
    pattern = re.compile(ready_pattern)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if pattern.search(text):
            return proc
        if popen.poll() is not None:
            raise DevnetError(f"{name} exited with {popen.returncode}:\n{_tail(text)}")
        time.sleep(0.05)
    proc.stop()
    raise DevnetError(f"{name} not ready after {ready_timeout_s}s:\n{_tail(log_path.read_text())}")


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])
