"""Bind each Celery task's identity to every log line it emits (DESIGN §5 "Logs").

Importing this module connects three Celery signals:

- ``setup_logging``: the worker (and beat) log through :func:`workers.logs.configure_logging`
  as JSON at the ``--loglevel`` given, instead of Celery's own formatter (a connected receiver
  is Celery's documented way to say "logging is configured elsewhere");
- ``task_prerun``: clears the context and binds ``task_id``, ``task`` and, when the task's
  arguments name them, ``chain``, ``lock_id`` / ``lock_key``, ``position_key``,
  ``settlement_id`` and ``plan_id`` through ``structlog.contextvars``;
- ``task_postrun``: clears it again, so nothing leaks into the next task of the process.

Positional arguments are matched to names through the task function's signature, because the
tasks take ids positionally (``poll_chain(chain)``). Only plain strings and ints are bound,
so a malformed payload can never blow up logging.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from celery.signals import setup_logging, task_postrun, task_prerun

__all__ = ["BOUND_FIELDS", "bind_task_context", "clear_task_context", "task_fields"]

BOUND_FIELDS = ("chain", "lock_id", "lock_key", "position_key", "settlement_id", "plan_id")
# Argument names that mean a bound field under another name in the task modules.
_ALIASES = {"key": "lock_key", "lock": "lock_key", "position": "position_key"}
_MAX_LIST = 20


def _named_arguments(task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    try:
        params = list(inspect.signature(task.run).parameters.values())
    except (TypeError, ValueError, AttributeError):
        params = []
    positional = [p.name for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    named.update(zip(positional, args or (), strict=False))
    named.update(kwargs or {})
    return named


def task_fields(task: Any, args: Sequence[Any] | None,
                kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The log fields a task call carries (see the module docstring); pure."""
    fields: dict[str, Any] = {}
    for name, value in _named_arguments(task, args or (), kwargs or {}).items():
        target = _ALIASES.get(name, name)
        scalar = isinstance(value, (str, int)) and not isinstance(value, bool)
        if target in BOUND_FIELDS and scalar:
            fields.setdefault(target, value)
        elif (name == "keys" and isinstance(value, (list, tuple)) and len(value) <= _MAX_LIST
              and all(isinstance(v, str) for v in value)):
            fields["lock_keys"] = list(value)
        elif name == "plans" and isinstance(value, (list, tuple)):
            ids = [p[0] for p in value[:_MAX_LIST]
                   if isinstance(p, (list, tuple)) and p and isinstance(p[0], str)]
            if ids:
                fields["plan_ids"] = ids
    return fields


def bind_task_context(task_id: str | None = None, task: Any = None,
                      args: Sequence[Any] | None = None,
                      kwargs: Mapping[str, Any] | None = None, **_: Any) -> None:
    """``task_prerun`` receiver: a fresh context for this task."""
    structlog.contextvars.clear_contextvars()
    name = getattr(task, "name", None)
    structlog.contextvars.bind_contextvars(task_id=task_id, task=name,
                                           **task_fields(task, args, kwargs))


def clear_task_context(**_: Any) -> None:
    """``task_postrun`` receiver (also after a failure): forget the task's context."""
    structlog.contextvars.clear_contextvars()


def _configure_worker_logging(loglevel: int | str | None = None, **_: Any) -> None:
    from workers.logs import configure_logging

    configure_logging(json=True, level=_level_name(loglevel))


def _level_name(loglevel: int | str | None) -> str:
    import logging

    if loglevel is None:
        return "INFO"
    if isinstance(loglevel, int):
        return logging.getLevelName(loglevel)
    return loglevel


task_prerun.connect(bind_task_context, weak=False)
task_postrun.connect(clear_task_context, weak=False)
setup_logging.connect(_configure_worker_logging, weak=False)
