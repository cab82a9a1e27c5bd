"""In-memory backends for the API's pure parts: the project's own ``MemoryLockStore`` and
``FakeChain``, and small stand-ins for the pool and the venue. No process, no socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bulkhead.api import ApiOptions, create_app
from bulkhead.api.deps import ApiState
from chains.evm.venue_codec import LiquidatedEvent, ShortfallEvent
from chains.testing import FakeChain, make_event
from shared.ids import bytes32_hex
from shared.lock_store import MemoryLockStore
from shared.locks import LockRecord, LockState
from shared.settings import Settings

ALICE = "0x" + "66" * 20  # make_event's beneficiary
POS_A = bytes32_hex(b"\x44" * 32)  # make_event's position key
POS_B = bytes32_hex(b"\x45" * 32)
ATTESTERS = [{"name": f"att-{i}", "address": "0x" + f"{i:02x}" * 20} for i in range(1, 5)]


def settings_for(tmp: Path) -> Settings:
    evm = {"kind": "evm", "rpc_urls": ["http://127.0.0.1:1"], "vaults": ["0x" + "11" * 20]}
    return Settings(
        home=tmp, redis_url="redis://127.0.0.1:1/0", venue_chain="evm-b",
        chains={"evm-a": {**evm, "chain_id": 31337},
                "evm-b": {**evm, "chain_id": 31338,
                          "contracts": {"venue": "0x" + "22" * 20, "oracle": "0x" + "33" * 20}},
                "solana": {"kind": "solana", "chain_id": 900001,
                           "rpc_urls": ["http://127.0.0.1:2"]}},
        attesters={"members": ATTESTERS})


PATH = [LockState.SEEN, LockState.SAFE, LockState.FINALIZED, LockState.ATTESTED,
        LockState.CREDITED]


def record(nonce: int, state: LockState, *, at_ms: int, chain: str = "evm-a",
           credit_after_ms: int = 4_000, **event: Any) -> LockRecord:
    """A lock record walked along the lifecycle to ``state`` (credited ``credit_after_ms``
    after it was first seen)."""
    e = replace(make_event(chain, nonce, 1_000_000 * nonce, height=nonce), **event)
    rec = LockRecord.first_seen(e, at_ms)
    if state == LockState.DROPPED:
        return rec.advanced(LockState.DROPPED, nonce + 1, at_ms + 1)
    for i, step in enumerate(PATH[1:PATH.index(state) + 1], start=1):
        rec = rec.advanced(step, nonce + i,
                           at_ms + (credit_after_ms if step == LockState.CREDITED else i))
    return rec


@dataclass
class FakePool:
    """The signature pool's read side: digest -> signer -> signature per lock key."""

    posted: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)

    def candidates(self, key: str) -> list[tuple[Any, Any, dict[str, bytes]]]:
        return sorted(((None, None, sigs) for sigs in self.posted.get(key, {}).values()),
                      key=lambda c: -len(c[2]))

    def signers(self, key: str) -> set[str]:
        return {s for _, _, sigs in self.candidates(key) for s in sigs}


@dataclass
class FakeSettlements:
    records: list[Any] = field(default_factory=list)

    def all(self) -> list[Any]:
        return self.records


@dataclass
class FakeVenue:
    rows: list[dict[str, Any]] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    final_height: int = 0
    fail: Exception | None = None

    async def position_rows(self, keys: list[bytes]) -> list[dict[str, Any]]:
        if self.fail:
            raise self.fail
        wanted = {"0x" + k.hex() for k in keys}
        return [r for r in self.rows if r["position"] in wanted]

    async def risk_events(self) -> tuple[list[Any], int]:
        if self.fail:
            raise self.fail
        return self.events, self.final_height


@dataclass
class FakeMarks:
    """The mark reader's one call: rows as ``rows.mark_row`` builds them, or a failure."""

    items: list[dict[str, Any]] = field(default_factory=list)
    fail: Exception | None = None

    async def rows(self) -> list[dict[str, Any]]:
        if self.fail:
            raise self.fail
        return self.items


def position_row(key: str, *, ratio: str = "2.5", liquidatable: bool = False) -> dict[str, Any]:
    """A row as ``trade.position_rows`` returns it."""
    return {"position": key, "size_e18": "1000000000000000000", "entry_e8": 300_000_000_000,
            "equity": "320.5", "initial": "300", "maintenance": "150", "buffer": "0",
            "margin_ratio": ratio, "liquidatable": liquidatable,
            "liquidation_price_e8": 283_000_000_000, "bankruptcy_price_e8": 267_950_000_000,
            "method": "closed-form"}


def liquidated(key: bytes, height: int, tx: str, *, full: bool = True) -> LiquidatedEvent:
    return LiquidatedEvent(position_key=key, market=b"\x01" * 32,
                           closed_size_e18=10**18, mark_e8=165_000_000_000,
                           fee_usd_e18=5 * 10**18, full=full, plan_tick=1_700_000_000,
                           height=height, tx_id=tx, log_index=3)


def shortfall(key: bytes, height: int, tx: str, usd_e18: int) -> ShortfallEvent:
    return ShortfallEvent(position_key=key, usd_e18=usd_e18, height=height, tx_id=tx,
                          log_index=4)


@dataclass
class Backends:
    store: MemoryLockStore = field(default_factory=MemoryLockStore)
    pool: FakePool = field(default_factory=FakePool)
    venue: FakeVenue = field(default_factory=FakeVenue)
    marks: FakeMarks = field(default_factory=FakeMarks)
    chains: dict[str, FakeChain] = field(default_factory=lambda: {
        k: FakeChain(key=k) for k in ("evm-a", "evm-b", "solana")})


@pytest.fixture
def backends() -> Backends:
    return Backends()


@pytest.fixture
def client(tmp_path: Path, backends: Backends) -> Iterator[TestClient]:
    settings = settings_for(tmp_path)

    @asynccontextmanager
    async def factory(s: Settings, opts: ApiOptions) -> AsyncIterator[ApiState]:
        yield ApiState(s, opts, backends.store, backends.pool, FakeSettlements(), None,
                       dict(backends.chains), backends.venue, backends.marks)

    app = create_app(settings, options=ApiOptions(heads_ttl_s=0, venue_ttl_s=0,
                                                  max_finality_lag={"solana": 8}),
                     state_factory=factory)
    with TestClient(app) as c:
        yield c
