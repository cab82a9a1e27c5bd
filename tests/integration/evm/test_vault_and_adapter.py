"""CollateralVault on a real anvil, seen through EvmAdapter: fields, finality, ranges, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from chains.base import ChainAdapter
from chains.evm.adapter import EvmAdapter
from chains.evm.artifacts import load_artifact
from chains.evm.codec import LOCKED_TOPIC0, parse_locked_log
from chains.evm.locker import LockReceipt, lock_on_evm
from chains.evm.oracle import OracleClient
from chains.evm.sender import TxSender
from chains.finality import final_head
from devnet.process import free_port
from shared.chain import BlockRef, ChainKind, ChainRef, Finality
from shared.errors import NotYetFinal, RpcUnavailable, TxRejected
from shared.events import LockEvent
from shared.ids import address_to_bytes32
from shared.settings import FinalityPolicy, RetrySettings
from tests.integration.evm.conftest import (
    DEPLOYER_KEY,
    FEEDER_KEY,
    OTHER,
    TRADER,
    TRADER_KEY,
    Deployed,
    mine,
    rpc,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
RETRY = RetrySettings(max_attempts=2, initial_s=0.05, max_s=0.1, timeout_s=5)
VENUE = "0x00000000000000000000000000000000000000bb"
KEY = "0x" + "42" * 32


def run(evm: Deployed, body: Callable[[EvmAdapter], Awaitable[T]], **kwargs: Any) -> T:
    """Run ``body(adapter)`` in a fresh event loop, closing the adapter afterwards."""

    async def go() -> T:
        settings = evm.settings.model_copy(update=kwargs)
        adapter = EvmAdapter.from_settings("evm-a", settings, RETRY)
        try:
            return await body(adapter)
        finally:
            await adapter.aclose()

    return asyncio.run(go())


def lock(evm: Deployed, symbol: str = "USDC", amount: int = 2_500_000, **kw: Any) -> LockReceipt:
    args: dict[str, Any] = {
        "private_key": TRADER_KEY,
        "vault": evm.vault,
        "asset": evm.asset(symbol),
        "amount": amount,
        "position_key": KEY,
        "dst_chain_id": 31338,
        "dst_venue": VENUE,
        "beneficiary": OTHER,
    }
    args.update(kw)
    return asyncio.run(lock_on_evm(evm.url, **args))


def events(evm: Deployed, start: int, end: int, **kwargs: Any) -> list[LockEvent]:
    return list(run(evm, lambda a: a.lock_events(start, end), **kwargs))


def test_manifest_is_a_valid_chain_settings_entry(evm_a: Deployed) -> None:
    settings = evm_a.settings
    assert settings.chain_id == 31337 and settings.vaults == [evm_a.vault]
    assert {s: a.decimals for s, a in settings.assets.items()} == {"USDC": 6, "WETH": 18, "FEE": 6}


def test_lock_is_seen_with_the_right_fields(evm_a: Deployed) -> None:
    receipt = lock(evm_a)
    [event] = events(evm_a, receipt.block_number, receipt.block_number)
    assert event.chain == "evm-a" and event.chain_id == 31337
    assert event.nonce == receipt.nonce and event.lock_id == "0x" + receipt.nonce.to_bytes(32).hex()
    assert event.vault == address_to_bytes32(evm_a.vault)
    assert event.owner == address_to_bytes32(TRADER)
    assert event.asset == address_to_bytes32(evm_a.asset("USDC"))
    assert (event.amount, event.decimals) == (2_500_000, 6)
    assert event.position_key == KEY and event.dst_chain_id == 31338
    assert event.dst_venue == to_checksum_address(VENUE) and event.beneficiary == OTHER
    assert event.height == receipt.block_number and event.tx_id == receipt.tx_hash
    block = rpc(evm_a.url, "eth_getBlockByNumber", hex(event.height), False)
    assert event.block_hash == block["hash"]


def test_nonces_strictly_increase(evm_a: Deployed) -> None:
    receipts = [lock(evm_a, amount=1_000 + i) for i in range(3)]
    nonces = [r.nonce for r in receipts]
    assert nonces == list(range(nonces[0], nonces[0] + 3)) and nonces[0] >= 1
    seen = events(evm_a, receipts[0].block_number, receipts[-1].block_number)
    assert [e.nonce for e in seen] == nonces
    assert [e.amount for e in seen] == [1_000, 1_001, 1_002]


def test_confirmations_policy_waits_for_k_blocks_on_top(evm_a: Deployed) -> None:
    policy = FinalityPolicy(mode="confirmations", confirmations=3)
    receipt = lock(evm_a)

    def final_locks() -> list[int]:
        async def body(adapter: EvmAdapter) -> list[int]:
            final = await final_head(adapter, policy)
            assert final.hash == await adapter.block_hash(final.height)
            if final.height < receipt.block_number:
                return []
            found = await adapter.lock_events(receipt.block_number, final.height)
            return [e.nonce or 0 for e in found]

        return run(evm_a, body)

    for _ in range(2):
        assert final_locks() == []
        mine(evm_a.url)
    assert final_locks() == []  # two blocks on top
    mine(evm_a.url)
    assert final_locks() == [receipt.nonce]  # three blocks on top


def test_confirmations_deeper_than_the_chain_is_not_final(evm_a: Deployed) -> None:
    policy = FinalityPolicy(mode="confirmations", confirmations=10_000)
    with pytest.raises(NotYetFinal):
        run(evm_a, lambda a: final_head(a, policy))


def test_finalized_tag_follows_anvil(evm_a: Deployed) -> None:
    receipt = lock(evm_a)
    for tag in ("safe", "finalized"):
        raw = rpc(evm_a.url, "eth_getBlockByNumber", tag, False)
        head = run(evm_a, lambda a, t=tag: final_head(a, FinalityPolicy(tag=Finality(t))))
        assert (head.height, head.hash) == (int(raw["number"], 16), raw["hash"])
    final = run(evm_a, lambda a: a.head(Finality.FINALIZED))
    assert final.height < receipt.block_number  # anvil: finalized = latest - 2 * epoch (4)
    mine(evm_a.url, receipt.block_number - final.height - 1)
    assert run(evm_a, lambda a: a.head(Finality.FINALIZED)).height == receipt.block_number - 1
    mine(evm_a.url)
    final = run(evm_a, lambda a: a.head(Finality.FINALIZED))
    assert final.height == receipt.block_number
    assert [e.nonce for e in events(evm_a, receipt.block_number, final.height)] == [receipt.nonce]


def test_bounded_ranges_find_every_lock_exactly_once(evm_a: Deployed) -> None:
    start = int(rpc(evm_a.url, "eth_blockNumber"), 16) + 1
    nonces = []
    for i in range(6):  # approve + lock, then 3 empty blocks: 30 blocks in all
        nonces.append(lock(evm_a, amount=10 + i).nonce)
        mine(evm_a.url, 3)
    end = int(rpc(evm_a.url, "eth_blockNumber"), 16)
    assert end - start + 1 == 30
    ranges: list[tuple[int, int]] = []

    async def body(adapter: EvmAdapter) -> list[LockEvent]:
        scan = adapter._scan

        async def recording(lo: int, hi: int) -> list[LockEvent]:
            ranges.append((lo, hi))
            return await scan(lo, hi)

        adapter._scan = recording  # type: ignore[method-assign]
        return list(await adapter.lock_events(start, end))

    found = run(evm_a, body, max_block_range=5)
    assert [e.nonce for e in found] == nonces
    assert all(hi - lo + 1 <= 5 for lo, hi in ranges) and len(ranges) == 6
    assert [lo for lo, _ in ranges] == list(range(start, end + 1, 5))


def test_fee_token_lock_records_the_measured_delta(evm_a: Deployed) -> None:
    """SRC-01: 1 % burnt in transfer; the vault records and emits what arrived."""
    receipt = lock(evm_a, symbol="FEE", amount=1_000_000)
    assert receipt.measured_amount == 990_000
    [event] = events(evm_a, receipt.block_number, receipt.block_number)
    assert event.amount == 990_000 and event.asset == address_to_bytes32(evm_a.asset("FEE"))

    async def recorded() -> tuple[int, int]:
        sender = await TxSender.connect(evm_a.url, TRADER_KEY)
        try:
            vault = sender.w3.eth.contract(evm_a.vault, abi=load_artifact("CollateralVault").abi)
            record = await vault.functions.lockOf(receipt.nonce).call()
            total = await vault.functions.lockedTotal(evm_a.asset("FEE")).call()
            return record[2], total
        finally:
            await sender.aclose()

    amount, total = asyncio.run(recorded())
    assert amount == 990_000 and total >= 990_000


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        pytest.param({"amount": 0}, "ZeroAmount()", id="zero-amount"),
        pytest.param({"beneficiary": "0x" + "00" * 20}, "ZeroBeneficiary()", id="zero-beneficiary"),
        pytest.param({"dst_venue": "0x" + "00" * 20}, "ZeroDstVenue()", id="zero-venue"),
        pytest.param({"position_key": "0x" + "00" * 32}, "ZeroPositionKey()", id="zero-key"),
        pytest.param({"dst_chain_id": 0}, "ZeroDstChainId()", id="zero-chain"),
    ],
)
def test_bad_locks_are_refused_with_the_custom_error(
    evm_a: Deployed, overrides: dict[str, Any], error: str
) -> None:
    with pytest.raises(TxRejected) as info:
        lock(evm_a, **overrides)
    assert info.value.reason == error


async def _deploy(url: str, name: str, *args: Any) -> str:
    sender = await TxSender.connect(url, DEPLOYER_KEY)
    try:
        artifact = load_artifact(name)
        factory = sender.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = await sender.wait(await sender.send(factory.constructor(*args)))
        return to_checksum_address(receipt["contractAddress"])
    finally:
        await sender.aclose()


def test_unregistered_asset_is_refused(evm_a: Deployed) -> None:
    stray = asyncio.run(_deploy(evm_a.url, "TestToken", "Stray", "STRAY", 6))
    with pytest.raises(TxRejected) as info:
        lock(evm_a, asset=stray)
    assert info.value.reason == f"UnregisteredAsset({stray})"


@pytest.mark.parametrize(
    ("asset", "error"),
    [
        pytest.param("0x" + "00" * 20, "ZeroAddress()", id="zero-address"),
        pytest.param(TRADER, f"NoCode({TRADER})", id="no-code"),
    ],
)
def test_registration_refuses_non_contracts(evm_a: Deployed, asset: str, error: str) -> None:
    async def register() -> None:
        sender = await TxSender.connect(evm_a.url, DEPLOYER_KEY)
        try:
            vault = sender.w3.eth.contract(evm_a.vault, abi=load_artifact("CollateralVault").abi)
            await sender.send(vault.functions.registerAsset(to_checksum_address(asset)))
        finally:
            await sender.aclose()

    with pytest.raises(TxRejected) as info:
        asyncio.run(register())
    assert info.value.reason == error


def test_lookalike_vault_is_ignored(evm_a: Deployed) -> None:
    """RPL-04: an identical Locked event from an unregistered contract never becomes a lock."""
    lookalike = asyncio.run(_deploy(evm_a.url, "LookalikeVault"))
    fake = lock(evm_a, vault=lookalike)  # same event signature, no custody
    raw_logs = rpc(
        evm_a.url,
        "eth_getLogs",
        {
            "fromBlock": hex(fake.block_number),
            "toBlock": hex(fake.block_number),
            "address": lookalike,
            "topics": [LOCKED_TOPIC0],
        },
    )
    assert parse_locked_log(raw_logs[0]).vault == lookalike  # truly identical shape
    assert events(evm_a, fake.block_number, fake.block_number) == []

    async def lying_node(adapter: EvmAdapter) -> list[LockEvent]:
        call = adapter._call

        async def unfiltered(op: str, fn: Any) -> Any:  # a node that ignores the address filter
            result = await call(op, fn)
            return [*result, *raw_logs] if op.startswith("getLogs") else result

        adapter._call = unfiltered  # type: ignore[method-assign]
        return list(await adapter.lock_events(fake.block_number, fake.block_number))

    assert run(evm_a, lying_node) == []


def test_block_hash_changes_after_revert_and_remine(evm_a: Deployed) -> None:
    snapshot = rpc(evm_a.url, "evm_snapshot")
    height = mine(evm_a.url)
    before = run(evm_a, lambda a: a.block_hash(height))
    assert before is not None
    assert rpc(evm_a.url, "evm_revert", snapshot) is True
    assert run(evm_a, lambda a: a.block_hash(height)) is None  # gone with the fork
    timestamp = int(rpc(evm_a.url, "eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    rpc(evm_a.url, "evm_mine", timestamp + 100)  # a different block at the same height
    after = run(evm_a, lambda a: a.block_hash(height))
    assert after is not None and after != before


def test_failover_skips_a_dead_endpoint(evm_a: Deployed) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    chain = ChainRef("evm-a", ChainKind.EVM, 31337)

    async def body(urls: list[str]) -> BlockRef:
        adapter = EvmAdapter(chain, urls, vaults=[evm_a.vault], max_block_range=10, retry=RETRY)
        assert isinstance(adapter, ChainAdapter)
        try:
            return await adapter.head(Finality.LATEST)
        finally:
            await adapter.aclose()

    assert asyncio.run(body([dead, evm_a.url])).height >= 1
    with pytest.raises(RpcUnavailable) as info:
        asyncio.run(body([dead]))
    assert info.value.endpoint == dead and isinstance(info.value.__cause__, Exception)


def test_venue_chain_deploys_oracle_and_venue(evm_b: Deployed) -> None:
    manifest = evm_b.manifest
    assert set(manifest["contracts"]) == {"vault", "oracle", "feeds", "venue"}
    assert evm_b.settings.chain_id == 31338 and list(manifest["assets"]) == ["USDC"]
    salt = b"\x01" * 32

    async def check() -> tuple[bytes, tuple[int, int] | None, list[int]]:
        sender = await TxSender.connect(evm_b.url, FEEDER_KEY)
        oracle = await OracleClient.connect(
            evm_b.url, manifest["contracts"]["oracle"], chain="evm-b", retry=RetrySettings(),
            feeder_key=FEEDER_KEY, feeds=manifest["contracts"]["feeds"])
        try:
            venue = sender.w3.eth.contract(
                manifest["contracts"]["venue"], abi=load_artifact("IsolatedMarginVenue").abi
            )
            key = await venue.functions.positionKeyOf(TRADER, salt).call()
            # I14: the publisher only moves time forward and never past the block
            now = await oracle.chain_time()
            await oracle.publish({"ETH-USD": 3_000 * 10**8}, now)
            with pytest.raises(TxRejected, match="PublishTimeNotIncreasing"):
                await oracle.publish({"ETH-USD": 1}, now)
            with pytest.raises(TxRejected, match="PublishTimeInFuture"):
                await oracle.publish({"ETH-USD": 1}, now + 3_600)
            states = await oracle.source_states("ETH-USD", 60)
            return key, await oracle.price_of("ETH-USD", 60), [s.reason for s in states]
        finally:
            await sender.aclose()
            await oracle.aclose()

    key, price, reasons = asyncio.run(check())
    expected = keccak(
        encode(
            ["uint256", "address", "address", "bytes32"],
            [31338, manifest["contracts"]["venue"], TRADER, salt],
        )
    )
    assert key == expected
    assert price is not None and price[0] == 3_000 * 10**8
    assert reasons == [0, 0, 0]  # two Chainlink mocks and the Pyth one, all valid
