"""INP-01 for relay input: lock keys arrive in task payloads and CLI flags; anything that is
not a canonical key is a typed refusal, never another exception. Pure."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridges.relay import split_lock_key
from orchestrator.actions.collateral import parse_lock_key
from shared.errors import AttestationMalformed, InputError
from shared.messages import message_from_dict

VAULT, LOCK = "0x" + "11" * 32, "0x" + "00" * 31 + "07"
GOOD = f"31337:{VAULT}:{LOCK}"


def test_round_trip() -> None:
    assert split_lock_key(GOOD) == (31337, bytes.fromhex(VAULT[2:]), bytes.fromhex(LOCK[2:]))
    assert parse_lock_key(GOOD) == split_lock_key(GOOD)


@pytest.mark.parametrize("key", [
    "", "31337", f"31337:{VAULT}", f"0:{VAULT}:{LOCK}", f"-1:{VAULT}:{LOCK}",
    f"0x7a69:{VAULT}:{LOCK}", f"31337:{VAULT[:-2]}:{LOCK}", f"31337:{VAULT.upper()}:{LOCK}",
    f"31337:{VAULT}:{LOCK}:extra", f"{2**64}:{VAULT}:{LOCK}", f"31337:{VAULT[2:]}:{LOCK}",
])
def test_malformed_keys_refused(key: str) -> None:
    with pytest.raises(AttestationMalformed):
        split_lock_key(key)


@given(st.text(max_size=160))
def test_fuzz_split_lock_key(key: str) -> None:
    try:
        split_lock_key(key)
    except AttestationMalformed:
        pass


@given(st.text(max_size=160))
def test_fuzz_cli_lock_key(key: str) -> None:
    try:
        parse_lock_key(key)
    except InputError:
        pass


@given(st.dictionaries(st.sampled_from(["type", "amount", "srcVault", "kind", "x"]),
                       st.one_of(st.text(max_size=10), st.integers(), st.none()), max_size=5))
def test_fuzz_pool_message_only_typed_errors(data: dict) -> None:  # type: ignore[type-arg]
    try:
        message_from_dict(dict(data))
    except AttestationMalformed:
        pass
