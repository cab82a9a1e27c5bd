"""Unit tests run with warnings as errors: pure code has no excuse for a deprecation or a
bad call. Two narrow exceptions, both about garbage this process may still hold from a devnet
test that ran before in the same xdist worker (its asyncio transports are collected whenever
the collector runs, often during a later unit test): ``ResourceWarning`` and the
unraisable-exception warning pytest turns it into. (The devnet suites run real processes
whose third-party libraries warn on shutdown; they are not held to this.)"""

from __future__ import annotations

import pytest

_MARKS = (
    pytest.mark.filterwarnings("error"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/unit/" in item.nodeid or item.nodeid.startswith("unit/"):
            for mark in _MARKS:  # later marks take precedence: the exceptions win
                item.add_marker(mark)
