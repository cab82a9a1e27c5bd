"""Read every configured chain into an :class:`AuditInput` and run the rules (``bulkhead audit``).

I/O only; the rules are in :mod:`orchestrator.audit_rules` (and the risk invariants I6–I10,
collected by :mod:`orchestrator.audit_risk_io`, in :mod:`orchestrator.audit_risk_rules`). Each chain is read from its
``deployment_height`` to its latest head: locks through the chain's adapter, the venue's
credits and settlement requests through :class:`VenueClient`, EVM settlements through
:class:`VaultClient`, Solana settlements from the vault's history (settle memo + vault debit),
and the views the clients lack (``rateLimit``, ``RateLimitSet`` and ``AttesterSetRotated``
logs, block timestamps) through raw web3 calls against the committed ABIs.

The lock store is read for I12 only; an unreachable store skips I12 (reported in the summary)
rather than failing the audit, because the chains are the record.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solders.pubkey import Pubkey
from solders.signature import Signature
from web3.exceptions import Web3Exception

from chains.base import ChainKind, ChainRef, Finality, LockEvent, address_to_bytes32, bytes32_hex
from chains.evm.adapter import _TRANSIENT, make_web3
from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import CreditedEvent, CreditQueuedEvent, SettlementRequestedEvent
from chains.evm.venue import VaultClient, VenueClient
from chains.factory import adapter_for
from chains.finality import final_head
from chains.solana.codec import MEMO_PROGRAMS, b58decode, vault_delta
from chains.solana.settlement import SETTLE_MEMO_PREFIX
from orchestrator.audit_risk_io import collect_risk
from orchestrator.audit_risk_rules import RiskAuditInput, audit_risk, summarize_risk
from orchestrator.audit_rules import (
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
from orchestrator.errors import ChainError, RpcUnavailable, StoreError
from orchestrator.lock_store import LockStore
from orchestrator.locks import LockRecord
from orchestrator.settings import ChainSettings, Settings

__all__ = ["collect", "run_audit"]

T = TypeVar("T")
_PAGE = 1000


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def _ref(key: str, cfg: ChainSettings) -> ChainRef:
    return ChainRef(key, cfg.kind, cfg.chain_id)


class _RawEvm:
    """Raw views and logs on one EVM chain (what the clients do not expose)."""

    def __init__(self, key: str, cfg: ChainSettings, settings: Settings) -> None:
        self.key, self._url = key, str(cfg.rpc_urls[0])
        self._w3 = make_web3(self._url, settings.retry.timeout_s)
        self._range = cfg.max_block_range
        self._times: dict[int, int] = {}

    async def _do(self, op: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except _TRANSIENT as exc:
            raise RpcUnavailable(self.key, self._url, f"{op}: {exc!r}") from exc
        except Web3Exception as exc:
            raise ChainError(f"{self.key}: {op} failed: {exc}") from exc

    async def timestamp(self, height: int) -> int:
        if height not in self._times:
            block = await self._do(f"block({height})", self._w3.eth.get_block(height))
            self._times[height] = int(block["timestamp"])
        return self._times[height]

    async def events(self, address: str, artifact: str, event: str, start: int,
                     end: int) -> list[Any]:
        """Decoded ``event`` logs emitted by ``address`` in ``start..end``, in chain order."""
        contract = self.contract(address, artifact)
        handle = contract.events[event]()
        topic0 = _hex(self._w3.keccak(text=_signature(contract, event)))
        found = []
        for lo in range(start, end + 1, self._range):
            params: Any = {"fromBlock": lo, "toBlock": min(lo + self._range - 1, end),
                           "address": contract.address, "topics": [topic0]}
            for raw in await self._do(f"getLogs {event}", self._w3.eth.get_logs(params)):
                # SECURITY: only logs the contract itself emitted (the filter is the node's word).
                if raw.get("removed") or str(raw["address"]).lower() != address.lower():
                    continue
                found.append(handle.process_log(raw))
        return sorted(found, key=lambda e: (e["blockNumber"], e["logIndex"]))

    def contract(self, address: str, artifact: str) -> Any:
        """A web3 contract on this chain (for :meth:`view` calls)."""
        return self._w3.eth.contract(address=self._w3.to_checksum_address(address),
                                     abi=load_artifact(artifact).abi)

    async def view(self, call: Any, block: int | str = "latest") -> Any:
        """One ``eth_call`` of a bound contract function at ``block`` (anvil keeps history)."""
        return await self._do(f"{call.fn_name} at {block}", call.call(block_identifier=block))

    async def rate_cap(self, venue: str, src_chain_id: int, asset: str) -> int:
        contract = self.contract(venue, "IsolatedMarginVenue")
        call = contract.functions.rateLimit(src_chain_id, bytes.fromhex(asset[2:])).call()
        return int((await self._do("rateLimit", call))[0])

    async def aclose(self) -> None:
        await self._w3.provider.disconnect()


def _signature(contract: Any, event: str) -> str:
    abi = next(e for e in contract.abi if e.get("type") == "event" and e["name"] == event)
    return f"{event}({','.join(i['type'] for i in abi['inputs'])})"


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


async def _venue(settings: Settings, raw: _RawEvm, end: int) -> dict[str, Any]:
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


async def _indices(raw: _RawEvm, label: str, address: str, artifact: str, start: int,
                   end: int, current: int) -> list[AttesterIndexSample]:
    rotated = await raw.events(address, artifact, "AttesterSetRotated", start, end)
    samples = [AttesterIndexSample(label, int(e["blockNumber"]), int(e["logIndex"]),
                                   int(e["args"]["index"]), True) for e in rotated]
    return [*samples, AttesterIndexSample(label, end, 2**63, current, False)]


async def _caps(raw: _RawEvm, venue: str, start: int, end: int,
                rows: Mapping[str, Any]) -> list[RateCap]:
    caps = []
    for e in await raw.events(venue, "IsolatedMarginVenue", "RateLimitSet", start, end):
        caps.append(RateCap(int(e["args"]["srcChainId"]), _hex(e["args"]["srcAsset"]),
                            int(e["args"]["cap"]), await raw.timestamp(int(e["blockNumber"]))))
    known = {(c.src_chain_id, c.asset) for c in caps}
    lanes = {(int(r.key.split(":")[0]), r.asset) for r in (*rows["credited"], *rows["queued"])}
    for chain_id, asset in sorted(lanes - known):  # set before the scanned range: the view
        caps.append(RateCap(chain_id, asset, await raw.rate_cap(venue, chain_id, asset), 0))
    return caps


# ----- settlements on the source chains -------------------------------------------------------


async def _evm_vaults(settings: Settings, key: str, raw: _RawEvm, end: int
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


def _memos(tx: Mapping[str, Any]) -> list[str]:
    message = tx["transaction"]["message"]
    keys = message["accountKeys"]
    return [b58decode(ix["data"]).decode("utf-8", errors="replace")
            for ix in message["instructions"] if keys[ix["programIdIndex"]] in MEMO_PROGRAMS]


def _solana_settlement(tx: Mapping[str, Any], chain: str, chain_id: int, vault: str,
                       slot: int, signature: str) -> ExecutedSettlement | None:
    """The settlement a successful vault debit with a settle memo executed, if it is one."""
    meta, keys = tx["meta"], tx["transaction"]["message"]["accountKeys"]
    memo = next((m for m in _memos(tx) if m.startswith(SETTLE_MEMO_PREFIX)), None)
    if meta.get("err") is not None or vault not in keys or memo is None:
        return None
    index = keys.index(vault)
    pre, post = meta.get("preTokenBalances") or [], meta.get("postTokenBalances") or []
    mints = [b["mint"] for b in pre if b["accountIndex"] == index]
    # SECURITY: anyone can write the memo; only the attesters' multisig can debit the vault.
    delta = vault_delta(pre, post, index, mints[0]) if mints else 0
    parts = memo.removeprefix(SETTLE_MEMO_PREFIX).split(":")
    if delta >= 0 or len(parts) != 3 or not parts[2].isdigit():
        return None
    vault32 = bytes32_hex(bytes(Pubkey.from_string(vault)))
    return ExecutedSettlement(chain, parts[0].lower(), key_of(chain_id, vault32, parts[1]),
                              -delta, int(parts[2]), slot, signature)


async def _solana_settlements(settings: Settings, key: str) -> list[ExecutedSettlement]:
    cfg = settings.chain(key)
    url = str(cfg.rpc_urls[0])
    found: list[ExecutedSettlement] = []
    try:
        async with AsyncClient(url, timeout=settings.retry.timeout_s) as client:
            for vault in cfg.vaults:
                before: Signature | None = None
                while True:
                    page = (await client.get_signatures_for_address(
                        Pubkey.from_string(vault), before=before, limit=_PAGE,
                        commitment=Confirmed)).value
                    for info in page:
                        if (info.slot < cfg.deployment_height or info.err is not None
                                or SETTLE_MEMO_PREFIX not in (info.memo or "")):
                            continue
                        resp = await client.get_transaction(
                            info.signature, "json", commitment=Confirmed,
                            max_supported_transaction_version=0)
                        if resp.value is not None and (s := _solana_settlement(
                                json.loads(resp.value.to_json()), key, cfg.chain_id, vault,
                                info.slot, str(info.signature))):
                            found.append(s)
                    if len(page) < _PAGE or page[-1].slot < cfg.deployment_height:
                        break
                    before = page[-1].signature
    except (RPCException, SolanaRpcException, httpx2.HTTPError, OSError) as exc:
        raise RpcUnavailable(key, url, f"settlement scan: {exc}") from exc
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
    raws = {k: _RawEvm(k, settings.chain(k), settings) for k in keys
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
