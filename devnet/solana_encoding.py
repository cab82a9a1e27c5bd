"""Render ledger records in the Solana JSON-RPC wire format (the shapes solders parses).

Pure functions over :mod:`devnet.solana_ledger` records: transactions in ``json``,
``jsonParsed`` and ``base64``/``base58`` encodings, their status meta, accounts in
``base64``/``base58``/``jsonParsed``. ``jsonParsed`` decodes the SPL Memo and the SPL Token
transfer instructions and token accounts, mints and multisigs; everything else is returned
"partially decoded" exactly as the real node does for programs it has no parser for.
"""

from __future__ import annotations

import base64
from typing import Any

from solders.account import Account
from solders.message import MessageV0
from solders.pubkey import Pubkey
from spl.memo.constants import MEMO_PROGRAM_ID

from chains.solana.codec import b58decode, b58encode
from devnet.solana_ledger import TxRecord, ui_token_amount

__all__ = [
    "MEMO_PROGRAM_IDS",
    "encode_account",
    "encode_meta",
    "encode_transaction",
    "memo_field",
]

MEMO_PROGRAM_IDS = (str(MEMO_PROGRAM_ID), "Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
_TOKEN_PROGRAMS = ("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                   "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
RENT_EXEMPT_EPOCH = 2**64 - 1


class UnsupportedEncoding(ValueError):
    """The caller asked for an encoding this server does not produce."""


def _header(record: TxRecord) -> dict[str, int]:
    header = record.tx.message.header
    return {
        "numRequiredSignatures": header.num_required_signatures,
        "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
        "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
    }


def _is_writable(record: TxRecord, index: int) -> bool:
    h = _header(record)
    n_keys = len(record.account_keys)
    if index < h["numRequiredSignatures"]:
        return index < h["numRequiredSignatures"] - h["numReadonlySignedAccounts"]
    return index < n_keys - h["numReadonlyUnsignedAccounts"]


def _raw_instruction(ix: Any, stack_height: int | None) -> dict[str, Any]:
    return {
        "programIdIndex": ix.program_id_index,
        "accounts": list(bytes(ix.accounts)),
        "data": b58encode(bytes(ix.data)),
        "stackHeight": stack_height,
    }


def _parsed_instruction(keys: list[str], raw: dict[str, Any]) -> dict[str, Any]:
    program = keys[raw["programIdIndex"]]
    accounts = [keys[i] for i in raw["accounts"]]
    data = b58decode(raw["data"])
    base = {"programId": program, "stackHeight": raw["stackHeight"]}
    if program in MEMO_PROGRAM_IDS:
        try:
            return {**base, "program": "spl-memo", "parsed": data.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    if program in _TOKEN_PROGRAMS and data[:1] in (b"\x03", b"\x0c"):
        parsed = _parse_token_transfer(accounts, data)
        if parsed is not None:
            return {**base, "program": "spl-token", "parsed": parsed}
    return {**base, "accounts": accounts, "data": raw["data"]}


def _parse_token_transfer(accounts: list[str], data: bytes) -> dict[str, Any] | None:
    checked = data[0] == 12
    if len(data) < (10 if checked else 9) or len(accounts) < (4 if checked else 3):
        return None
    amount = int.from_bytes(data[1:9], "little")
    if checked:
        info: dict[str, Any] = {
            "source": accounts[0], "mint": accounts[1], "destination": accounts[2],
            "tokenAmount": ui_token_amount(amount, data[9]),
        }
        authority, signers = accounts[3], accounts[4:]
    else:
        info = {"source": accounts[0], "destination": accounts[1], "amount": str(amount)}
        authority, signers = accounts[2], accounts[3:]
    if signers:
        info["multisigAuthority"], info["signers"] = authority, signers
    else:
        info["authority"] = authority
    return {"type": "transferChecked" if checked else "transfer", "info": info}


def encode_transaction(record: TxRecord, encoding: str) -> Any:
    """The ``transaction`` field of getTransaction / getBlock in ``encoding``."""
    if encoding == "base64":
        return [base64.b64encode(record.raw).decode(), "base64"]
    if encoding == "base58":
        return [b58encode(record.raw), "base58"]
    if encoding not in ("json", "jsonParsed"):
        raise UnsupportedEncoding(encoding)
    msg = record.tx.message
    keys = [str(k) for k in record.account_keys]
    raw_ixs = [_raw_instruction(ix, None) for ix in msg.instructions]
    message: dict[str, Any] = {"recentBlockhash": str(msg.recent_blockhash)}
    if encoding == "json":
        message |= {"header": _header(record), "accountKeys": keys, "instructions": raw_ixs}
    else:
        message["accountKeys"] = [
            {"pubkey": key, "signer": i < _header(record)["numRequiredSignatures"],
             "writable": _is_writable(record, i), "source": "transaction"}
            for i, key in enumerate(keys)
        ]
        message["instructions"] = [_parsed_instruction(keys, ix) for ix in raw_ixs]
    if isinstance(msg, MessageV0):
        message["addressTableLookups"] = []
    return {"signatures": [str(s) for s in record.tx.signatures], "message": message}


def encode_meta(record: TxRecord, encoding: str) -> dict[str, Any]:
    """The ``meta`` field: status, fee, balances, token balances, logs."""
    keys = [str(k) for k in record.account_keys]
    inner = []
    for index, group in enumerate(record.inner):
        if not group:
            continue
        ixs = [{
            "programIdIndex": item["instruction"]["program_id_index"],
            "accounts": item["instruction"]["accounts"],
            "data": b58encode(bytes(item["instruction"]["data"])),
            "stackHeight": item.get("stack_height"),
        } for item in group]
        if encoding == "jsonParsed":
            ixs = [_parsed_instruction(keys, ix) for ix in ixs]
        inner.append({"index": index, "instructions": ixs})
    return {
        "err": record.err,
        "status": {"Ok": None} if record.err is None else {"Err": record.err},
        "fee": record.fee,
        "preBalances": record.pre_balances,
        "postBalances": record.post_balances,
        "innerInstructions": inner,
        "logMessages": record.logs,
        "preTokenBalances": record.pre_token_balances,
        "postTokenBalances": record.post_token_balances,
        "rewards": [],
        "loadedAddresses": {"writable": [], "readonly": []},
        "computeUnitsConsumed": record.compute_units,
    }


def memo_field(record: TxRecord) -> str | None:
    """getSignaturesForAddress's ``memo``: ``[len] text`` per memo, joined by ``; ``."""
    keys = [str(k) for k in record.account_keys]
    memos = []
    for ix in record.tx.message.instructions:
        if keys[ix.program_id_index] in MEMO_PROGRAM_IDS:
            text = bytes(ix.data).decode("utf-8", errors="replace")
            memos.append(f"[{len(text)}] {text}")
    return "; ".join(memos) if memos else None


def encode_account(
    account: Account, encoding: str, data_slice: dict[str, int] | None = None,
    *, mint_decimals: int | None = None,
) -> dict[str, Any]:
    """An account object; ``jsonParsed`` falls back to base64 when no parser applies."""
    data = bytes(account.data)
    out: dict[str, Any] = {
        "executable": account.executable, "lamports": account.lamports,
        "owner": str(account.owner), "rentEpoch": account.rent_epoch, "space": len(data),
    }
    if encoding == "jsonParsed":
        parsed = _parse_token_state(str(account.owner), data, mint_decimals)
        if parsed is not None:
            out["data"] = {"program": "spl-token", "parsed": parsed, "space": len(data)}
            return out
        encoding = "base64"
    if data_slice:
        data = data[data_slice["offset"]:data_slice["offset"] + data_slice["length"]]
    if encoding == "base64":
        out["data"] = [base64.b64encode(data).decode(), "base64"]
    elif encoding == "base58":
        if len(data) > 128:
            raise UnsupportedEncoding("base58 is limited to account data of 128 bytes")
        out["data"] = [b58encode(data), "base58"]
    else:
        raise UnsupportedEncoding(encoding)
    return out


def _coption_key(data: bytes, offset: int) -> str | None:
    if int.from_bytes(data[offset:offset + 4], "little") == 0:
        return None
    return str(Pubkey.from_bytes(data[offset + 4:offset + 36]))


def _parse_token_state(
    owner: str, data: bytes, mint_decimals: int | None
) -> dict[str, Any] | None:
    if owner not in _TOKEN_PROGRAMS:
        return None
    if len(data) == 82 or (len(data) > 165 and data[165] == 1):
        return {"type": "mint", "info": {
            "mintAuthority": _coption_key(data, 0),
            "supply": str(int.from_bytes(data[36:44], "little")),
            "decimals": data[44], "isInitialized": bool(data[45]),
            "freezeAuthority": _coption_key(data, 46),
        }}
    if len(data) == 355:
        n = data[1]
        return {"type": "multisig", "info": {
            "numRequiredSigners": data[0], "numValidSigners": n, "isInitialized": bool(data[2]),
            "signers": [str(Pubkey.from_bytes(data[3 + 32 * i:35 + 32 * i])) for i in range(n)],
        }}
    if len(data) >= 165 and data[108] != 0:
        info: dict[str, Any] = {
            "isNative": int.from_bytes(data[109:113], "little") == 1,
            "mint": str(Pubkey.from_bytes(data[0:32])),
            "owner": str(Pubkey.from_bytes(data[32:64])),
            "state": {1: "initialized", 2: "frozen"}.get(data[108], "uninitialized"),
            "tokenAmount": ui_token_amount(int.from_bytes(data[64:72], "little"),
                                           mint_decimals or 0),
        }
        if (delegate := _coption_key(data, 72)) is not None:
            info["delegate"] = delegate
            info["delegatedAmount"] = ui_token_amount(
                int.from_bytes(data[121:129], "little"), mint_decimals or 0)
        if (close := _coption_key(data, 129)) is not None:
            info["closeAuthority"] = close
        return {"type": "account", "info": info}
    return None
