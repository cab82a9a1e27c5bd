"""Launch anvil from the pinned npm package ``@foundry-rs/anvil`` (see package.json).

anvil answers the ``safe`` and ``finalized`` tags as ``latest - slots_in_an_epoch`` and
``latest - 2 * slots_in_an_epoch``; the devnet uses a small epoch so finality is seconds away.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from devnet.process import ManagedProcess, free_port, spawn
from shared.errors import DevnetError

__all__ = ["anvil_binary", "project_root", "start_anvil"]


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def anvil_binary() -> Path:
    """The anvil executable: ``BULKHEAD_ANVIL``, the npm package's platform binary, or PATH."""
    if explicit := os.environ.get("BULKHEAD_ANVIL"):
        return Path(explicit)
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    system = platform.system().lower()
    candidate = project_root() / f"node_modules/@foundry-rs/anvil-{system}-{arch}/bin/anvil"
    if candidate.is_file():
        return candidate
    if found := shutil.which("anvil"):
        return Path(found)
    raise DevnetError("anvil not found: run `make setup` (npm ci installs @foundry-rs/anvil)")


def start_anvil(
    chain_id: int,
    *,
    log_path: Path,
    port: int | None = None,
    block_time_s: float | None = 1.0,
    slots_in_an_epoch: int = 4,
    accounts: int = 10,
    detach: bool = False,
    extra_args: tuple[str, ...] = (),
) -> ManagedProcess:
    """Start one anvil chain on loopback and wait for its "Listening on" line.

    ``block_time_s=None`` mines only on demand (``evm_mine``), which tests use for
    deterministic heights.
    """
    port = port or free_port()
    argv = [
        str(anvil_binary()),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--chain-id", str(chain_id),
        "--accounts", str(accounts),
        "--slots-in-an-epoch", str(slots_in_an_epoch),
    ]
    if block_time_s is not None:
        argv += ["--block-time", str(block_time_s)]
    argv += list(extra_args)
    return spawn(
        f"anvil-{chain_id}", argv, port=port, log_path=log_path,
        ready_pattern=r"Listening on", ready_timeout_s=30, detach=detach,
    )
