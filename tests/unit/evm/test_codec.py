"""chains.evm.codec: strict decoding of Locked logs and revert data, no node needed."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak
from hexbytes import HexBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.evm.codec import (
    LOCKED_TOPIC0,
    EvmCodec,
    decode_lock_event,
    decode_revert,
    parse_locked_log,
)
from shared.chain import ChainKind, ChainRef
from shared.errors import LogMalformed, UnknownAsset

CHAIN = ChainRef(key="evm-a", kind=ChainKind.EVM, chain_id=31337)
VAULT = "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ASSET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
VENUE = "0xA51c1fc2f0D1a1b8494Ed1FE312d7C3a78Ed91C0"
BENEFICIARY = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
POSITION_KEY = bytes.fromhex("ab" * 32)
DECIMALS = {ASSET.lower(): 6}


def _topic(address: str) -> str:
    return "0x" + encode(["address"], [address]).hex()


def locked_log(**overrides: Any) -> dict[str, Any]:
    """A raw eth_getLogs entry as CollateralVault emits it (nonce 7, 1.5 USDC)."""
    data = encode(
        ["uint256", "bytes32", "uint64", "address", "address"],
        [1_500_000, POSITION_KEY, 31338, VENUE, BENEFICIARY],
    )
    log = {
        "address": VAULT.lower(),
        "topics": [
            LOCKED_TOPIC0,
            "0x" + (7).to_bytes(32, "big").hex(),
            _topic(OWNER),
            _topic(ASSET),
        ],
        "data": "0x" + data.hex(),
        "blockNumber": "0x2a",
        "blockHash": "0x" + "11" * 32,
        "transactionHash": "0x" + "22" * 32,
        "logIndex": "0x3",
        "transactionIndex": "0x0",
        "removed": False,
    }
    log.update(overrides)
    return log


def test_topic0_is_the_locked_signature() -> None:
    sig = "Locked(uint256,address,address,uint256,bytes32,uint64,address,address)"
    assert LOCKED_TOPIC0 == "0x" + keccak(text=sig).hex()


def test_well_formed_log_decodes_to_lock_event() -> None:
    event = decode_lock_event(locked_log(), chain=CHAIN, decimals_by_asset=DECIMALS)
    assert event.chain == "evm-a" and event.chain_id == 31337
    assert event.lock_id == "0x" + "00" * 31 + "07"
    assert event.nonce == 7
    assert event.vault == "0x" + "00" * 12 + VAULT[2:].lower()
    assert event.owner == "0x" + "00" * 12 + OWNER[2:].lower()
    assert event.asset == "0x" + "00" * 12 + ASSET[2:].lower()
    assert event.amount == 1_500_000 and event.decimals == 6
    assert event.position_key == "0x" + "ab" * 32
    assert event.dst_chain_id == 31338
    assert event.dst_venue == VENUE and event.beneficiary == BENEFICIARY  # checksummed
    assert (event.height, event.log_index) == (42, 3)
    assert event.block_hash == "0x" + "11" * 32 and event.tx_id == "0x" + "22" * 32
    assert event.attributed


def test_web3_formatted_log_decodes_the_same() -> None:
    raw = locked_log()
    formatted = {
        **raw,
        "address": VAULT,
        "topics": [HexBytes(t) for t in raw["topics"]],
        "data": HexBytes(raw["data"]),
        "blockNumber": 42,
        "blockHash": HexBytes(raw["blockHash"]),
        "transactionHash": HexBytes(raw["transactionHash"]),
        "logIndex": 3,
    }
    codec = EvmCodec(CHAIN, DECIMALS)
    assert codec.decode_lock_event(formatted) == codec.decode_lock_event(raw)


def test_unknown_asset_is_refused_not_guessed() -> None:
    with pytest.raises(UnknownAsset):
        decode_lock_event(locked_log(), chain=CHAIN, decimals_by_asset={})


_GOOD = locked_log()
_DIRTY_ADDRESS_WORD = "0x" + "ff" * 12 + OWNER[2:].lower()


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"topics": _GOOD["topics"][:3]}, id="three-topics"),
        pytest.param({"topics": [*_GOOD["topics"], "0x" + "00" * 32]}, id="five-topics"),
        pytest.param({"topics": ["0x" + "00" * 32, *_GOOD["topics"][1:]]}, id="wrong-topic0"),
        pytest.param({"topics": [_GOOD["topics"][0][:-2], *_GOOD["topics"][1:]]}, id="short-topic"),
        pytest.param(
            {"topics": _GOOD["topics"][:2] + [_DIRTY_ADDRESS_WORD, _GOOD["topics"][3]]},
            id="dirty-owner-padding",
        ),
        pytest.param({"data": _GOOD["data"][:-2]}, id="data-one-byte-short"),
        pytest.param({"data": _GOOD["data"] + "00" * 32}, id="data-one-word-long"),
        pytest.param({"data": "0x"}, id="empty-data"),
        pytest.param({"data": "not hex"}, id="data-not-hex"),
        pytest.param({"address": "0x1234"}, id="short-address"),
        pytest.param({"blockNumber": None}, id="pending-log"),
        pytest.param({"topics": "0xdeadbeef"}, id="topics-not-list"),
        pytest.param({"transactionHash": 5}, id="tx-hash-not-hex"),
    ],
)
def test_malformed_logs_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(LogMalformed):
        decode_lock_event(locked_log(**overrides), chain=CHAIN, decimals_by_asset=DECIMALS)


def test_dst_chain_id_must_fit_uint64() -> None:
    data = bytearray(bytes.fromhex(_GOOD["data"][2:]))
    data[64:96] = (2**64).to_bytes(32, "big")
    with pytest.raises(LogMalformed, match="uint64"):
        parse_locked_log(locked_log(data="0x" + data.hex()))


def test_missing_field_is_malformed() -> None:
    log = locked_log()
    del log["data"]
    with pytest.raises(LogMalformed, match="data"):
        parse_locked_log(log)


_HEX32 = st.binary(min_size=0, max_size=40).map(lambda b: "0x" + b.hex())
_ANY = st.one_of(st.none(), st.integers(), st.text(max_size=10), st.binary(max_size=40), _HEX32)


@settings(max_examples=300, deadline=None)
@given(
    topics=st.lists(st.one_of(_HEX32, st.binary(max_size=40), st.just(LOCKED_TOPIC0)), max_size=6),
    data=st.one_of(st.binary(max_size=200), _HEX32),
    address=_ANY,
    number=_ANY,
)
def test_random_logs_raise_only_the_typed_error(
    topics: list[Any], data: Any, address: Any, number: Any
) -> None:
    log = locked_log(topics=topics, data=data, address=address, blockNumber=number)
    try:
        decode_lock_event(log, chain=CHAIN, decimals_by_asset=DECIMALS)
    except (LogMalformed, UnknownAsset):
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=160, max_size=160), owner=st.binary(min_size=32, max_size=32))
def test_random_payloads_in_a_valid_frame_raise_only_the_typed_error(
    data: bytes, owner: bytes
) -> None:
    topics = [LOCKED_TOPIC0, "0x" + "00" * 32, "0x" + owner.hex(), _GOOD["topics"][3]]
    try:
        event = decode_lock_event(
            locked_log(topics=topics, data="0x" + data.hex()),
            chain=CHAIN,
            decimals_by_asset=DECIMALS,
        )
    except LogMalformed:
        return
    assert 0 <= event.dst_chain_id < 2**64 and event.amount == int.from_bytes(data[:32], "big")


def test_decode_revert_names_custom_errors() -> None:
    abi = [
        {
            "type": "error",
            "name": "UnregisteredAsset",
            "inputs": [{"name": "asset", "type": "address"}],
        }
    ]
    data = keccak(text="UnregisteredAsset(address)")[:4] + encode(["address"], [ASSET])
    assert decode_revert("0x" + data.hex(), [abi]) == f"UnregisteredAsset({ASSET})"
    assert decode_revert(keccak(text="ZeroAmount()")[:4], []).startswith("unknown error 0x")
    assert decode_revert(None, []) == "reverted without reason"
    error_string = bytes.fromhex("08c379a0") + encode(["string"], ["nope"])
    assert decode_revert(error_string, []) == "Error('nope')"
