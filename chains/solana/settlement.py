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
``orchestrator.errors`` types.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.instruction import CompiledInstruction, Instruction
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
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)
from spl.token.models import TransferCheckedParams

from bridges.attestation import SettlementKind
from chains.solana.codec import MEMO_PROGRAMS, b58decode, vault_delta
from orchestrator.errors import (
    RpcUnavailable,
    SettlementMessageMismatch,
    TxExpired,
    TxRejected,
)

__all__ = [
    "MAX_BLOCKHASH_AGE",
    "SETTLE_MEMO_PREFIX",
    "SettlementExpectation",
    "build_settlement_message",
    "destination_for",
    "ensure_token_account",
    "fetch_recent_blockhash",
    "find_settlement",
    "settle_memo",
    "settlement_instructions",
    "sign_message",
    "submit_settlement",
    "verify_settlement_message",
]

CHAIN = "solana"
SETTLE_MEMO_PREFIX = "bulkhead:v1:settle:"
MAX_BLOCKHASH_AGE = 150  # blocks a blockhash stays valid on the cluster
MAX_TX_BYTES = 1232  # packet size limit of a serialized transaction
_TRANSFER_CHECKED = 12
_PAGE = 1000
_POLL_S = 0.2
_CONFIRMED = (TransactionConfirmationStatus.Confirmed, TransactionConfirmationStatus.Finalized)


# --- pure: memo, expectation, builder -------------------------------------------------------


def _id32(name: str, raw: bytes) -> str:
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(raw)}")
    return "0x" + bytes(raw).hex()


def settle_memo(settlement_id: bytes, lock_id: bytes, kind: int) -> str:
    """``bulkhead:v1:settle:<settlementId 0x-hex>:<lockId 0x-hex>:<kind>`` (lowercase hex).

    Raises:
        ValueError: an id that is not 32 bytes or a kind that is not a ``SettlementKind``.
    """
    return (f"{SETTLE_MEMO_PREFIX}{_id32('settlement_id', settlement_id)}:"
            f"{_id32('lock_id', lock_id)}:{int(SettlementKind(kind))}")


@dataclass(frozen=True, slots=True)
class SettlementExpectation:
    """What one settlement must do, as the attester observed it (amount in base units)."""

    settlement_id: bytes
    lock_id: bytes
    kind: int
    amount: int
    vault: Pubkey
    mint: Pubkey
    decimals: int
    multisig: Pubkey
    destination: Pubkey

    def memo(self) -> str:
        return settle_memo(self.settlement_id, self.lock_id, self.kind)


def destination_for(
    kind: int, *, owner_wallet: Pubkey, mint: Pubkey, seize_token_account: Pubkey
) -> Pubkey:
    """Release: the owner's associated token account for ``mint``; seize: the seize account.

    Raises:
        ValueError: ``kind`` is not a ``SettlementKind``.
    """
    if SettlementKind(kind) == SettlementKind.RELEASE:
        return get_associated_token_address(owner_wallet, mint)
    return seize_token_account


def settlement_instructions(
    *, settlement_id: bytes, lock_id: bytes, kind: int, amount: int, vault: Pubkey,
    mint: Pubkey, decimals: int, multisig: Pubkey, destination: Pubkey, signers: Sequence[Pubkey],
) -> list[Instruction]:
    """The multisig ``TransferChecked`` out of the vault, then the settle memo (no accounts).

    Raises:
        ValueError: a non-positive amount, no or repeated signers, a bad id or kind.
    """
    if not 0 < amount < 2**64 or not 0 <= decimals <= 255:
        raise ValueError("amount must be 1..2**64-1 base units and decimals a u8")
    ordered = sorted(signers, key=bytes)
    if not 1 <= len(ordered) <= 11 or len(set(ordered)) != len(ordered):
        raise ValueError("need 1..11 distinct multisig signers")
    transfer = transfer_checked(TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=vault, mint=mint, dest=destination, owner=multisig,
        amount=amount, decimals=decimals, signers=ordered))
    memo = Instruction(MEMO_PROGRAM_ID, settle_memo(settlement_id, lock_id, kind).encode(), [])
    return [transfer, memo]


def build_settlement_message(
    *, settlement_id: bytes, lock_id: bytes, kind: int, amount: int, vault: Pubkey,
    mint: Pubkey, decimals: int, multisig: Pubkey, destination: Pubkey,
    signers: Sequence[Pubkey], fee_payer: Pubkey, recent_blockhash: Hash,
) -> Message:
    """The legacy message to sign: ``bytes(message)`` is what every signer signs.

    Deterministic: the same inputs (signers in any order) give byte-identical messages.

    Raises:
        ValueError: see :func:`settlement_instructions`, or a transaction over 1232 bytes.
    """
    ixs = settlement_instructions(
        settlement_id=settlement_id, lock_id=lock_id, kind=kind, amount=amount, vault=vault,
        mint=mint, decimals=decimals, multisig=multisig, destination=destination,
        signers=signers)
    message = Message.new_with_blockhash(ixs, fee_payer, recent_blockhash)
    size = 1 + 64 * message.header.num_required_signatures + len(bytes(message))
    if size > MAX_TX_BYTES:
        raise ValueError(f"the signed transaction would be {size} bytes (> {MAX_TX_BYTES})")
    return message


def sign_message(message_bytes: bytes, keypair: Keypair) -> bytes:
    """The 64-byte ed25519 signature over the serialized message, as Solana verifies it."""
    return bytes(keypair.sign_message(bytes(message_bytes)))


# --- pure: the attester's check -------------------------------------------------------------


def _refuse(field: str, reason: str) -> NoReturn:
    raise SettlementMessageMismatch(field, reason)


def _parse(message_bytes: bytes) -> Message:
    raw = bytes(message_bytes)
    if not raw or raw[0] & 0x80:
        _refuse("version", "expected a legacy message")
    try:
        message = Message.from_bytes(raw)
    except ValueError as exc:
        _refuse("message", f"does not deserialize: {exc}")
    if bytes(message) != raw:
        _refuse("message", "not in canonical serialization (trailing or altered bytes)")
    if message.has_duplicates():
        _refuse("accounts", "an account key appears twice")
    return message


def _keys(keys: Sequence[Pubkey], ix: CompiledInstruction) -> tuple[Pubkey, list[Pubkey]]:
    indices = [ix.program_id_index, *bytes(ix.accounts)]
    if max(indices) >= len(keys):
        _refuse("accounts", "an instruction names an account index out of range")
    return keys[indices[0]], [keys[i] for i in indices[1:]]


def _is_writable(message: Message, index: int) -> bool:
    h = message.header
    if index < h.num_required_signatures:
        return index < h.num_required_signatures - h.num_readonly_signed_accounts
    return index < len(message.account_keys) - h.num_readonly_unsigned_accounts


def _check_transfer(
    keys: Sequence[Pubkey], ix: CompiledInstruction, want: SettlementExpectation
) -> list[Pubkey]:
    program, accounts = _keys(keys, ix)
    data = bytes(ix.data)
    if program != TOKEN_PROGRAM_ID:
        _refuse("token_program", f"instruction 0 must be SPL Token, got {program}")
    if len(data) != 10 or data[0] != _TRANSFER_CHECKED:
        _refuse("instruction", "instruction 0 must be TransferChecked")
    if (amount := int.from_bytes(data[1:9], "little")) != want.amount:
        _refuse("amount", f"expected {want.amount}, got {amount}")
    if data[9] != want.decimals:
        _refuse("decimals", f"expected {want.decimals}, got {data[9]}")
    if len(accounts) < 5:
        _refuse("signers", "the transfer lists no multisig signers")
    for name, got, expected in (("source", accounts[0], want.vault), ("mint", accounts[1],
                                want.mint), ("destination", accounts[2], want.destination),
                                ("owner", accounts[3], want.multisig)):
        if got != expected:
            _refuse(name, f"expected {expected}, got {got}")
    return accounts[4:]


def _check_memo(keys: Sequence[Pubkey], ix: CompiledInstruction, want: SettlementExpectation) -> None:
    program, accounts = _keys(keys, ix)
    if program != MEMO_PROGRAM_ID:
        _refuse("memo_program", f"instruction 1 must be SPL Memo, got {program}")
    if accounts:
        _refuse("memo", "the memo must list no accounts")
    if bytes(ix.data) != want.memo().encode():
        _refuse("memo", f"expected {want.memo()!r}, got {bytes(ix.data)[:200]!r}")


def _check_accounts(
    message: Message, signers: list[Pubkey], want: SettlementExpectation, attester: Pubkey
) -> None:
    keys = list(message.account_keys)
    fee_payer = keys[0]
    if sorted(signers, key=bytes) != signers or len(set(signers)) != len(signers):
        _refuse("signers", "multisig signers must be distinct and sorted")
    if attester not in signers:
        _refuse("signers", f"this attester ({attester}) is not a listed signer")
    required = set(keys[:message.header.num_required_signatures])
    if required != {fee_payer, *signers}:
        _refuse("signers", "the message signers must be the fee payer and the multisig signers")
    if fee_payer in (want.vault, want.destination, want.multisig, want.mint):
        _refuse("fee_payer", f"{fee_payer} cannot pay fees")
    writable = {k for i, k in enumerate(keys) if _is_writable(message, i)}
    if writable != {fee_payer, want.vault, want.destination}:
        extra = sorted(str(k) for k in writable - {fee_payer, want.vault, want.destination})
        _refuse("writable", f"only fee payer, vault and destination may be writable: {extra}")


def verify_settlement_message(
    message_bytes: bytes, *, expected: SettlementExpectation, attester: Pubkey
) -> Message:
    """Parse the proposed message; refuse anything but exactly ``expected``, listing ``attester``.

    Accepted: one SPL ``TransferChecked`` of ``amount``/``decimals`` from the vault to the
    destination, owner the multisig, signed by sorted distinct multisig signers including
    ``attester``; then the settle memo (no accounts); nothing else. The fee payer may be any
    key other than the vault, destination, multisig or mint; the blockhash is not checked.

    Raises:
        SettlementMessageMismatch: ``field`` names the first part that differs.
    """
    # SECURITY: this is the only thing between a relayer's proposal and an attester's
    # signature over the vault; m of these checks is all that protects the locked tokens.
    message = _parse(message_bytes)
    keys = list(message.account_keys)
    ixs = list(message.instructions)
    if len(ixs) > 2:
        _refuse("instructions", f"expected TransferChecked + Memo only, got {len(ixs)}")
    if len(ixs) < 2:
        program = _keys(keys, ixs[0])[0] if ixs else None
        _refuse("memo" if program == TOKEN_PROGRAM_ID else "instructions",
                "expected TransferChecked + Memo, one is missing")
    signers = _check_transfer(keys, ixs[0], expected)
    _check_memo(keys, ixs[1], expected)
    _check_accounts(message, signers, expected, attester)
    return message


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
    message = _parse(message_bytes)
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


def _memos(tx: Mapping[str, Any]) -> list[str]:
    message = tx["transaction"]["message"]
    keys = message["accountKeys"]
    out = []
    for ix in message["instructions"]:
        if keys[ix["programIdIndex"]] in MEMO_PROGRAMS:
            out.append(b58decode(ix["data"]).decode("utf-8", errors="replace"))
    return out


def _is_settlement(tx: Mapping[str, Any], vault: str, prefix: str) -> bool:
    """A successful transaction with the settle memo that took tokens out of the vault."""
    meta, keys = tx["meta"], tx["transaction"]["message"]["accountKeys"]
    if meta.get("err") is not None or vault not in keys:
        return False
    if not any(m.startswith(prefix) for m in _memos(tx)):
        return False
    index = keys.index(vault)
    pre, post = meta.get("preTokenBalances") or [], meta.get("postTokenBalances") or []
    mints = [b["mint"] for b in pre if b["accountIndex"] == index]
    # SECURITY: anyone can write the memo; only the multisig (m attesters) can debit the vault.
    return bool(mints) and vault_delta(pre, post, index, mints[0]) < 0


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
    prefix = f"{SETTLE_MEMO_PREFIX}{_id32('settlement_id', settlement_id)}:"
    level = Confirmed if commitment == Processed else commitment
    try:
        async with _client(rpc_url) as client:
            return await _scan(client, vault, prefix, level, min_slot)
    except (RPCException, *_TRANSPORT) as exc:
        raise _unavailable(rpc_url, "find_settlement", exc) from exc


async def _scan(
    client: AsyncClient, vault: Pubkey, prefix: str, level: Commitment, min_slot: int
) -> str | None:
    before: Signature | None = None
    while True:
        page = (await client.get_signatures_for_address(
            vault, before=before, limit=_PAGE, commitment=level)).value
        for info in page:
            if info.slot < min_slot:
                return None
            if info.err is not None or prefix not in (info.memo or ""):
                continue
            resp = await client.get_transaction(info.signature, "json", commitment=level,
                                                max_supported_transaction_version=0)
            if resp.value is not None and _is_settlement(
                    json.loads(resp.value.to_json()), str(vault), prefix):
                return str(info.signature)
        if len(page) < _PAGE:
            return None
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
