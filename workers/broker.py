"""The Redis transport every worker consumes through: no frame can take a worker down.

Celery trusts what the broker hands it; a frame whose body is not ``[args, kwargs, embed]``
makes the consumer raise, the worker exits, the frame is restored to the queue and the restarted
worker dies on it again. :class:`GuardedTransport` (kombu's Redis transport, registered as the
``bhredis`` scheme) checks every frame before Celery sees it (:mod:`workers.frames`):

- a frame that does not decode, is not a known task with arguments that fit, or is too large
  is **recorded and dropped** (acknowledged): a dead letter of kind ``poison``;
- every delivery of a task message is **counted outside the message** (Redis
  ``delivery:<task id>:<retries>``); one delivered more than ``MAX_DELIVERIES`` times (it kills
  whatever worker runs it: a segfault, OOM, ``os._exit``) is recorded as ``crashed`` and dropped
  instead of looping;
- anything the consumer still raises while taking a frame is caught here: the frame is dropped
  from the unacknowledged set (so a restart cannot loop on it) and recorded.

Dropping a poisoned frame never loses work that matters: every lock, settlement and liquidation
is re-derived from the chains by the reconciler and the risk tick.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import redis
import structlog
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from workers.frames import decode_frame, frame_problem

__all__ = ["MAX_DELIVERIES", "GuardedChannel", "GuardedTransport"]

log = structlog.get_logger(__name__)
MAX_DELIVERIES = 5
_DELIVERY_TTL_S = 24 * 3600


@functools.lru_cache(maxsize=1)
def _recorder() -> Any:
    """This process's dead-letter store and Redis client (the app's own settings)."""
    from workers.celery_app import process_settings
    from workers.stores.deadletters import RedisDeadLetters

    client = redis.Redis.from_url(str(process_settings().redis_url))
    return client, RedisDeadLetters(client)


def _task_of(name: str) -> Callable[..., Any] | None:
    from workers.celery_app import app

    task = app.tasks.get(name)
    return None if task is None else task.run


def _record(kind: str, queue: str, reason: str, envelope: dict[str, Any] | None,
            raw: str = "") -> None:
    headers = (envelope or {}).get("headers") or {}
    task = headers.get("task") if isinstance(headers, dict) else None
    log.error("poison_frame_dropped" if kind != "crashed" else "crashing_task_dropped",
              kind=kind, queue=queue, reason=reason, task_name=task,
              task_id=headers.get("id") if isinstance(headers, dict) else None)
    try:
        _, letters = _recorder()
        letters.add(kind=kind, queue=queue, task=task if isinstance(task, str) else None,
                    reason=reason, attempts=int(headers.get("retries", 0) or 0) + 1
                    if isinstance(headers, dict) else 1,
                    payload=raw or str(envelope)[:4_096])
    except Exception as exc:  # noqa: BLE001 - recording must never take the consumer down
        log.error("dead_letter_not_recorded", error=repr(exc))


def _too_many_deliveries(envelope: dict[str, Any]) -> bool:
    headers = envelope.get("headers") or {}
    key = f"bh:delivery:{headers.get('id')}:{headers.get('retries', 0)}"
    try:
        client, _ = _recorder()
        with client.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, _DELIVERY_TTL_S)
            count = int(pipe.execute()[0])
    except redis.RedisError:
        return False  # counting is a guard, not a gate: the broker itself is Redis
    return count > MAX_DELIVERIES


class GuardedChannel(kombu_redis.Channel):
    """kombu's Redis channel, with every popped frame checked before delivery."""

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest_item = self.client.parse_response(self.client.connection, "BRPOP",
                                                       **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest_item:
                raise kombu_redis.Empty()
            dest, item = dest_item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            self._deliver_checked(item, dest)
            return True
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _get(self, queue: str) -> Any:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))
                if item:
                    self._maybe_update_queues_expire(client, queue)
                    envelope, _ = self._checked(item, queue)
                    if envelope is not None:
                        return envelope
            self._maybe_update_queues_expire(client, queue)
            raise kombu_redis.Empty()

    def _checked(self, item: bytes, queue: str) -> tuple[dict[str, Any] | None, str | None]:
        envelope, problem = decode_frame(item)
        if envelope is None:
            _record("poison", queue, problem or "undecodable", None,
                    raw=repr(item[:4_096]))
            return None, problem
        problem = frame_problem(envelope, _task_of)
        if problem is not None:
            _record("poison", queue, problem, envelope)
            return None, problem
        if _too_many_deliveries(envelope):
            _record("crashed", queue, f"delivered more than {MAX_DELIVERIES} times without "
                    "completing (it kills the worker that runs it)", envelope)
            return None, "crashed"
        return envelope, None

    def _deliver_checked(self, item: bytes, queue: str) -> None:
        envelope, _ = self._checked(item, queue)
        if envelope is None:
            return  # dropped: popped, never delivered, never restored
        try:
            self.connection._deliver(envelope, queue)
        except self.connection_errors:
            raise
        except Exception as exc:  # noqa: BLE001 - the consumer failed on this frame
            tag = (envelope.get("properties") or {}).get("delivery_tag")
            if tag is not None and tag in self.qos._delivered:
                self.qos.ack(tag)  # never restored: a restart must not loop on it
            _record("poison", queue, f"the consumer failed on it: {exc!r}", envelope)


class GuardedTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`GuardedChannel`."""

    Channel = GuardedChannel
