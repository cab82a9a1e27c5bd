"""What a broker frame must look like before a worker touches it. Pure.

A frame is what the Redis transport pops from a queue: a JSON envelope whose ``body`` is the
base64 of Celery's protocol-2 message ``[args, kwargs, embed]``. Anyone who can write to the
broker can push anything; :func:`frame_problem` names the first thing wrong with a frame (or
returns None for a frame a worker may run), so the transport can record and drop it instead of
letting it kill the consumer (DESIGN §4: any frame, however malformed, is recorded and dropped
without killing a worker).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MAX_FRAME_BYTES", "decode_frame", "frame_problem", "signature_problem"]

MAX_FRAME_BYTES = 1_000_000  # no task of ours carries more than a few kilobytes
_JSON = "application/json"


def decode_frame(raw: bytes | str) -> tuple[dict[str, Any] | None, str | None]:
    """The envelope of a raw frame, or (None, why not)."""
    if len(raw) > MAX_FRAME_BYTES:
        return None, f"frame of {len(raw)} bytes exceeds {MAX_FRAME_BYTES}"
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        envelope = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"frame is not JSON: {exc}"
    if not isinstance(envelope, dict):
        return None, f"frame is a JSON {type(envelope).__name__}, not an object"
    return envelope, None


def frame_problem(envelope: Mapping[str, Any],
                  task_of: Callable[[str], Callable[..., Any] | None]) -> str | None:
    """Why this envelope must not reach a task, or None.

    Args:
        task_of: task name -> the task's run function (None if no such task is registered).
    """
    headers = envelope.get("headers")
    properties = envelope.get("properties")
    if not isinstance(headers, dict) or not isinstance(properties, dict):
        return "envelope without headers or properties"
    if envelope.get("content-type") != _JSON:
        return f"content type {envelope.get('content-type')!r} is not {_JSON}"
    if str(envelope.get("content-encoding", "utf-8")).lower() not in ("utf-8", "utf8"):
        return f"content encoding {envelope.get('content-encoding')!r} is not utf-8"
    name, task_id = headers.get("task"), headers.get("id")
    if not isinstance(name, str) or not isinstance(task_id, str) or not task_id:
        return "headers without a task name and id (only protocol 2 is accepted)"
    run = task_of(name)
    if run is None:
        return f"unknown task {name!r}"
    body = envelope.get("body")
    if not isinstance(body, str):
        return "body is not a string"
    if properties.get("body_encoding", "base64") != "base64":
        return f"body encoding {properties.get('body_encoding')!r} is not base64"
    try:
        message = json.loads(base64.b64decode(body, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        return f"body is not base64 JSON: {exc}"
    if (not isinstance(message, list) or len(message) != 3 or not isinstance(message[0], list)
            or not isinstance(message[1], dict) or not isinstance(message[2], dict)):
        return "body is not [args, kwargs, embed]"
    return signature_problem(run, message[0], message[1])


def signature_problem(run: Callable[..., Any], args: list[Any],
                      kwargs: dict[str, Any]) -> str | None:
    """Why ``run(*args, **kwargs)`` cannot bind (wrong arity or names), or None."""
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    if params and params[0].name == "self":  # bound tasks: Celery passes the task itself
        params = params[1:]
    try:
        signature.replace(parameters=params).bind(*args, **kwargs)
    except TypeError as exc:
        return f"arguments do not fit the task: {exc}"
    return None
