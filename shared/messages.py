"""EIP-712 attestation types of DESIGN §2.4, built with eth-account (no hand-made hashing).

``LockAttestation`` travels source -> venue (credit); ``Settlement`` travels venue -> source
(release | seize). Both sign every field that changes state; the domain binds the chain that
verifies (``chainId``) and the verifying contract, so a message valid on one lane is invalid on
any other (RPL-03). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import IntEnum
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from shared.errors import AttestationMalformed

if TYPE_CHECKING:
    from eth_account.messages import SignableMessage

__all__ = [
    "ATTESTATION_VERSION",
    "Domain",
    "LockAttestation",
    "Settlement",
    "SettlementKind",
    "digest",
    "message_from_dict",
    "recover_digest",
    "recover_signer",
    "sign",
    "sign_digest",
    "signable",
]

ATTESTATION_VERSION = 1
DOMAIN_NAME, DOMAIN_VERSION = "Bulkhead", "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

LOCK_TYPE = [
    {"name": "version", "type": "uint8"},
    {"name": "srcChainId", "type": "uint64"},
    {"name": "srcVault", "type": "bytes32"},
    {"name": "lockId", "type": "bytes32"},
    {"name": "owner", "type": "bytes32"},
    {"name": "beneficiary", "type": "address"},
    {"name": "srcAsset", "type": "bytes32"},
    {"name": "amount", "type": "uint256"},
    {"name": "decimals", "type": "uint8"},
    {"name": "positionKey", "type": "bytes32"},
    {"name": "attesterSetIndex", "type": "uint32"},
]

SETTLEMENT_TYPE = [
    {"name": "version", "type": "uint8"},
    {"name": "srcChainId", "type": "uint64"},
    {"name": "srcVault", "type": "bytes32"},
    {"name": "lockId", "type": "bytes32"},
    {"name": "recipient", "type": "bytes32"},
    {"name": "amount", "type": "uint256"},
    {"name": "kind", "type": "uint8"},
    {"name": "settlementId", "type": "bytes32"},
    {"name": "attesterSetIndex", "type": "uint32"},
]


class SettlementKind(IntEnum):
    RELEASE = 1
    SEIZE = 2


@dataclass(frozen=True, slots=True)
class Domain:
    """Who verifies: the destination chain id and contract (venue for credits, vault for
    settlements)."""

    chain_id: int
    verifying_contract: str

    def as_eip712(self) -> dict[str, Any]:
        return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.chain_id,
                "verifyingContract": to_checksum_address(self.verifying_contract)}


@dataclass(frozen=True, slots=True)
class LockAttestation:
    src_chain_id: int
    src_vault: bytes
    lock_id: bytes
    owner: bytes
    beneficiary: str
    src_asset: bytes
    amount: int
    decimals: int
    position_key: bytes
    attester_set_index: int
    version: int = ATTESTATION_VERSION

    PRIMARY = "LockAttestation"
    TYPE = LOCK_TYPE

    def message(self) -> dict[str, Any]:
        return {"version": self.version, "srcChainId": self.src_chain_id,
                "srcVault": self.src_vault, "lockId": self.lock_id, "owner": self.owner,
                "beneficiary": to_checksum_address(self.beneficiary),
                "srcAsset": self.src_asset, "amount": self.amount, "decimals": self.decimals,
                "positionKey": self.position_key, "attesterSetIndex": self.attester_set_index}

    def replay_key(self) -> tuple[int, bytes, bytes]:
        """(srcChainId, srcVault, lockId): never a hash of the signatures."""
        return self.src_chain_id, self.src_vault, self.lock_id


@dataclass(frozen=True, slots=True)
class Settlement:
    src_chain_id: int
    src_vault: bytes
    lock_id: bytes
    recipient: bytes
    amount: int
    kind: SettlementKind
    settlement_id: bytes
    attester_set_index: int
    version: int = ATTESTATION_VERSION

    PRIMARY = "Settlement"
    TYPE = SETTLEMENT_TYPE

    def message(self) -> dict[str, Any]:
        return {"version": self.version, "srcChainId": self.src_chain_id,
                "srcVault": self.src_vault, "lockId": self.lock_id, "recipient": self.recipient,
                "amount": self.amount, "kind": int(self.kind),
                "settlementId": self.settlement_id, "attesterSetIndex": self.attester_set_index}

    def replay_key(self) -> bytes:
        return self.settlement_id


Message = LockAttestation | Settlement


@cache
def _account() -> Any:
    """eth-account, imported on first use: it pulls in a BLS pairing library that costs about
    a second, and processes that only read records (the API, most CLI commands) never sign."""
    from eth_account import Account
    return Account


def signable(msg: Message, domain: Domain) -> SignableMessage:
    from eth_account.messages import encode_typed_data
    return encode_typed_data(full_message={
        "types": {"EIP712Domain": _DOMAIN_TYPE, msg.PRIMARY: msg.TYPE},
        "primaryType": msg.PRIMARY,
        "domain": domain.as_eip712(),
        "message": msg.message(),
    })


@lru_cache(maxsize=256)
def _domain_separator(domain: Domain) -> bytes:
    from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_domain
    return bytes(hash_domain(domain.as_eip712()))


def digest(msg: Message, domain: Domain) -> bytes:
    """The 32-byte EIP-712 digest a contract recomputes with ``_hashTypedDataV4``:
    ``keccak256(0x1901 || domainSeparator || hashStruct(msg))``, both halves by eth-account's
    own EIP-712 hashing (what :func:`signable` encodes), the domain separator computed once per
    domain. Every attester, the pool and the verifier hash every message, so this is on the
    bridge's hot path; a property test checks it equals the full ``encode_typed_data`` route."""
    from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_eip712_message
    struct = hash_eip712_message({msg.PRIMARY: msg.TYPE}, msg.message())
    return keccak(b"\x19\x01" + _domain_separator(domain) + bytes(struct))


def sign(msg: Message, domain: Domain, private_key: str | bytes) -> bytes:
    """65-byte ``r || s || v`` signature (low-s, v in {27, 28})."""
    return bytes(_account().sign_message(signable(msg, domain), private_key).signature)


def recover_signer(msg: Message, domain: Domain, signature: bytes) -> str:
    return str(_account().recover_message(signable(msg, domain), signature=signature))


def sign_digest(digest_: bytes, private_key: str | bytes) -> bytes:
    """:func:`sign` for a digest already computed (RFC 6979: the same key and digest always
    give the same bytes, so an attester recognises its own signature by equality)."""
    return bytes(_account().unsafe_sign_hash(digest_, private_key).signature)


def recover_digest(digest_: bytes, signature: bytes) -> str | None:
    """The address that signed ``digest_``, or None for a malformed or unrecoverable signature
    (low-s and v in {27, 28} are enforced by eth-account)."""
    try:
        return str(_account()._recover_hash(digest_, signature=signature))
    except (ValueError, TypeError):
        return None


def as_dict(msg: Message) -> dict[str, Any]:
    data = asdict(msg)
    for f in fields(msg):
        if isinstance(data[f.name], bytes):
            data[f.name] = "0x" + data[f.name].hex()
    return data


def message_from_dict(data: dict[str, Any]) -> Message:
    """Rebuild a pooled message; anything malformed is an AttestationMalformed (Redis content is
    input too: a corrupted entry is skipped, never trusted)."""
    try:
        data = dict(data)
        kind = data.pop("type")
        for key, value in list(data.items()):
            if isinstance(value, str) and value.startswith("0x") and key != "beneficiary":
                data[key] = bytes.fromhex(value[2:])
        if kind == "LockAttestation":
            return LockAttestation(**data)
        if kind != "Settlement":
            raise ValueError(f"unknown type {kind!r}")
        data["kind"] = SettlementKind(data["kind"])
        return Settlement(**data)
    except (KeyError, TypeError, ValueError) as exc:
        raise AttestationMalformed("pool", f"unreadable pooled message: {exc}") from exc
