"""Tasks that ran out of attempts are dead-lettered and alarmed, never silently dropped.

Connected to Celery's ``task_failure`` signal by the composition root: a task that fails with an
error it retries on (``autoretry_for``) after its last allowed retry lands in the dead-letter
record (kind ``exhausted``) with its arguments, so an operator can requeue it, and an
error-level ``task_exhausted`` line names it. The work itself is still re-derived from the
chains by the reconciler and the risk tick.
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["record_exhausted"]

log = structlog.get_logger(__name__)


def record_exhausted(sender: Any = None, task_id: str | None = None,
                     exception: BaseException | None = None, args: Any = None,
                     **_: Any) -> None:
    """``task_failure`` receiver (see the module docstring)."""
    task = sender
    if task is None or exception is None:
        return
    retryable = tuple(getattr(task, "autoretry_for", ()) or ())
    retries = int(getattr(task.request, "retries", 0) or 0)
    max_retries = getattr(task, "max_retries", None)
    if not retryable or not isinstance(exception, retryable) or max_retries is None \
            or retries < max_retries:
        return
    queue = (getattr(task.request, "delivery_info", None) or {}).get("routing_key") or "?"
    log.error("task_exhausted", task_name=task.name, task_id=task_id, retries=retries,
              error=str(exception))
    try:
        from workers.runtime import services
        from workers.stores.deadletters import RedisDeadLetters

        RedisDeadLetters(services().redis).add(
            kind="exhausted", queue=str(queue), task=task.name,
            reason=f"{type(exception).__name__}: {exception}", attempts=retries + 1,
            args=list(args or []))
    except Exception as exc:  # noqa: BLE001 - a failing record must not mask the failure
        log.error("dead_letter_not_recorded", error=repr(exc))
