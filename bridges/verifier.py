"""Check a signature bundle against a stored attester set before spending gas on it. Pure.

The contracts verify again on chain; this is the relayer's filter (SIG-01, SIG-02, KEY-01):
a bundle is accepted only with ``threshold`` distinct members of the stored set over the full
digest. Signatures are returned ordered by signer address, the order the contracts require.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import _hash_eip191_message

from bridges.codec import check_signature
from bridges.quorum import AttesterSet
from shared.errors import AttestationMalformed, QuorumNotReached
from shared.messages import Domain, Message, signable

__all__ = ["Verified", "order_for_contract", "recover", "verify"]


@dataclass(frozen=True, slots=True)
class Verified:
    """A message with a quorum of member signatures, ordered by signer (the only way to get one
    is :func:`verify`)."""

    message: Message
    domain: Domain
    signatures: tuple[bytes, ...]
    signers: tuple[str, ...]


def recover(message: Message, domain: Domain, signature: bytes) -> str | None:
    """Signer address, or None for a malformed or unrecoverable signature."""
    try:
        check_signature(signature)
        digest = _hash_eip191_message(signable(message, domain))
        return str(Account._recover_hash(digest, signature=signature))
    except (AttestationMalformed, ValueError):
        return None


def order_for_contract(pairs: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Distinct signers, ascending by address (contracts require strictly increasing)."""
    by_signer = {signer.lower(): (signer, sig) for signer, sig in pairs}
    return [by_signer[k] for k in sorted(by_signer)]


def verify(message: Message, domain: Domain, signatures: Iterable[bytes],
           attesters: AttesterSet) -> Verified:
    """Keep signatures by members of ``attesters`` over this exact digest; need its threshold.

    Raises:
        QuorumNotReached: fewer than ``attesters.threshold`` distinct valid member signatures.
    """
    if message.attester_set_index != attesters.index:
        raise QuorumNotReached(0, attesters.threshold)
    valid: dict[str, tuple[str, bytes]] = {}
    for sig in signatures:
        signer = recover(message, domain, sig)
        if signer is not None and attesters.contains(signer):
            valid[signer.lower()] = (signer, sig)
            if len(valid) == attesters.threshold:
                break  # enough: recovering more signatures only costs time
    ordered = order_for_contract(valid.values())
    if len(ordered) < attesters.threshold:
        raise QuorumNotReached(len(ordered), attesters.threshold)
    chosen = ordered[: attesters.threshold]  # exactly m: the least calldata and gas
    return Verified(message, domain, tuple(s for _, s in chosen), tuple(a for a, _ in chosen))
