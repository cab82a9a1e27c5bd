"""The run-once lock against a real Redis: exclusive, released, taken over from a dead holder."""

import subprocess
import sys

import pytest
import redis

from workers.mutex import only_one_running

pytestmark = pytest.mark.integration


def test_exclusive_and_released(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with only_one_running(client, "k") as first, only_one_running(client, "k") as second:
        assert first and not second
    with only_one_running(client, "k") as again:
        assert again


def test_lock_of_a_killed_holder_is_taken_over(redis_url: str) -> None:
    code = ("import redis, os, signal; from workers.mutex import only_one_running\n"
            f"c = redis.Redis.from_url({redis_url!r})\n"
            "with only_one_running(c, 'k', ttl_s=300) as held:\n"
            "    assert held; os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    client = redis.Redis.from_url(redis_url)
    assert client.get("bh:run:k") is not None  # still there: the TTL alone would block 300 s
    with only_one_running(client, "k") as held:
        assert held


def test_live_holder_elsewhere_is_respected(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("bh:run:k", "another-host:1", px=60_000)
    with only_one_running(client, "k") as held:
        assert not held
