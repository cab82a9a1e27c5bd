"""``bulkhead deadletters``: what the workers would not run, and what an operator does with it.

``bulkhead deadletters [--json]`` lists the record (newest first: poison frames, tasks that
exhausted their attempts, crashing tasks, sends refused past the fee budget); ``requeue ID``
puts a recorded task back on its queue with its arguments and removes the record; ``drop ID``
removes it. A poison frame has no task to requeue: drop it. Work that matters is re-derived from
the chains anyway (the reconciler, the risk tick), so dropping never loses a lock or a credit.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from bulkhead.cli.common import JsonOpt, emit_json, emit_row, guarded, out, settings
from shared.errors import InputError

__all__ = ["deadletters_app"]

deadletters_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                              help="Dead letters: list, requeue or drop.")
IdArg = Annotated[str, typer.Argument(help="The record's id (as listed)")]


def _store():  # type: ignore[no-untyped-def]
    import redis

    from workers.stores.deadletters import RedisDeadLetters

    return RedisDeadLetters(redis.Redis.from_url(str(settings().redis_url)))


@deadletters_app.callback()
def list_letters(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every dead letter, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    letters = guarded(lambda: _store().all())
    if as_json:
        emit_json([asdict(letter) for letter in letters])
        return
    table = Table(title=f"dead letters ({len(letters)})")
    for column in ("id", "kind", "queue", "task", "attempts", "at", "reason"):
        table.add_column(column)
    for letter in letters:
        at = datetime.fromtimestamp(letter.at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(letter.id, letter.kind, letter.queue, letter.task or "-",
                      str(letter.attempts), at, letter.reason[:80])
    out.print(table)


@deadletters_app.command("requeue")
def requeue(letter_id: IdArg, as_json: JsonOpt = False) -> None:
    """Send a recorded task back to its queue with its arguments; the record is removed."""
    from workers.celery_app import app, configure

    store = _store()

    def run() -> dict[str, str]:
        letter = store.get(letter_id)
        if not letter.task or letter.args is None or letter.kind == "poison":
            raise InputError("id", f"{letter_id} is a {letter.kind} frame with no task to "
                             "requeue; drop it")
        configure(settings())
        sent = app.send_task(letter.task, args=letter.args, queue=letter.queue)
        store.drop(letter_id)
        return {"id": letter_id, "task": letter.task, "queue": letter.queue,
                "task_id": str(sent.id)}

    emit_row("requeued", guarded(run), as_json)


@deadletters_app.command("drop")
def drop(letter_id: IdArg, as_json: JsonOpt = False) -> None:
    """Remove a record."""
    letter = guarded(lambda: _store().drop(letter_id))
    emit_row("dropped", {"id": letter.id, "kind": letter.kind, "queue": letter.queue},
             as_json)
