"""Settlement requests seen on the venue chain at finality, and how far each got (Redis).

A record is the venue's ``SettlementRequested`` event plus a state: ``requested`` ->
``executed`` (released or seized on the source chain). As with locks, Redis holds work in
progress only: the venue's events and the source chain's settled set / settle memos are the
record, and the venue watcher rebuilds every request from its deployment height.
"""

from __future__ import annotations

import json
from typing import Any

import redis
import redis.exceptions

from bridges.ports import SettlementRecord
from chains.evm.bridge_codec import SettlementRequestedEvent
from shared.errors import StoreError
from workers.stores import keys
from workers.stores.epoch import current_epoch, set_if_epoch

__all__ = ["RedisSettlementStore"]


class RedisSettlementStore:
    """Implements :class:`bridges.ports.SettlementStore` on Redis."""

    def __init__(self, url: str, prefix: str = keys.PREFIX) -> None:
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
        raw = self._do(self._redis.get, keys.venue_cursor(chain, self._p))
        return None if raw is None else int(raw)

    def epoch(self) -> str:
        return str(self._do(current_epoch, self._redis, keys.epoch(self._p)))

    def set_cursor(self, chain: str, height: int, *, epoch: str | None = None) -> bool:
        if epoch is None:
            self._do(self._redis.set, keys.venue_cursor(chain, self._p), height)
            return True
        return bool(self._do(set_if_epoch, self._redis, keys.epoch(self._p),
                             keys.venue_cursor(chain, self._p), height, epoch))

    def add(self, event: SettlementRequestedEvent) -> bool:
        """Record a request once; True if it was new."""
        record = SettlementRecord(event)
        key = keys.settlement(record.id_hex, self._p)
        added = self._do(lambda: self._redis.set(key, record.to_json(), nx=True))
        if added:
            self._do(self._redis.sadd, keys.settle_pending(self._p), record.id_hex)
        return bool(added)

    def get(self, settlement_id: str) -> SettlementRecord | None:
        raw = self._do(self._redis.get, keys.settlement(settlement_id, self._p))
        return None if raw is None else SettlementRecord.from_json(raw)

    def pending(self) -> list[SettlementRecord]:
        ids = sorted(self._do(self._redis.smembers, keys.settle_pending(self._p)))
        return [r for r in (self.get(i) for i in ids) if r is not None and r.state != "executed"]

    def all(self) -> list[SettlementRecord]:
        names = self._do(self._redis.keys, keys.settlement("0x*", self._p))
        return [r for r in (self.get(k.split(":", 2)[-1]) for k in sorted(names)) if r]

    def mark_executed(self, settlement_id: str, tx: str) -> None:
        record = self.get(settlement_id)
        if record is None:
            return
        done = SettlementRecord(record.event, "executed", tx)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(keys.settlement(settlement_id, self._p), done.to_json())
        pipe.srem(keys.settle_pending(self._p), settlement_id)
        self._do(pipe.execute)

    # --- Solana two-round signing state -----------------------------------------------------

    def approve(self, settlement_id: str, attester: str) -> None:
        self._do(self._redis.sadd, keys.settle_approvals(settlement_id, self._p), attester)

    def approvals(self, settlement_id: str) -> set[str]:
        return set(self._do(self._redis.smembers, keys.settle_approvals(settlement_id, self._p)))

    def propose(self, settlement_id: str, message: bytes, last_valid: int,
                signers: list[str]) -> None:
        body = json.dumps({"message": message.hex(), "last_valid": last_valid,
                           "signers": signers})
        self._do(self._redis.set, keys.settle_proposal(settlement_id, self._p), body)

    def proposal(self, settlement_id: str) -> dict[str, Any] | None:
        raw = self._do(self._redis.get, keys.settle_proposal(settlement_id, self._p))
        if raw is None:
            return None
        body: dict[str, Any] = json.loads(raw)
        body["message"] = bytes.fromhex(body["message"])
        return body

    def clear_proposal(self, settlement_id: str) -> None:
        self._do(self._redis.delete, keys.settle_proposal(settlement_id, self._p),
                 keys.settle_edsigs(settlement_id, self._p))

    def post_ed25519(self, settlement_id: str, pubkey: str, message: bytes, sig: bytes) -> None:
        self._do(self._redis.hset, keys.settle_edsigs(settlement_id, self._p), pubkey,
                 json.dumps({"message": message.hex(), "sig": sig.hex()}))

    def ed25519_sigs(self, settlement_id: str, message: bytes) -> dict[str, bytes]:
        raw = self._do(self._redis.hgetall, keys.settle_edsigs(settlement_id, self._p))
        out = {}
        for pubkey, value in raw.items():
            item = json.loads(value)
            if item["message"] == message.hex():
                out[pubkey] = bytes.fromhex(item["sig"])
        return out

    # --- what each attester itself signed (its own record, never another's label) ----------

    def signed_proposal(self, attester: str, settlement_id: str) -> dict[str, Any] | None:
        raw = self._do(self._redis.get, keys.edsigned(attester, settlement_id, self._p))
        if raw is None:
            return None
        body: dict[str, Any] = json.loads(raw)
        return body

    def remember_signed(self, attester: str, settlement_id: str, message: bytes,
                        last_valid: int) -> None:
        self._do(self._redis.set, keys.edsigned(attester, settlement_id, self._p),
                 json.dumps({"message": message.hex(), "last_valid": last_valid}))
