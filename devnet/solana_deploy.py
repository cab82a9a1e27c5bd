"""Set up the Solana side of a devnet through the RPC only (works against a real validator).

Creates a USDC-like SPL mint, an SPL Token multisig of the attesters (m of n), the vault
token account owned by that multisig (its associated token account, so anyone can derive
it), the seize token account (the payer's, acting as treasury, associated token account)
that seize settlements pay into, and funded token accounts for the traders. The result is the ``chains.solana`` entry of
the settings plus the traders' token accounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Processed
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_associated_token_account,
    get_associated_token_address,
    initialize_mint,
    initialize_multisig,
    mint_to_checked,
)
from spl.token.models import InitializeMintParams, InitializeMultisigParams, MintToCheckedParams

from chains.solana.locker import send_instructions

__all__ = ["SOLANA_CHAIN_ID", "USDC_DECIMALS", "SolanaDeployment", "deploy_solana"]

SOLANA_CHAIN_ID = 900001
USDC_DECIMALS = 6
MINT_SIZE, MULTISIG_SIZE = 82, 355
AIRDROP_LAMPORTS = 100 * 10**9
_TRADERS_PER_TX = 4


@dataclass(frozen=True, slots=True)
class SolanaDeployment:
    """``chain_section`` is a ``ChainSettings`` entry; ``extras`` holds
    ``trader_token_accounts`` (``{trader pubkey: {"USDC": token account}}``), ``mint``,
    ``multisig``, ``vault``, ``threshold`` and ``seize_token_account``."""

    chain_section: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)


async def _airdrop(client: AsyncClient, keys: Sequence[Pubkey]) -> None:
    sigs = [(await client.request_airdrop(k, AIRDROP_LAMPORTS, Confirmed)).value for k in keys]
    await asyncio.gather(*(client.confirm_transaction(s, Confirmed, 0.2) for s in sigs))


async def _rent(client: AsyncClient, size: int) -> int:
    return (await client.get_minimum_balance_for_rent_exemption(size)).value


async def deploy_solana(
    rpc_url: str,
    *,
    payer: Keypair,
    attesters: Sequence[Pubkey],
    threshold: int,
    traders: Sequence[Keypair],
    mint_per_trader: int,
) -> SolanaDeployment:
    """Deploy mint, attester multisig, vault and trader accounts; see the module docstring.

    Raises:
        ValueError: a threshold outside ``1..len(attesters)`` or more than 11 attesters
            (the SPL multisig limit).
        solana.rpc.core.RPCException: the node refused a transaction.
    """
    if not 1 <= threshold <= len(attesters) <= 11:
        raise ValueError("need 1 <= threshold <= len(attesters) <= 11")
    mint_kp, multisig_kp = Keypair(), Keypair()
    mint, multisig = mint_kp.pubkey(), multisig_kp.pubkey()
    vault = get_associated_token_address(multisig, mint)
    seize = get_associated_token_address(payer.pubkey(), mint)
    async with AsyncClient(rpc_url, commitment=Confirmed) as client:
        start_slot = (await client.get_slot(Processed)).value
        await _airdrop(client, [payer.pubkey(), *(t.pubkey() for t in traders)])
        setup: list[Instruction] = [
            create_account(CreateAccountParams(
                from_pubkey=payer.pubkey(), to_pubkey=mint, lamports=await _rent(client, MINT_SIZE),
                space=MINT_SIZE, owner=TOKEN_PROGRAM_ID)),
            initialize_mint(InitializeMintParams(
                decimals=USDC_DECIMALS, program_id=TOKEN_PROGRAM_ID, mint=mint,
                mint_authority=payer.pubkey())),
            create_account(CreateAccountParams(
                from_pubkey=payer.pubkey(), to_pubkey=multisig,
                lamports=await _rent(client, MULTISIG_SIZE), space=MULTISIG_SIZE,
                owner=TOKEN_PROGRAM_ID)),
            initialize_multisig(InitializeMultisigParams(
                program_id=TOKEN_PROGRAM_ID, multisig=multisig, m=threshold,
                signers=list(attesters))),
            create_associated_token_account(payer.pubkey(), multisig, mint),
            create_associated_token_account(payer.pubkey(), payer.pubkey(), mint),
        ]
        await send_instructions(client, payer, setup, signers=[mint_kp, multisig_kp])
        accounts: dict[str, dict[str, str]] = {}
        for i in range(0, len(traders), _TRADERS_PER_TX):
            ixs: list[Instruction] = []
            for trader in traders[i:i + _TRADERS_PER_TX]:
                ata = get_associated_token_address(trader.pubkey(), mint)
                accounts[str(trader.pubkey())] = {"USDC": str(ata)}
                ixs.append(create_associated_token_account(payer.pubkey(), trader.pubkey(), mint))
                ixs.append(mint_to_checked(MintToCheckedParams(
                    program_id=TOKEN_PROGRAM_ID, mint=mint, dest=ata,
                    mint_authority=payer.pubkey(), amount=mint_per_trader,
                    decimals=USDC_DECIMALS)))
            await send_instructions(client, payer, ixs)
    section = {
        "kind": "solana",
        "chain_id": SOLANA_CHAIN_ID,
        "rpc_urls": [rpc_url],
        "finality": {"mode": "tag", "tag": "finalized"},
        "vaults": [str(vault)],
        "assets": {"USDC": {"address": str(mint), "decimals": USDC_DECIMALS}},
        "contracts": {"multisig": str(multisig), "mint_authority": str(payer.pubkey()),
                      "seize_account": str(seize)},
        "deployment_height": start_slot,
    }
    extras = {"trader_token_accounts": accounts, "mint": str(mint), "multisig": str(multisig),
              "vault": str(vault), "threshold": threshold, "seize_token_account": str(seize)}
    return SolanaDeployment(chain_section=section, extras=extras)
