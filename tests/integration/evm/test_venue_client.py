"""VenueClient / VaultClient on two real anvils: credits (single, batch, replays), events, the
way back (request_release -> Settlement signed by 3 of 4 -> settle), and the error edge.

Locks are real ``CollateralVault`` locks on evm-a; attestations are signed with
``shared.messages.sign`` over the venue's domain, as the attester workers do.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import (
    CREDIT_QUEUED_TOPIC0,
    CREDIT_SKIPPED_TOPIC0,
    CREDITED_TOPIC0,
    VAULT_EVENT_SIGNATURES,
    VENUE_EVENT_SIGNATURES,
    CreditedEvent,
    LockStatus,
    SettlementRequestedEvent,
    decode_credit_skipped,
    decode_credited,
    lock_attestation_tuple,
    lock_key,
    settlement_tuple,
)
from chains.evm.locker import lock_on_evm
from chains.evm.vault import VaultClient
from chains.evm.venue import VenueClient
from chains.evm.venue_codec import decode_venue_log
from devnet.process import free_port
from shared.chain import ChainKind, ChainRef
from shared.errors import AlreadyConsumed, ConfigError, LogMalformed, RpcUnavailable, TxRejected
from shared.ids import address_to_bytes32
from shared.messages import (
    LOCK_TYPE,
    SETTLEMENT_TYPE,
    Domain,
    LockAttestation,
    Settlement,
    SettlementKind,
    sign,
)
from shared.settings import RetrySettings
from tests.integration.evm.conftest import (
    BRIDGE_ATTESTERS,
    OTHER_KEY,
    TRADER,
    TRADER_KEY,
    BridgePair,
    rpc,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
RETRY = RetrySettings(max_attempts=2, initial_s=0.05, max_s=0.1, timeout_s=5)
CHAIN_A = ChainRef("evm-a", ChainKind.EVM, 31337)
CHAIN_B = ChainRef("evm-b", ChainKind.EVM, 31338)
TOKEN_ABI = load_artifact("TestToken").abi
VENUE_ABI = load_artifact("IsolatedMarginVenue").abi
_salts = itertools.count(1)


def b32(address: str) -> bytes:
    return bytes.fromhex(address_to_bytes32(address)[2:])


def run(body: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(body())


def signatures(
    msg: LockAttestation | Settlement, domain: Domain, keys: Sequence[str]
) -> list[bytes]:
    """Signatures in strictly increasing signer order, as the contracts require."""
    ordered = sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))
    return [sign(msg, domain, k) for k in ordered]


class Env:
    """Helpers bound to one bridge pair."""

    def __init__(self, pair: BridgePair) -> None:
        self.pair = pair
        self.vault = pair.collateral.vault
        self.usdc = pair.collateral.asset("USDC")
        self.venue_domain = Domain(31338, pair.venue_address)
        self.vault_domain = Domain(31337, self.vault)

    def position(self) -> bytes:
        salt = keccak(text=f"salt-{next(_salts)}")
        return keccak(encode(["uint256", "address", "address", "bytes32"],
                             [31338, self.pair.venue_address, TRADER, salt]))

    async def lock(self, amount: int, position: bytes) -> LockAttestation:
        """Lock ``amount`` USDC on evm-a and return the attestation an attester would sign."""
        receipt = await lock_on_evm(
            self.pair.collateral.url, private_key=TRADER_KEY, vault=self.vault, asset=self.usdc,
            amount=amount, position_key="0x" + position.hex(), dst_chain_id=31338,
            dst_venue=self.pair.venue_address, beneficiary=TRADER,
        )
        return LockAttestation(
            src_chain_id=31337, src_vault=b32(self.vault),
            lock_id=receipt.nonce.to_bytes(32, "big"), owner=b32(TRADER), beneficiary=TRADER,
            src_asset=b32(self.usdc), amount=receipt.measured_amount, decimals=6,
            position_key=position, attester_set_index=0,
        )

    def signed(self, a: LockAttestation, n: int = 3) -> tuple[LockAttestation, list[bytes]]:
        return a, signatures(a, self.venue_domain, BRIDGE_ATTESTERS[:n])

    async def venue(self, key: str | None = OTHER_KEY, **kw: Any) -> VenueClient:
        return await VenueClient.connect([self.pair.venue.url], self.pair.venue_address,
                                         chain=CHAIN_B, sender_key=key, retry=RETRY, **kw)

    async def vault_client(self) -> VaultClient:
        return await VaultClient.connect([self.pair.collateral.url], self.vault, chain=CHAIN_A,
                                         sender_key=OTHER_KEY, retry=RETRY)

    def balance(self, who: str) -> int:
        w3 = Web3(Web3.HTTPProvider(self.pair.collateral.url, request_kwargs={"timeout": 10}))
        return int(w3.eth.contract(address=self.usdc, abi=TOKEN_ABI)
                   .functions.balanceOf(who).call())


@pytest.fixture(scope="module")
def env(bridge_pair: BridgePair) -> Env:
    return Env(bridge_pair)


# ----- the codec against the contracts ----------------------------------------------------------


def test_codec_matches_the_contract_abi_and_lock_key_of(env: Env) -> None:
    by_name = {i.get("name"): i for i in VENUE_ABI}
    vault_abi = {i.get("name"): i for i in load_artifact("CollateralVault").abi}
    a = LockAttestation(1, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, TRADER, b"\x04" * 32, 5, 6,
                        b"\x07" * 32, 8)
    s = Settlement(9, b"\x0a" * 32, b"\x0b" * 32, b"\x0c" * 32, 13, SettlementKind.SEIZE,
                   b"\x0e" * 32, 15)
    for fn, abi, msg, encoded, eip712 in (
        ("credit", by_name, a, lock_attestation_tuple(a), LOCK_TYPE),
        ("settle", vault_abi, s, settlement_tuple(s), SETTLEMENT_TYPE),
    ):
        components = abi[fn]["inputs"][0]["components"]
        assert [c["name"] for c in components] == [f["name"] for f in eip712]
        assert dict(zip((c["name"] for c in components), encoded, strict=True)) == msg.message()
    for table, abi in ((VENUE_EVENT_SIGNATURES, by_name), (VAULT_EVENT_SIGNATURES, vault_abi)):
        for name, signature in table.items():
            types = ",".join(i["type"] for i in abi[name]["inputs"])
            assert signature == f"{name}({types})"
    w3 = Web3(Web3.HTTPProvider(env.pair.venue.url))
    venue = w3.eth.contract(address=env.pair.venue_address, abi=VENUE_ABI)
    for chain_id in (1, 31337, 2**64 - 1):
        vault, lock_id = keccak(text=f"v{chain_id}"), keccak(text=f"l{chain_id}")
        assert lock_key(chain_id, vault, lock_id) == venue.functions.lockKeyOf(
            chain_id, vault, lock_id
        ).call()


# ----- credits ----------------------------------------------------------------------------------


def test_credit_batch_of_five_and_events_report_them(env: Env) -> None:
    async def body() -> None:
        position = env.position()
        atts = [await env.lock(1_000_000 + i, position) for i in range(5)]
        client = await env.venue(max_block_range=2)
        try:
            outcome = await client.credit_batch([env.signed(a) for a in atts])
            keys = [lock_key(a.src_chain_id, a.src_vault, a.lock_id) for a in atts]
            assert outcome.credited == keys
            assert (outcome.queued, outcome.skipped) == ([], [])
            assert outcome.gas_used > 0 and outcome.tx_hash.startswith("0x")
            for a, key in zip(atts, keys, strict=True):
                assert await client.is_consumed(a.src_chain_id, a.src_vault, a.lock_id)
                credit = await client.lock_credit(key)
                assert (credit.status, credit.remaining) == (LockStatus.CREDITED, a.amount)
                assert credit.position_key == position and credit.src_owner == b32(TRADER)
            total = sum(a.amount for a in atts)
            assert await client.collateral_of(position, 31337, b32(env.usdc)) == total * 10**12

            # a range wider than max_block_range (2) is scanned in chunks, without duplicates
            height = outcome.block_number
            events = await client.events(max(0, height - 4), height)
            credited = [e for e in events if isinstance(e, CreditedEvent)]
            assert [e.lock_id for e in credited][-5:] == [a.lock_id for a in atts]
            mine = [e for e in credited if e.tx_id == outcome.tx_hash]
            assert [e.lock_key for e in mine] == keys
            assert all(e.height == height and e.beneficiary == TRADER for e in mine)
            assert [(e.amount, e.amount18) for e in mine] == [
                (a.amount, a.amount * 10**12) for a in atts
            ]
            assert len({e.log_index for e in mine}) == 5
        finally:
            await client.aclose()

    run(body)


def test_batch_skips_duplicates_consumed_and_unsigned_items_which_stay_resubmittable(
    env: Env,
) -> None:
    async def body() -> None:
        position = env.position()
        fresh, consumed, weak = [await env.lock(500_000, position) for _ in range(3)]
        client = await env.venue()
        try:
            await client.credit(*env.signed(consumed))
            outcome = await client.credit_batch(
                [env.signed(fresh), env.signed(fresh), env.signed(consumed), env.signed(weak, 2)]
            )
            key = {id(a): lock_key(a.src_chain_id, a.src_vault, a.lock_id)
                   for a in (fresh, consumed, weak)}
            # the contract's batch semantics: refusals are skipped items, never a revert
            assert outcome.credited == [key[id(fresh)]]
            assert outcome.skipped == [
                (key[id(fresh)], "AlreadyConsumed"),
                (key[id(consumed)], "AlreadyConsumed"),
                (key[id(weak)], "QuorumNotReached"),
            ]
            details = [getattr(e, "detail", None) for e in outcome.events]
            assert "QuorumNotReached(2, 3)" in details
            # a skipped item leaves nothing behind: sent again with a quorum, it is credited
            assert not await client.is_consumed(weak.src_chain_id, weak.src_vault, weak.lock_id)
            again = await client.credit(*env.signed(weak))
            assert again.credited == [key[id(weak)]]
        finally:
            await client.aclose()

    run(body)


def test_credit_of_a_consumed_lock_raises_already_consumed_also_when_racing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        position = env.position()
        first, racer, other = [await env.lock(250_000, position) for _ in range(3)]
        client = await env.venue()
        try:
            with pytest.raises(TxRejected) as refused:  # any other refusal is TxRejected
                await client.credit(*env.signed(first, 2))
            assert refused.value.reason == "QuorumNotReached(2, 3)"
            await client.credit(*env.signed(first))
            with pytest.raises(AlreadyConsumed) as info:  # caught by the is_consumed check
                await client.credit(*env.signed(first))
            assert info.value.key == "0x" + lock_key(31337, first.src_vault, first.lock_id).hex()

            # two coroutines, one client: the same lock twice and another lock, concurrently
            results = await asyncio.gather(
                client.credit(*env.signed(racer)),
                client.credit(*env.signed(racer)),
                client.credit(*env.signed(other)),
                return_exceptions=True,
            )
            assert sum(isinstance(r, AlreadyConsumed) for r in results[:2]) == 1
            assert not isinstance(results[2], BaseException) and len(results[2].credited) == 1

            async def never(*_: Any) -> bool:
                return False

            # without the pre-check, the contract's own AlreadyConsumed revert is mapped too
            monkeypatch.setattr(client, "is_consumed", never)
            with pytest.raises(AlreadyConsumed) as mapped:
                await client.credit(*env.signed(first))
            assert isinstance(mapped.value.__cause__, TxRejected)
        finally:
            await client.aclose()

    run(body)


# ----- the way back -----------------------------------------------------------------------------


def test_request_release_then_settle_on_the_collateral_chain(env: Env) -> None:
    async def body() -> None:
        position = env.position()
        a = await env.lock(1_000_000, position)
        relayer, owner = await env.venue(), await env.venue(TRADER_KEY)
        vault = await env.vault_client()
        try:
            await relayer.credit(*env.signed(a))
            with pytest.raises(TxRejected, match="NotPositionOwner"):
                await relayer.request_release(position, 31337, a.src_vault, a.lock_id, 1)
            requested = await owner.request_release(position, 31337, a.src_vault, a.lock_id,
                                                    400_000)
            assert isinstance(requested, SettlementRequestedEvent)
            assert (requested.src_chain_id, requested.src_vault, requested.lock_id) == (
                31337, a.src_vault, a.lock_id)
            assert (requested.recipient, requested.amount, requested.kind) == (
                b32(TRADER), 400_000, SettlementKind.RELEASE)
            assert requested in await relayer.events(requested.height, requested.height)
            assert await relayer.collateral_of(position, 31337, a.src_asset) == 600_000 * 10**12

            index, members, threshold = await vault.current_attester_set()
            expected = sorted((Account.from_key(k).address for k in BRIDGE_ATTESTERS),
                              key=lambda m: int(m, 16))
            assert (index, members, threshold) == (0, expected, 3)
            settlement = requested.to_settlement(index)
            sigs = signatures(settlement, env.vault_domain, BRIDGE_ATTESTERS[1:])
            before = env.balance(TRADER)
            assert not await vault.is_settled(settlement.settlement_id)
            settled = await vault.settle(settlement, sigs)
            assert env.balance(TRADER) == before + 400_000
            assert await vault.is_settled(settlement.settlement_id)
            assert (settled.settlement_id, settled.nonce, settled.kind, settled.recipient,
                    settled.amount) == (requested.settlement_id, int.from_bytes(a.lock_id),
                                        SettlementKind.RELEASE, TRADER, 400_000)
            assert await vault.settled_events(settled.height, settled.height) == [settled]
            lock = await vault.lock_of(int.from_bytes(a.lock_id))
            assert (lock.owner, lock.amount, lock.settled) == (TRADER, 1_000_000, 400_000)
            assert await vault.locked_total(env.usdc) >= 1_000_000
            with pytest.raises(AlreadyConsumed):
                await vault.settle(settlement, sigs)
            assert env.balance(TRADER) == before + 400_000
        finally:
            for client in (relayer, owner, vault):
                await client.aclose()

    run(body)


# ----- the edge ---------------------------------------------------------------------------------


def test_unreachable_url_raises_rpc_unavailable_and_fails_over(env: Env) -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    async def body() -> None:
        with pytest.raises(RpcUnavailable):
            await VenueClient.connect([dead], env.pair.venue_address, chain=CHAIN_B, retry=RETRY)
        client = await VenueClient.connect([dead, env.pair.venue.url], env.pair.venue_address,
                                           chain=CHAIN_B, retry=RETRY)
        try:
            assert (await client.current_attester_set())[0] == 0
            with pytest.raises(ConfigError):  # read-only client
                await client.release_queued(bytes(32))
        finally:
            await client.aclose()
        with pytest.raises(ConfigError, match="chain id 31338"):
            await VaultClient.connect([env.pair.venue.url], env.vault, chain=CHAIN_A, retry=RETRY)

    run(body)


def test_decoders_refuse_malformed_logs(env: Env) -> None:
    async def body() -> CreditedEvent:
        a = await env.lock(123_456, env.position())
        client = await env.venue()
        try:
            outcome = await client.credit(*env.signed(a))
            (event,) = [e for e in outcome.events if isinstance(e, CreditedEvent)]
            return event
        finally:
            await client.aclose()

    event = run(body)
    [raw] = rpc(env.pair.venue.url, "eth_getLogs", {
        "fromBlock": hex(event.height), "toBlock": hex(event.height),
        "address": env.pair.venue_address, "topics": [[CREDITED_TOPIC0]],
    })
    assert decode_credited(raw, chain="evm-b") == event  # raw JSON decodes like a receipt log
    assert decode_venue_log(raw) == event
    for bad in (
        {**raw, "data": raw["data"][:-2]},
        {**raw, "data": raw["data"] + "00" * 32},
        {**raw, "topics": raw["topics"][:3]},
        {**raw, "topics": [CREDIT_QUEUED_TOPIC0, *raw["topics"][1:]]},
        {**raw, "topics": [*raw["topics"][:2], "0x" + "ff" * 32, raw["topics"][3]]},  # > uint64
        {**raw, "data": raw["data"][:-64] + "ff" * 32},  # beneficiary with dirty padding
        {**raw, "blockNumber": None},
    ):
        with pytest.raises(LogMalformed):
            decode_credited(bad)
    skipped = {**raw, "topics": [CREDIT_SKIPPED_TOPIC0, "0x" + "00" * 32, raw["topics"][1]]}
    reason = "0x" + (32).to_bytes(32).hex() + (4).to_bytes(32).hex() + "deadbeef" + "00" * 28
    assert decode_credit_skipped({**skipped, "data": reason}).revert_data == bytes.fromhex(
        "deadbeef")
    for data in (reason[:-2], reason + "00" * 32, "0x" + (64).to_bytes(32).hex() + reason[66:]):
        with pytest.raises(LogMalformed):
            decode_credit_skipped({**skipped, "data": data})


def test_large_credit_is_queued_then_released_and_a_paused_batch_is_rejected(env: Env) -> None:
    large = 10**6 * 10**6 + 1  # just above the devnet lanes' large-transfer threshold (USDC)
    url = env.pair.venue.url
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
    venue = w3.eth.contract(address=env.pair.venue_address, abi=VENUE_ABI)
    owner = venue.functions.owner().call()

    async def body() -> None:
        position = env.position()
        big, small = await env.lock(large, position), await env.lock(1_000, position)
        client = await env.venue()
        try:
            outcome = await client.credit(*env.signed(big))
            key = lock_key(31337, big.src_vault, big.lock_id)
            assert (outcome.credited, outcome.queued) == ([], [key])
            assert (await client.lock_credit(key)).status == LockStatus.QUEUED
            with pytest.raises(TxRejected, match=r"QueuedUntil\("):
                await client.release_queued(key)
            rpc(url, "evm_increaseTime", hex(301))
            rpc(url, "evm_mine")
            released = await client.release_queued(key)
            assert (released.lock_key, released.amount) == (key, large)
            assert await client.released_events(released.height, released.height) == [released]
            assert (await client.lock_credit(key)).status == LockStatus.CREDITED

            w3.eth.wait_for_transaction_receipt(venue.functions.pause().transact({"from": owner}))
            try:
                with pytest.raises(TxRejected, match=r"EnforcedPause\(\)") as info:
                    await client.credit_batch([env.signed(small)])
                assert info.value.tx_id is None  # refused before anything was sent
            finally:
                w3.eth.wait_for_transaction_receipt(
                    venue.functions.unpause().transact({"from": owner})
                )
            assert (await client.credit_batch([env.signed(small)])).credited
        finally:
            await client.aclose()

    run(body)
