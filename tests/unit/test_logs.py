"""Log lines are JSON with timestamp, level, logger and the Celery task's context bound.

Tasks run locally with ``Task.apply`` (the eager tracer sends the same ``task_prerun`` /
``task_postrun`` signals a worker does); no broker or worker process is involved.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from celery import Celery
from celery.utils.log import get_task_logger

from shared.errors import InputError
from workers import log_context
from workers.log_context import task_fields
from workers.logs import configure_logging, parse_level

LOCK_KEY = "31337:0x" + "00" * 12 + "11" * 20 + ":0x" + "00" * 31 + "07"
POSITION = "0x" + "ab" * 32


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buf = io.StringIO()
    configure_logging(json=True, level="INFO", stream=buf)
    try:
        yield buf
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


@pytest.fixture(scope="module")
def celery() -> Celery:
    app = Celery("test-logs", broker="memory://", backend="cache+memory://")
    app.conf.update(task_store_eager_result=False, task_ignore_result=True)
    return app


def lines(buf: io.StringIO, prefix: str = "bulkhead.test") -> list[dict[str, Any]]:
    """Every line is JSON; keep this test's own (Celery's tracer logs its own lines too)."""
    records = [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]
    assert all({"timestamp", "level", "logger", "event"} <= r.keys() for r in records)
    return [r for r in records if r["logger"].startswith(prefix)]


def test_structlog_and_stdlib_lines_inside_a_bound_task_carry_its_context(
        stream: io.StringIO, celery: Celery) -> None:
    std = get_task_logger("bulkhead.test.watch")
    log = structlog.get_logger("bulkhead.test.relay")

    @celery.task(name="bulkhead.test.poll", bind=True)
    def poll(self: Any, chain: str, height: int, key: str) -> None:
        log.info("credit_still_held", reason="QueuedUntil")
        std.info("polled %s at %d", chain, height)

    poll.apply(args=("evm-a", 42, LOCK_KEY), task_id="task-1")
    first, second = lines(stream)
    for line in (first, second):
        assert line["task_id"] == "task-1"
        assert line["task"] == "bulkhead.test.poll"
        assert line["chain"] == "evm-a"
        assert line["lock_key"] == LOCK_KEY
        assert line["level"] == "info"
        assert line["timestamp"].endswith("Z")
        assert "height" not in line  # only the named identity fields are bound
    assert first["event"] == "credit_still_held" and first["reason"] == "QueuedUntil"
    assert first["logger"] == "bulkhead.test.relay"
    assert second["event"] == "polled evm-a at 42"
    assert second["logger"] == "bulkhead.test.watch"


def test_kwargs_are_bound_and_the_context_is_cleared_after_the_task(
        stream: io.StringIO, celery: Celery) -> None:
    log = structlog.get_logger("bulkhead.test.risk")

    @celery.task(name="bulkhead.test.liquidate")
    def liquidate(plan_id: str, position_key: str, fraction_ppm: int) -> None:
        log.warning("liquidating", fraction_ppm=fraction_ppm)

    liquidate.apply(args=("plan-9",), kwargs={"position_key": POSITION, "fraction_ppm": 250_000},
                    task_id="task-2")
    log.info("between tasks")
    inside, after = lines(stream)
    assert lines(stream, prefix="celery.app.trace")  # Celery's own line is JSON too
    assert inside["task_id"] == "task-2" and inside["task"] == "bulkhead.test.liquidate"
    assert inside["plan_id"] == "plan-9" and inside["position_key"] == POSITION
    assert inside["level"] == "warning" and inside["fraction_ppm"] == 250_000
    assert "task_id" not in after and "position_key" not in after


def test_a_failing_task_still_clears_its_context(stream: io.StringIO, celery: Celery) -> None:
    log = structlog.get_logger("bulkhead.test.boom")

    @celery.task(name="bulkhead.test.boom")
    def boom(chain: str) -> None:
        log.error("about_to_fail")
        raise RuntimeError("boom")

    result = boom.apply(args=("solana",), task_id="task-3")
    assert result.failed()
    log.info("afterwards")
    records = lines(stream)
    failing = next(r for r in records if r["event"] == "about_to_fail")
    assert failing["chain"] == "solana" and failing["task_id"] == "task-3"
    last = records[-1]
    assert last["event"] == "afterwards" and "chain" not in last and "task_id" not in last


def test_exceptions_are_rendered_inside_the_json_line(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("bulkhead.test").exception("caught")
    (line,) = lines(stream)
    assert line["level"] == "error" and "ValueError: bad value" in line["exception"]


def test_levels_below_the_threshold_are_dropped(stream: io.StringIO) -> None:
    structlog.get_logger("bulkhead.test.x").debug("hidden")
    logging.getLogger("bulkhead.test.y").debug("hidden too")
    assert lines(stream, prefix="") == []


def test_task_fields_aliases_and_refusals() -> None:
    class FakeTask:
        @staticmethod
        def run(chain: str, height: int, keys: list[str]) -> None: ...

    assert task_fields(FakeTask(), ("evm-b", 7, ["k1", "k2"]), {}) == {
        "chain": "evm-b", "lock_keys": ["k1", "k2"]}
    # Non-scalar values under a bound name are not logged as identity fields.
    assert task_fields(FakeTask(), (), {"chain": {"nested": 1}}) == {}
    assert task_fields(object(), ("ignored",), {"lock_id": "0x01"}) == {"lock_id": "0x01"}


@pytest.mark.parametrize("level", ["info", "INFO", " warning ", 10, "CRITICAL"])
def test_parse_level_accepts_names_and_numbers(level: str | int) -> None:
    assert parse_level(level) in (10, 20, 30, 40, 50)


@pytest.mark.parametrize("level", ["verbose", "", 15, True])
def test_parse_level_refuses_unknown_levels(level: Any) -> None:
    with pytest.raises(InputError) as exc:
        parse_level(level)
    assert exc.value.field == "loglevel"


def test_the_setup_logging_receiver_takes_over_from_celery(stream: io.StringIO) -> None:
    """A connected ``setup_logging`` receiver is how Celery learns not to install its own
    formatter; the worker's ``--loglevel`` arrives as a number."""
    from celery.signals import setup_logging

    replies = setup_logging.send(sender=None, loglevel=logging.WARNING, logfile=None,
                                 format="", colorize=False)
    assert any(receiver is log_context._configure_worker_logging for receiver, _ in replies)
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == "bulkhead"]
    assert len(ours) == 1 and root.level == logging.WARNING
