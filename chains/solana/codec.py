"""Pure Solana lock codec: the lock memo (DESIGN §2.2), lock ids and vault balance deltas.

No I/O. The memo is the only place a Solana lock carries its destination, so its grammar is
strict: one spelling per meaning (lowercase output, no leading zeros, no padding), so two
different memo strings can never describe the same lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from shared.errors import ChainError
from shared.events import LockEvent
from shared.ids import ZERO32, Bytes32Hex, bytes32_hex

__all__ = [
    "MEMO_PREFIX",
    "MemoMalformed",
    "ParsedMemo",
    "b58decode",
    "b58encode",
    "decode_lock_transaction",
    "format_lock_memo",
    "lock_id_for_signature",
    "parse_lock_memo",
    "vault_delta",
]

MEMO_PREFIX = "bulkhead:v1:lock:"
_MAX_CHAIN_ID = 2**64 - 1
_CHAIN_ID = re.compile(r"[1-9][0-9]{0,19}")
_HEX = re.compile(r"0x[0-9a-fA-F]*")
_ZERO_ADDRESS = "0x" + "00" * 20
_TOKEN_PROGRAMS = ("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                   "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
MEMO_PROGRAMS = ("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr",
                 "Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
_TRANSFER_CHECKED = 12
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


class MemoMalformed(ChainError, ValueError):
    """A memo that does not follow ``bulkhead:v1:lock:...``; ``reason`` says which part."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed lock memo: {reason}")


@dataclass(frozen=True, slots=True)
class ParsedMemo:
    """The destination of one lock, normalised (checksummed addresses, lowercase key)."""

    dst_chain_id: int
    dst_venue: str
    position_key: Bytes32Hex
    beneficiary: str


def _hex_field(name: str, text: str, n_bytes: int) -> bytes:
    if not _HEX.fullmatch(text) or len(text) != 2 + 2 * n_bytes:
        raise MemoMalformed(f"{name} must be 0x-prefixed hex of {n_bytes} bytes")
    raw = bytes.fromhex(text[2:])
    if raw == bytes(n_bytes):
        raise MemoMalformed(f"{name} must not be zero")
    return raw


def _chain_id(text: str) -> int:
    if not _CHAIN_ID.fullmatch(text) or int(text) > _MAX_CHAIN_ID:
        raise MemoMalformed("dstChainId must be a decimal uint64 > 0 without leading zeros")
    return int(text)


def parse_lock_memo(text: str) -> ParsedMemo:
    """Parse ``bulkhead:v1:lock:<dstChainId>:<dstVenue>:<positionKey>:<beneficiary>``.

    Raises:
        MemoMalformed: wrong prefix or version, bad chain id, hex of the wrong length,
            a zero venue, position key or beneficiary, or extra fields.
    """
    if not text.startswith(MEMO_PREFIX):
        raise MemoMalformed(f"must start with {MEMO_PREFIX!r}")
    fields = text[len(MEMO_PREFIX):].split(":")
    if len(fields) != 4:
        raise MemoMalformed(f"expected 4 fields after the prefix, got {len(fields)}")
    chain, venue, key, beneficiary = fields
    return ParsedMemo(
        dst_chain_id=_chain_id(chain),
        dst_venue=to_checksum_address(_hex_field("dstVenue", venue, 20)),
        position_key=bytes32_hex(_hex_field("positionKey", key, 32)),
        beneficiary=to_checksum_address(_hex_field("beneficiary", beneficiary, 20)),
    )


def format_lock_memo(
    dst_chain_id: int, dst_venue: str, position_key: str, beneficiary: str
) -> str:
    """Render a lock memo in its one canonical spelling (lowercase hex).

    Raises:
        MemoMalformed: any field that :func:`parse_lock_memo` would refuse.
    """
    text = (f"{MEMO_PREFIX}{dst_chain_id}:{dst_venue.lower()}:{position_key.lower()}"
            f":{beneficiary.lower()}")
    parse_lock_memo(text)  # INVARIANT: we never emit a memo the watcher would reject
    return text


def lock_id_for_signature(signature: str | bytes) -> Bytes32Hex:
    """keccak256 of the 64 raw signature bytes (base58 text or raw bytes accepted)."""
    raw = b58decode(signature) if isinstance(signature, str) else bytes(signature)
    if len(raw) != 64:
        raise ValueError(f"a signature is 64 bytes, got {len(raw)}")
    return bytes32_hex(keccak(raw))


def _balance_for(
    balances: Iterable[Mapping[str, Any]], index: int, mint: str
) -> int:
    for entry in balances:
        if entry["accountIndex"] == index:
            if entry["mint"] != mint:
                raise ValueError(f"account {index} holds mint {entry['mint']}, not {mint}")
            return int(entry["uiTokenAmount"]["amount"])
    return 0


def vault_delta(
    pre_token_balances: Iterable[Mapping[str, Any]],
    post_token_balances: Iterable[Mapping[str, Any]],
    vault_index: int,
    mint: str,
) -> int:
    """Post minus pre balance of the account at ``vault_index`` (base units, may be <= 0).

    A missing entry counts as 0 (account created or closed by the transaction). Entries use
    the wire shape (``accountIndex``, ``mint``, ``uiTokenAmount.amount`` as a string).

    Raises:
        ValueError: the account holds a different mint.
    """
    post = _balance_for(post_token_balances, vault_index, mint)
    pre = _balance_for(pre_token_balances, vault_index, mint)
    return post - pre


def b58encode(raw: bytes) -> str:
    """Bitcoin-alphabet base58, as Solana uses for keys, signatures and instruction data."""
    n = int.from_bytes(raw, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_B58[rem])
    pad = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`. Raises ValueError on a non-base58 character."""
    n = 0
    for char in text:
        if char not in _B58_INDEX:
            raise ValueError(f"invalid base58 character {char!r}")
        n = n * 58 + _B58_INDEX[char]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def _pubkey_hex(text: str) -> Bytes32Hex:
    raw = b58decode(text)
    return bytes32_hex(raw)


def _account_keys(tx: Mapping[str, Any]) -> list[str]:
    """Static keys, then the writable and readonly keys loaded from lookup tables."""
    keys = list(tx["transaction"]["message"]["accountKeys"])
    loaded = tx["meta"].get("loadedAddresses") or {}
    return keys + list(loaded.get("writable", [])) + list(loaded.get("readonly", []))


def _attribute(
    keys: list[str], instructions: list[Mapping[str, Any]], vault_index: int
) -> tuple[ParsedMemo | None, int | None, str | None]:
    """(memo, TransferChecked source index, reason if unattributed) for one transaction."""
    transfers, memos = [], []
    for ix in instructions:
        program = keys[ix["programIdIndex"]]
        if program in MEMO_PROGRAMS:
            memos.append(b58decode(ix["data"]))
            continue
        data = b58decode(ix["data"])
        accounts = ix["accounts"]
        if (program in _TOKEN_PROGRAMS and data[:1] == bytes([_TRANSFER_CHECKED])
                and len(accounts) >= 4 and accounts[2] == vault_index):
            transfers.append(accounts[0])
    if len(transfers) != 1:
        return None, None, f"expected one TransferChecked into the vault, found {len(transfers)}"
    if len(memos) != 1:
        return None, transfers[0], f"expected one memo, found {len(memos)}"
    try:
        return parse_lock_memo(memos[0].decode("utf-8")), transfers[0], None
    except UnicodeDecodeError:
        return None, transfers[0], "memo is not UTF-8"
    except MemoMalformed as exc:
        return None, transfers[0], exc.reason


def _sender_owner(
    meta: Mapping[str, Any], source_index: int | None, mint: str
) -> str | None:
    """Owner of the TransferChecked source, else of the one account of ``mint`` that shrank."""
    pre = {b["accountIndex"]: b for b in meta.get("preTokenBalances") or []}
    if source_index is not None and source_index in pre:
        owner: str | None = pre[source_index].get("owner")
        return owner
    shrunk = [
        b for b in pre.values()
        if b["mint"] == mint
        and vault_delta(meta["preTokenBalances"], meta.get("postTokenBalances") or [],
                        b["accountIndex"], mint) < 0
    ]
    found: str | None = shrunk[0].get("owner") if len(shrunk) == 1 else None
    return found


def decode_lock_transaction(
    tx: Mapping[str, Any],
    *,
    chain: str,
    chain_id: int,
    vault: str,
    assets: Mapping[str, int],
    block_hash: str = "",
) -> LockEvent | None:
    """The lock (or unattributed deposit) a ``getTransaction`` "json" result makes into ``vault``.

    Returns None when the transaction failed, does not touch the vault, or does not increase
    its balance (outgoing transfers are settlements, not locks). ``assets`` maps registered
    mints (base58) to decimals.
    """
    meta = tx["meta"]
    keys = _account_keys(tx)
    if meta.get("err") is not None or vault not in keys:
        return None
    vault_index = keys.index(vault)
    entries = [b for b in (meta.get("postTokenBalances") or []) + (meta.get("preTokenBalances")
               or []) if b["accountIndex"] == vault_index]
    if not entries:
        return None
    mint, decimals = entries[0]["mint"], int(entries[0]["uiTokenAmount"]["decimals"])
    # SECURITY: the amount is the measured balance delta, never instruction data or memo.
    amount = vault_delta(meta.get("preTokenBalances") or [], meta.get("postTokenBalances") or [],
                         vault_index, mint)
    if amount <= 0:
        return None
    memo, source_index, reason = _attribute(keys, tx["transaction"]["message"]["instructions"],
                                            vault_index)
    if mint not in assets:
        memo, reason = None, f"mint {mint} is not a registered asset"
    elif assets[mint] != decimals:
        memo, reason = None, f"mint {mint} has {decimals} decimals, registered {assets[mint]}"
    owner = _sender_owner(meta, source_index, mint)
    zero_address = to_checksum_address(_ZERO_ADDRESS)
    signature = tx["transaction"]["signatures"][0]
    return LockEvent(
        chain=chain,
        chain_id=chain_id,
        lock_id=lock_id_for_signature(signature),
        vault=_pubkey_hex(vault),
        owner=_pubkey_hex(owner) if owner else ZERO32,
        asset=_pubkey_hex(mint),
        amount=amount,
        decimals=decimals,
        position_key=memo.position_key if memo else ZERO32,
        dst_chain_id=memo.dst_chain_id if memo else 0,
        dst_venue=memo.dst_venue if memo else zero_address,
        beneficiary=memo.beneficiary if memo else zero_address,
        height=int(tx["slot"]),
        block_hash=block_hash,
        tx_id=signature,
        log_index=vault_index,
        unattributed_reason=None if memo else reason,
    )
