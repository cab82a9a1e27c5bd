"""Settlements out of the multisig vault on the local Solana RPC: m of n, idempotency, expiry."""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chains.solana.locker import transfer_with_memo_text
from chains.solana.settlement import (
    ensure_token_account,
    fetch_recent_blockhash,
    find_settlement,
    submit_settlement,
)
from chains.solana.settlement_codec import (
    SettlementExpectation,
    build_settlement_message,
    destination_for,
    settle_memo,
    sign_message,
    verify_settlement_message,
)
from shared.errors import RpcUnavailable, TxExpired, TxRejected
from shared.messages import SettlementKind

from .conftest import SolanaEnv, rpc

pytestmark = pytest.mark.integration

LOCK_ID = bytes.fromhex("11" * 32)


def _expectation(
    env: SolanaEnv, kind: SettlementKind, amount: int, destination: Pubkey
) -> SettlementExpectation:
    return SettlementExpectation(
        settlement_id=os.urandom(32), lock_id=LOCK_ID, kind=kind, amount=amount,
        vault=env.vault, mint=env.mint, decimals=6, multisig=env.multisig,
        destination=destination)


def _propose(
    env: SolanaEnv, want: SettlementExpectation, signers: list[Keypair], blockhash: Hash
) -> tuple[bytes, dict[Pubkey, bytes]]:
    """The relayer's proposal, then each attester's check and signature."""
    message = bytes(build_settlement_message(
        **asdict(want), signers=[a.pubkey() for a in signers], fee_payer=env.payer.pubkey(),
        recent_blockhash=blockhash))
    signatures = {}
    for attester in signers:
        verify_settlement_message(message, expected=want, attester=attester.pubkey())
        signatures[attester.pubkey()] = sign_message(message, attester)
    return message, signatures


async def _settle(env: SolanaEnv, want: SettlementExpectation, signers: list[Keypair]) -> str:
    blockhash, last_valid = await fetch_recent_blockhash(env.url)
    message, signatures = _propose(env, want, signers, blockhash)
    return await submit_settlement(env.url, message, signatures, env.payer,
                                   last_valid_block_height=last_valid)


def test_release_by_3_of_4_moves_exactly_the_amount_to_the_owner_ata(
    funded_vault: SolanaEnv,
) -> None:
    env, owner = funded_vault, Keypair().pubkey()
    ata = asyncio.run(ensure_token_account(env.url, env.payer, owner, env.mint))
    assert asyncio.run(ensure_token_account(env.url, env.payer, owner, env.mint)) == ata
    destination = destination_for(SettlementKind.RELEASE, owner_wallet=owner, mint=env.mint,
                                  seize_token_account=env.seize_token_account)
    assert destination == ata
    want = _expectation(env, SettlementKind.RELEASE, 1_250_000, destination)
    vault_before = env.token_balance(env.vault)
    signature = asyncio.run(_settle(env, want, env.attesters[1:]))
    assert env.token_balance(env.vault) == vault_before - 1_250_000
    assert env.token_balance(ata) == 1_250_000
    found = asyncio.run(find_settlement(env.url, env.vault, want.settlement_id))
    assert found == signature
    assert asyncio.run(find_settlement(env.url, env.vault, os.urandom(32))) is None
    tx = rpc(env.url, "getTransaction", signature, {"commitment": "confirmed"})
    memo = settle_memo(want.settlement_id, LOCK_ID, SettlementKind.RELEASE)
    assert memo.startswith("bulkhead:v1:settle:0x") and memo.endswith(":1")
    assert tx["meta"]["err"] is None


def test_two_of_four_signatures_cannot_move_the_vault(funded_vault: SolanaEnv) -> None:
    env = funded_vault
    want = _expectation(env, SettlementKind.SEIZE, 1_000_000, env.seize_token_account)
    before = env.token_balance(env.vault), env.token_balance(env.seize_token_account)

    async def scenario() -> None:
        blockhash, last_valid = await fetch_recent_blockhash(env.url)
        two = env.attesters[:2]
        message, signatures = _propose(env, want, two, blockhash)
        with pytest.raises(TxRejected) as refused:  # the multisig itself refuses 2 of 3
            await submit_settlement(env.url, message, signatures, env.payer,
                                    last_valid_block_height=last_valid)
        assert refused.value.tx_id is not None and "Instruction 0" in refused.value.reason
        message, signatures = _propose(env, want, env.attesters[:3], blockhash)
        del signatures[env.attesters[2].pubkey()]
        with pytest.raises(TxRejected, match="missing the signature") as missing:
            await submit_settlement(env.url, message, signatures, env.payer)
        assert missing.value.tx_id is None
        signatures[env.attesters[2].pubkey()] = sign_message(message, env.attesters[3])
        with pytest.raises(TxRejected, match="invalid signature"):
            await submit_settlement(env.url, message, signatures, env.payer)

    asyncio.run(scenario())
    assert (env.token_balance(env.vault), env.token_balance(env.seize_token_account)) == before
    assert asyncio.run(find_settlement(env.url, env.vault, want.settlement_id)) is None


def test_seize_goes_to_the_seize_account(funded_vault: SolanaEnv) -> None:
    env = funded_vault
    destination = destination_for(SettlementKind.SEIZE, owner_wallet=Keypair().pubkey(),
                                  mint=env.mint, seize_token_account=env.seize_token_account)
    assert destination == env.seize_token_account
    want = _expectation(env, SettlementKind.SEIZE, 3_000_000, destination)
    vault_before, seize_before = env.token_balance(env.vault), env.token_balance(destination)
    signature = asyncio.run(_settle(env, want, env.attesters[:3]))
    assert env.token_balance(env.vault) == vault_before - 3_000_000
    assert env.token_balance(destination) == seize_before + 3_000_000
    assert asyncio.run(find_settlement(env.url, env.vault, want.settlement_id)) == signature


def test_find_settlement_ignores_a_forged_memo_that_does_not_debit_the_vault(
    funded_vault: SolanaEnv,
) -> None:
    env, trader = funded_vault, funded_vault.traders[1]
    settlement_id = os.urandom(32)
    asyncio.run(transfer_with_memo_text(
        env.url, trader=trader, trader_token_account=env.token_account(trader),
        dest_token_account=env.vault, mint=env.mint, decimals=6, amount=1,
        memo=settle_memo(settlement_id, LOCK_ID, SettlementKind.RELEASE)))
    assert asyncio.run(find_settlement(env.url, env.vault, settlement_id)) is None


def test_expired_blockhash_raises_tx_expired_and_a_reproposal_lands(
    funded_vault: SolanaEnv,
) -> None:
    env = funded_vault
    want = _expectation(env, SettlementKind.RELEASE, 500_000, env.token_account(env.traders[1]))
    before = env.token_balance(want.destination)

    async def scenario() -> str:
        blockhash, last_valid = await fetch_recent_blockhash(env.url)
        message, signatures = _propose(env, want, env.attesters[:3], blockhash)
        rpc(env.url, "bulkhead_advanceSlots", 160)
        with pytest.raises(TxExpired):
            await submit_settlement(env.url, message, signatures, env.payer,
                                    last_valid_block_height=last_valid)
        assert await find_settlement(env.url, env.vault, want.settlement_id) is None
        return await _settle(env, want, env.attesters[:3])  # re-proposed, fresh blockhash

    signature = asyncio.run(scenario())
    assert env.token_balance(want.destination) == before + 500_000
    assert asyncio.run(find_settlement(env.url, env.vault, want.settlement_id)) == signature


def test_resending_the_same_bytes_pays_once(funded_vault: SolanaEnv) -> None:
    env = funded_vault
    want = _expectation(env, SettlementKind.SEIZE, 700_000, env.seize_token_account)
    before = env.token_balance(env.seize_token_account)

    async def scenario() -> tuple[str, str]:
        blockhash, last_valid = await fetch_recent_blockhash(env.url)
        message, signatures = _propose(env, want, env.attesters[:3], blockhash)
        rpc(env.url, "bulkhead_stallSlots")
        try:  # lands at processed, but the stalled clock never confirms it
            with pytest.raises(RpcUnavailable, match="neither confirmed nor expired"):
                await submit_settlement(env.url, message, signatures, env.payer,
                                        last_valid_block_height=last_valid, timeout_s=0.5)
        finally:
            rpc(env.url, "bulkhead_resumeSlots")
        again = await submit_settlement(env.url, message, signatures, env.payer,
                                        last_valid_block_height=last_valid)
        return again, str(await find_settlement(env.url, env.vault, want.settlement_id))

    again, found = asyncio.run(scenario())
    assert again == found
    assert env.token_balance(env.seize_token_account) == before + 700_000
