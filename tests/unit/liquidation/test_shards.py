"""The split of the risk screen into shards (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.liquidation.shards import keys_of, shard_of, stalest_first
from shared.errors import InputError

keys = st.lists(st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()), max_size=50)


@given(keys, st.integers(1, 16))
def test_every_key_is_in_exactly_one_shard(ks: list[str], shards: int) -> None:
    parts = [keys_of(s, ks, shards) for s in range(shards)]
    assert sorted(k for part in parts for k in part) == sorted(ks)
    assert all(shard_of(k, shards) == s for s, part in enumerate(parts) for k in part)


def test_one_shard_holds_everything_and_the_split_is_by_key() -> None:
    assert shard_of("0x" + "ff" * 32, 1) == 0
    assert shard_of("0x03", 2) == 1 and shard_of("0x04", 2) == 0


def test_never_screened_shards_come_first_then_the_oldest() -> None:
    assert stalest_first({}, 3) == [0, 1, 2]
    assert stalest_first({0: 500, 2: 100}, 3) == [1, 2, 0]
    assert stalest_first({0: 100, 1: 100}, 2) == [0, 1]  # ties by number


@pytest.mark.parametrize(("key", "shards", "field"), [("0xzz", 2, "position_key"),
                                                      ("0x01", 0, "shards")])
def test_bad_input_names_the_field(key: str, shards: int, field: str) -> None:
    with pytest.raises(InputError) as info:
        shard_of(key, shards)
    assert info.value.field == field
