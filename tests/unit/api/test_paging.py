"""Paging: cursors round-trip, pages tile a list exactly once, forged cursors are refused."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead.api.paging import decode_cursor, encode_cursor, paginate

ITEMS = [(t, f"k{t}") for t in range(20, 0, -1)]  # newest first


def key(item: tuple[int, str]) -> tuple[int, str]:
    return item


def test_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor((5, "abc")), (int, str)) == (5, "abc")


@given(st.lists(st.integers(0, 10**6), unique=True), st.integers(1, 7))
def test_following_next_visits_every_item_once(values: list[int], limit: int) -> None:
    items = sorted(((v, str(v)) for v in values), reverse=True)
    seen, cursor = [], None
    while True:
        page = paginate(items, key, limit=limit,
                        cursor=None if cursor is None else decode_cursor(cursor, (int, str)))
        seen.extend(page.items)
        if page.next is None:
            break
        cursor = page.next
    assert seen == items


def test_cursor_survives_new_items_at_the_front() -> None:
    first = paginate(ITEMS, key, limit=5)
    grown = [(99, "k99"), *ITEMS]
    second = paginate(grown, key, limit=5, cursor=decode_cursor(first.next or "", (int, str)))
    assert second.items == ITEMS[5:10]


def test_offset_paging_and_end() -> None:
    page = paginate(ITEMS, key, limit=5, offset=17)
    assert page.items == ITEMS[17:] and page.next is None
    assert paginate(ITEMS, key, limit=5, offset=500).items == []


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("!!!", id="not-base64"),
    pytest.param(_b64(b"\xff\xfe"), id="not-utf8"),
    pytest.param(_b64(b"{}"), id="not-a-list"),
    pytest.param(_b64(b"[1]"), id="short"),
    pytest.param(_b64(b'["1","k"]'), id="wrong-type"),
    pytest.param(_b64(b'[true,"k"]'), id="bool-as-int"),
    pytest.param(_b64(b'[-1,"k"]'), id="negative"),
    pytest.param(_b64(b'[1e18,"k"]'), id="float"),
    pytest.param(_b64(b'[NaN,"k"]'), id="nan"),
    pytest.param(_b64(b"[99999999999999999999999,\"k\"]"), id="huge"),
    pytest.param("A" * 600, id="too-long"),
])
def test_forged_cursors_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(text, (int, str))
