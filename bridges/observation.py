"""What an attester signs is derived from its own observation, here, and nothing else. Pure.

# SECURITY: every field of the attestation comes from a ``LockEvent`` the attester's own
adapter returned at finality; a task payload only says where to look (DESIGN §2.6).
"""

from __future__ import annotations

from eth_utils import to_checksum_address

from shared.errors import AttestationMalformed
from shared.events import LockEvent
from shared.messages import LockAttestation

__all__ = ["attestation_for", "hexbytes32"]


def hexbytes32(value: str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise AttestationMalformed("bytes32", f"{value!r} is not 32 bytes")
    return raw


def attestation_for(event: LockEvent, attester_set_index: int) -> LockAttestation:
    """The ``LockAttestation`` for an attributed, observed lock.

    Raises:
        AttestationMalformed: the event is unattributed (never credited) or has no amount.
    """
    if not event.attributed:
        raise AttestationMalformed("lock", f"unattributed: {event.unattributed_reason}")
    if event.amount <= 0:
        raise AttestationMalformed("amount", "zero")
    return LockAttestation(
        src_chain_id=event.chain_id, src_vault=hexbytes32(event.vault),
        lock_id=hexbytes32(event.lock_id), owner=hexbytes32(event.owner),
        beneficiary=to_checksum_address(event.beneficiary), src_asset=hexbytes32(event.asset),
        amount=event.amount, decimals=event.decimals,
        position_key=hexbytes32(event.position_key), attester_set_index=attester_set_index)
