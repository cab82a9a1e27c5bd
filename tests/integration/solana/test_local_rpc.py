"""solana-py's AsyncClient against the local Solana RPC: every method Bulkhead uses, real values."""

from __future__ import annotations

import asyncio
import base64

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from devnet.process import ManagedProcess

from .conftest import rpc, rpc_raw

pytestmark = pytest.mark.integration


def test_slots_and_commitments_are_ordered_and_monotonic(solana_node: ManagedProcess) -> None:
    async def check() -> None:
        async with AsyncClient(solana_node.url) as client:
            assert await client.is_connected()
            first = [(await client.get_slot(c)).value for c in (Finalized, Confirmed, Processed)]
            assert first[0] <= first[1] <= first[2]
            await asyncio.sleep(0.3)
            later = (await client.get_slot(Processed)).value
            assert later > first[2]
            assert (await client.get_block_height(Processed)).value >= later
            bh_final = (await client.get_latest_blockhash(Finalized))
            bh_new = (await client.get_latest_blockhash(Processed))
            assert bh_final.context.slot < bh_new.context.slot
            assert bh_final.value.blockhash != bh_new.value.blockhash
            block = (await client.get_block(bh_final.context.slot, commitment=Finalized)).value
            assert block.blockhash == bh_final.value.blockhash
            assert (await client.get_block_time(bh_final.context.slot)).value == block.block_time
            assert (await client.get_version()).value.solana_core
            assert (await client.get_genesis_hash()).value
            assert (await client.get_minimum_balance_for_rent_exemption(165)).value > 0
            info = (await client.get_epoch_info(Processed)).value
            assert info.absolute_slot >= later

    asyncio.run(check())


def test_airdrop_transfer_statuses_and_history(solana_node: ManagedProcess) -> None:
    async def check() -> None:
        async with AsyncClient(solana_node.url, commitment=Confirmed) as client:
            sender, receiver = Keypair(), Keypair().pubkey()
            sig = (await client.request_airdrop(sender.pubkey(), 2 * 10**9)).value
            await client.confirm_transaction(sig, Confirmed, 0.1)
            assert (await client.get_balance(sender.pubkey())).value == 2 * 10**9
            latest = (await client.get_latest_blockhash(Confirmed)).value
            # Finality frozen before the transfer: the check below that a finalized read does
            # not see it yet must not depend on how fast this machine runs the checks between.
            rpc(solana_node.url, "bulkhead_holdFinality", True)
            msg = MessageV0.try_compile(sender.pubkey(), [transfer(TransferParams(
                from_pubkey=sender.pubkey(), to_pubkey=receiver, lamports=10**6))], [],
                latest.blockhash)
            sent = (await client.send_transaction(VersionedTransaction(msg, [sender]), TxOpts(
                skip_confirmation=False, preflight_commitment=Confirmed))).value
            status = (await client.get_signature_statuses([sent])).value[0]
            assert status is not None and status.err is None
            tx = (await client.get_transaction(sent, max_supported_transaction_version=0)).value
            assert tx is not None and tx.transaction.meta.fee == 5000
            assert tx.transaction.meta.post_balances[0] == 2 * 10**9 - 10**6 - 5000
            parsed = (await client.get_transaction(sent, "jsonParsed",
                                                   max_supported_transaction_version=0)).value
            assert parsed.slot == tx.slot
            history = (await client.get_signatures_for_address(sender.pubkey())).value
            assert [h.signature for h in history] == [sent, sig]  # newest first
            assert [h.signature for h in (await client.get_signatures_for_address(
                sender.pubkey(), before=sent)).value] == [sig]
            assert (await client.get_signatures_for_address(
                sender.pubkey(), until=sig)).value[0].signature == sent
            assert len((await client.get_signatures_for_address(sender.pubkey(), limit=1)).value) == 1
            # a finalized read does not see it yet... until finality catches up
            try:
                assert rpc(solana_node.url, "getTransaction", str(sent),
                           {"commitment": "finalized"}) is None
            finally:
                rpc(solana_node.url, "bulkhead_holdFinality", False)

    asyncio.run(check())


def test_preflight_failure_is_shaped_like_the_real_node(solana_node: ManagedProcess) -> None:
    async def check() -> None:
        async with AsyncClient(solana_node.url, commitment=Confirmed) as client:
            poor = Keypair()
            sig = (await client.request_airdrop(poor.pubkey(), 10**7)).value
            await client.confirm_transaction(sig, Confirmed, 0.1)
            latest = (await client.get_latest_blockhash(Processed)).value
            msg = MessageV0.try_compile(poor.pubkey(), [transfer(TransferParams(
                from_pubkey=poor.pubkey(), to_pubkey=Keypair().pubkey(), lamports=10**12))], [],
                latest.blockhash)
            with pytest.raises(RPCException) as info:
                await client.send_transaction(VersionedTransaction(msg, [poor]))
            error = info.value.args[0]
            assert isinstance(error, SendTransactionPreflightFailureMessage)
            assert "custom program error: 0x1" in error.message
            assert any("insufficient lamports" in line for line in error.data.logs)

    asyncio.run(check())
    payer = Keypair()
    blockhash = rpc(solana_node.url, "getLatestBlockhash", {"commitment": "processed"})
    msg = MessageV0.try_compile(payer.pubkey(), [transfer(TransferParams(
        from_pubkey=payer.pubkey(), to_pubkey=payer.pubkey(), lamports=1))], [],
        Hash.from_string(blockhash["value"]["blockhash"]))
    tampered = bytearray(bytes(VersionedTransaction(msg, [payer])))
    tampered[5] ^= 0xFF  # inside the signature
    raw = rpc_raw(solana_node.url, {"jsonrpc": "2.0", "id": 7, "method": "sendTransaction",
                                    "params": [base64.b64encode(bytes(tampered)).decode(),
                                               {"encoding": "base64"}]})
    assert raw["id"] == 7 and raw["error"]["code"] == -32003


def test_batch_unknown_method_processed_history_and_oversized_body(
    solana_node: ManagedProcess
) -> None:
    url = solana_node.url
    batch = rpc_raw(url, [{"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
                          {"jsonrpc": "2.0", "id": 2, "method": "noSuchMethod"}])
    assert batch[0]["result"] == "ok" and batch[1]["error"]["code"] == -32601
    refused = rpc_raw(url, {"jsonrpc": "2.0", "id": 3, "method": "getSignaturesForAddress",
                            "params": [str(Keypair().pubkey()), {"commitment": "processed"}]})
    assert refused["error"]["code"] == -32602  # as the real node: below `confirmed` refused
    big = rpc_raw(url, {"jsonrpc": "2.0", "id": 4, "method": "getHealth", "params": ["x" * 1_100_000]})
    assert big["error"]["code"] == -32600
