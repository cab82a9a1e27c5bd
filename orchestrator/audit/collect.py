"""Read every configured chain into an :class:`AuditInput` and run the rules (``bulkhead audit``).

I/O only; the rules are in :mod:`orchestrator.audit.rules` (and the risk invariants I6–I10,
collected by :mod:`orchestrator.audit.risk_collect`, in :mod:`orchestrator.audit.risk_rules`). Each chain is read from its
``deployment_height`` to its latest head: locks through the chain's adapter, the venue's
credits and settlement requests through :class:`VenueClient`, EVM settlements through
:class:`VaultClient`, Solana settlements from the vault's history (settle memo + vault debit),
and the views the clients lack (``rateLimit``, ``RateLimitSet`` and ``AttesterSetRotated``
logs, block timestamps) through :class:`chains.evm.event_reader.EvmEventReader`.

The lock store is read for I12 only; an unreachable store skips I12 (reported in the summary)
rather than failing the audit, because the chains are the record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from chains.accounts import account_bytes32
from chains.evm.bridge_codec import CreditedEvent, CreditQueuedEvent, SettlementRequestedEvent
from chains.evm.event_reader import EvmEventReader
from chains.evm.vault import VaultClient
from chains.evm.venue import VenueClient
from chains.factory import adapter_for
from chains.finality import final_head
from chains.solana.settlement import executed_settlements
from orchestrator.audit.risk_collect import collect_risk
from orchestrator.audit.risk_rules import RiskAuditInput, audit_risk, summarize_risk
from orchestrator.audit.rules import (
    AttesterIndexSample,
    AuditInput,
    AuditReport,
    ChainHead,
    CreditedRow,
    CreditQueuedRow,
    ExecutedSettlement,
    QueuedReleaseRow,
    RateCap,
    SettlementRequestRow,
    audit,
    key_of,
    summarize,
)
from shared.chain import ChainKind, ChainRef, Finality
from shared.errors import StoreError
from shared.events import LockEvent
from shared.ids import address_to_bytes32, bytes32_hex
from shared.lock_store import LockStore
from shared.locks import LockRecord
from shared.settings import ChainSettings, Settings

__all__ = ["collect", "run_audit"]



def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def _ref(key: str, cfg: ChainSettings) -> ChainRef:
    return ChainRef(key, cfg.kind, cfg.chain_id)


def _reader(key: str, cfg: ChainSettings, settings: Settings) -> EvmEventReader:
    return EvmEventReader(key, str(cfg.rpc_urls[0]), timeout_s=settings.retry.timeout_s,
                          max_block_range=cfg.max_block_range)


async def _rate_cap(raw: EvmEventReader, venue: str, src_chain_id: int, asset: str) -> int:
    limit = await raw.call(venue, "IsolatedMarginVenue", "rateLimit", src_chain_id,
                           bytes.fromhex(asset[2:]))
    return int(limit[0])


# ----- locks and heads ------------------------------------------------------------------------


async def _chain_locks(settings: Settings, key: str) -> tuple[ChainHead, list[LockEvent]]:
    cfg = settings.chain(key)
    adapter = adapter_for(key, cfg, settings.retry)
    try:
        latest = await adapter.head(Finality.LATEST)
        final = await final_head(adapter, cfg.finality, latest)
        start = min(cfg.deployment_height, latest.height)
        locks = list(await adapter.lock_events(start, latest.height)) if cfg.vaults else []
    finally:
        await adapter.aclose()
    return ChainHead(key, cfg.chain_id, final.height, latest.height), locks


# ----- the venue ------------------------------------------------------------------------------


async def _venue(settings: Settings, raw: EvmEventReader, end: int) -> dict[str, Any]:
    key = settings.venue_chain
    cfg = settings.chain(key)
    _, address = settings.venue()
    client = await VenueClient.connect([str(u) for u in cfg.rpc_urls], address,
                                       chain=_ref(key, cfg), retry=settings.retry,
                                       max_block_range=cfg.max_block_range)
    try:
        events = await client.events(cfg.deployment_height, end)
        released = await client.released_events(cfg.deployment_height, end)
        owners = {}
        for e in events:
            if isinstance(e, (CreditedEvent, CreditQueuedEvent)):
                owners[e.lock_key] = _hex((await client.lock_credit(e.lock_key)).src_owner)
        index, _, _ = await client.current_attester_set()
    finally:
        await client.aclose()
    out: dict[str, Any] = {"credited": [], "queued": [], "requests": [], "released": []}
    for e in events:
        ts = await raw.timestamp(e.height)
        if isinstance(e, CreditedEvent):
            out["credited"].append(CreditedRow(
                key_of(e.src_chain_id, _hex(e.src_vault), _hex(e.lock_id)), _hex(e.src_asset),
                e.amount, _hex(e.position_key), e.beneficiary, e.height, ts, e.tx_id,
                owners.get(e.lock_key)))
        elif isinstance(e, CreditQueuedEvent):
            out["queued"].append(CreditQueuedRow(
                key_of(e.src_chain_id, _hex(e.src_vault), _hex(e.lock_id)), _hex(e.lock_key),
                _hex(e.src_asset), e.amount, _hex(e.position_key), e.height, ts, e.tx_id,
                owners.get(e.lock_key)))
        elif isinstance(e, SettlementRequestedEvent):
            out["requests"].append(SettlementRequestRow(
                _hex(e.settlement_id), key_of(e.src_chain_id, _hex(e.src_vault),
                                              _hex(e.lock_id)), e.amount, int(e.kind), e.height))
    for r in released:
        out["released"].append(QueuedReleaseRow(_hex(r.lock_key), r.amount, r.height,
                                                await raw.timestamp(r.height), r.tx_id))
    out["indices"] = await _indices(raw, f"{key}:venue", address, "IsolatedMarginVenue",
                                    cfg.deployment_height, end, index)
    out["caps"] = await _caps(raw, address, cfg.deployment_height, end, out)
    return out


async def _indices(raw: EvmEventReader, label: str, address: str, artifact: str, start: int,
                   end: int, current: int) -> list[AttesterIndexSample]:
    rotated = await raw.events(address, artifact, "AttesterSetRotated", start, end)
    samples = [AttesterIndexSample(label, int(e["blockNumber"]), int(e["logIndex"]),
                                   int(e["args"]["index"]), True) for e in rotated]
    return [*samples, AttesterIndexSample(label, end, 2**63, current, False)]


async def _caps(raw: EvmEventReader, venue: str, start: int, end: int,
                rows: Mapping[str, Any]) -> list[RateCap]:
    caps = []
    for e in await raw.events(venue, "IsolatedMarginVenue", "RateLimitSet", start, end):
        caps.append(RateCap(int(e["args"]["srcChainId"]), _hex(e["args"]["srcAsset"]),
                            int(e["args"]["cap"]), await raw.timestamp(int(e["blockNumber"]))))
    known = {(c.src_chain_id, c.asset) for c in caps}
    lanes = {(int(r.key.split(":")[0]), r.asset) for r in (*rows["credited"], *rows["queued"])}
    for chain_id, asset in sorted(lanes - known):  # set before the scanned range: the view
        caps.append(RateCap(chain_id, asset, await _rate_cap(raw, venue, chain_id, asset), 0))
    return caps


# ----- settlements on the source chains -------------------------------------------------------


async def _evm_vaults(settings: Settings, key: str, raw: EvmEventReader, end: int
                      ) -> tuple[list[ExecutedSettlement], list[AttesterIndexSample]]:
    cfg = settings.chain(key)
    executed, indices = [], []
    for vault in cfg.vaults:
        client = await VaultClient.connect([str(u) for u in cfg.rpc_urls], vault,
                                           chain=_ref(key, cfg), retry=settings.retry,
                                           max_block_range=cfg.max_block_range)
        try:
            settled = await client.settled_events(cfg.deployment_height, end)
            index, _, _ = await client.current_attester_set()
        finally:
            await client.aclose()
        vault32 = address_to_bytes32(vault)
        executed += [ExecutedSettlement(
            key, _hex(s.settlement_id), key_of(cfg.chain_id, vault32,
                                               bytes32_hex(s.nonce.to_bytes(32, "big"))),
            s.amount, int(s.kind), s.height, s.tx_id) for s in settled]
        indices += await _indices(raw, f"{key}:vault:{vault}", vault, "CollateralVault",
                                  cfg.deployment_height, end, index)
    return executed, indices


async def _solana_settlements(settings: Settings, key: str) -> list[ExecutedSettlement]:
    cfg = settings.chain(key)
    found: list[ExecutedSettlement] = []
    for vault in cfg.vaults:
        vault32 = bytes32_hex(account_bytes32(ChainKind.SOLANA, vault))
        history = await executed_settlements(str(cfg.rpc_urls[0]), vault,
                                             min_slot=cfg.deployment_height,
                                             timeout_s=settings.retry.timeout_s)
        found += [ExecutedSettlement(key, done.settlement_id,
                                     key_of(cfg.chain_id, vault32, done.lock_id), done.amount,
                                     done.kind, slot, signature)
                  for slot, signature, done in history]
    return found


# ----- the whole audit ------------------------------------------------------------------------


def _records(store: LockStore | None) -> tuple[list[LockRecord], bool]:
    if store is None:
        return [], False
    try:
        return store.all_records(), True
    except StoreError:
        return [], False


async def collect(settings: Settings, store: LockStore | None
                  ) -> tuple[AuditInput, RiskAuditInput]:
    """Read every configured chain (deployment height .. latest head) and the lock store: the
    bridge invariants' input and the risk invariants' (I6–I10, venue chain only).

    Raises:
        ConfigError: no venue configured. RpcUnavailable, ChainError, LogMalformed: a chain
            could not be read completely (an audit over part of a chain proves nothing).
    """
    venue_chain_id, venue = settings.venue()
    keys = sorted(settings.chains)
    scanned = await asyncio.gather(*(_chain_locks(settings, k) for k in keys))
    heads = [head for head, _ in scanned]
    latest = {h.chain: h.latest_height for h in heads}
    raws = {k: _reader(k, settings.chain(k), settings) for k in keys
            if settings.chain(k).kind == ChainKind.EVM}
    try:
        venue_rows = await _venue(settings, raws[settings.venue_chain],
                                  latest[settings.venue_chain])
        executed, indices = [], list(venue_rows["indices"])
        for k in keys:
            if settings.chain(k).kind == ChainKind.EVM:
                found, more = await _evm_vaults(settings, k, raws[k], latest[k])
                executed += found
                indices += more
            elif settings.chain(k).vaults:
                executed += await _solana_settlements(settings, k)
        records, store_checked = _records(store)
        risk = await collect_risk(settings, raws[settings.venue_chain],
                                  latest[settings.venue_chain], records)
    finally:
        for raw in raws.values():
            await raw.aclose()
    return AuditInput(
        venue_chain_id=venue_chain_id, venue=venue, heads=heads,
        locks=[e for _, locks in scanned for e in locks],
        credited=venue_rows["credited"], queued=venue_rows["queued"],
        released=venue_rows["released"], requests=venue_rows["requests"], executed=executed,
        attester_indices=indices, caps=venue_rows["caps"], records=records,
        store_checked=store_checked), risk


def _order(invariant: str) -> int:
    return int(invariant.removeprefix("I"))


async def run_audit(settings: Settings, store: LockStore | None) -> AuditReport:
    """Collect, check every invariant (I1–I12), and summarize. Raises: as :func:`collect`."""
    inp, risk = await collect(settings, store)
    bridge, risky = audit(inp), audit_risk(risk)
    summary = summarize(inp, bridge)
    per_inv = {**summary["invariants"], **summarize_risk(risk, risky)}
    summary["invariants"] = {k: per_inv[k] for k in sorted(per_inv, key=_order)}
    summary["violations"] += len(risky)
    summary["risk_operations"] = len(risk.ops)
    violations = sorted([*bridge, *risky], key=lambda v: _order(v.invariant))
    return AuditReport(violations, summary)
