"""Check a signature bundle against a stored attester set before spending gas on it. Pure.

The contracts verify again on chain; this is the relayer's filter (SIG-01, SIG-02, KEY-01):
a bundle is accepted only with ``threshold`` distinct members of the stored set over the full
digest. Signatures are returned ordered by signer address, the order the contracts require.

Pool entries are input too (anyone who can write to Redis can write them): :func:`screen`
sorts a pool's ``signer label -> signature`` entries into the ones that recover to a member
under that label over this digest and the ones that do not, so the caller can discard the
latter and count them, never trust them (the label is a claim; the signature is the evidence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from bridges.codec import check_signature
from bridges.quorum import AttesterSet
from shared.errors import AttestationMalformed, QuorumNotReached
from shared.messages import Domain, Message, digest, recover_digest

__all__ = ["Screened", "Verified", "order_for_contract", "recover", "screen", "verify",
           "verify_screened"]


@dataclass(frozen=True, slots=True)
class Verified:
    """A message with a quorum of member signatures, ordered by signer (the only ways to get one
    are :func:`verify` and :func:`verify_screened`)."""

    message: Message
    domain: Domain
    signatures: tuple[bytes, ...]
    signers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Screened:
    """Pool entries sorted by evidence: ``valid`` member address (lower) -> signature, and the
    labels whose signature does not recover to that label, or to no member."""

    valid: dict[str, bytes]
    invalid: tuple[str, ...]


def recover(message: Message, domain: Domain, signature: bytes) -> str | None:
    """Signer address, or None for a malformed or unrecoverable signature."""
    return _recover(digest(message, domain), signature)


def _recover(dig: bytes, signature: bytes) -> str | None:
    try:
        check_signature(signature)
    except AttestationMalformed:
        return None
    return recover_digest(dig, signature)


def order_for_contract(pairs: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Distinct signers, ascending by address (contracts require strictly increasing)."""
    by_signer = {signer.lower(): (signer, sig) for signer, sig in pairs}
    return [by_signer[k] for k in sorted(by_signer)]


def screen(message: Message, domain: Domain, entries: Mapping[str, bytes],
           attesters: AttesterSet, *, dig: bytes | None = None) -> Screened:
    """Sort pool entries (``label -> signature``) by whether each is what its label claims: a
    signature over this exact digest by that member of ``attesters``. One hash (none when the
    caller passes the digest it already checked), then one recovery per entry."""
    dig = dig if dig is not None else digest(message, domain)
    members = {m.lower() for m in attesters.members}
    valid: dict[str, bytes] = {}
    invalid: list[str] = []
    for label, sig in entries.items():
        signer = _recover(dig, sig)
        lowered = label.lower()
        if signer is not None and signer.lower() == lowered and lowered in members:
            valid[lowered] = sig
        else:
            invalid.append(label)
    return Screened(valid, tuple(invalid))


def verify(message: Message, domain: Domain, signatures: Iterable[bytes],
           attesters: AttesterSet, *, dig: bytes | None = None) -> Verified:
    """Keep signatures by members of ``attesters`` over this exact digest; need its threshold.

    Raises:
        QuorumNotReached: fewer than ``attesters.threshold`` distinct valid member signatures.
    """
    if message.attester_set_index != attesters.index:
        raise QuorumNotReached(0, attesters.threshold)
    dig = dig if dig is not None else digest(message, domain)
    valid: dict[str, tuple[str, bytes]] = {}
    for sig in signatures:
        signer = _recover(dig, sig)
        if signer is not None and attesters.contains(signer):
            valid[signer.lower()] = (signer, sig)
            if len(valid) == attesters.threshold:
                break  # enough: recovering more signatures only costs time
    return _quorum(message, domain, valid.values(), attesters)


def verify_screened(message: Message, domain: Domain, screened: Screened,
                    attesters: AttesterSet) -> Verified:
    """:func:`verify` for entries :func:`screen` already recovered against ``attesters`` over
    this message's digest: the same quorum without recovering each signature a second time
    (the relayer screens every quorum it sends; one recovery per signature is enough).

    Raises:
        QuorumNotReached: another set than the message names, or fewer than its threshold.
    """
    if message.attester_set_index != attesters.index:
        raise QuorumNotReached(0, attesters.threshold)
    return _quorum(message, domain, [(to_checksum_address(signer), sig)
                                      for signer, sig in screened.valid.items()
                                      if attesters.contains(signer)], attesters)


def _quorum(message: Message, domain: Domain, pairs: Iterable[tuple[str, bytes]],
            attesters: AttesterSet) -> Verified:
    """Exactly m of the valid (signer, signature) pairs, in the contracts' order (the least
    calldata and gas). Raises QuorumNotReached with fewer than m distinct signers."""
    ordered = order_for_contract(pairs)
    if len(ordered) < attesters.threshold:
        raise QuorumNotReached(len(ordered), attesters.threshold)
    chosen = ordered[: attesters.threshold]
    return Verified(message, domain, tuple(s for _, s in chosen), tuple(a for a, _ in chosen))
