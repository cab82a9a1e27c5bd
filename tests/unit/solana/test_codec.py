"""The Solana lock codec: memo grammar, lock ids, vault deltas and transaction decoding."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st
from solders.keypair import Keypair

from chains.solana.codec import (
    MemoMalformed,
    ParsedMemo,
    b58encode,
    decode_lock_transaction,
    format_lock_memo,
    lock_id_for_signature,
    parse_lock_memo,
    vault_delta,
)
from shared.ids import ZERO32

VENUE, KEY, BENEFICIARY = "0x" + "ab" * 20, "0x" + "11" * 32, "0x" + "cd" * 20
GOOD = f"bulkhead:v1:lock:31338:{VENUE}:{KEY}:{BENEFICIARY}"


def test_parse_good_memo_normalises_fields() -> None:
    memo = parse_lock_memo(GOOD)
    assert memo.dst_chain_id == 31338 and memo.position_key == KEY
    assert memo.dst_venue == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    assert memo.beneficiary.lower() == BENEFICIARY
    assert format_lock_memo(31338, memo.dst_venue, KEY.upper().replace("0X", "0x"),
                            memo.beneficiary) == GOOD


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param(GOOD.replace("bulkhead:", "bulkheads:"), id="wrong-prefix"),
    pytest.param(GOOD.replace(":v1:", ":v2:"), id="wrong-version"),
    pytest.param(GOOD.replace(":lock:", ":unlock:"), id="wrong-kind"),
    pytest.param(GOOD.replace(":31338:", ":0:"), id="zero-chain-id"),
    pytest.param(GOOD.replace(":31338:", ":031338:"), id="leading-zero-chain-id"),
    pytest.param(GOOD.replace(":31338:", ":0x7a6a:"), id="hex-chain-id"),
    pytest.param(GOOD.replace(":31338:", ":-1:"), id="negative-chain-id"),
    pytest.param(GOOD.replace(":31338:", ":31_338:"), id="underscore-chain-id"),
    pytest.param(GOOD.replace(":31338:", ":\u0663:"), id="non-ascii-digit"),
    pytest.param(GOOD.replace(":31338:", f":{2**64}:"), id="chain-id-over-u64"),
    pytest.param(GOOD.replace(VENUE, VENUE[2:]), id="venue-without-0x"),
    pytest.param(GOOD.replace(VENUE, VENUE + "ab"), id="venue-too-long"),
    pytest.param(GOOD.replace(VENUE, "0x" + "00" * 20), id="zero-venue"),
    pytest.param(GOOD.replace(KEY, KEY[:-2]), id="key-too-short"),
    pytest.param(GOOD.replace(KEY, "0x" + "zz" * 32), id="key-not-hex"),
    pytest.param(GOOD.replace(KEY, "0x" + "00" * 32), id="zero-position-key"),
    pytest.param(GOOD.replace(BENEFICIARY, "0x" + "00" * 20), id="zero-beneficiary"),
    pytest.param(GOOD + ":extra", id="trailing-field"),
    pytest.param(GOOD + ":", id="trailing-colon"),
    pytest.param(GOOD + " ", id="trailing-space"),
    pytest.param(GOOD.rsplit(":", 1)[0], id="missing-field"),
])
def test_malformed_memos_raise_the_typed_error(text: str) -> None:
    with pytest.raises(MemoMalformed) as info:
        parse_lock_memo(text)
    assert info.value.reason


def test_format_refuses_what_parse_would_refuse() -> None:
    with pytest.raises(MemoMalformed):
        format_lock_memo(0, VENUE, KEY, BENEFICIARY)


addresses = st.binary(min_size=20, max_size=20).filter(any).map(lambda b: "0x" + b.hex())
keys = st.binary(min_size=32, max_size=32).filter(any).map(lambda b: "0x" + b.hex())


@given(st.integers(1, 2**64 - 1), addresses, keys, addresses)
def test_parse_inverts_format(chain_id: int, venue: str, key: str, beneficiary: str) -> None:
    memo = parse_lock_memo(format_lock_memo(chain_id, venue, key, beneficiary))
    assert memo == parse_lock_memo(format_lock_memo(
        memo.dst_chain_id, memo.dst_venue, memo.position_key, memo.beneficiary))
    assert (memo.dst_chain_id, memo.position_key) == (chain_id, key)
    assert (memo.dst_venue.lower(), memo.beneficiary.lower()) == (venue, beneficiary)
    assert isinstance(memo, ParsedMemo)


@given(st.one_of(st.text(), st.text().map(lambda t: "bulkhead:v1:lock:" + t),
                 st.lists(st.sampled_from(["1", "0x", "ab" * 10, "11" * 32, ":", "z"]))
                 .map(lambda p: "bulkhead:v1:lock:" + "".join(p))))
def test_random_text_only_ever_raises_memo_malformed(text: str) -> None:
    try:
        parse_lock_memo(text)
    except MemoMalformed:
        pass


def test_lock_id_is_keccak_of_raw_signature() -> None:
    sig = Keypair().sign_message(b"lock")
    assert lock_id_for_signature(str(sig)) == "0x" + keccak(bytes(sig)).hex()
    assert lock_id_for_signature(bytes(sig)) == lock_id_for_signature(str(sig))
    with pytest.raises(ValueError):
        lock_id_for_signature(b"short")


MINT = str(Keypair().pubkey())


def _bal(index: int, amount: int, mint: str = MINT, owner: str | None = None) -> dict[str, Any]:
    return {"accountIndex": index, "mint": mint, "owner": owner,
            "uiTokenAmount": {"amount": str(amount), "decimals": 6}}


@pytest.mark.parametrize(("pre", "post", "expected"), [
    ([_bal(2, 100)], [_bal(2, 350)], 250),
    ([_bal(2, 350)], [_bal(2, 100)], -250),
    ([], [_bal(2, 7)], 7),  # created in the same transaction
    ([_bal(2, 7)], [], -7),  # closed
    ([_bal(1, 5), _bal(2, 2**64 - 2)], [_bal(1, 4), _bal(2, 2**64 - 1)], 1),
    ([_bal(1, 5)], [_bal(1, 9)], 0),  # the vault did not move
], ids=["in", "out", "created", "closed", "u64-exact", "untouched"])
def test_vault_delta(pre: list[Any], post: list[Any], expected: int) -> None:
    assert vault_delta(pre, post, 2, MINT) == expected


def test_vault_delta_refuses_other_mint() -> None:
    with pytest.raises(ValueError):
        vault_delta([_bal(2, 1, mint="other")], [_bal(2, 2, mint="other")], 2, MINT)


TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
MEMO = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
TRADER, SOURCE, VAULT = (str(Keypair().pubkey()) for _ in range(3))
SIG = str(Keypair().sign_message(b"x"))


def _tx(memo: bytes | None, *, delta: int = 500, err: Any = None, transfers: int = 1) -> dict:
    keys = [TRADER, SOURCE, VAULT, MINT, TOKEN, MEMO]
    ixs = [{"programIdIndex": 4, "accounts": [1, 3, 2, 0],
            "data": b58encode(bytes([12]) + (500).to_bytes(8, "little") + bytes([6]))}] * transfers
    if memo is not None:
        ixs.append({"programIdIndex": 5, "accounts": [0], "data": b58encode(memo)})
    return {"slot": 77, "transaction": {"signatures": [SIG], "message": {
        "accountKeys": keys, "instructions": ixs}},
        "meta": {"err": err, "preTokenBalances": [_bal(1, 1000, owner=TRADER), _bal(2, 0)],
                 "postTokenBalances": [_bal(1, 1000 - delta, owner=TRADER), _bal(2, delta)]}}


def _decode(tx: dict, assets: dict[str, int] | None = None) -> Any:
    return decode_lock_transaction(tx, chain="solana", chain_id=900001, vault=VAULT,
                                   assets={MINT: 6} if assets is None else assets)


def test_decode_attributed_lock() -> None:
    event = _decode(_tx(GOOD.encode()))
    assert event.attributed and event.amount == 500 and event.height == 77
    assert event.position_key == KEY and event.dst_chain_id == 31338
    assert event.lock_id == lock_id_for_signature(SIG) and event.tx_id == SIG


@pytest.mark.parametrize(("tx", "assets", "reason"), [
    (_tx(None), None, "memo"),
    (_tx(b"bulkhead:v1:lock:1:0x"), None, "fields"),
    (_tx(b"\xff\xfe"), None, "UTF-8"),
    (_tx(GOOD.encode(), transfers=2), None, "TransferChecked"),
    (_tx(GOOD.encode()), {}, "registered"),
], ids=["no-memo", "malformed", "not-utf8", "two-transfers", "unregistered-mint"])
def test_decode_unattributed(tx: dict, assets: dict[str, int] | None, reason: str) -> None:
    event = _decode(tx, assets)
    assert not event.attributed and reason in event.unattributed_reason
    assert event.position_key == ZERO32 and event.amount == 500 and event.dst_chain_id == 0


@pytest.mark.parametrize("tx", [
    _tx(GOOD.encode(), err={"InstructionError": [0, {"Custom": 1}]}),
    _tx(GOOD.encode(), delta=0),
    _tx(GOOD.encode(), delta=-5),
], ids=["failed", "no-delta", "outgoing"])
def test_decode_ignores_non_locks(tx: dict) -> None:
    assert _decode(tx) is None
