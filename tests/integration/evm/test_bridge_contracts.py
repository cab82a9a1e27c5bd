"""The on-chain half of the attestation bridge on a real anvil: venue credits, the governor and
the accountant, attester rotation, and vault settlements.

Every signature is made with ``shared.messages.sign`` (eth-account); the contracts must
recover the same signers from their own EIP-712 digest. Refusals are read as the contract's
custom error (``decode_revert``), so each test names why something was refused.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from bridges.relay import BATCH_RESERVE
from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import struct_tuple as as_tuple
from chains.evm.codec import decode_revert
from devnet.anvil import start_anvil
from devnet.evm_deploy import deploy_venue_chain, register_lanes
from devnet.evm_specs import LaneSpec, evm_lanes, solana_lane
from shared.errors import ConfigError
from shared.ids import address_to_bytes32
from shared.messages import Domain, LockAttestation, Settlement, SettlementKind, digest, sign
from tests.integration.evm.conftest import (
    ATTESTER_KEYS,
    DEPLOYER_KEY,
    FEEDER,
    OTHER,
    TRADER,
    rpc,
)

pytestmark = pytest.mark.integration

CHAIN_ID = 31338
SRC_CHAIN = 31337
SOLANA_CHAIN = 900001
DEPLOYER = Account.from_key(DEPLOYER_KEY).address
MEMBERS = ATTESTER_KEYS[:4]  # set 0: 3 of 4
OUTSIDERS = ATTESTER_KEYS[4:7]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
VAULT_A = bytes.fromhex(address_to_bytes32("0x" + "a1" * 20)[2:])
VAULT_A2 = bytes.fromhex(address_to_bytes32("0x" + "a2" * 20)[2:])
USDC_A = bytes.fromhex(address_to_bytes32("0x" + "c6" * 20)[2:])
SOL_VAULT, SOL_MINT = keccak(text="solana-vault"), keccak(text="solana-mint")
BIG = 10**30  # ceilings / caps that never bind unless a test says so
VENUE_ABI = load_artifact("IsolatedMarginVenue").abi
VAULT_ABI = load_artifact("CollateralVault").abi
TOKEN_ABI = load_artifact("TestToken").abi
_ids = itertools.count(1)


def address_of(key: str) -> str:
    return str(Account.from_key(key).address)


def unique32(label: str = "") -> bytes:
    return keccak(text=f"{label}-{next(_ids)}")


def lane(chain: int, vault: bytes, asset: bytes, decimals: int = 6, **kw: int) -> LaneSpec:
    limits = {"ceiling": BIG, "cap": BIG, "large_threshold": BIG, "delay_s": 3600} | kw
    return LaneSpec(chain, "0x" + vault.hex(), "0x" + asset.hex(), decimals, **limits)


@dataclass
class Chain:
    """A venue chain deployed by ``deploy_venue_chain`` with attester set 0 and test lanes."""

    w3: Web3
    url: str
    manifest: dict[str, Any]
    venue: Contract
    vault: Contract
    usdc: Contract

    def contract(self, address: str, abi: list[dict[str, Any]]) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    def send(self, fn: Any, sender: str = DEPLOYER) -> Any:
        tx_hash = fn.transact({"from": sender})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.02)
        assert receipt["status"] == 1
        return receipt

    def refused(self, fn: Any, sender: str = DEPLOYER) -> str:
        """The custom error ``fn`` reverts with, as ``Name(args)``."""
        with pytest.raises(ContractLogicError) as info:
            fn.call({"from": sender})
        data = info.value.data
        assert isinstance(data, str), data
        return decode_revert(data, [VENUE_ABI, VAULT_ABI])

    def deploy(self, name: str, *args: Any) -> Contract:
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.send(factory.constructor(*args))
        return self.contract(receipt["contractAddress"], artifact.abi)

    def new_venue(self, lanes: Sequence[LaneSpec] = ()) -> Contract:
        """A fresh venue with set 0 (MEMBERS, 3) and ``lanes``: for tests that change globals."""
        venue = self.deploy("IsolatedMarginVenue", DEPLOYER)
        self.send(venue.functions.rotateAttesterSet(sorted_members(MEMBERS), 3, 0))
        for spec in lanes:
            vault, asset = bytes.fromhex(spec.src_vault[2:]), bytes.fromhex(spec.src_asset[2:])
            self.send(
                venue.functions.registerLaneAsset(
                    spec.src_chain_id, vault, asset, spec.decimals, spec.ceiling
                )
            )
            self.send(
                venue.functions.setRateLimit(
                    spec.src_chain_id, asset, spec.cap, spec.large_threshold, spec.delay_s
                )
            )
        return venue

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        rpc(self.url, "evm_increaseTime", hex(seconds))
        rpc(self.url, "evm_mine")


def sorted_members(keys: Sequence[str]) -> list[str]:
    return sorted((address_of(k) for k in keys), key=lambda a: int(a, 16))


def sigs(msg: LockAttestation | Settlement, domain: Domain, keys: Sequence[str]) -> list[bytes]:
    """Signatures by ``keys`` in strictly increasing signer order (what contracts expect)."""
    ordered = sorted(keys, key=lambda k: int(address_of(k), 16))
    return [sign(msg, domain, k) for k in ordered]


def logs(contract: Contract, event: str, receipt: Any) -> list[Any]:
    """Decoded ``event`` logs of ``contract`` in ``receipt``; other logs are ignored."""
    return list(contract.events[event]().process_receipt(receipt, errors=DISCARD))


def high_s(sig: bytes) -> bytes:
    """The malleable twin of a valid signature: (r, n - s, flipped v)."""
    r, s, v = sig[:32], int.from_bytes(sig[32:64]), sig[64]
    return r + (SECP256K1_N - s).to_bytes(32) + bytes([55 - v])


def venue_domain(venue: Contract, chain_id: int = CHAIN_ID) -> Domain:
    return Domain(chain_id, venue.address)


def attestation(position_key: bytes, **kw: Any) -> LockAttestation:
    fields: dict[str, Any] = {
        "src_chain_id": SRC_CHAIN,
        "src_vault": VAULT_A,
        "lock_id": unique32("lock"),
        "owner": bytes.fromhex(address_to_bytes32(TRADER)[2:]),
        "beneficiary": TRADER,
        "src_asset": USDC_A,
        "amount": 2_500_000,
        "decimals": 6,
        "position_key": position_key,
        "attester_set_index": 0,
    }
    fields.update(kw)
    return LockAttestation(**fields)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    proc = start_anvil(
        CHAIN_ID, log_path=tmp_path_factory.mktemp("bridge") / "anvil.log", block_time_s=None
    )
    try:
        lanes = [
            lane(SRC_CHAIN, VAULT_A, USDC_A),
            lane(SRC_CHAIN, VAULT_A2, USDC_A),
            lane(31339, VAULT_A, USDC_A),  # same vault bytes on another chain (RPL-03)
            solana_lane(
                SOLANA_CHAIN, SOL_VAULT, SOL_MINT, ceiling=BIG, cap=BIG, large_threshold=BIG
            ),
        ]
        manifest = asyncio.run(
            deploy_venue_chain(
                proc.url,
                deployer_key=DEPLOYER_KEY,
                chain_id=CHAIN_ID,
                feeder=FEEDER,
                traders=[TRADER],
                mint_per_trader={"USDC": 10**12},
                attesters=[address_of(k) for k in MEMBERS],
                threshold=3,
                seize_recipient=FEEDER,
                lanes=lanes,
            )
        )
        w3 = Web3(Web3.HTTPProvider(proc.url, request_kwargs={"timeout": 10}))
        contracts = manifest["contracts"]
        yield Chain(
            w3,
            proc.url,
            manifest,
            w3.eth.contract(address=contracts["venue"], abi=VENUE_ABI),
            w3.eth.contract(address=contracts["vault"], abi=VAULT_ABI),
            w3.eth.contract(address=manifest["assets"]["USDC"]["address"], abi=TOKEN_ABI),
        )
    finally:
        proc.stop()


@pytest.fixture
def position(chain: Chain) -> bytes:
    return bytes(chain.venue.functions.positionKeyOf(TRADER, unique32("salt")).call())


# ----- deployment and digests -----------------------------------------------------------------


def test_deploy_installs_set_zero_and_lanes(chain: Chain) -> None:
    expected = sorted_members(MEMBERS)
    for contract in (chain.venue, chain.vault):
        assert contract.functions.currentAttesterSetIndex().call() == 0
        members, threshold, grace_end = contract.functions.attesterSet(0).call()
        assert (members, threshold, grace_end) == (expected, 3, 0)
    assert chain.vault.functions.seizeRecipient().call() == FEEDER
    registered, decimals, ceiling, outstanding = chain.venue.functions.laneAsset(
        SOLANA_CHAIN, SOL_VAULT, SOL_MINT
    ).call()
    assert (registered, decimals, ceiling, outstanding) == (True, 6, BIG, 0)
    # evm_lanes() derives one lane per (vault, asset) of a collateral-chain manifest
    derived = evm_lanes(
        {
            "chain_id": SRC_CHAIN,
            "vaults": ["0x" + "a1" * 20],
            "assets": {
                "USDC": {"address": "0x" + "c6" * 20, "decimals": 6},
                "WETH": {"address": "0x" + "e1" * 20, "decimals": 18},
            },
        }
    )
    assert [(x.src_vault, x.src_asset, x.decimals) for x in derived] == [
        ("0x" + VAULT_A.hex(), "0x" + USDC_A.hex(), 6),
        ("0x" + VAULT_A.hex(), address_to_bytes32("0x" + "e1" * 20), 18),
    ]


def test_register_lanes_later_and_unsafe_sets_refused_before_deploying(chain: Chain) -> None:
    extra = lane(SRC_CHAIN, unique32("late-vault"), USDC_A, decimals=6)
    asyncio.run(
        register_lanes(
            chain.url, deployer_key=DEPLOYER_KEY, venue=chain.venue.address, lanes=[extra]
        )
    )
    vault, asset = bytes.fromhex(extra.src_vault[2:]), bytes.fromhex(extra.src_asset[2:])
    assert chain.venue.functions.laneAsset(SRC_CHAIN, vault, asset).call()[:2] == (True, 6)
    nonce = chain.w3.eth.get_transaction_count(DEPLOYER)
    member = address_of(MEMBERS[0])
    for members, threshold in (([member, member, address_of(MEMBERS[1])], 2), ([member], 0)):
        with pytest.raises(ConfigError):
            asyncio.run(
                deploy_venue_chain(
                    chain.url,
                    deployer_key=DEPLOYER_KEY,
                    chain_id=CHAIN_ID,
                    feeder=FEEDER,
                    traders=[],
                    mint_per_trader={},
                    attesters=members,
                    threshold=threshold,
                )
            )
    assert chain.w3.eth.get_transaction_count(DEPLOYER) == nonce  # nothing was sent


def test_contract_digests_equal_eth_account_digests(chain: Chain, position: bytes) -> None:
    msg = attestation(position, amount=123_456_789, attester_set_index=7)
    domain = venue_domain(chain.venue)
    assert bytes(chain.venue.functions.hashLockAttestation(as_tuple(msg)).call()) == digest(
        msg, domain
    )
    settlement = Settlement(
        CHAIN_ID,
        bytes.fromhex(address_to_bytes32(chain.vault.address)[2:]),
        (5).to_bytes(32),
        bytes.fromhex(address_to_bytes32(TRADER)[2:]),
        42,
        SettlementKind.SEIZE,
        unique32("sid"),
        3,
    )
    vault_domain = Domain(CHAIN_ID, chain.vault.address)
    assert bytes(chain.vault.functions.hashSettlement(as_tuple(settlement)).call()) == digest(
        settlement, vault_domain
    )


# ----- signatures and quorum ------------------------------------------------------------------


def test_sig01_forged_lock_by_outsiders_or_nobody_is_refused(chain: Chain, position: bytes) -> None:
    msg = attestation(position, amount=10**12)
    domain = venue_domain(chain.venue)
    credit = chain.venue.functions.credit
    assert chain.refused(credit(as_tuple(msg), sigs(msg, domain, OUTSIDERS))).startswith(
        "NotAttester(0, "
    )
    assert chain.refused(credit(as_tuple(msg), [])) == "QuorumNotReached(0, 3)"
    key = chain.venue.functions.lockKeyOf(SRC_CHAIN, VAULT_A, msg.lock_id).call()
    assert not chain.venue.functions.isConsumed(key).call()
    assert chain.venue.functions.collateralOf(position, SRC_CHAIN, USDC_A).call() == 0


def test_sig02_three_of_four_boundary(chain: Chain, position: bytes) -> None:
    msg = attestation(position, amount=3_000_000)
    domain = venue_domain(chain.venue)
    good = sigs(msg, domain, MEMBERS[:3])
    credit = chain.venue.functions.credit
    assert chain.refused(credit(as_tuple(msg), good[:2])) == "QuorumNotReached(2, 3)"
    assert chain.refused(credit(as_tuple(msg), good[::-1])) == "SignersNotIncreasing(1)"
    assert chain.refused(credit(as_tuple(msg), [good[0], good[0], good[1]])) == (
        "SignersNotIncreasing(1)"
    )
    assert chain.refused(credit(as_tuple(msg), [good[0], good[1], high_s(good[2])])) == (
        "BadSignature(2)"
    )
    assert chain.refused(credit(as_tuple(msg), [*good[:2], good[2][:64]])) == "BadSignature(2)"

    receipt = chain.send(credit(as_tuple(msg), good))
    [event] = logs(chain.venue, "Credited", receipt)
    assert event["args"]["amount"] == 3_000_000 and event["args"]["amount18"] == 3 * 10**18
    assert event["args"]["beneficiary"] == TRADER and bytes(event["args"]["lockId"]) == msg.lock_id
    assert chain.venue.functions.collateralOf(position, SRC_CHAIN, USDC_A).call() == 3 * 10**18
    assert chain.venue.functions.ownerOfPosition(position).call() == TRADER
    key = chain.venue.functions.lockKeyOf(SRC_CHAIN, VAULT_A, msg.lock_id).call()
    assert chain.refused(credit(as_tuple(msg), sigs(msg, domain, MEMBERS))) == (
        f"AlreadyConsumed(0x{bytes(key).hex()})"
    )


def test_all_four_members_and_solana_lane_are_accepted(chain: Chain, position: bytes) -> None:
    msg = attestation(
        position,
        src_chain_id=SOLANA_CHAIN,
        src_vault=SOL_VAULT,
        src_asset=SOL_MINT,
        lock_id=keccak(b"solana tx signature"),
        amount=7,
    )
    chain.send(
        chain.venue.functions.credit(as_tuple(msg), sigs(msg, venue_domain(chain.venue), MEMBERS))
    )
    # 6 decimals -> 18: exact (decimals <= 18, so rounding down never drops anything)
    assert chain.venue.functions.collateralOf(position, SOLANA_CHAIN, SOL_MINT).call() == 7 * 10**12


def test_key01_below_quorum_keys_cannot_credit_through_any_entry_point(
    chain: Chain, position: bytes
) -> None:
    msg = attestation(position, amount=10**11)
    domain = venue_domain(chain.venue)
    leaked = MEMBERS[:2]  # m - 1 member keys, plus an outsider to reach three signatures
    for keys in (leaked, (*leaked, OUTSIDERS[0])):
        bundle = sigs(msg, domain, keys)
        reason = chain.refused(chain.venue.functions.credit(as_tuple(msg), bundle))
        assert reason.startswith(("QuorumNotReached(2, 3)", "NotAttester("))
        receipt = chain.send(chain.venue.functions.creditBatch([as_tuple(msg)], [bundle]))
        [skipped] = logs(chain.venue, "CreditSkipped", receipt)
        assert decode_revert(skipped["args"]["reason"], [VENUE_ABI]) == reason
        assert not logs(chain.venue, "Credited", receipt)
    key = chain.venue.functions.lockKeyOf(SRC_CHAIN, VAULT_A, msg.lock_id).call()
    assert not chain.venue.functions.isConsumed(key).call()
    assert chain.venue.functions.collateralOf(position, SRC_CHAIN, USDC_A).call() == 0


def test_malformed_or_unregistered_fields_are_refused_with_a_named_error(
    chain: Chain, position: bytes
) -> None:
    domain = venue_domain(chain.venue)
    cases = {
        "UnsupportedVersion(2)": attestation(position, version=2),
        "ZeroAmount()": attestation(position, amount=0),
        f"AmountTooLarge({2**128})": attestation(position, amount=2**128),
        "DecimalsMismatch(6, 18)": attestation(position, decimals=18),
        "ZeroPositionKey()": attestation(bytes(32)),
        f"UnregisteredLaneAsset({SRC_CHAIN}, 0x{VAULT_A.hex()}, 0x{SOL_MINT.hex()})": attestation(
            position, src_asset=SOL_MINT
        ),
    }
    for reason, msg in cases.items():
        bundle = sigs(msg, domain, MEMBERS[:3])
        assert chain.refused(chain.venue.functions.credit(as_tuple(msg), bundle)) == reason
    msg = attestation(position)
    assert chain.refused(chain.venue.functions.creditBatch([as_tuple(msg)], [])) == (
        "BatchLengthMismatch(1, 0)"
    )
    assert chain.refused(
        chain.venue.functions.creditFromBatch(as_tuple(msg), sigs(msg, domain, MEMBERS[:3]))
    ) == ("OnlySelf()")


# ----- replay ---------------------------------------------------------------------------------


def test_rpl03_other_venue_other_chain_or_swapped_lane_is_refused(
    chain: Chain, position: bytes
) -> None:
    other = chain.new_venue([lane(SRC_CHAIN, VAULT_A, USDC_A)])
    msg = attestation(position)
    refusals = ("NotAttester(", "SignersNotIncreasing(")
    for_other = sigs(msg, venue_domain(other), MEMBERS[:3])
    assert chain.refused(chain.venue.functions.credit(as_tuple(msg), for_other)).startswith(
        refusals
    )
    other_chain = sigs(msg, venue_domain(chain.venue, chain_id=SRC_CHAIN), MEMBERS[:3])
    assert chain.refused(chain.venue.functions.credit(as_tuple(msg), other_chain)).startswith(
        refusals
    )
    good = sigs(msg, venue_domain(chain.venue), MEMBERS[:3])
    for swapped in (replace(msg, src_chain_id=31339), replace(msg, src_vault=VAULT_A2)):
        # the swapped lane is registered: only the digest can refuse it
        assert chain.refused(chain.venue.functions.credit(as_tuple(swapped), good)).startswith(
            refusals
        )
    chain.send(other.functions.credit(as_tuple(msg), for_other))  # valid on its own lane only
    assert other.functions.collateralOf(position, SRC_CHAIN, USDC_A).call() == 2_500_000 * 10**12
    assert chain.venue.functions.collateralOf(position, SRC_CHAIN, USDC_A).call() == 0


def test_rpl01_batch_skips_a_replayed_item_and_credits_the_rest(chain: Chain) -> None:
    domain = venue_domain(chain.venue)
    keys = [chain.venue.functions.positionKeyOf(TRADER, unique32("s")).call() for _ in range(3)]
    msgs = [attestation(bytes(k)) for k in keys]
    chain.send(chain.venue.functions.credit(as_tuple(msgs[0]), sigs(msgs[0], domain, MEMBERS[:3])))
    receipt = chain.send(
        chain.venue.functions.creditBatch(
            [as_tuple(m) for m in msgs], [sigs(m, domain, MEMBERS[1:]) for m in msgs]
        )
    )
    [skipped] = logs(chain.venue, "CreditSkipped", receipt)
    assert skipped["args"]["index"] == 0
    assert decode_revert(skipped["args"]["reason"], [VENUE_ABI]).startswith("AlreadyConsumed(")
    credited = logs(chain.venue, "Credited", receipt)
    assert [bytes(e["args"]["lockId"]) for e in credited] == [m.lock_id for m in msgs[1:]]
    for k in keys:
        assert chain.venue.functions.collateralOf(k, SRC_CHAIN, USDC_A).call() == 2_500_000 * 10**12


def short_then_enough(chain: Chain, batch: Any, abi: Any, *, short_by: int,
                      refused: str) -> tuple[int, Any]:
    """A batch called with ``short_by`` less than its estimate is refused before its last
    item (``refused``, a prefix of the decoded revert), then sent with the estimate: returns
    (estimate, receipt)."""
    need = batch.estimate_gas({"from": DEPLOYER})
    with pytest.raises(ContractLogicError) as info:
        batch.call({"from": DEPLOYER, "gas": need - short_by})
    assert decode_revert(info.value.data, [abi]).startswith(refused)
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        batch.transact({"from": DEPLOYER, "gas": need}), timeout=10, poll_latency=0.02)
    return need, receipt


def test_a_batch_short_of_gas_for_its_next_item_reverts_whole_instead_of_skipping_it(
        chain: Chain) -> None:
    """With items in try/catch frames, an item that ran out of gas would be skipped and the
    rest credited; the venue reverts the whole batch instead (BATCH_ITEM_GAS), so a relayer's
    estimate is exact and no item is lost to a tight gas limit."""
    domain = venue_domain(chain.venue)
    keys = [chain.venue.functions.positionKeyOf(TRADER, unique32("g")).call() for _ in range(3)]
    msgs = [attestation(bytes(k)) for k in keys]
    batch = chain.venue.functions.creditBatch(
        [as_tuple(m) for m in msgs], [sigs(m, domain, MEMBERS[:3]) for m in msgs])
    need, receipt = short_then_enough(chain, batch, VENUE_ABI, short_by=100_000,
                                      refused=f"BatchOutOfGas({len(msgs) - 1}, ")
    assert receipt["status"] == 1 and len(logs(chain.venue, "Credited", receipt)) == 3
    assert logs(chain.venue, "CreditSkipped", receipt) == []
    # What a credit batch used against its estimate: the limit a relayer must set is close.
    assert receipt["gasUsed"] <= need < receipt["gasUsed"] + 2 * 500_000
    # The relayer's own limits reserve exactly this before the last item (bridges.relay).
    assert chain.venue.functions.BATCH_ITEM_GAS().call() == BATCH_RESERVE - 100_000


def test_beneficiary_must_own_the_position(chain: Chain, position: bytes) -> None:
    domain = venue_domain(chain.venue)
    first = attestation(position)
    chain.send(chain.venue.functions.credit(as_tuple(first), sigs(first, domain, MEMBERS[:3])))
    squat = attestation(position, beneficiary=OTHER)
    assert chain.refused(
        chain.venue.functions.credit(as_tuple(squat), sigs(squat, domain, MEMBERS[:3]))
    ) == (f"NotPositionOwner(0x{position.hex()}, {OTHER})")
    # a trader can claim a key before locking, so nobody else's lock can take it first
    salt = unique32("claim")
    chain.send(chain.venue.functions.claimPosition(salt), sender=TRADER)
    claimed = bytes(chain.venue.functions.positionKeyOf(TRADER, salt).call())
    assert chain.venue.functions.ownerOfPosition(claimed).call() == TRADER


def test_pause_stops_credits(chain: Chain, position: bytes) -> None:
    venue = chain.new_venue([lane(SRC_CHAIN, VAULT_A, USDC_A)])
    msg = attestation(position)
    bundle = sigs(msg, venue_domain(venue), MEMBERS[:3])
    chain.send(venue.functions.pause())
    assert chain.refused(venue.functions.credit(as_tuple(msg), bundle)) == "EnforcedPause()"
    assert chain.refused(venue.functions.pause(), sender=TRADER).startswith(
        "OwnableUnauthorizedAccount("
    )
    chain.send(venue.functions.unpause())
    chain.send(venue.functions.credit(as_tuple(msg), bundle))


# ----- attester rotation (KEY-02 on chain) ----------------------------------------------------


def test_key02_unsafe_sets_are_refused_and_rotation_has_a_grace_window(
    chain: Chain, position: bytes
) -> None:
    venue = chain.new_venue([lane(SRC_CHAIN, VAULT_A, USDC_A)])
    rotate = venue.functions.rotateAttesterSet
    four = sorted_members(ATTESTER_KEYS[2:6])
    assert chain.refused(rotate([], 1, 0)) == "EmptyAttesterSet()"
    assert chain.refused(rotate(four, 0, 0)) == "InvalidThreshold(0, 4)"
    assert chain.refused(rotate(four, 5, 0)) == "InvalidThreshold(5, 4)"
    assert chain.refused(rotate(four, 2, 0)) == "InvalidThreshold(2, 4)"
    assert chain.refused(rotate([four[0], four[0], four[1]], 2, 0)) == (
        f"DuplicateAttester({four[0]})"
    )
    assert chain.refused(rotate(["0x" + "00" * 20, *four[:2]], 2, 0)) == "ZeroAttester()"
    assert chain.refused(rotate(four[::-1], 3, 0)) == "AttestersNotSorted(1)"
    assert chain.refused(rotate(four, 3, 0), sender=TRADER) == (
        f"OwnableUnauthorizedAccount({TRADER})"
    )

    chain.send(rotate(four, 3, 3600))
    assert venue.functions.currentAttesterSetIndex().call() == 1
    domain = venue_domain(venue)
    old = attestation(position, attester_set_index=0)
    new = attestation(position, attester_set_index=1)
    forged_index = attestation(position, attester_set_index=1)
    fresh = attestation(position, attester_set_index=0)
    chain.send(venue.functions.credit(as_tuple(old), sigs(old, domain, MEMBERS[:3])))  # in grace
    assert chain.refused(
        venue.functions.credit(as_tuple(forged_index), sigs(forged_index, domain, MEMBERS[:2]))
    ).startswith(("NotAttester(", "QuorumNotReached("))
    chain.advance(3601)
    assert (
        chain.refused(venue.functions.credit(as_tuple(fresh), sigs(fresh, domain, MEMBERS[:3])))
        == "AttesterSetNotLive(0)"
    )
    chain.send(venue.functions.credit(as_tuple(new), sigs(new, domain, ATTESTER_KEYS[3:6])))
    future = attestation(position, attester_set_index=2)
    assert (
        chain.refused(
            venue.functions.credit(as_tuple(future), sigs(future, domain, ATTESTER_KEYS[3:6]))
        )
        == "AttesterSetNotLive(2)"
    )


# ----- limits ---------------------------------------------------------------------------------


def test_lim01_large_waits_small_fill_then_queue_and_above_cap_is_refused(
    chain: Chain, position: bytes
) -> None:
    asset = unique32("lim-asset")
    cap, threshold, delay = 1_000, 400, 3_600
    venue = chain.new_venue(
        [lane(SRC_CHAIN, VAULT_A, asset, cap=cap, large_threshold=threshold, delay_s=delay)]
    )
    # start just after a window boundary so the test never straddles one by accident
    boundary = (chain.now() // 86_400 + 1) * 86_400
    rpc(chain.url, "evm_setNextBlockTimestamp", hex(boundary + 10))
    rpc(chain.url, "evm_mine")
    domain = venue_domain(venue)

    def submit(amount: int) -> tuple[Any, bytes]:
        msg = attestation(position, src_asset=asset, amount=amount)
        receipt = chain.send(venue.functions.credit(as_tuple(msg), sigs(msg, domain, MEMBERS[:3])))
        return receipt, venue.functions.lockKeyOf(SRC_CHAIN, VAULT_A, msg.lock_id).call()

    def collateral() -> int:
        return int(venue.functions.collateralOf(position, SRC_CHAIN, asset).call())

    receipt, large = submit(500)  # > threshold: waits its delay
    [queued] = logs(venue, "CreditQueued", receipt)
    assert queued["args"]["reason"] == 1 and collateral() == 0
    assert (
        queued["args"]["releaseAt"]
        == chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + delay
    )
    assert chain.refused(venue.functions.releaseQueued(large)).startswith("QueuedUntil(")
    chain.advance(delay)
    chain.send(venue.functions.releaseQueued(large), sender=OTHER)  # anyone may release it
    assert collateral() == 500 * 10**12

    for _ in range(2):  # small ones fill the window: 500 + 200 + 200
        receipt, _key = submit(200)
        assert logs(venue, "Credited", receipt)
    receipt, small = submit(200)  # would make 1100 > cap: queued, not dropped
    [queued] = logs(venue, "CreditQueued", receipt)
    assert queued["args"]["reason"] == 2 and queued["args"]["releaseAt"] == boundary + 86_400
    assert collateral() == 900 * 10**12
    msg = attestation(position, src_asset=asset, amount=cap + 1)
    assert chain.refused(venue.functions.credit(as_tuple(msg), sigs(msg, domain, MEMBERS[:3]))) == (
        f"ExceedsCap({cap + 1}, {cap})"
    )
    assert chain.refused(venue.functions.releaseQueued(small)).startswith("QueuedUntil(")
    assert chain.refused(venue.functions.releaseQueued(small)).startswith("QueuedUntil(")
    assert chain.refused(venue.functions.releaseQueued(unique32("nope"))).startswith("NotQueued(")

    chain.advance(86_400)  # the window rolls
    receipt = chain.send(venue.functions.releaseQueued(small))
    assert logs(venue, "QueuedCreditReleased", receipt)
    assert collateral() == 1_100 * 10**12
    assert venue.functions.rateLimit(SRC_CHAIN, asset).call()[4] == 200  # used in the new window
    assert chain.refused(venue.functions.releaseQueued(small)).startswith("NotQueued(")


def test_accountant_ceiling_and_request_release(chain: Chain, position: bytes) -> None:
    asset = unique32("acct-asset")
    venue = chain.new_venue([lane(SRC_CHAIN, VAULT_A, asset, ceiling=1_000)])
    domain = venue_domain(venue)
    first = attestation(position, src_asset=asset, amount=600)
    chain.send(venue.functions.credit(as_tuple(first), sigs(first, domain, MEMBERS[:3])))
    second = attestation(position, src_asset=asset, amount=500)
    second_sigs = sigs(second, domain, MEMBERS[:3])
    la_key = venue.functions.laneAssetKeyOf(SRC_CHAIN, VAULT_A, asset).call()
    assert chain.refused(venue.functions.credit(as_tuple(second), second_sigs)) == (
        f"LaneCeilingExceeded(0x{bytes(la_key).hex()}, 600, 500, 1000)"
    )

    release = venue.functions.requestRelease
    assert (
        chain.refused(release(position, SRC_CHAIN, VAULT_A, first.lock_id, 200), sender=OTHER)
        == f"NotPositionOwner(0x{position.hex()}, {OTHER})"
    )
    assert (
        chain.refused(release(position, SRC_CHAIN, VAULT_A, first.lock_id, 601), sender=TRADER)
        == "ExceedsLockCredit(600, 601)"
    )
    assert chain.refused(
        release(position, SRC_CHAIN, VAULT_A2, first.lock_id, 1), sender=TRADER
    ).startswith("NotCredited(")
    receipt = chain.send(release(position, SRC_CHAIN, VAULT_A, first.lock_id, 200), sender=TRADER)
    [event] = logs(venue, "SettlementRequested", receipt)
    expected_id = keccak(
        encode(
            ["uint256", "address", "uint64", "bytes32", "bytes32", "uint256"],
            [CHAIN_ID, venue.address, SRC_CHAIN, VAULT_A, first.lock_id, 1],
        )
    )
    args = event["args"]
    assert bytes(args["settlementId"]) == expected_id and args["kind"] == 1
    assert bytes(args["recipient"]) == first.owner and args["amount"] == 200
    assert venue.functions.collateralOf(position, SRC_CHAIN, asset).call() == 400 * 10**12
    assert venue.functions.laneAsset(SRC_CHAIN, VAULT_A, asset).call()[3] == 400  # outstanding
    chain.send(venue.functions.credit(as_tuple(second), second_sigs))  # 400 + 500 <= 1000
    assert (
        venue.functions.lockCredit(
            venue.functions.lockKeyOf(SRC_CHAIN, VAULT_A, first.lock_id).call()
        ).call()[3]
        == 400
    )


# ----- settlements on the vault ---------------------------------------------------------------


def test_vault_settlements_release_seize_partial_and_replay(chain: Chain) -> None:
    vault, usdc = chain.vault, chain.usdc
    chain.send(usdc.functions.approve(vault.address, 1_000), sender=TRADER)
    receipt = chain.send(
        vault.functions.lock(
            usdc.address, 1_000, unique32("pk"), SRC_CHAIN, chain.venue.address, TRADER
        ),
        sender=TRADER,
    )
    [locked] = logs(vault, "Locked", receipt)
    nonce = locked["args"]["nonce"]
    domain = Domain(CHAIN_ID, vault.address)
    me = bytes.fromhex(address_to_bytes32(vault.address)[2:])
    trader32 = bytes.fromhex(address_to_bytes32(TRADER)[2:])

    def settlement(amount: int, kind: SettlementKind, **kw: Any) -> Settlement:
        fields: dict[str, Any] = {
            "src_chain_id": CHAIN_ID,
            "src_vault": me,
            "lock_id": nonce.to_bytes(32),
            "recipient": trader32,
            "amount": amount,
            "kind": kind,
            "settlement_id": unique32("sid"),
            "attester_set_index": 0,
        }
        return Settlement(**(fields | kw))

    def settle(
        s: Settlement, keys: Sequence[str] = MEMBERS[:3], sign_domain: Domain = domain
    ) -> Any:
        return vault.functions.settle(as_tuple(s), sigs(s, sign_domain, keys))

    before = usdc.functions.balanceOf(TRADER).call()
    release = settlement(400, SettlementKind.RELEASE)
    receipt = chain.send(settle(release))
    [settled] = logs(vault, "Settled", receipt)
    assert (settled["args"]["kind"], settled["args"]["recipient"], settled["args"]["amount"]) == (
        1,
        TRADER,
        400,
    )
    assert usdc.functions.balanceOf(TRADER).call() == before + 400
    assert chain.refused(settle(release)) == f"AlreadyConsumed(0x{release.settlement_id.hex()})"

    seize_before = usdc.functions.balanceOf(FEEDER).call()
    chain.send(settle(settlement(300, SettlementKind.SEIZE, recipient=bytes(32))))
    assert usdc.functions.balanceOf(FEEDER).call() == seize_before + 300
    assert chain.refused(settle(settlement(301, SettlementKind.RELEASE))) == (
        f"ExceedsLock({nonce}, 300, 301)"
    )
    other32 = bytes.fromhex(address_to_bytes32(OTHER)[2:])
    assert chain.refused(settle(settlement(1, SettlementKind.RELEASE, recipient=other32))) == (
        f"RecipientNotLockOwner({OTHER}, {TRADER})"
    )
    assert chain.refused(settle(settlement(1, SettlementKind.RELEASE, src_chain_id=SRC_CHAIN))) == (
        f"WrongSourceChain({SRC_CHAIN})"
    )
    assert chain.refused(settle(settlement(1, SettlementKind.RELEASE, src_vault=VAULT_A))) == (
        f"WrongVault(0x{VAULT_A.hex()})"
    )
    wrong_domain = Domain(CHAIN_ID, chain.venue.address)  # another contract's domain
    assert chain.refused(
        settle(settlement(1, SettlementKind.RELEASE), sign_domain=wrong_domain)
    ).startswith(("NotAttester(", "SignersNotIncreasing("))
    assert chain.refused(settle(settlement(1, SettlementKind.RELEASE), keys=MEMBERS[:2])) == (
        "QuorumNotReached(2, 3)"
    )
    assert chain.refused(settle(settlement(1, 3))) == "InvalidKind(3)"  # type: ignore[arg-type]
    chain.send(settle(settlement(300, SettlementKind.RELEASE)))

    assert vault.functions.lockOf(nonce).call()[3] == 1_000  # settled == measured amount
    assert vault.functions.releasedTotal(usdc.address).call() >= 700
    assert vault.functions.seizedTotal(usdc.address).call() >= 300
    assert chain.refused(settle(settlement(1, SettlementKind.SEIZE))) == (
        f"ExceedsLock({nonce}, 0, 1)"
    )


def test_a_settle_batch_short_of_gas_for_its_next_item_reverts_whole(chain: Chain) -> None:
    """As for credits: the vault reverts a batch whose next item would start with less than
    BATCH_ITEM_GAS rather than let that item run out of gas in its frame and be skipped."""
    vault, usdc = chain.vault, chain.usdc
    chain.send(usdc.functions.approve(vault.address, 500), sender=TRADER)
    receipt = chain.send(vault.functions.lock(
        usdc.address, 500, unique32("pk"), SRC_CHAIN, chain.venue.address, TRADER), sender=TRADER)
    [locked] = logs(vault, "Locked", receipt)
    domain = Domain(CHAIN_ID, vault.address)
    items = [Settlement(
        src_chain_id=CHAIN_ID, src_vault=bytes.fromhex(address_to_bytes32(vault.address)[2:]),
        lock_id=locked["args"]["nonce"].to_bytes(32), amount=100, kind=SettlementKind.RELEASE,
        recipient=bytes.fromhex(address_to_bytes32(TRADER)[2:]), settlement_id=unique32("sid"),
        attester_set_index=0) for _ in range(2)]
    batch = vault.functions.settleBatch([as_tuple(x) for x in items],
                                        [sigs(x, domain, MEMBERS[:3]) for x in items])
    _, receipt = short_then_enough(chain, batch, VAULT_ABI, short_by=60_000,
                                   refused=f"BatchOutOfGas({len(items) - 1}, ")
    assert receipt["status"] == 1 and len(logs(vault, "Settled", receipt)) == 2
    assert logs(vault, "SettlementSkipped", receipt) == []


# ----- throughput -----------------------------------------------------------------------------


def test_batch_credits_all_and_costs_less_per_credit(chain: Chain) -> None:
    n = 8
    domain = venue_domain(chain.venue)

    def fresh() -> list[LockAttestation]:
        keys = [chain.venue.functions.positionKeyOf(TRADER, unique32("g")).call() for _ in range(n)]
        return [attestation(bytes(k)) for k in keys]

    singles = []
    for msg in fresh():
        receipt = chain.send(
            chain.venue.functions.credit(as_tuple(msg), sigs(msg, domain, MEMBERS[:3]))
        )
        singles.append(receipt["gasUsed"])
    batch = fresh()
    receipt = chain.send(
        chain.venue.functions.creditBatch(
            [as_tuple(m) for m in batch], [sigs(m, domain, MEMBERS[:3]) for m in batch]
        )
    )
    assert len(logs(chain.venue, "Credited", receipt)) == n
    assert not logs(chain.venue, "CreditSkipped", receipt)
    single, batched = sum(singles) // n, receipt["gasUsed"] // n
    print(f"\ngas per credit (3-of-4, fresh position): single {single}, batch of {n} {batched}")
    assert batched < single
