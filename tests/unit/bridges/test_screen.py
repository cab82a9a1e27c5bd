"""Pool entries are claims; screen() keeps only what verifies (issue: a label in Redis must
never silence or fake an attester)."""

from __future__ import annotations

from eth_account import Account

from bridges.quorum import AttesterSet
from bridges.verifier import screen
from shared.messages import Domain, LockAttestation, digest, sign, sign_digest

KEYS = [Account.create() for _ in range(4)]
SET = AttesterSet.of(0, [k.address for k in KEYS])
DOMAIN = Domain(31338, "0x" + "11" * 20)
MSG = LockAttestation(31337, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, "0x" + "44" * 20,
                      b"\x05" * 32, 10**6, 6, b"\x06" * 32, 0)
OTHER = LockAttestation(31337, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, "0x" + "44" * 20,
                        b"\x05" * 32, 10**6 + 1, 6, b"\x06" * 32, 0)


def test_valid_entries_pass_and_junk_under_member_labels_is_singled_out() -> None:
    entries = {KEYS[0].address.lower(): sign(MSG, DOMAIN, KEYS[0].key),
               KEYS[1].address.lower(): b"\x00" * 65,  # junk under a member's label
               KEYS[2].address.lower(): sign(OTHER, DOMAIN, KEYS[2].key),  # another digest
               KEYS[3].address.lower(): sign(MSG, DOMAIN, KEYS[0].key),  # someone else's sig
               "0x" + "99" * 20: sign(MSG, DOMAIN, Account.create().key)}  # an outsider
    result = screen(MSG, DOMAIN, entries, SET)
    assert result.valid == {KEYS[0].address.lower(): entries[KEYS[0].address.lower()]}
    assert sorted(result.invalid) == sorted(k for k in entries if k != KEYS[0].address.lower())


def test_a_deterministic_signature_is_recognised_by_its_bytes() -> None:
    dig = digest(MSG, DOMAIN)
    assert sign_digest(dig, KEYS[0].key) == sign_digest(dig, KEYS[0].key)
    assert sign_digest(dig, KEYS[0].key) == sign(MSG, DOMAIN, KEYS[0].key)
    assert sign_digest(dig, KEYS[0].key) != sign_digest(digest(OTHER, DOMAIN), KEYS[0].key)
