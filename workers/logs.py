"""One log pipeline for the process (DESIGN §5): structlog JSON with the task context.

``configure_logging`` sends stdlib logging (Celery's own records, ``get_task_logger`` loggers,
libraries) and structlog loggers through the same processors and one renderer on one handler
on the root logger. Every line carries ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and
``event``, plus whatever ``structlog.contextvars`` holds at the time: the Celery task context
(``task_id``, ``task``, ``chain``, ``lock_key``, ``position_key``...) bound by
:mod:`workers.log_context`. With ``json=False`` the same fields are rendered for a terminal.

Calling it again replaces its own handler (never stacks a second one); handlers someone else
put on the root logger are left alone (Celery adds none when ``workers.log_context`` is
imported: its ``setup_logging`` receiver tells Celery that logging is configured here).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import Processor

from shared.errors import InputError

__all__ = ["LEVELS", "configure_logging", "parse_level"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_HANDLER_NAME = "bulkhead"


def parse_level(level: str | int) -> int:
    """``"info"`` / ``"INFO"`` / ``20`` -> 20.

    Raises:
        InputError: not one of ``LEVELS`` (or their numeric values).
    """
    if isinstance(level, int) and not isinstance(level, bool):
        if level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                     logging.CRITICAL):
            return level
    elif isinstance(level, str) and level.strip().upper() in LEVELS:
        return int(getattr(logging, level.strip().upper()))
    raise InputError("loglevel", f"{level!r}: use one of {', '.join(LEVELS)}")


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(*, json: bool, level: str, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one renderer on the root logger.

    Args:
        json: one JSON object per line (production, log shippers); else a console layout.
        level: minimum level name (``INFO``); applies to the root logger.
        stream: where lines go (default ``sys.stderr``).

    Raises:
        InputError: an unknown level (nothing was changed).
    """
    threshold = parse_level(level)
    shared = _shared_processors()
    renderer: Processor = (structlog.processors.JSONRenderer(sort_keys=True) if json
                           else structlog.dev.ConsoleRenderer(colors=False))
    exceptions: list[Processor] = [structlog.processors.format_exc_info] if json else []
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *exceptions, renderer],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
