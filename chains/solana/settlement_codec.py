"""Solana settlements, pure part (DESIGN §2.4): the settle memo, what a settlement must do, the
multisig transfer message the relayer proposes, and the check every attester runs on it before
signing. The I/O that sends and finds settlements is in :mod:`chains.solana.settlement`.

A release (to the owner's associated token account) or a seize (to the seize account) is one
SPL ``TransferChecked`` whose owner is the vault's multisig and whose signers are m attesters,
followed by the memo ``bulkhead:v1:settle:<settlementId>:<lockId>:<kind>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from solders.hash import Hash
from solders.instruction import CompiledInstruction, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import get_associated_token_address, transfer_checked
from spl.token.models import TransferCheckedParams

from chains.solana.codec import MEMO_PROGRAMS, b58decode, vault_delta
from shared.errors import SettlementMessageMismatch
from shared.messages import SettlementKind

__all__ = [
    "MAX_TX_BYTES",
    "SETTLE_MEMO_PREFIX",
    "ExecutedTransfer",
    "SettlementExpectation",
    "build_settlement_message",
    "destination_for",
    "executed_transfer",
    "message_from_bytes",
    "settle_memo",
    "settlement_id_hex",
    "settlement_instructions",
    "sign_message",
    "verify_settlement_message",
]

SETTLE_MEMO_PREFIX = "bulkhead:v1:settle:"
MAX_TX_BYTES = 1232  # packet size limit of a serialized transaction
_TRANSFER_CHECKED = 12


# --- pure: memo, expectation, builder -------------------------------------------------------


def _id32(name: str, raw: bytes) -> str:
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(raw)}")
    return "0x" + bytes(raw).hex()


def settlement_id_hex(settlement_id: bytes) -> str:
    """A settlement id as the memo writes it. Raises ValueError unless 32 bytes."""
    return _id32("settlement_id", settlement_id)


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


def message_from_bytes(message_bytes: bytes) -> Message:
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
    message = message_from_bytes(message_bytes)
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


# --- pure: reading an executed settlement back from a transaction ----------------------------


@dataclass(frozen=True, slots=True)
class ExecutedTransfer:
    """A settlement as a landed transaction shows it: ids from the memo, amount from the
    vault's measured debit (never the memo or the instruction)."""

    settlement_id: str  # 0x-hex, lowercase
    lock_id: str  # 0x-hex, lowercase
    kind: int
    amount: int


def _memos(tx: Mapping[str, Any]) -> list[str]:
    message = tx["transaction"]["message"]
    keys = message["accountKeys"]
    return [b58decode(ix["data"]).decode("utf-8", errors="replace")
            for ix in message["instructions"] if keys[ix["programIdIndex"]] in MEMO_PROGRAMS]


def executed_transfer(tx: Mapping[str, Any], vault: str) -> ExecutedTransfer | None:
    """The settlement a successful transaction executed out of ``vault`` (base58), or None.

    SECURITY: anyone can write the memo; only the attesters' multisig can debit the vault, so
    a transaction counts only if the vault's token balance went down in it.
    """
    meta, keys = tx["meta"], tx["transaction"]["message"]["accountKeys"]
    memo = next((m for m in _memos(tx) if m.startswith(SETTLE_MEMO_PREFIX)), None)
    if meta.get("err") is not None or vault not in keys or memo is None:
        return None
    index = keys.index(vault)
    pre, post = meta.get("preTokenBalances") or [], meta.get("postTokenBalances") or []
    mints = [b["mint"] for b in pre if b["accountIndex"] == index]
    delta = vault_delta(pre, post, index, mints[0]) if mints else 0
    parts = memo.removeprefix(SETTLE_MEMO_PREFIX).split(":")
    if delta >= 0 or len(parts) != 3 or not parts[2].isdigit():
        return None
    return ExecutedTransfer(parts[0].lower(), parts[1].lower(), int(parts[2]), -delta)
