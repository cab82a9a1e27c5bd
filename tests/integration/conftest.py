"""Shared fixtures: real redis-server, anvil and local Solana processes on free loopback ports.

Every process is started with ``detach=False``: it dies with the test process even on a crash.
A missing binary fails with the install hint (``make test`` installs everything), never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devnet.process import ManagedProcess
from devnet.redis_server import start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    root = tmp_path_factory.mktemp("redis")
    proc = start_redis(log_path=root / "redis.log", data_dir=root)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def redis_url(redis_server: ManagedProcess) -> Iterator[str]:
    """A clean database on the session's redis-server."""
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    yield url


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path("test-artifacts")
    path.mkdir(exist_ok=True)
    return path
