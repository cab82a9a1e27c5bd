"""Paging for the JSON API's lists (pure).

Lists are served newest first. A page is ``limit`` items starting either at ``offset`` or just
after a ``cursor``: the opaque base64url form of the last item's sort key. A cursor stays
correct while new items arrive at the front of a list; an offset shifts with them, so clients
that follow ``next`` get every item exactly once.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CursorKey", "Page", "decode_cursor", "encode_cursor", "paginate"]

T = TypeVar("T")
CursorKey = tuple[int | str, ...]
MAX_CURSOR_CHARS = 512


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None  # pass back as ``cursor`` for the following page; None at the end


def encode_cursor(key: CursorKey) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, shape: tuple[type, ...]) -> CursorKey:
    """The sort key inside ``text``; ``shape`` gives the type of each element.

    Raises:
        ValueError: not base64url JSON, or not a list of ``shape``'s types (message is safe to
            show: it never echoes more than the input's length).
    """
    if not text or len(text) > MAX_CURSOR_CHARS:
        raise ValueError(f"cursor must be 1..{MAX_CURSOR_CHARS} characters")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("cursor is not one this API issued") from exc
    if not isinstance(value, list) or len(value) != len(shape):
        raise ValueError("cursor is not one this API issued")
    for item, kind in zip(value, shape, strict=True):
        # bool is an int subclass; a cursor never holds one
        if isinstance(item, bool) or not isinstance(item, kind):
            raise ValueError("cursor is not one this API issued")  # noqa: TRY004
        if isinstance(item, int) and not 0 <= item < 2**63:
            raise ValueError("cursor is not one this API issued")
        if isinstance(item, str) and len(item) > 200:
            raise ValueError("cursor is not one this API issued")
    return tuple(value)


def paginate(items: Sequence[T], sort_key: Callable[[T], CursorKey], *, limit: int,
             cursor: CursorKey | None = None, offset: int | None = None) -> Page[T]:
    """One page of ``items`` (already sorted newest first, i.e. by ``sort_key`` descending)."""
    if cursor is not None:
        start = next((i for i, item in enumerate(items) if sort_key(item) < cursor), len(items))
    else:
        start = offset or 0
    chunk = list(items[start:start + limit])
    more = start + limit < len(items)
    return Page(chunk, encode_cursor(sort_key(chunk[-1])) if more and chunk else None)
