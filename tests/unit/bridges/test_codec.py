"""INP-01: malformed attestation bytes are refused with a typed error; fuzzed with Hypothesis."""

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from bridges.codec import Bundle, decode, decode_json, encode, encode_json
from shared.errors import AttestationMalformed
from shared.messages import Domain, LockAttestation, Settlement, SettlementKind, sign

KEYS = [bytes([i]) * 32 for i in range(1, 5)]
DOMAIN = Domain(31338, "0x" + "77" * 20)
LOCK = LockAttestation(31337, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32,
                       Account.from_key(KEYS[0]).address, b"\x05" * 32, 125_500_000, 6,
                       b"\x06" * 32, 0)
SETTLE = Settlement(31337, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, 5, SettlementKind.SEIZE,
                    b"\x09" * 32, 0)


def bundle(msg=LOCK, n: int = 3) -> Bundle:  # type: ignore[no-untyped-def]
    return Bundle(msg, DOMAIN, tuple(sign(msg, DOMAIN, k) for k in KEYS[:n]))


@pytest.mark.parametrize("msg", [LOCK, SETTLE], ids=["lock", "settlement"])
def test_round_trip(msg) -> None:  # type: ignore[no-untyped-def]
    b = bundle(msg)
    assert decode(encode(b)) == b
    assert decode_json(encode_json(b)) == b


def _mutate(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1:]


GOOD = encode(bundle())
SIG0 = len(GOOD) - 3 * 65  # first signature's offset


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (GOOD[:-1], "signatures[2]"),
        (GOOD + b"\x00", "bundle"),
        (b"XXXX" + GOOD[4:], "magic"),
        (_mutate(GOOD, 4, 9), "kind"),
        (_mutate(GOOD, 33, 2), "version"),
        (_mutate(GOOD, SIG0 - 1, 2), "bundle"),  # declares 2, carries 3
        (_mutate(GOOD, SIG0 - 1, 4), "signatures[3]"),  # declares 4, carries 3
        (_mutate(GOOD, SIG0 - 1, 0), "signature_count"),
        (GOOD[:SIG0] + bytes(32) + GOOD[SIG0 + 32:], "signatures[0]"),  # r = 0
        (_mutate(GOOD, SIG0 + 64, 29), "signatures[0]"),  # bad v
        (GOOD[:SIG0 + 32] + b"\xff" * 32 + GOOD[SIG0 + 64:], "signatures[0]"),  # high s
        (b"", "magic"),
    ],
    ids=["truncated", "trailing", "magic", "kind", "version", "fewer-declared",
         "more-declared", "zero-sigs", "r-zero", "bad-v", "high-s", "empty"],
)
def test_malformed_refused_naming_field(data: bytes, field: str) -> None:
    with pytest.raises(AttestationMalformed) as err:
        decode(data)
    assert err.value.field == field


@pytest.mark.parametrize("text", ["", "[]", '{"bundle": 1}', '{"bundle": "zz"}',
                                  '{"bundle": "0xzz"}', '{"bundle": "0x00", "extra": 1}'])
def test_malformed_json_refused(text: str) -> None:
    with pytest.raises(AttestationMalformed):
        decode_json(text)


@given(st.binary(max_size=600))
def test_fuzz_random_bytes_only_typed_errors(data: bytes) -> None:
    try:
        decode(data)
    except AttestationMalformed:
        pass


@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.integers(0, 255))
def test_fuzz_single_byte_flips(at: int, value: int) -> None:
    try:
        out = decode(_mutate(GOOD, at, value))
    except AttestationMalformed:
        return
    assert encode(out) == _mutate(GOOD, at, value)


@given(st.text(max_size=200))
def test_fuzz_json_text(text: str) -> None:
    try:
        decode_json(text)
    except AttestationMalformed:
        pass
