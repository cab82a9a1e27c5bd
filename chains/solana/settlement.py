"""Settlements out of the Solana vault (DESIGN §2.4): one SPL multisig transfer plus a memo.

The vault token account is owned by an SPL Token multisig of the attesters' ed25519 keys, so
a release (to the owner's associated token account) or a seize (to the seize account) is a
``TransferChecked`` whose owner is the multisig and whose signers are m attesters. The relayer
proposes the message (:func:`build_settlement_message`), each attester checks it against what
it observed itself (:func:`verify_settlement_message`) and signs the bytes (:func:`sign_message`),
and the relayer assembles and sends it (:func:`submit_settlement`).

The memo ``bulkhead:v1:settle:<settlementId>:<lockId>:<kind>`` is the on-chain idempotency
marker: :func:`find_settlement` looks for it in the vault's history, so callers check before
submitting and a retry never pays twice. A message lives as long as its blockhash (150
blocks); on :class:`TxExpired` the caller re-proposes with a fresh blockhash (DESIGN's
"re-propose on blockhash expiry") after checking :func:`find_settlement` again.

SECURITY (callers): nothing on chain makes the memo unique, so a settlement id must never have
two live messages. An attester signs a new message for a settlement id only once the previous
one's last valid block height has passed and :func:`find_settlement` finds nothing; otherwise
two proposals (other blockhash or fee payer) could both land and pay twice. :class:`TxExpired`
is raised only once the confirmed block height is past that height.

The builder and the checks are pure; the ``async`` functions do I/O through solana-py's
``AsyncClient`` and convert every library or transport error at the edge to
``shared.errors`` types.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.errors import (
    InternalErrorMessage,
    MinContextSlotNotReachedMessage,
    NodeUnhealthyMessage,
    SendTransactionPreflightFailureMessage,
)
from solders.signature import Signature
from solders.transaction import Transaction
from solders.transaction_status import TransactionConfirmationStatus, TransactionErrorFieldless
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
)

from chains.solana.settlement_codec import (
    SETTLE_MEMO_PREFIX,
    ExecutedTransfer,
    executed_transfer,
    message_from_bytes,
    settlement_id_hex,
)
from shared.errors import RpcUnavailable, TxExpired, TxRejected

__all__ = [
    "MAX_BLOCKHASH_AGE",
    "ensure_token_account",
    "executed_settlements",
    "fetch_recent_blockhash",
    "find_settlement",
    "submit_settlement",
]

CHAIN = "solana"
MAX_BLOCKHASH_AGE = 150  # blocks a blockhash stays valid on the cluster
_PAGE = 1000
_POLL_S = 0.2
_CONFIRMED = (TransactionConfirmationStatus.Confirmed, TransactionConfirmationStatus.Finalized)


# --- I/O: the edge --------------------------------------------------------------------------


def _client(rpc_url: str) -> AsyncClient:
    return AsyncClient(rpc_url, timeout=10)


def _unavailable(rpc_url: str, op: str, exc: Exception) -> RpcUnavailable:
    return RpcUnavailable(CHAIN, rpc_url, f"{op}: {str(exc) or type(exc).__name__}")


_TRANSPORT = (SolanaRpcException, httpx2.HTTPError, OSError)
_NODE_BUSY = (NodeUnhealthyMessage, MinContextSlotNotReachedMessage, InternalErrorMessage)


async def fetch_recent_blockhash(
    rpc_url: str, *, commitment: Commitment = Confirmed
) -> tuple[Hash, int]:
    """A blockhash for a new settlement message and its last valid block height.

    Raises:
        RpcUnavailable: the node could not be reached or refused the read.
    """
    try:
        async with _client(rpc_url) as client:
            value = (await client.get_latest_blockhash(commitment)).value
    except (RPCException, *_TRANSPORT) as exc:
        raise _unavailable(rpc_url, "getLatestBlockhash", exc) from exc
    return value.blockhash, value.last_valid_block_height


def _assemble(
    message_bytes: bytes, signatures: Mapping[Pubkey, bytes], fee_payer: Keypair
) -> Transaction:
    message = message_from_bytes(message_bytes)
    keys = list(message.account_keys)[:message.header.num_required_signatures]
    if not keys or keys[0] != fee_payer.pubkey():
        raise TxRejected(CHAIN, None, "the message's fee payer is not the relayer's key")
    sigs = []
    for key in keys:
        if key == fee_payer.pubkey():
            sigs.append(fee_payer.sign_message(message_bytes))
            continue
        raw = signatures.get(key)
        if raw is None:
            raise TxRejected(CHAIN, None, f"missing the signature of required signer {key}")
        sig = Signature.from_bytes(raw) if len(raw) == 64 else None
        if sig is None or not sig.verify(key, message_bytes):
            raise TxRejected(CHAIN, None, f"invalid signature from {key}")
        sigs.append(sig)
    return Transaction.populate(message, sigs)


def _send_error(rpc_url: str, signature: str, exc: RPCException) -> Exception | None:
    """The error to raise for a refused send; None when confirmation decides the outcome."""
    error = exc.args[0] if exc.args else None
    if isinstance(error, SendTransactionPreflightFailureMessage) and error.data.err in (
            TransactionErrorFieldless.AlreadyProcessed, TransactionErrorFieldless.BlockhashNotFound):
        # Already processed: the same bytes landed before. Blockhash not found: expired, or
        # too new for a lagging node; only the block height can tell, so _await_confirmed does.
        return None
    if isinstance(error, _NODE_BUSY):
        return _unavailable(rpc_url, "sendTransaction", exc)
    reason = getattr(error, "message", None) or str(error)
    return TxRejected(CHAIN, signature, str(reason))


async def _await_confirmed(
    client: AsyncClient, rpc_url: str, signature: str, last_valid: int, timeout_s: float
) -> None:
    """Poll until ``confirmed``; TxExpired once the confirmed height passes ``last_valid``."""
    sig, deadline = Signature.from_string(signature), time.monotonic() + timeout_s
    while True:
        status = (await client.get_signature_statuses([sig])).value[0]
        if status is not None and status.confirmation_status in _CONFIRMED:
            if status.err is not None:
                raise TxRejected(CHAIN, signature, f"failed on chain: {status.err}")
            return
        if status is None and (await client.get_block_height(Confirmed)).value > last_valid:
            # INVARIANT: past its last valid height a transaction can never land, so the
            # caller may re-propose (after checking find_settlement) without paying twice.
            if (await client.get_signature_statuses([sig])).value[0] is None:
                raise TxExpired(CHAIN, signature)
            continue
        if time.monotonic() > deadline:
            raise RpcUnavailable(CHAIN, rpc_url,
                                 f"{signature} neither confirmed nor expired in {timeout_s}s")
        await asyncio.sleep(_POLL_S)


async def _send_and_confirm(
    rpc_url: str, tx: Transaction, last_valid: int | None, timeout_s: float
) -> str:
    signature = str(tx.signatures[0])
    try:
        async with _client(rpc_url) as client:
            if last_valid is None:  # an upper bound: the blockhash is at most this recent
                last_valid = (await client.get_block_height(Processed)).value + MAX_BLOCKHASH_AGE
            try:
                await client.send_raw_transaction(bytes(tx), TxOpts(
                    skip_confirmation=True, preflight_commitment=Confirmed))
            except RPCException as exc:
                if (error := _send_error(rpc_url, signature, exc)) is not None:
                    raise error from exc
            await _await_confirmed(client, rpc_url, signature, last_valid, timeout_s)
    except RPCException as exc:
        raise _unavailable(rpc_url, "confirm", exc) from exc
    except _TRANSPORT as exc:
        raise _unavailable(rpc_url, "sendTransaction", exc) from exc
    return signature


async def submit_settlement(
    rpc_url: str,
    message_bytes: bytes,
    signatures: Mapping[Pubkey, bytes],
    fee_payer: Keypair,
    *,
    last_valid_block_height: int | None = None,
    timeout_s: float = 120.0,
) -> str:
    """Assemble the transaction (fee payer signs too), send it, wait for ``confirmed``.

    ``signatures`` maps each attester to its 64-byte signature over ``message_bytes``; keys
    the message does not need are ignored. Sending the same bytes again is safe: an already
    processed transaction is simply confirmed. Without ``last_valid_block_height`` an upper
    bound (the node's newest block height + 150) is used, so expiry is detected later, never
    wrongly; pass the value :func:`fetch_recent_blockhash` returned when you have it.

    Returns:
        The transaction signature (base58), which is also its id.

    Raises:
        TxRejected: a required signature is missing or invalid (nothing is sent), or the node
            refused or failed the transaction (e.g. fewer than m multisig signers).
        TxExpired: the confirmed block height passed the last valid one and the transaction
            had not landed: it never can now. Re-propose with a fresh blockhash.
        RpcUnavailable: the node could not be reached, or no outcome within ``timeout_s``.
        SettlementMessageMismatch: ``message_bytes`` is not a legacy message.
    """
    tx = _assemble(bytes(message_bytes), signatures, fee_payer)
    return await _send_and_confirm(rpc_url, tx, last_valid_block_height, timeout_s)


# --- I/O: idempotency and accounts ----------------------------------------------------------


async def find_settlement(
    rpc_url: str,
    vault: Pubkey,
    settlement_id: bytes,
    *,
    commitment: Commitment = Confirmed,
    min_slot: int = 0,
) -> str | None:
    """The signature of the executed settlement ``settlement_id`` out of ``vault``, if any.

    Scans the vault's history newest first (down to ``min_slot``) for a successful transaction
    carrying the settle memo for that id and debiting the vault. ``processed`` is read as
    ``confirmed`` (the node refuses history below it).

    Raises:
        RpcUnavailable: the node could not be reached or refused a read.
        ValueError: ``settlement_id`` is not 32 bytes.
    """
    wanted = settlement_id_hex(settlement_id)
    found = await executed_settlements(rpc_url, vault, commitment=commitment, min_slot=min_slot,
                                       settlement_id=settlement_id)
    return next((sig for _, sig, done in found if done.settlement_id == wanted), None)


async def executed_settlements(
    rpc_url: str,
    vault: Pubkey | str,
    *,
    commitment: Commitment = Confirmed,
    min_slot: int = 0,
    settlement_id: bytes | None = None,
    timeout_s: float = 10.0,
) -> list[tuple[int, str, ExecutedTransfer]]:
    """``(slot, signature, transfer)`` of every settlement executed out of ``vault`` down to
    ``min_slot`` (newest first); with ``settlement_id``, stops at the first match.

    Raises:
        RpcUnavailable: the node could not be reached or refused a read.
    """
    key = vault if isinstance(vault, Pubkey) else Pubkey.from_string(vault)
    prefix = (f"{SETTLE_MEMO_PREFIX}{settlement_id_hex(settlement_id)}:" if settlement_id
              else SETTLE_MEMO_PREFIX)
    level = Confirmed if commitment == Processed else commitment
    try:
        async with AsyncClient(rpc_url, timeout=timeout_s) as client:
            return await _scan(client, key, prefix, level, min_slot, first=settlement_id is not None)
    except (RPCException, *_TRANSPORT) as exc:
        raise _unavailable(rpc_url, "settlement history", exc) from exc


async def _scan(client: AsyncClient, vault: Pubkey, prefix: str, level: Commitment,
                min_slot: int, *, first: bool) -> list[tuple[int, str, ExecutedTransfer]]:
    found: list[tuple[int, str, ExecutedTransfer]] = []
    before: Signature | None = None
    while True:
        page = (await client.get_signatures_for_address(
            vault, before=before, limit=_PAGE, commitment=level)).value
        for info in page:
            if info.slot < min_slot:
                return found
            if info.err is not None or prefix not in (info.memo or ""):
                continue
            resp = await client.get_transaction(info.signature, "json", commitment=level,
                                                max_supported_transaction_version=0)
            done = (executed_transfer(json.loads(resp.value.to_json()), str(vault))
                    if resp.value is not None else None)
            if done is not None:
                found.append((info.slot, str(info.signature), done))
                if first:
                    return found
        if len(page) < _PAGE:
            return found
        before = page[-1].signature


async def ensure_token_account(
    rpc_url: str, payer: Keypair, owner: Pubkey, mint: Pubkey, *, timeout_s: float = 60.0
) -> Pubkey:
    """The owner's associated token account for ``mint``, created (idempotently) if missing.

    Raises:
        TxRejected: the node refused the creation (e.g. the payer has no SOL).
        TxExpired: the creation did not land in time (calling again is safe).
        RpcUnavailable: the node could not be reached.
    """
    ata = get_associated_token_address(owner, mint)
    try:
        async with _client(rpc_url) as client:
            if (await client.get_account_info(ata, Confirmed)).value is not None:
                return ata
            latest = (await client.get_latest_blockhash(Confirmed)).value
    except (RPCException, *_TRANSPORT) as exc:
        raise _unavailable(rpc_url, "getAccountInfo", exc) from exc
    ix = create_idempotent_associated_token_account(payer.pubkey(), owner, mint)
    message = Message.new_with_blockhash([ix], payer.pubkey(), latest.blockhash)
    tx = Transaction([payer], message, latest.blockhash)
    await _send_and_confirm(rpc_url, tx, latest.last_valid_block_height, timeout_s)
    return ata
