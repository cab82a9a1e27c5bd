"""The trader's side of a Solana lock (DESIGN §2.2): one transaction, TransferChecked + Memo.

This is what a wallet or a partner's CI does; Bulkhead itself only watches. The variants
without a memo or with a free-form memo exist so tests (and operators rehearsing refunds)
can produce the "unattributed" transfers the watcher must report but never credit.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams

from chains.solana.codec import format_lock_memo
from shared.errors import InputError, RpcUnavailable, TxRejected
from shared.ids import Bytes32Hex

__all__ = [
    "lock_instructions",
    "lock_on_solana",
    "send_instructions",
    "transfer_with_memo_text",
    "transfer_without_memo",
]


async def send_instructions(
    client: AsyncClient,
    payer: Keypair,
    instructions: Sequence[Instruction],
    *,
    signers: Sequence[Keypair] = (),
    commitment: Commitment = Confirmed,
    skip_preflight: bool = False,
) -> str:
    """Sign with a fresh blockhash, send, and wait until ``commitment``; returns the signature.

    Raises:
        solana.rpc.core.RPCException: preflight failed (callers in tests inspect it).
        solana.rpc.core.TransactionExpiredBlockheightExceededError: never confirmed in time.
    """
    latest = (await client.get_latest_blockhash(commitment)).value
    message = MessageV0.try_compile(payer.pubkey(), list(instructions), [], latest.blockhash)
    unique = {bytes(k.pubkey()): k for k in (payer, *signers)}
    tx = VersionedTransaction(message, list(unique.values()))
    opts = TxOpts(skip_confirmation=False, skip_preflight=skip_preflight,
                  preflight_commitment=commitment,
                  last_valid_block_height=latest.last_valid_block_height)
    resp = await client.send_transaction(tx, opts)
    return str(resp.value)


def _transfer(
    trader: Keypair, source: Pubkey, dest: Pubkey, mint: Pubkey, decimals: int, amount: int
) -> Instruction:
    if amount <= 0:
        raise ValueError("amount must be a positive number of base units")
    return transfer_checked(TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=source, mint=mint, dest=dest,
        owner=trader.pubkey(), amount=amount, decimals=decimals))


def _memo(trader: Keypair, text: str) -> Instruction:
    return create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=trader.pubkey(),
                                  message=text.encode()))


def lock_instructions(
    *,
    trader: Keypair,
    trader_token_account: Pubkey,
    vault_token_account: Pubkey,
    mint: Pubkey,
    decimals: int,
    amount: int,
    dst_chain_id: int,
    dst_venue: str,
    position_key: Bytes32Hex | str,
    beneficiary: str,
) -> list[Instruction]:
    """TransferChecked into the vault followed by the lock memo.

    Raises:
        MemoMalformed: a destination field the watcher would refuse (checked before sending).
        ValueError: a non-positive amount.
    """
    memo = format_lock_memo(dst_chain_id, dst_venue, position_key, beneficiary)
    return [
        _transfer(trader, trader_token_account, vault_token_account, mint, decimals, amount),
        _memo(trader, memo),
    ]


async def lock_on_solana(
    rpc_url: str,
    *,
    trader: Keypair,
    trader_token_account: Pubkey,
    vault_token_account: Pubkey,
    mint: Pubkey,
    decimals: int,
    amount: int,
    dst_chain_id: int,
    dst_venue: str,
    position_key: Bytes32Hex | str,
    beneficiary: str,
    commitment: Commitment = Confirmed,
) -> str:
    """Lock ``amount`` base units for a position on ``dst_chain_id``; returns the signature.

    The trader pays the fee and signs as the token account's owner.

    Raises:
        MemoMalformed: an invalid destination (nothing is sent).
        TxRejected: the node refused the transaction (e.g. insufficient funds).
        RpcUnavailable: the node could not be reached.
    """
    ixs = lock_instructions(
        trader=trader, trader_token_account=trader_token_account,
        vault_token_account=vault_token_account, mint=mint, decimals=decimals, amount=amount,
        dst_chain_id=dst_chain_id, dst_venue=dst_venue, position_key=position_key,
        beneficiary=beneficiary)
    return await _send(rpc_url, trader, ixs, commitment)


async def _send(rpc_url: str, trader: Keypair, ixs: list[Instruction],
                commitment: Commitment) -> str:
    """Send with library errors converted at this edge."""
    try:
        async with AsyncClient(rpc_url) as client:
            return await send_instructions(client, trader, ixs, commitment=commitment)
    except RPCException as exc:  # the node answered: preflight or signature refusal
        raise TxRejected("solana", None, _rpc_reason(exc)) from exc
    except (SolanaRpcException, httpx2.HTTPError, OSError) as exc:
        raise RpcUnavailable("solana", rpc_url, str(exc) or type(exc).__name__) from exc


def _rpc_reason(exc: RPCException) -> str:
    arg = exc.args[0] if exc.args else exc
    message = getattr(arg, "message", None)
    return str(message if message is not None else arg)


async def transfer_without_memo(
    rpc_url: str,
    *,
    trader: Keypair,
    trader_token_account: Pubkey,
    dest_token_account: Pubkey,
    mint: Pubkey,
    decimals: int,
    amount: int,
    commitment: Commitment = Confirmed,
) -> str:
    """A plain TransferChecked (no memo): an unattributed deposit if ``dest`` is a vault."""
    ix = _transfer(trader, trader_token_account, dest_token_account, mint, decimals, amount)
    return await _send(rpc_url, trader, [ix], commitment)


async def transfer_with_memo_text(
    rpc_url: str,
    *,
    trader: Keypair,
    trader_token_account: Pubkey,
    dest_token_account: Pubkey,
    mint: Pubkey,
    decimals: int,
    amount: int,
    memo: str,
    commitment: Commitment = Confirmed,
) -> str:
    """TransferChecked plus an arbitrary, unchecked memo (e.g. a malformed lock memo)."""
    ixs = [_transfer(trader, trader_token_account, dest_token_account, mint, decimals, amount),
           _memo(trader, memo)]
    return await _send(rpc_url, trader, ixs, commitment)


async def lock_from_secret(
    rpc_url: str,
    *,
    secret: bytes,
    token_account: str | None,
    vault_token_account: str,
    mint: str,
    decimals: int,
    amount: int,
    dst_chain_id: int,
    dst_venue: str,
    position_key: Bytes32Hex | str,
    beneficiary: str,
) -> str:
    """:func:`lock_on_solana` from plain values: a 64-byte keypair secret and base58 accounts
    (``token_account`` None: the trader's associated token account of ``mint``).

    Raises:
        InputError: a malformed secret or account. Otherwise as :func:`lock_on_solana`.
    """
    from spl.token.instructions import get_associated_token_address

    try:
        trader = Keypair.from_bytes(secret)
        mint_key = Pubkey.from_string(mint)
        vault = Pubkey.from_string(vault_token_account)
        source = (Pubkey.from_string(token_account) if token_account
                  else get_associated_token_address(trader.pubkey(), mint_key))
    except ValueError as exc:
        raise InputError("key_file", f"not a Solana keypair or account: {exc}") from exc
    return await lock_on_solana(
        rpc_url, trader=trader, trader_token_account=source, vault_token_account=vault,
        mint=mint_key, decimals=decimals, amount=amount, dst_chain_id=dst_chain_id,
        dst_venue=dst_venue, position_key=position_key, beneficiary=beneficiary)
