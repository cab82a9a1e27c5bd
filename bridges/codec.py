"""Wire format of a signed attestation bundle, binary and JSON. Pure; refuses, never repairs.

Binary layout (big-endian)::

    "BHA1" | kind u8 (1 lock, 2 settlement) | domain chainId u64 | verifyingContract 20B
    | body (fixed size per kind, field order of the EIP-712 struct)
    | sigCount u8 | sigCount x (r 32B, s 32B, v u8)

Every malformed input — truncated, wrong magic/version/kind, a declared signature count that
does not match, r = 0, high s, v not 27/28, trailing bytes — raises
:class:`AttestationMalformed` naming the field; nothing else escapes (INP-01).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from shared.errors import AttestationMalformed
from shared.messages import (
    ATTESTATION_VERSION,
    Domain,
    LockAttestation,
    Message,
    Settlement,
    SettlementKind,
)

__all__ = ["Bundle", "check_signature", "decode", "decode_json", "encode", "encode_json"]

MAGIC = b"BHA1"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_SIGNATURES = 64
_KIND = {1: LockAttestation, 2: Settlement}

# (field, width in bytes, type) in EIP-712 order, after the leading version byte
_LOCK_LAYOUT = [("src_chain_id", 8, int), ("src_vault", 32, bytes), ("lock_id", 32, bytes),
                ("owner", 32, bytes), ("beneficiary", 20, "address"), ("src_asset", 32, bytes),
                ("amount", 32, int), ("decimals", 1, int), ("position_key", 32, bytes),
                ("attester_set_index", 4, int)]
_SETTLE_LAYOUT = [("src_chain_id", 8, int), ("src_vault", 32, bytes), ("lock_id", 32, bytes),
                  ("recipient", 32, bytes), ("amount", 32, int), ("kind", 1, "kind"),
                  ("settlement_id", 32, bytes), ("attester_set_index", 4, int)]
_LAYOUT = {LockAttestation: _LOCK_LAYOUT, Settlement: _SETTLE_LAYOUT}


@dataclass(frozen=True, slots=True)
class Bundle:
    """One message, the domain it is valid in, and its signatures (65 bytes each)."""

    message: Message
    domain: Domain
    signatures: tuple[bytes, ...]


def check_signature(sig: bytes, field: str = "signatures") -> bytes:
    if len(sig) != 65:
        raise AttestationMalformed(field, f"signature length {len(sig)}, expected 65")
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if not 0 < r < SECP256K1_N:
        raise AttestationMalformed(field, "r out of range")
    if not 0 < s <= SECP256K1_N // 2:
        raise AttestationMalformed(field, "s out of range or malleable (high s)")
    if v not in (27, 28):
        raise AttestationMalformed(field, f"v={v}, expected 27 or 28")
    return sig


def encode(bundle: Bundle) -> bytes:
    msg = bundle.message
    kind = 1 if isinstance(msg, LockAttestation) else 2
    out = bytearray(MAGIC)
    out += bytes([kind]) + bundle.domain.chain_id.to_bytes(8, "big")
    out += bytes.fromhex(bundle.domain.verifying_contract.removeprefix("0x"))
    out += bytes([msg.version])
    for name, width, typ in _LAYOUT[type(msg)]:
        value = getattr(msg, name)
        if typ == "address":
            out += bytes.fromhex(value.removeprefix("0x"))
        elif typ is bytes:
            out += value
        else:
            out += int(value).to_bytes(width, "big")
    out += bytes([len(bundle.signatures)]) + b"".join(bundle.signatures)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise AttestationMalformed(field, "truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk


def decode(data: bytes) -> Bundle:
    """Bytes -> Bundle, or AttestationMalformed naming the field."""
    if not isinstance(data, bytes | bytearray):
        raise AttestationMalformed("bundle", "expected bytes")
    r = _Reader(bytes(data))
    if r.take(4, "magic") != MAGIC:
        raise AttestationMalformed("magic", "not a Bulkhead attestation bundle (v1)")
    kind = r.take(1, "kind")[0]
    if kind not in _KIND:
        raise AttestationMalformed("kind", f"unknown kind {kind}")
    chain_id = int.from_bytes(r.take(8, "domain.chain_id"), "big")
    contract = to_checksum_address(r.take(20, "domain.verifying_contract"))
    if chain_id == 0 or int(contract, 16) == 0:
        raise AttestationMalformed("domain", "zero chain id or verifying contract")
    version = r.take(1, "version")[0]
    if version != ATTESTATION_VERSION:
        raise AttestationMalformed("version", f"unsupported version {version}")
    cls = _KIND[kind]
    values: dict[str, Any] = {}
    for name, width, typ in _LAYOUT[cls]:
        raw = r.take(width, name)
        if typ == "address":
            values[name] = to_checksum_address(raw)
        elif typ == "kind":
            if raw[0] not in (1, 2):
                raise AttestationMalformed("kind", f"settlement kind {raw[0]}")
            values[name] = SettlementKind(raw[0])
        elif typ is bytes:
            values[name] = raw
        else:
            values[name] = int.from_bytes(raw, "big")
    count = r.take(1, "signature_count")[0]
    if count == 0 or count > MAX_SIGNATURES:
        raise AttestationMalformed("signature_count", f"{count} signatures declared")
    sigs = tuple(check_signature(r.take(65, f"signatures[{i}]"), f"signatures[{i}]")
                 for i in range(count))
    if r.pos != len(r.data):
        raise AttestationMalformed("bundle", f"{len(r.data) - r.pos} trailing bytes")
    msg = cls(**values)
    if msg.amount == 0:
        raise AttestationMalformed("amount", "zero")
    return Bundle(msg, Domain(chain_id, contract), sigs)


def encode_json(bundle: Bundle) -> str:
    return json.dumps({"bundle": "0x" + encode(bundle).hex()})


def decode_json(text: str | bytes) -> Bundle:
    """``{"bundle": "0x..."}`` with nothing else; the hex is decoded by :func:`decode`."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationMalformed("json", "not valid JSON") from exc
    if not isinstance(obj, dict) or set(obj) != {"bundle"} or not isinstance(obj["bundle"], str):
        raise AttestationMalformed("json", 'expected exactly {"bundle": "0x..."}')
    raw = obj["bundle"]
    if not raw.startswith("0x"):
        raise AttestationMalformed("bundle", "hex must start with 0x")
    try:
        data = bytes.fromhex(raw[2:])
    except ValueError as exc:
        raise AttestationMalformed("bundle", "not hex") from exc
    return decode(data)
