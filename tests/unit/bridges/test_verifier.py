"""Relayer-side verification: SIG-01, SIG-02, KEY-01, RPL-03 without a chain. Pure."""

from dataclasses import replace

import pytest
from eth_account import Account

from bridges.observation import attestation_for
from bridges.quorum import AttesterSet
from bridges.verifier import screen, verify, verify_screened
from chains.testing import make_event
from shared.errors import AttestationMalformed, QuorumNotReached
from shared.messages import Domain, LockAttestation, sign

KEYS = [bytes([i]) * 32 for i in range(1, 5)]
SET = AttesterSet.of(0, [Account.from_key(k).address for k in KEYS])
DOMAIN = Domain(31338, "0x" + "77" * 20)
MSG: LockAttestation = attestation_for(make_event("evm-a", 7, 125_500_000), 0)


def sigs(msg: LockAttestation = MSG, domain: Domain = DOMAIN, keys: list[bytes] = KEYS) -> list[bytes]:
    return [sign(msg, domain, k) for k in keys]


def test_quorum_of_members_verifies_and_orders_signers() -> None:
    verified = verify(MSG, DOMAIN, reversed(sigs()), SET)
    assert len(verified.signatures) == 3
    assert list(verified.signers) == sorted(verified.signers, key=str.lower)


def test_sig_02_two_of_four_refused() -> None:
    with pytest.raises(QuorumNotReached) as err:
        verify(MSG, DOMAIN, sigs(keys=KEYS[:2]), SET)
    assert (err.value.have, err.value.need) == (2, 3)


def test_duplicates_count_once() -> None:
    with pytest.raises(QuorumNotReached):
        verify(MSG, DOMAIN, sigs(keys=KEYS[:2]) * 3, SET)


def test_sig_01_outsiders_do_not_count() -> None:
    outsiders = [bytes([i]) * 32 for i in range(10, 14)]
    with pytest.raises(QuorumNotReached):
        verify(MSG, DOMAIN, sigs(keys=outsiders), SET)


def test_key_01_m_minus_one_members_plus_outsider_refused() -> None:
    with pytest.raises(QuorumNotReached):
        verify(MSG, DOMAIN, sigs(keys=[*KEYS[:2], b"\x0b" * 32]), SET)


@pytest.mark.parametrize("tamper", [
    lambda m: replace(m, amount=m.amount + 1),
    lambda m: replace(m, src_chain_id=900001),
    lambda m: replace(m, beneficiary="0x" + "99" * 20),
    lambda m: replace(m, position_key=b"\x01" * 32),
], ids=["amount", "src-chain", "beneficiary", "position"])
def test_signatures_bind_every_field(tamper) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QuorumNotReached):
        verify(tamper(MSG), DOMAIN, sigs(), SET)


def test_rpl_03_other_lane_refused() -> None:
    other = Domain(31337, DOMAIN.verifying_contract)
    with pytest.raises(QuorumNotReached):
        verify(MSG, other, sigs(), SET)


def test_message_for_another_set_index_refused() -> None:
    with pytest.raises(QuorumNotReached):
        verify(replace(MSG, attester_set_index=1), DOMAIN, sigs(replace(MSG, attester_set_index=1)), SET)


def test_unattributed_lock_is_never_attested() -> None:
    event = replace(make_event("solana", 1, 5), unattributed_reason="no memo")
    with pytest.raises(AttestationMalformed):
        attestation_for(event, 0)


def labelled(keys: list[bytes] = KEYS, msg: LockAttestation = MSG) -> dict[str, bytes]:
    """Pool entries as the attesters file them: signer label -> signature."""
    return {Account.from_key(k).address: sign(msg, DOMAIN, k) for k in keys}


def test_verify_screened_gives_what_verify_gives_with_one_recovery_per_signature() -> None:
    entries = labelled()
    screened = screen(MSG, DOMAIN, entries, SET)
    assert verify_screened(MSG, DOMAIN, screened, SET) == verify(MSG, DOMAIN, entries.values(),
                                                                 SET)


def test_verify_screened_counts_only_what_screening_proved() -> None:
    # att-4's label carries att-1's signature: screened out, so two valid members remain.
    entries = labelled(KEYS[:2])
    entries[Account.from_key(KEYS[3]).address] = sign(MSG, DOMAIN, KEYS[0])
    screened = screen(MSG, DOMAIN, entries, SET)
    assert len(screened.invalid) == 1
    with pytest.raises(QuorumNotReached) as err:
        verify_screened(MSG, DOMAIN, screened, SET)
    assert (err.value.have, err.value.need) == (2, 3)


def test_verify_screened_refuses_a_message_for_another_set() -> None:
    other = AttesterSet.of(1, SET.members)
    screened = screen(MSG, DOMAIN, labelled(), other)
    with pytest.raises(QuorumNotReached):
        verify_screened(MSG, DOMAIN, screened, other)
