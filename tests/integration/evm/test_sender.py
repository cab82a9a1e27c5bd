"""The one sending layer against a real anvil: transactions land under congestion.

anvil mines only on demand here (``--no-mining``), so every block is one the test made:
the base fee is raised with ``anvil_setNextBlockBaseFeePerGas``, a pending transaction is
dropped with ``anvil_dropTransaction``, and another process using the same key is simulated by
a second sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from chains.evm.sender import FeePolicy, SendEvent, TxSender
from devnet.anvil import start_anvil
from devnet.process import ManagedProcess
from shared.errors import FeeBudgetExhausted
from tests.integration.evm.conftest import DEV_KEYS, rpc

pytestmark = pytest.mark.integration

GWEI = 10**9
KEY = DEV_KEYS[3]


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    root: Path = tmp_path_factory.mktemp("sender")
    proc = start_anvil(31399, log_path=root / "anvil.log", block_time_s=None,
                       extra_args=("--no-mining",))
    try:
        yield proc
    finally:
        proc.stop()


class _Transfer:
    """A plain value transfer shaped like a contract call (``build_transaction``)."""

    def __init__(self, to: str, value: int = 1) -> None:
        self.to, self.value = to, value

    async def build_transaction(self, tx: dict[str, Any]) -> dict[str, Any]:
        return {**tx, "to": self.to, "value": self.value, "gas": tx.get("gas", 21_000)}


async def _mine_until(url: str, done: asyncio.Future[Any], max_blocks: int = 30,
                      every_s: float = 0.05) -> None:
    """Mine a block every ``every_s`` until ``done`` resolves (the sender watches the head)."""
    for _ in range(max_blocks):
        if done.done():
            return
        rpc(url, "evm_mine")
        await asyncio.sleep(every_s)


def _sink() -> str:
    return to_checksum_address("0x" + "ab" * 20)


def test_a_send_refused_for_its_fee_is_repriced_and_lands(anvil: ManagedProcess) -> None:
    events: list[SendEvent] = []

    async def body() -> tuple[int, int]:
        sender = await TxSender.connect(anvil.url, KEY, on_event=events.append)
        try:
            rpc(anvil.url, "evm_mine")
            base = int(rpc(anvil.url, "eth_getBlockByNumber", "latest", False)["baseFeePerGas"],
                       16)
            # The next block's base fee is six times what any price read before would offer.
            rpc(anvil.url, "anvil_setNextBlockBaseFeePerGas", hex(max(base, GWEI) * 6))
            sender._price = (base, GWEI, 1e18)  # a stale read, as during a sudden spike
            tx_hash = await sender.send(_Transfer(_sink()))
            waiter = asyncio.ensure_future(sender.wait(tx_hash, timeout_s=20))
            await _mine_until(anvil.url, waiter)
            receipt = await waiter
            return int(receipt["status"]), int(receipt["effectiveGasPrice"])
        finally:
            await sender.aclose()

    status, price = asyncio.run(body())
    assert status == 1
    assert price >= 6 * GWEI
    assert any(e.kind == "repriced" for e in events), [e.kind for e in events]


def test_a_transaction_the_base_fee_prices_out_is_bumped_at_the_next_block(
        anvil: ManagedProcess) -> None:
    """Its bid is below what any block now charges: it cannot be mined (nor anything behind
    it), so waiting ``replace_after_blocks`` (50 here) would only leave blocks empty."""
    events: list[SendEvent] = []

    async def body() -> tuple[int, int]:
        sender = await TxSender.connect(anvil.url, KEY, fees=FeePolicy(replace_after_blocks=50),
                                        on_event=events.append)
        try:
            rpc(anvil.url, "evm_mine")
            sent_at = int(rpc(anvil.url, "eth_blockNumber"), 16)
            tx_hash = await sender.send(_Transfer(_sink()))
            sent = next(e for e in events if e.kind == "sent")
            rpc(anvil.url, "anvil_setNextBlockBaseFeePerGas", hex(sent.max_fee_wei * 2))
            waiter = asyncio.ensure_future(sender.wait(tx_hash, timeout_s=20))
            await _mine_until(anvil.url, waiter, max_blocks=10, every_s=0.25)
            return sent_at, int((await waiter)["blockNumber"])
        finally:
            await sender.aclose()

    sent_at, mined_at = asyncio.run(body())
    assert mined_at - sent_at <= 4
    replaced = [e for e in events if e.kind == "replaced"]
    assert replaced and replaced[0].detail == "priced out"


def test_live_03_a_transaction_the_node_lost_is_broadcast_again_as_it_was(
        anvil: ManagedProcess) -> None:
    """The node forgot it (nodes drop transactions; anvil drops the ones queued behind one of
    the same key that did not fit a full block): the same signed bytes go out again at the
    next block, same hash, same price, whatever ``replace_after_blocks`` says (50 here)."""
    events: list[SendEvent] = []

    async def body() -> tuple[int, int, str]:
        sender = await TxSender.connect(anvil.url, KEY, fees=FeePolicy(replace_after_blocks=50),
                                        on_event=events.append)
        try:
            sent_at = int(rpc(anvil.url, "eth_blockNumber"), 16)
            tx_hash = await sender.send(_Transfer(_sink()), gas=21_000)
            rpc(anvil.url, "anvil_dropTransaction", tx_hash)
            waiter = asyncio.ensure_future(sender.wait(tx_hash, timeout_s=20))
            await _mine_until(anvil.url, waiter, max_blocks=10, every_s=0.25)
            receipt = await waiter
            return sent_at, int(receipt["blockNumber"]), "0x" + bytes(
                receipt["transactionHash"]).hex()
        finally:
            await sender.aclose()

    sent_at, mined_at, mined_hash = asyncio.run(body())
    assert mined_at - sent_at <= 3
    sent = next(e for e in events if e.kind == "sent")
    assert mined_hash == sent.tx_hash  # the very transaction that was sent, not a new bid
    assert [e.kind for e in events if e.kind in ("rebroadcast", "replaced")] == ["rebroadcast"]


def test_a_transaction_no_block_takes_is_replaced_with_bumped_fees(
        anvil: ManagedProcess) -> None:
    """The node holds it but blocks keep leaving it out (each block here has room for one
    transfer, and another key outbids it for that room): after ``replace_after_blocks`` it is
    bid again higher, and lands once a block takes it."""
    events: list[SendEvent] = []
    rival = Account.from_key(bytes([7]) * 32)
    rpc(anvil.url, "anvil_setBalance", rival.address, hex(10**20))

    def outbid(nonce: int) -> None:
        tx = {"to": _sink(), "value": 1, "gas": 21_000, "nonce": nonce, "chainId": 31399,
              "maxFeePerGas": 200 * GWEI, "maxPriorityFeePerGas": 100 * GWEI}
        rpc(anvil.url, "eth_sendRawTransaction",
            "0x" + bytes(rival.sign_transaction(tx).raw_transaction).hex())

    async def body() -> dict[str, Any]:
        sender = await TxSender.connect(anvil.url, KEY, fees=FeePolicy(replace_after_blocks=2),
                                        on_event=events.append)
        try:
            rival_nonce = int(rpc(anvil.url, "eth_getTransactionCount", rival.address,
                                  "latest"), 16)
            tx_hash = await sender.send(_Transfer(_sink()))
            waiter = asyncio.ensure_future(sender.wait(tx_hash, timeout_s=20))
            for _ in range(20):
                if any(e.kind == "replaced" for e in events):
                    break
                outbid(rival_nonce)
                rival_nonce += 1
                rpc(anvil.url, "evm_mine")
                await asyncio.sleep(0.25)
            rpc(anvil.url, "evm_setBlockGasLimit", hex(30_000_000))
            await _mine_until(anvil.url, waiter)
            return dict(await waiter)
        finally:
            rpc(anvil.url, "evm_setBlockGasLimit", hex(30_000_000))
            await sender.aclose()

    rpc(anvil.url, "evm_setBlockGasLimit", hex(40_000))  # one transfer per block
    receipt = asyncio.run(body())
    assert receipt["status"] == 1
    replaced = [e for e in events if e.kind == "replaced"]
    sent = next(e for e in events if e.kind == "sent")
    assert replaced and replaced[0].nonce == sent.nonce
    assert replaced[0].max_fee_wei > sent.max_fee_wei and replaced[0].tip_wei > sent.tip_wei


def test_live_03_transactions_waiting_in_line_behind_their_own_key_are_not_bumped(
        anvil: ManagedProcess) -> None:
    """A key's transactions are mined in nonce order: while blocks take them one at a time,
    the ones further back wait longer than ``replace_after_blocks`` in line, at a fair price;
    re-bidding them could not get them in sooner, so none is replaced and all land in order."""
    events: list[SendEvent] = []

    async def body() -> list[int]:
        sender = await TxSender.connect(anvil.url, KEY, fees=FeePolicy(replace_after_blocks=2),
                                        on_event=events.append)
        try:
            hashes = [await sender.send(_Transfer(_sink())) for _ in range(4)]
            waiters = asyncio.ensure_future(asyncio.gather(
                *(sender.wait(h, timeout_s=20) for h in hashes)))
            # Blocks slower than the sender polls the head, as on a chain: it sees every one.
            await _mine_until(anvil.url, waiters, every_s=0.25)
            return [int(r["blockNumber"]) for r in await waiters]
        finally:
            await sender.aclose()

    rpc(anvil.url, "evm_setBlockGasLimit", hex(40_000))  # one transfer per block
    try:
        blocks = asyncio.run(body())
    finally:
        rpc(anvil.url, "evm_setBlockGasLimit", hex(30_000_000))
    assert blocks == sorted(blocks) and len(set(blocks)) == 4  # one per block: a line of four
    assert [e.kind for e in events if e.kind == "replaced"] == []


def test_another_process_on_the_same_key_costs_a_resync_not_a_failure(
        anvil: ManagedProcess) -> None:
    events: list[SendEvent] = []

    async def body() -> list[int]:
        mine = await TxSender.connect(anvil.url, KEY, on_event=events.append)
        other = await TxSender.connect(anvil.url, KEY)  # e.g. the CLI with the relayer's key
        try:
            first = await other.send(_Transfer(_sink()))
            rpc(anvil.url, "evm_mine")
            await other.wait(first)
            second = await mine.send(_Transfer(_sink()))  # its nonce was taken meanwhile
            waiter = asyncio.ensure_future(mine.wait(second, timeout_s=20))
            await _mine_until(anvil.url, waiter)
            return [int((await waiter)["status"])]
        finally:
            await mine.aclose()
            await other.aclose()

    assert asyncio.run(body()) == [1]
    assert any(e.kind == "nonce_resync" for e in events)


def test_a_nonce_pending_from_another_process_is_passed_never_bid_over(
        anvil: ManagedProcess) -> None:
    """Two processes on one key send at the same nonce while neither is mined: the second is
    refused as an underpriced replacement. It must take the next nonce, not out-bid (and so
    drop) the other process's transaction; both are mined."""
    events: list[SendEvent] = []

    async def body() -> list[int]:
        mine = await TxSender.connect(anvil.url, KEY, on_event=events.append)
        other = await TxSender.connect(anvil.url, KEY)
        try:
            first = await other.send(_Transfer(_sink()))  # pending, same nonce as mine's next
            second = await mine.send(_Transfer(_sink(), value=2))  # another call, same nonce
            waiters = asyncio.ensure_future(asyncio.gather(other.wait(first, timeout_s=20),
                                                           mine.wait(second, timeout_s=20)))
            await _mine_until(anvil.url, waiters)
            receipts = await waiters
            return [int(r["status"]) for r in receipts]
        finally:
            await mine.aclose()
            await other.aclose()

    assert asyncio.run(body()) == [1, 1]
    assert not any(e.kind == "repriced" for e in events)
    assert any(e.kind == "nonce_resync" for e in events)


def test_a_price_above_the_cap_is_a_typed_refusal_and_nothing_is_sent(
        anvil: ManagedProcess) -> None:
    async def body() -> int:
        policy = FeePolicy(max_fee_wei=2 * GWEI)
        sender = await TxSender.connect(anvil.url, KEY, fees=policy)
        try:
            rpc(anvil.url, "anvil_setNextBlockBaseFeePerGas", hex(50 * GWEI))
            before = int(rpc(anvil.url, "eth_getTransactionCount", sender.address, "pending"), 16)
            with pytest.raises(FeeBudgetExhausted) as refused:
                await sender.send(_Transfer(_sink()))
            assert "fee" in str(refused.value)
            after = int(rpc(anvil.url, "eth_getTransactionCount", sender.address, "pending"), 16)
            rpc(anvil.url, "evm_mine")
            return after - before
        finally:
            await sender.aclose()

    assert asyncio.run(body()) == 0


def test_many_in_flight_from_one_key_all_land(anvil: ManagedProcess) -> None:
    async def body() -> list[int]:
        sender = await TxSender.connect(anvil.url, KEY)
        try:
            hashes = [await sender.send(_Transfer(_sink(), value=i + 1)) for i in range(20)]
            waiters = asyncio.ensure_future(
                asyncio.gather(*(sender.wait(h, timeout_s=20) for h in hashes)))
            await _mine_until(anvil.url, waiters)
            return [int(r["status"]) for r in await waiters]
        finally:
            await sender.aclose()

    assert asyncio.run(body()) == [1] * 20
