"""The pure side of Solana settlements: the builder's determinism and the attester's check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from spl.token.instructions import get_associated_token_address, transfer_checked
from spl.token.models import TransferCheckedParams

from chains.solana.settlement_codec import (
    SettlementExpectation,
    build_settlement_message,
    destination_for,
    settle_memo,
    settlement_instructions,
    sign_message,
    verify_settlement_message,
)
from shared.errors import BridgeError, SettlementMessageMismatch
from shared.messages import SettlementKind


def _key(n: int) -> Pubkey:
    return Pubkey(bytes([n]) * 32)


ATTESTERS = [Keypair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
ME = ATTESTERS[0].pubkey()
CHOSEN = [a.pubkey() for a in ATTESTERS[:3]]
RELAYER, BLOCKHASH = _key(200), Hash(bytes([7]) * 32)
WANT = SettlementExpectation(
    settlement_id=bytes([0xAB]) * 32, lock_id=bytes([0xCD]) * 32, kind=SettlementKind.RELEASE,
    amount=1_250_000, vault=_key(10), mint=_key(11), decimals=6, multisig=_key(12),
    destination=_key(13))


def _message(want: SettlementExpectation = WANT, **overrides: Any) -> bytes:
    args: dict[str, Any] = {**asdict(want), "signers": CHOSEN, "fee_payer": RELAYER,
                            "recent_blockhash": BLOCKHASH, **overrides}
    return bytes(build_settlement_message(**args))


def _compiled(instructions: list[Instruction]) -> bytes:
    return bytes(Message.new_with_blockhash(instructions, RELAYER, BLOCKHASH))


def _good_ixs() -> list[Instruction]:
    return settlement_instructions(**asdict(WANT), signers=CHOSEN)


def _verify(raw: bytes, attester: Pubkey = ME) -> Message:
    return verify_settlement_message(raw, expected=WANT, attester=attester)


def test_same_inputs_give_byte_identical_messages() -> None:
    assert _message() == _message()
    assert _message(signers=list(reversed(CHOSEN))) == _message()
    assert _message(recent_blockhash=Hash(bytes([8]) * 32)) != _message()


def test_verify_accepts_the_proposed_message_for_every_listed_attester() -> None:
    raw = _message()
    for attester in CHOSEN:
        assert bytes(_verify(raw, attester)) == raw


def test_fee_payer_may_be_any_relayer_key_including_a_signing_attester() -> None:
    assert _verify(_message(fee_payer=_key(201)))
    assert _verify(_message(fee_payer=ME), ME)


def test_signature_is_ed25519_over_the_message_bytes() -> None:
    raw = _message()
    signature = sign_message(raw, ATTESTERS[0])
    assert len(signature) == 64
    assert Signature.from_bytes(signature).verify(ME, raw)
    assert not Signature.from_bytes(signature).verify(ATTESTERS[1].pubkey(), raw)


def test_memo_grammar() -> None:
    assert settle_memo(WANT.settlement_id, WANT.lock_id, SettlementKind.SEIZE) == (
        "bulkhead:v1:settle:0x" + "ab" * 32 + ":0x" + "cd" * 32 + ":2")
    with pytest.raises(ValueError):
        settle_memo(b"\x01" * 31, WANT.lock_id, 1)
    with pytest.raises(ValueError):
        settle_memo(WANT.settlement_id, WANT.lock_id, 3)


def test_destination_for_release_and_seize() -> None:
    owner, seize = _key(30), _key(31)
    release = destination_for(SettlementKind.RELEASE, owner_wallet=owner, mint=WANT.mint,
                              seize_token_account=seize)
    assert release == get_associated_token_address(owner, WANT.mint)
    assert destination_for(2, owner_wallet=owner, mint=WANT.mint,
                           seize_token_account=seize) == seize
    with pytest.raises(ValueError):
        destination_for(0, owner_wallet=owner, mint=WANT.mint, seize_token_account=seize)


@pytest.mark.parametrize("overrides", [
    {"amount": 0}, {"signers": []}, {"signers": [ME, ME]},
    {"signers": [Keypair().pubkey() for _ in range(11)]},
], ids=["zero-amount", "no-signers", "repeated-signer", "too-large-for-a-packet"])
def test_builder_refuses_bad_inputs(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _message(**overrides)


def _other_memo_ixs(text: bytes, accounts: list[AccountMeta] | None = None,
                    program: Pubkey = MEMO_PROGRAM_ID) -> bytes:
    transfer_ix, _ = _good_ixs()
    return _compiled([transfer_ix, Instruction(program, text, accounts or [])])


def _transfer_ixs(program: Pubkey = TOKEN_PROGRAM_ID, signers: list[Pubkey] = CHOSEN) -> bytes:
    ix = transfer_checked(TransferCheckedParams(
        program_id=program, source=WANT.vault, mint=WANT.mint, dest=WANT.destination,
        owner=WANT.multisig, amount=WANT.amount, decimals=WANT.decimals, signers=signers))
    return _compiled([ix, _good_ixs()[1]])


def _writable_attester() -> bytes:
    raw = bytearray(_message())
    raw[1] -= 1  # header.num_readonly_signed_accounts: one attester becomes writable
    return bytes(raw)


def _v0() -> bytes:
    return to_bytes_versioned(MessageV0.try_compile(RELAYER, _good_ixs(), [], BLOCKHASH))


MEMO = WANT.memo().encode()
EXTRA = transfer(TransferParams(from_pubkey=RELAYER, to_pubkey=_key(99), lamports=1))

TAMPERED: list[tuple[str, Callable[[], bytes], str]] = [
    ("amount", lambda: _message(replace(WANT, amount=WANT.amount + 1)), "amount"),
    ("decimals", lambda: _message(replace(WANT, decimals=9)), "decimals"),
    ("destination", lambda: _message(replace(WANT, destination=_key(66))), "destination"),
    ("mint", lambda: _message(replace(WANT, mint=_key(67))), "mint"),
    ("source", lambda: _message(replace(WANT, vault=_key(68))), "source"),
    ("owner", lambda: _message(replace(WANT, multisig=_key(69))), "owner"),
    ("extra-instruction", lambda: _compiled([*_good_ixs(), EXTRA]), "instructions"),
    ("extra-memo", lambda: _compiled([*_good_ixs(), _good_ixs()[1]]), "instructions"),
    ("missing-memo", lambda: _compiled(_good_ixs()[:1]), "memo"),
    ("missing-transfer", lambda: _compiled(_good_ixs()[1:]), "instructions"),
    ("swapped-order", lambda: _compiled(_good_ixs()[::-1]), "token_program"),
    ("wrong-memo-id", lambda: _message(replace(WANT, settlement_id=bytes(32))), "memo"),
    ("wrong-memo-lock", lambda: _message(replace(WANT, lock_id=bytes(32))), "memo"),
    ("wrong-memo-kind", lambda: _message(replace(WANT, kind=SettlementKind.SEIZE)), "memo"),
    ("memo-with-account", lambda: _other_memo_ixs(MEMO, [AccountMeta(RELAYER, True, True)]),
     "memo"),
    ("memo-v1-program", lambda: _other_memo_ixs(
        MEMO, program=Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")),
     "memo_program"),
    ("token-2022", lambda: _transfer_ixs(TOKEN_2022_PROGRAM_ID), "token_program"),
    ("signers-without-me", lambda: _message(signers=[a.pubkey() for a in ATTESTERS[1:]]),
     "signers"),
    ("unsorted-signers", lambda: _transfer_ixs(signers=sorted(CHOSEN, key=bytes)[::-1]),
     "signers"),
    ("fee-payer-is-vault", lambda: _message(fee_payer=WANT.vault), "fee_payer"),
    ("writable-attester", _writable_attester, "writable"),
    ("versioned-message", _v0, "version"),
    ("trailing-bytes", lambda: _message() + b"\0", "message"),
    ("garbage", lambda: b"\x01\x00", "message"),
]


@pytest.mark.parametrize(("build", "field"), [(b, f) for _, b, f in TAMPERED],
                         ids=[name for name, _, _ in TAMPERED])
def test_verify_refuses_tampering_naming_the_field(build: Callable[[], bytes], field: str) -> None:
    with pytest.raises(SettlementMessageMismatch) as refused:
        _verify(build())
    assert refused.value.field == field
    assert isinstance(refused.value, BridgeError) and isinstance(refused.value, ValueError)
