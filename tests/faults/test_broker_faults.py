"""A hostile broker cannot take a role down (DESIGN §4; fault catalogue POISON-01, POISON-02).

POISON-01: every kind of malformed frame is pushed to every queue a role consumes while locks
flow: no worker exits (same PIDs), every lock is credited exactly once, each frame is in the
dead-letter record with its reason, and the audit is clean.

POISON-02: a task that kills the process running it is delivered again and again by Celery
(the pool child dies, the message is requeued); the delivery count kept outside the message
stops it after ``MAX_DELIVERIES`` and records it, while 100 ordinary tasks on the same queue
complete. The dead letters are then listed, requeued and dropped through the CLI, whose input
errors name the field.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bulkhead.local.fleet import WorkerFleet
from tests.faults.task_doubles import COUNTER
from tests.support.chain import key_for
from tests.support.fleet import credited
from tests.support.stack import Cli, wait_for
from workers.broker import MAX_DELIVERIES

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

QUEUES = ["watch.evm-a", "watch.solana", "watch.evm-b", "attest.att-1", "attest.att-2",
          "attest.att-3", "attest.att-4", "relay.evm-b", "reconcile", "risk",
          "liquidate.evm-b", "account"]


def _envelope(queue: str, body: str, headers: dict[str, Any], **extra: Any) -> str:
    return json.dumps({
        "body": body, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": headers, **extra,
        "properties": {"body_encoding": "base64", "delivery_tag": f"tag-{queue}-{len(body)}",
                       "delivery_info": {"exchange": "", "routing_key": queue},
                       "priority": 0, "delivery_mode": 2}})


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def poison_frames(queue: str) -> dict[str, bytes | str]:
    """Each kind of malformed frame a writer to the broker could push, by name."""
    task = {"task": "bulkhead.reconcile.reconcile", "id": f"poison-{queue}"}
    return {
        "not-json": b"\x00this is not json",
        "json-array-frame": json.dumps([1, 2, 3]),
        "body-not-base64": _envelope(queue, "%%%%", task),
        "body-a-string": _envelope(queue, _b64("just a string"), task),
        "body-wrong-shape": _envelope(queue, _b64([[], {}]), task),
        "unknown-task": _envelope(queue, _b64([[], {}, {}]),
                                  {"task": "bulkhead.nope", "id": f"nope-{queue}"}),
        "wrong-arguments": _envelope(queue, _b64([[1, 2, 3, 4], {}, {}]), task),
        "pickle-content": _envelope(queue, _b64([[], {}, {}]), task)
        .replace("application/json", "application/x-python-serialize"),
        "oversize": _envelope(queue, "A" * 1_100_000, task),
    }


def test_poison_01_malformed_frames_in_every_queue_kill_no_worker(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    client = redis.Redis.from_url(devnet["redis_url"])
    pids = {label: p.pid for label, p in fleet.procs.items()}
    key = key_for(devnet, "alice", b"poison-01")
    first = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "2",
                     "--position", key)
    sent = 0
    for queue in QUEUES:
        for frame in poison_frames(queue).values():
            client.lpush(queue, frame)
            sent += 1
    second = cli.json("lock", "--chain", "solana", "--asset", "USDC", "--amount", "3",
                      "--position", key)
    rows = credited(cli, {first["tx_id"], second["tx_id"]}, fleet)
    assert sorted(int(r["amount"]) for r in rows) == [2_000_000, 3_000_000]

    def recorded() -> list[dict[str, Any]] | None:
        letters = cli.json("deadletters")
        poison = [d for d in letters if d["kind"] == "poison"]
        return letters if len(poison) >= sent else None

    letters = wait_for(recorded, 60, f"{sent} poison frames recorded")
    by_queue: dict[str, set[str]] = {}
    for letter in letters:
        by_queue.setdefault(letter["queue"], set()).add(letter["reason"])
    for queue in QUEUES:
        reasons = " | ".join(sorted(by_queue.get(queue, ())))
        for needle in ("not JSON", "base64", "[args, kwargs, embed]", "unknown task",
                       "do not fit", "content type", "exceeds"):
            assert needle in reasons, (queue, needle, reasons)
    assert {label: p.pid for label, p in fleet.procs.items()} == pids
    assert all(p.poll() is None for p in fleet.procs.values()), fleet.exited()
    audit = cli.run("audit", "--json", ok=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr


@pytest.fixture(scope="module")
def doubles_worker(devnet: dict[str, Any],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker on its own queue with the test-only tasks loaded."""
    log = (tmp_path_factory.mktemp("doubles") / "worker.log").open("ab")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
           "BULKHEAD_HOME": str(devnet["home"]),
           "BULKHEAD_CONFIG": str(devnet["home"] / "none.toml"),
           "BULKHEAD_EXTRA_TASKS": "tests.faults.task_doubles"}
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_app",
                             "worker", "-Q", "doubles", "-P", "prefork", "-c", "1",
                             "-n", "doubles@%h", "--without-gossip", "--without-mingle"],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_poison_02_a_task_that_kills_its_worker_is_dead_lettered_after_n_deliveries(
        devnet: dict[str, Any], cli: Cli, doubles_worker: subprocess.Popen[bytes]) -> None:
    from shared.settings import load_settings
    from workers.celery_app import app, configure

    os.environ["BULKHEAD_HOME"] = str(devnet["home"])
    try:
        configure(load_settings(home=devnet["home"]))
    finally:
        os.environ.pop("BULKHEAD_HOME", None)
    client = redis.Redis.from_url(devnet["redis_url"])
    client.delete(COUNTER)
    app.send_task("bulkhead.test.die", queue="doubles")
    for _ in range(100):
        app.send_task("bulkhead.test.count", args=(1,), queue="doubles")

    def finished() -> bool:
        return int(client.get(COUNTER) or 0) == 100 and any(
            d["kind"] == "crashed" and d["task"] == "bulkhead.test.die"
            for d in cli.json("deadletters"))

    wait_for(finished, 120, "100 ordinary tasks done and the killer dead-lettered")
    assert doubles_worker.poll() is None  # the worker itself never died
    (crashed,) = [d for d in cli.json("deadletters") if d["kind"] == "crashed"]
    assert crashed["queue"] == "doubles" and crashed["attempts"] >= 1
    assert str(MAX_DELIVERIES) in crashed["reason"]

    # Operators: a typed refusal naming the field for an unknown id or a poison frame...
    unknown = cli.run("deadletters", "drop", "no-such-id", ok=False)
    assert unknown.returncode == 2 and "id" in unknown.stderr
    poison = next(d for d in cli.json("deadletters") if d["kind"] == "poison")
    refused = cli.run("deadletters", "requeue", poison["id"], ok=False)
    assert refused.returncode == 2 and "drop it" in refused.stderr
    # ... a requeue of a recorded task runs it again and removes the record ...
    from workers.stores.deadletters import RedisDeadLetters

    letter = RedisDeadLetters(client).add(kind="exhausted", queue="doubles",
                                          task="bulkhead.test.count", reason="test",
                                          attempts=9, args=[5])
    done = cli.json("deadletters", "requeue", letter.id)
    assert done["task"] == "bulkhead.test.count"
    wait_for(lambda: int(client.get(COUNTER) or 0) == 105, 30, "the requeued task ran")
    assert letter.id not in {d["id"] for d in cli.json("deadletters")}
    # ... and a drop removes one.
    dropped = cli.json("deadletters", "drop", crashed["id"])
    assert dropped["id"] == crashed["id"]
    assert crashed["id"] not in {d["id"] for d in cli.json("deadletters")}
