"""Quorum rules (DESIGN §2.6), pure.

An attester set is an ordered tuple of distinct, non-zero addresses plus a threshold ``m``.
A signature bundle meets quorum when ``m`` distinct members of *one stored set* signed the
full digest, signers strictly increasing by address (which also rules out duplicates).
The threshold always comes from the stored set, never from the message (SIG-02).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from eth_utils import to_checksum_address

from shared.errors import ConfigError
from shared.settings import AttesterSettings

__all__ = ["AttesterSet", "default_threshold", "meets_quorum", "missing_signers"]

ZERO_ADDRESS = "0x" + "00" * 20


def default_threshold(n: int) -> int:
    """floor(2n/3) + 1: 3 of 4, 5 of 7, 7 of 9."""
    return (2 * n) // 3 + 1


@dataclass(frozen=True, slots=True)
class AttesterSet:
    index: int
    members: tuple[str, ...]
    threshold: int
    operators: tuple[str, ...] | None = None  # who runs each member; None = one operator each

    def __post_init__(self) -> None:
        """Refuse unsafe sets at construction (KEY-02, I15)."""
        n = len(self.members)
        if n == 0:
            raise ConfigError("attesters.members", "the attester set is empty")
        if self.threshold <= 0 or self.threshold > n:
            raise ConfigError("attesters.threshold", f"m={self.threshold} must be in 1..{n}")
        if 2 * self.threshold <= n:
            raise ConfigError("attesters.threshold",
                              f"m={self.threshold} of n={n} is not a majority (need m > n/2)")
        normal = [a.lower() for a in self.members]
        if any(int(a, 16) == 0 for a in normal):
            raise ConfigError("attesters.members", "a member is the zero address")
        if len(set(normal)) != n:
            raise ConfigError("attesters.members", "a member key is repeated")
        ops = self.operators or tuple(normal)
        if len(ops) != n:
            raise ConfigError("attesters.operators", "one operator per member")
        if len(set(ops)) < self.threshold:
            raise ConfigError("attesters.operators",
                              f"{len(set(ops))} distinct operators cannot be a quorum of "
                              f"{self.threshold}")

    @classmethod
    def of(cls, index: int, members: Sequence[str], threshold: int | None = None,
           operators: Sequence[str] | None = None) -> AttesterSet:
        """Members sorted ascending (the order contracts verify in); default m = floor(2n/3)+1."""
        ordered = tuple(sorted((to_checksum_address(m) for m in members), key=str.lower))
        return cls(index, ordered, default_threshold(len(ordered)) if threshold is None
                   else threshold, tuple(operators) if operators else None)

    @classmethod
    def configured(cls, settings: AttesterSettings) -> AttesterSet:
        """The set the settings name (each member's operator defaults to its address)."""
        return cls.of(settings.set_index, [m.address for m in settings.members],
                      settings.threshold, [m.operator or m.address for m in settings.members])

    def contains(self, address: str) -> bool:
        return address.lower() in {m.lower() for m in self.members}


def meets_quorum(attesters: AttesterSet, signers: Sequence[str]) -> bool:
    """True iff ``signers`` (recovered, in bundle order) are strictly increasing members of the
    set and at least ``threshold`` of them."""
    lowered = [s.lower() for s in signers]
    if any(b <= a for a, b in pairwise(lowered)):
        return False
    members = {m.lower() for m in attesters.members}
    return all(s in members for s in lowered) and len(lowered) >= attesters.threshold


def missing_signers(attesters: AttesterSet, signers: Sequence[str]) -> int:
    """How many more distinct member signatures are needed (0 when quorum is met)."""
    members = {m.lower() for m in attesters.members}
    have = {s.lower() for s in signers} & members
    return max(attesters.threshold - len(have), 0)
