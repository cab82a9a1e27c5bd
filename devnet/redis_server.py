"""Launch a private ``redis-server`` on a free loopback port (no persistence by default).

Bulkhead's Redis holds work in progress only; ``noeviction`` is set because an evicted key
would silently lose a dedup claim or a queued task.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from devnet.process import ManagedProcess, free_port, spawn
from shared.errors import DevnetError

__all__ = ["start_redis"]


def start_redis(
    *, log_path: Path, data_dir: Path, port: int | None = None, detach: bool = False,
    appendonly: bool = False,
) -> ManagedProcess:
    binary = shutil.which("redis-server")
    if binary is None:
        raise DevnetError("redis-server not found: run `make setup` (installs Debian redis-server)")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
        "--appendonly", "yes" if appendonly else "no", "--dir", str(data_dir),
        "--maxmemory-policy", "noeviction", "--protected-mode", "yes",
    ]
    return spawn("redis", argv, port=port, log_path=log_path,
                 ready_pattern=r"Ready to accept connections", detach=detach)
