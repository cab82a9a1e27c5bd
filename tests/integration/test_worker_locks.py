"""The run-once lock against a real Redis: exclusive, released, taken over from a dead holder."""

import subprocess
import sys

import pytest
import redis

from tests.support.stack import wait_for
from workers.mutex import only_one_running

pytestmark = pytest.mark.integration


def test_exclusive_and_released(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with only_one_running(client, "k") as first, only_one_running(client, "k") as second:
        assert first and not second
    with only_one_running(client, "k") as again:
        assert again


def die_holding(code: str) -> None:
    """Run ``code`` in a process of its own that is SIGKILLed (by itself, at the latest after
    ``code``) while holding what it took."""
    proc = subprocess.run([sys.executable, "-c", "import os, signal, redis\n" + code
                           + "os.kill(os.getpid(), signal.SIGKILL)\n"], check=False)
    assert proc.returncode == -9


def test_lock_of_a_killed_holder_is_taken_over(redis_url: str) -> None:
    die_holding("from workers.mutex import only_one_running\n"
                f"c = redis.Redis.from_url({redis_url!r})\n"
                "with only_one_running(c, 'k', ttl_s=300) as held:\n"
                "    assert held\n"
                "    os.kill(os.getpid(), signal.SIGKILL)\n")
    client = redis.Redis.from_url(redis_url)
    assert client.get("bh:run:k") is not None  # still there: the TTL alone would block 300 s
    with only_one_running(client, "k") as held:
        assert held


def test_live_holder_elsewhere_is_respected(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("bh:run:k", "another-host:1", px=60_000)
    with only_one_running(client, "k") as held:
        assert not held


# ----- liquidation plan leases (RedisClaims) -------------------------------------------------


def test_a_plan_lease_is_held_by_one_process_and_released_only_by_it(redis_url: str) -> None:
    from workers.stores.claims import RedisClaims

    client = redis.Redis.from_url(redis_url)
    mine, theirs = RedisClaims(client), RedisClaims(client, token="another-host:1")
    assert mine.claim("p1", 60_000) and mine.claim("p1", 60_000)  # re-claiming its own
    assert not theirs.claim("p1", 60_000)  # a live holder elsewhere is respected
    assert theirs.hold(["p1", "p2"], 60_000) == [False, True]
    theirs.release(["p1"])  # not its lease: nothing happens
    assert client.get("bh:plan:p1") == mine.token.encode()
    mine.release(["p1"])
    assert client.get("bh:plan:p1") is None and theirs.claim("p1", 60_000)


def test_a_plan_lease_dies_with_its_holder(redis_url: str) -> None:
    """A holder on this host that was killed frees its leases at once (not after the TTL);
    one on another host only when the TTL runs out."""
    from workers.stores.claims import RedisClaims

    die_holding("from workers.stores.claims import RedisClaims\n"
                f"c = RedisClaims(redis.Redis.from_url({redis_url!r}))\n"
                "assert c.claim('dead', 300_000) and c.hold(['dead2'], 300_000) == [True]\n")
    client = redis.Redis.from_url(redis_url)
    assert client.pttl("bh:plan:dead") > 200_000  # the TTL alone would block minutes
    live = RedisClaims(client)
    assert live.claim("dead", 15_000) and live.hold(["dead2"], 15_000) == [True]
    assert client.get("bh:plan:dead") == live.token.encode()

    client.set("bh:plan:far", "another-host:7", px=200)
    assert not live.claim("far", 15_000)
    wait_for(lambda: not client.exists("bh:plan:far"), 10, "the far holder's TTL to run out")
    assert live.claim("far", 15_000)
