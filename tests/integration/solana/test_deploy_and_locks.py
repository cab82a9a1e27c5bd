"""Deploy, lock and watch through the local Solana RPC: the adapter's view of locks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientSession, web
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from spl.token._layouts import ACCOUNT_LAYOUT, MINT_LAYOUT, MULTISIG_LAYOUT
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import create_associated_token_account, get_associated_token_address

from chains.solana.adapter import SolanaAdapter
from chains.solana.codec import lock_id_for_signature
from chains.solana.locker import (
    lock_instructions,
    lock_on_solana,
    send_instructions,
    transfer_with_memo_text,
    transfer_without_memo,
)
from devnet.process import free_port
from shared.chain import Finality
from shared.errors import RpcUnavailable
from shared.events import LockEvent
from shared.ids import ZERO32, bytes32_hex
from shared.settings import ChainSettings

from .conftest import (
    BENEFICIARY,
    MINT_PER_TRADER,
    N_ATTESTERS,
    POSITION_KEY,
    THRESHOLD,
    VENUE,
    SolanaEnv,
    rpc,
    wait_finalized,
)

pytestmark = pytest.mark.integration


async def _lock(env: SolanaEnv, trader: Keypair, amount: int) -> str:
    return await lock_on_solana(
        env.url, trader=trader, trader_token_account=env.token_account(trader),
        vault_token_account=env.vault, mint=env.mint, decimals=6, amount=amount,
        dst_chain_id=31338, dst_venue=VENUE, position_key=POSITION_KEY, beneficiary=BENEFICIARY)


async def _events(env: SolanaEnv, finality: Finality, slot: int) -> list[LockEvent]:
    adapter = env.adapter(finality)
    try:
        return list(await adapter.lock_events(slot, slot))
    finally:
        await adapter.aclose()


async def _slot_of(env: SolanaEnv, signature: str) -> int:
    async with AsyncClient(env.url) as client:
        status = (await client.get_signature_statuses([Signature.from_string(signature)])).value[0]
        assert status is not None
        return status.slot


def test_deploy_creates_mint_multisig_vault_and_funded_traders(solana_env: SolanaEnv) -> None:
    env = solana_env
    section = ChainSettings(**env.deployment.chain_section)
    assert section.vaults == [str(env.vault)] and section.assets["USDC"].decimals == 6

    async def check() -> None:
        async with AsyncClient(env.url, commitment=Confirmed) as client:
            mint_acc = (await client.get_account_info(env.mint)).value
            assert mint_acc is not None and mint_acc.owner == TOKEN_PROGRAM_ID
            mint = MINT_LAYOUT.parse(bytes(mint_acc.data))
            assert mint.decimals == 6 and mint.supply == 2 * MINT_PER_TRADER
            assert Pubkey(mint.mint_authority) == env.payer.pubkey()
            multisig_key = Pubkey.from_string(env.deployment.extras["multisig"])
            ms = MULTISIG_LAYOUT.parse(bytes((await client.get_account_info(multisig_key)).value.data))
            assert (ms.m, ms.n, ms.is_initialized) == (THRESHOLD, N_ATTESTERS, 1)
            signers = [Pubkey(getattr(ms, f"signer{i + 1}")) for i in range(N_ATTESTERS)]
            assert signers == [a.pubkey() for a in env.attesters]
            vault = ACCOUNT_LAYOUT.parse(bytes((await client.get_account_info(env.vault)).value.data))
            assert Pubkey(vault.owner) == multisig_key and Pubkey(vault.mint) == env.mint
            assert env.vault == get_associated_token_address(multisig_key, env.mint)
            parsed = (await client.get_account_info_json_parsed(env.vault)).value
            assert parsed.data.parsed["info"]["owner"] == str(multisig_key)
            for trader in env.traders:
                bal = (await client.get_token_account_balance(env.token_account(trader))).value
                assert (bal.amount, bal.decimals) == (str(MINT_PER_TRADER), 6)

    asyncio.run(check())


def test_lock_is_seen_with_measured_amount_and_attributes(released_finality: SolanaEnv) -> None:
    env, trader = released_finality, released_finality.traders[0]
    signature = asyncio.run(_lock(env, trader, 1_234_567))
    slot = asyncio.run(_slot_of(env, signature))
    wait_finalized(env.url, slot)
    (event,) = asyncio.run(_events(env, Finality.FINALIZED, slot))
    assert event.attributed and event.amount == 1_234_567 and event.decimals == 6
    assert event.lock_id == lock_id_for_signature(signature) and event.tx_id == signature
    assert event.vault == bytes32_hex(bytes(env.vault))
    assert event.asset == bytes32_hex(bytes(env.mint))
    assert event.owner == bytes32_hex(bytes(trader.pubkey()))
    assert (event.dst_chain_id, event.position_key) == (31338, POSITION_KEY)
    assert event.dst_venue.lower() == VENUE and event.beneficiary.lower() == BENEFICIARY
    assert event.height == slot and event.block_hash == rpc(
        env.url, "getBlock", slot, {"transactionDetails": "none"})["blockhash"]
    # idempotent over overlapping ranges
    again = asyncio.run(env.adapter().lock_events(slot - 3, slot + 3))
    assert [e.lock_id for e in again if e.tx_id == signature] == [event.lock_id]


def test_lock_reaches_finalized_only_after_finality(released_finality: SolanaEnv) -> None:
    env = released_finality
    rpc(env.url, "bulkhead_holdFinality", True)
    signature = asyncio.run(_lock(env, env.traders[1], 5_000_000))
    slot = asyncio.run(_slot_of(env, signature))
    rpc(env.url, "bulkhead_advanceSlots", 20)
    assert rpc(env.url, "getSlot", {"commitment": "finalized"}) < slot
    assert asyncio.run(_events(env, Finality.FINALIZED, slot)) == []
    (seen,) = asyncio.run(_events(env, Finality.SAFE, slot))
    assert seen.amount == 5_000_000
    status = rpc(env.url, "getSignatureStatuses", [signature])["value"][0]
    assert status["confirmationStatus"] == "confirmed"
    rpc(env.url, "bulkhead_holdFinality", False)
    wait_finalized(env.url, slot)
    (final,) = asyncio.run(_events(env, Finality.FINALIZED, slot))
    assert final == seen
    status = rpc(env.url, "getSignatureStatuses", [signature])["value"][0]
    assert status["confirmationStatus"] == "finalized" and status["confirmations"] is None


def test_src04_lock_dropped_before_finality_never_appears(fresh_solana_env: SolanaEnv) -> None:
    env, trader = fresh_solana_env, fresh_solana_env.traders[0]
    held = rpc(env.url, "bulkhead_holdFinality", True)
    # A slot past the held finalized one first: on a young (or starved) clock the processed
    # slot can still equal the finalized one, and a lock landing there would already be final.
    rpc(env.url, "bulkhead_advanceSlots", 1)
    signature = asyncio.run(_lock(env, trader, 7_000_000))
    slot = asyncio.run(_slot_of(env, signature))
    assert slot > held
    rpc(env.url, "bulkhead_advanceSlots", 2)
    assert len(asyncio.run(_events(env, Finality.SAFE, slot))) == 1
    assert rpc(env.url, "getSignatureStatuses", [signature])["value"][0] is not None
    dropped = rpc(env.url, "bulkhead_dropUnfinalized")
    assert signature in dropped
    assert rpc(env.url, "getSignatureStatuses", [signature])["value"] == [None]
    assert rpc(env.url, "getTokenAccountBalance", str(env.token_account(trader)))["value"][
        "amount"] == str(MINT_PER_TRADER)
    rpc(env.url, "bulkhead_holdFinality", False)
    wait_finalized(env.url, slot + 2)
    assert asyncio.run(_events(env, Finality.FINALIZED, slot)) == []
    assert asyncio.run(_events(env, Finality.SAFE, slot)) == []
    assert rpc(env.url, "getTransaction", signature, {"commitment": "confirmed"}) is None


@pytest.mark.parametrize("memo", [None, "bulkhead:v1:lock:0:bad", "hello"],
                         ids=["no-memo", "malformed-memo", "foreign-memo"])
def test_unattributed_deposits_are_reported_not_attributed(
    solana_env: SolanaEnv, memo: str | None
) -> None:
    env, trader = solana_env, solana_env.traders[1]
    common: dict[str, Any] = {
        "trader": trader, "trader_token_account": env.token_account(trader),
        "dest_token_account": env.vault, "mint": env.mint, "decimals": 6, "amount": 42}
    signature = asyncio.run(
        transfer_without_memo(env.url, **common) if memo is None
        else transfer_with_memo_text(env.url, memo=memo, **common))
    slot = asyncio.run(_slot_of(env, signature))
    (event,) = asyncio.run(_events(env, Finality.SAFE, slot))
    assert not event.attributed and event.unattributed_reason
    assert event.amount == 42 and event.position_key == ZERO32 and event.dst_chain_id == 0
    assert int(event.beneficiary, 16) == 0 and int(event.dst_venue, 16) == 0
    assert event.owner == bytes32_hex(bytes(trader.pubkey()))  # so it can be refunded


def test_transfer_to_unregistered_account_and_failed_tx_are_ignored(solana_env: SolanaEnv) -> None:
    env, trader = solana_env, solana_env.traders[0]
    stranger = Keypair().pubkey()
    other = get_associated_token_address(stranger, env.mint)

    async def scenario() -> tuple[str, str]:
        async with AsyncClient(env.url) as client:
            await send_instructions(client, env.payer, [
                create_associated_token_account(env.payer.pubkey(), stranger, env.mint)])
        ok = await transfer_without_memo(
            env.url, trader=trader, trader_token_account=env.token_account(trader),
            dest_token_account=other, mint=env.mint, decimals=6, amount=10)
        # more than the balance: lands as failed only because preflight is skipped
        ixs = lock_instructions(
            trader=trader, trader_token_account=env.token_account(trader),
            vault_token_account=env.vault, mint=env.mint, decimals=6, amount=10**18,
            dst_chain_id=31338, dst_venue=VENUE, position_key=POSITION_KEY,
            beneficiary=BENEFICIARY)
        async with AsyncClient(env.url) as client:
            failed = await send_instructions(client, trader, ixs, skip_preflight=True)
        return ok, failed

    ok, failed = asyncio.run(scenario())
    tx = rpc(env.url, "getTransaction", failed, {"commitment": "confirmed",
                                                 "maxSupportedTransactionVersion": 0})
    assert tx["meta"]["err"] is not None
    start = asyncio.run(_slot_of(env, ok))
    end = asyncio.run(_slot_of(env, failed))
    events = asyncio.run(env.adapter(Finality.SAFE).lock_events(start, end))
    assert [e for e in events if e.tx_id in (ok, failed)] == []


def test_head_and_block_hash(solana_env: SolanaEnv) -> None:
    async def check() -> None:
        adapter = solana_env.adapter()
        try:
            latest = await adapter.head(Finality.LATEST)
            safe = await adapter.head(Finality.SAFE)
            final = await adapter.head(Finality.FINALIZED)
            assert final.height <= safe.height <= latest.height
            assert await adapter.block_hash(final.height) == final.hash
            assert await adapter.block_hash(latest.height + 1000) is None
            later = await adapter.head(Finality.FINALIZED)
            assert later.height >= final.height
        finally:
            await adapter.aclose()

    asyncio.run(check())


def test_a_range_of_many_locks_is_read_in_batches_in_chain_order(solana_env: SolanaEnv) -> None:
    """More locks in one range than one JSON-RPC batch of transactions holds: every one is read
    once, decoded with its own amount, in chain order."""
    env, trader = solana_env, solana_env.traders[0]
    amounts = [3_000_000 + i for i in range(230)]

    async def burst() -> list[str]:
        async with AsyncClient(env.url) as client:
            async def one(amount: int) -> str:
                return await send_instructions(client, trader, lock_instructions(
                    trader=trader, trader_token_account=env.token_account(trader),
                    vault_token_account=env.vault, mint=env.mint, decimals=6, amount=amount,
                    dst_chain_id=31338, dst_venue=VENUE, position_key=POSITION_KEY,
                    beneficiary=BENEFICIARY))
            return list(await asyncio.gather(*(one(a) for a in amounts)))

    signatures = asyncio.run(burst())
    slots = [asyncio.run(_slot_of(env, s)) for s in signatures]
    events = [e for e in asyncio.run(env.adapter(Finality.SAFE).lock_events(min(slots), max(slots)))
              if e.tx_id in set(signatures)]
    assert sorted(e.tx_id for e in events) == sorted(signatures)  # each once
    by_tx = dict(zip(signatures, amounts, strict=True))
    assert all(e.amount == by_tx[e.tx_id] and e.attributed for e in events)
    assert [e.height for e in events] == sorted(e.height for e in events)


def test_a_node_answering_a_transaction_batch_with_junk_is_a_typed_rpc_failure(
        solana_env: SolanaEnv) -> None:
    """The node's answers are input: a batch of transactions answered with junk (here by a
    proxy in front of the real node that rewrites batch answers) is ``RpcUnavailable`` naming
    the batch, never a parser's exception and never a decoded lock."""
    env = solana_env
    signature = asyncio.run(_lock(env, env.traders[0], 7_000_000))
    slot = asyncio.run(_slot_of(env, signature))

    async def scenario() -> str:
        async def forward(request: web.Request) -> web.Response:
            body = await request.json()
            async with ClientSession() as session, session.post(env.url, json=body) as up:
                answer = await up.json()
            if isinstance(body, list):  # the batch of getTransaction: junk for each
                answer = [{"jsonrpc": "2.0", "id": a["id"], "result": "junk"} for a in answer]
            return web.json_response(answer)

        app = web.Application()
        app.router.add_post("/", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        adapter = env.adapter(Finality.SAFE)
        hostile = SolanaAdapter(adapter.chain, [f"http://127.0.0.1:{port}"],
                                vaults=adapter.vaults, assets=adapter.assets,
                                finality=Finality.SAFE, retry=adapter.retry)
        try:
            with pytest.raises(RpcUnavailable) as err:
                await hostile.lock_events(slot, slot)
            return str(err.value)
        finally:
            await hostile.aclose()
            await adapter.aclose()
            await runner.cleanup()

    assert "getTransaction batch: malformed answer" in asyncio.run(scenario())
