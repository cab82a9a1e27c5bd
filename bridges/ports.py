"""What the bridge services need from the state store: the seams, not the storage.

The services in :mod:`bridges` (attester, relayer, settler) and :mod:`orchestrator` take these
protocols; the Redis implementations live in :mod:`workers.stores` (the worker processes' edge),
so nothing below ``workers`` imports Redis. Redis holds work in progress only: losing it costs
re-signing and rescans, never a credit (the venue's consumed set and the vaults' settled sets
are the record).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from chains.evm.bridge_codec import SettlementRequestedEvent
from shared.messages import Domain, Message, SettlementKind

__all__ = ["Posting", "ReadyEntry", "SettlementRecord", "SettlementStore", "SignaturePool"]


@dataclass(frozen=True, slots=True)
class Posting:
    """One signature to post: under item ``key`` (a lock or settlement), over ``digest``."""

    key: str
    digest: str
    message: Message
    domain: Domain
    signer: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class ReadyEntry:
    """An item the pool says may have a quorum (``digest`` "" = look at every digest)."""

    entry_id: str
    key: str
    digest: str


class SignaturePool(Protocol):
    """Attesters post signatures under a lock or settlement key; relayers collect them.

    SECURITY: a signer label is a claim, not evidence. Every reader verifies an entry (it
    recovers to that label over that digest, a member of the live set) before trusting it.
    """

    def post(self, key: str, message: Message, domain: Domain, signer: str,
             signature: bytes) -> str:
        """Add one signer's signature for ``message`` under ``key``; returns the digest hex."""
        ...

    def post_many(self, postings: Sequence[Posting], threshold: int, *,
                  stream: bool = True) -> list[str]:
        """Post all at once; the keys whose digest just reached ``threshold`` entries (pushed
        to the relayer's ready stream when ``stream``)."""
        ...

    def signatures_of(self, pairs: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """The signature stored under each (digest, signer label), or None."""
        ...

    def entries(self, dig: str) -> tuple[Message, Domain, dict[str, bytes]] | None: ...

    def candidates(self, key: str) -> list[tuple[Message, Domain, dict[str, bytes]]]:
        """Every (message, domain, signer -> signature) posted for ``key``, most signed first."""
        ...

    def digests(self, key: str) -> list[str]: ...

    def signers(self, key: str) -> set[str]:
        """Signer labels posted under ``key`` (unverified: for display only)."""
        ...

    def conflicts(self, key: str) -> int:
        """How many distinct digests were posted under ``key``."""
        ...

    def discard(self, dig: str, labels: Iterable[str]) -> int:
        """Remove entries that did not verify and count them."""
        ...

    def discard_message(self, dig: str) -> None: ...
    def discarded(self) -> int: ...
    def mark_ready(self, item_keys: Iterable[str]) -> None: ...
    def read_ready(self, count: int = 1_000, min_idle_ms: int = 15_000) -> list[ReadyEntry]: ...
    def ack(self, entry_ids: Sequence[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class SettlementRecord:
    event: SettlementRequestedEvent
    state: str = "requested"  # requested | executed
    executed_tx: str | None = None

    @property
    def id_hex(self) -> str:
        return "0x" + self.event.settlement_id.hex()

    def to_json(self) -> str:
        data = asdict(self.event)
        for key, value in data.items():
            if isinstance(value, bytes):
                data[key] = "0x" + value.hex()
        data["kind"] = int(self.event.kind)
        return json.dumps({"event": data, "state": self.state, "executed_tx": self.executed_tx})

    @classmethod
    def from_json(cls, raw: str) -> SettlementRecord:
        body = json.loads(raw)
        data: dict[str, Any] = body["event"]
        for key in ("settlement_id", "src_vault", "lock_id", "recipient"):
            data[key] = bytes.fromhex(data[key][2:])
        data["kind"] = SettlementKind(data["kind"])
        return cls(SettlementRequestedEvent(**data), body["state"], body["executed_tx"])


class SettlementStore(Protocol):
    """Settlement requests seen at venue finality, and the Solana two-round signing state."""

    def cursor(self, chain: str) -> int | None: ...

    def epoch(self) -> str:
        """The store's incarnation (workers.stores.epoch): changes when the store is reset."""
        ...

    def set_cursor(self, chain: str, height: int, *, epoch: str | None = None) -> bool:
        """Move the cursor; with ``epoch``, only if the store is still in it (else False)."""
        ...
    def add(self, event: SettlementRequestedEvent) -> bool: ...
    def get(self, settlement_id: str) -> SettlementRecord | None: ...
    def pending(self) -> list[SettlementRecord]: ...
    def all(self) -> list[SettlementRecord]: ...
    def mark_executed(self, settlement_id: str, tx: str) -> None: ...
    def approve(self, settlement_id: str, attester: str) -> None: ...
    def approvals(self, settlement_id: str) -> set[str]: ...
    def propose(self, settlement_id: str, message: bytes, last_valid: int,
                signers: list[str]) -> None: ...
    def proposal(self, settlement_id: str) -> dict[str, Any] | None: ...
    def clear_proposal(self, settlement_id: str) -> None: ...
    def post_ed25519(self, settlement_id: str, pubkey: str, message: bytes, sig: bytes) -> None: ...
    def ed25519_sigs(self, settlement_id: str, message: bytes) -> dict[str, bytes]: ...
    def signed_proposal(self, attester: str, settlement_id: str) -> dict[str, Any] | None:
        """What ``attester`` itself last signed for ``settlement_id`` (message hex, last_valid)."""
        ...

    def remember_signed(self, attester: str, settlement_id: str, message: bytes,
                        last_valid: int) -> None: ...
