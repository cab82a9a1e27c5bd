"""Quorum table (0..1000 members), KEY-02 refusals and SIG-02 boundaries. Pure."""

from itertools import pairwise

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from bridges.quorum import AttesterSet, default_threshold, meets_quorum, missing_signers
from shared.errors import ConfigError

KEYS = sorted((Account.from_key(bytes([i]) * 32).address for i in range(1, 5)), key=str.lower)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5),
                                      (9, 7), (19, 13), (100, 67), (1000, 667)])
def test_default_threshold_table(n: int, m: int) -> None:
    assert default_threshold(n) == m
    assert 2 * m > n


@pytest.mark.parametrize(
    ("members", "threshold", "field"),
    [
        ([], 1, "attesters.members"),
        (KEYS, 0, "attesters.threshold"),
        (KEYS, 5, "attesters.threshold"),
        (KEYS, 2, "attesters.threshold"),  # m <= n/2
        ([KEYS[0], KEYS[0].lower(), KEYS[1], KEYS[2]], 3, "attesters.members"),
        (["0x" + "00" * 20, *KEYS[1:]], 3, "attesters.members"),
    ],
)
def test_unsafe_sets_refused_naming_the_problem(members: list[str], threshold: int,
                                                field: str) -> None:
    with pytest.raises(ConfigError) as err:
        AttesterSet(0, tuple(members), threshold)
    assert err.value.field == field


def test_too_few_distinct_operators_refused() -> None:
    with pytest.raises(ConfigError, match="operators"):
        AttesterSet.of(0, KEYS, operators=["ops-a", "ops-a", "ops-b", "ops-b"])


def test_sig_02_boundary_three_of_four() -> None:
    s = AttesterSet.of(0, KEYS)
    assert s.threshold == 3
    assert not meets_quorum(s, KEYS[:2]) and missing_signers(s, KEYS[:2]) == 1
    assert meets_quorum(s, KEYS[:3]) and meets_quorum(s, KEYS)
    assert not meets_quorum(s, [KEYS[1], KEYS[0], KEYS[2]])  # not increasing
    assert not meets_quorum(s, [KEYS[0], KEYS[0], KEYS[1], KEYS[2]])  # repeated
    outsider = Account.from_key(b"\x09" * 32).address
    assert not meets_quorum(s, sorted([*KEYS[:2], outsider], key=str.lower))


@given(st.lists(st.sampled_from(KEYS), max_size=6))
def test_quorum_needs_threshold_distinct_increasing(signers: list[str]) -> None:
    s = AttesterSet.of(0, KEYS)
    increasing = all(a.lower() < b.lower() for a, b in pairwise(signers))
    assert meets_quorum(s, signers) == (increasing and len(signers) >= 3)
