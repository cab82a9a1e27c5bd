"""Settlement requests seen on the venue chain at finality, and how far each got (Redis).

A record is the venue's ``SettlementRequested`` event plus a state: ``requested`` ->
``executed`` (released or seized on the source chain). As with locks, Redis holds work in
progress only: the venue's events and the source chain's settled set / settle memos are the
record, and the venue watcher rebuilds every request from its deployment height.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis
import redis.exceptions

from bridges.attestation import SettlementKind
from chains.evm.bridge_codec import SettlementRequestedEvent
from orchestrator.errors import StoreError

__all__ = ["SettlementRecord", "SettlementStore"]


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


class SettlementStore:
    def __init__(self, url: str, prefix: str = "bh:") -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._p = prefix

    def close(self) -> None:
        self._redis.close()

    def _do(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    def cursor(self, chain: str) -> int | None:
        raw = self._do(self._redis.get, f"{self._p}venue-cursor:{chain}")
        return None if raw is None else int(raw)

    def set_cursor(self, chain: str, height: int) -> None:
        self._do(self._redis.set, f"{self._p}venue-cursor:{chain}", height)

    def add(self, event: SettlementRequestedEvent) -> bool:
        """Record a request once; True if it was new."""
        record = SettlementRecord(event)
        key = f"{self._p}settle:{record.id_hex}"
        added = self._do(lambda: self._redis.set(key, record.to_json(), nx=True))
        if added:
            self._do(self._redis.sadd, f"{self._p}settle-pending", record.id_hex)
        return bool(added)

    def get(self, settlement_id: str) -> SettlementRecord | None:
        raw = self._do(self._redis.get, f"{self._p}settle:{settlement_id}")
        return None if raw is None else SettlementRecord.from_json(raw)

    def pending(self) -> list[SettlementRecord]:
        ids = sorted(self._do(self._redis.smembers, f"{self._p}settle-pending"))
        return [r for r in (self.get(i) for i in ids) if r is not None and r.state != "executed"]

    def all(self) -> list[SettlementRecord]:
        keys = self._do(self._redis.keys, f"{self._p}settle:0x*")
        return [r for r in (self.get(k.split(":", 2)[-1]) for k in sorted(keys)) if r]

    def mark_executed(self, settlement_id: str, tx: str) -> None:
        record = self.get(settlement_id)
        if record is None:
            return
        done = SettlementRecord(record.event, "executed", tx)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(f"{self._p}settle:{settlement_id}", done.to_json())
        pipe.srem(f"{self._p}settle-pending", settlement_id)
        self._do(pipe.execute)

    # --- Solana two-round signing state -----------------------------------------------------

    def approve(self, settlement_id: str, attester: str) -> None:
        self._do(self._redis.sadd, f"{self._p}settle-approvals:{settlement_id}", attester)

    def approvals(self, settlement_id: str) -> set[str]:
        return set(self._do(self._redis.smembers, f"{self._p}settle-approvals:{settlement_id}"))

    def propose(self, settlement_id: str, message: bytes, last_valid: int,
                signers: list[str]) -> None:
        body = json.dumps({"message": message.hex(), "last_valid": last_valid,
                           "signers": signers})
        self._do(self._redis.set, f"{self._p}settle-proposal:{settlement_id}", body)

    def proposal(self, settlement_id: str) -> dict[str, Any] | None:
        raw = self._do(self._redis.get, f"{self._p}settle-proposal:{settlement_id}")
        if raw is None:
            return None
        body: dict[str, Any] = json.loads(raw)
        body["message"] = bytes.fromhex(body["message"])
        return body

    def clear_proposal(self, settlement_id: str) -> None:
        self._do(self._redis.delete, f"{self._p}settle-proposal:{settlement_id}",
                 f"{self._p}settle-edsigs:{settlement_id}")

    def post_ed25519(self, settlement_id: str, pubkey: str, message: bytes, sig: bytes) -> None:
        self._do(self._redis.hset, f"{self._p}settle-edsigs:{settlement_id}", pubkey,
                 json.dumps({"message": message.hex(), "sig": sig.hex()}))

    def ed25519_sigs(self, settlement_id: str, message: bytes) -> dict[str, bytes]:
        raw = self._do(self._redis.hgetall, f"{self._p}settle-edsigs:{settlement_id}")
        out = {}
        for pubkey, value in raw.items():
            item = json.loads(value)
            if item["message"] == message.hex():
                out[pubkey] = bytes.fromhex(item["sig"])
        return out
