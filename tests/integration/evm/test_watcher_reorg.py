"""SRC-02 on a real anvil, through the watcher and a real Redis store: a lock mined and then
reorged out before finality is dropped and never finalized; the cursor rewind is explicit."""

from __future__ import annotations

import asyncio

import pytest

from chains.evm.adapter import EvmAdapter
from chains.evm.locker import lock_on_evm
from orchestrator.watch.watcher import PollReport, Watcher
from shared.locks import LockState
from shared.settings import FinalityPolicy, RetrySettings
from tests.integration.evm.conftest import TRADER, TRADER_KEY, Deployed, mine, rpc
from workers.stores.locks import RedisLockStore

pytestmark = pytest.mark.integration

RETRY = RetrySettings(max_attempts=2, initial_s=0.05, max_s=0.1, timeout_s=5)
KEY = "0x" + "5e" * 32
VENUE = "0x" + "77" * 20


def poll(evm: Deployed, store: RedisLockStore, policy: FinalityPolicy) -> PollReport:
    async def body() -> PollReport:
        adapter = EvmAdapter.from_settings("evm-a", evm.settings, RETRY)
        try:
            watcher = Watcher(adapter, store, policy,
                              start_height=evm.settings.deployment_height, max_block_range=50)
            return await watcher.poll()
        finally:
            await adapter.aclose()

    return asyncio.run(body())


def lock(evm: Deployed, amount: int) -> int:
    receipt = asyncio.run(lock_on_evm(
        evm.url, private_key=TRADER_KEY, vault=evm.vault, asset=evm.asset("USDC"),
        amount=amount, position_key=KEY, dst_chain_id=31338, dst_venue=VENUE,
        beneficiary=TRADER))
    return receipt.block_number


def test_src_02_reorg_before_finality_drops_the_lock(evm_a: Deployed, redis_url: str) -> None:
    store = RedisLockStore(redis_url)
    policy = FinalityPolicy(mode="confirmations", confirmations=5)
    poll(evm_a, store, policy)
    snapshot = rpc(evm_a.url, "evm_snapshot")
    height = lock(evm_a, 1_000_000)
    report = poll(evm_a, store, policy)
    (seen,) = [r for r in store.all_records() if r.event.height == height]
    assert seen.state == LockState.SEEN and report.cursor >= height

    assert rpc(evm_a.url, "evm_revert", snapshot) is True
    stamp = int(rpc(evm_a.url, "eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    rpc(evm_a.url, "evm_mine", stamp + 100)  # a different block at the lock's height
    mine(evm_a.url, 10)
    report = poll(evm_a, store, policy)
    assert report.reorg_to is not None and report.reorg_to < height
    gone = store.get(seen.key)
    assert gone is not None and gone.state == LockState.DROPPED
    assert gone.reached(LockState.FINALIZED) is None

    # The same nonce is reused on the new fork by a different lock: seen afresh, then final.
    new_height = lock(evm_a, 2_000_000)
    mine(evm_a.url, 6)
    poll(evm_a, store, policy)
    again = store.get(seen.key)
    assert again is not None and again.event.amount == 2_000_000
    assert again.event.height == new_height and again.state == LockState.FINALIZED
