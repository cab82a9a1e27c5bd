"""Per-process services: one event loop, clients created after fork (never inherited).

``services()`` builds everything lazily on first use inside the pool child, from the settings
the composition root fixed (:func:`workers.celery_app.process_settings`). Async adapters run on
this process's own ``asyncio.Runner``. Every member is typed: a task reads what it calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Coroutine
from functools import cached_property
from typing import Any, TypeVar

import redis
import structlog
from celery.signals import worker_process_init

from bridges.attester import AttesterService
from bridges.keys import (
    load_accountant_key,
    load_attester_account,
    load_attester_solana,
    load_relayer_key,
    load_relayer_solana,
    load_risk_key,
)
from bridges.live_sets import LiveSets
from bridges.ports import SettlementStore, SignaturePool
from bridges.quorum import AttesterSet
from bridges.relay import RelayService
from bridges.settler import SettlementAttester, SettlementRelay
from chains.base import ChainAdapter
from chains.evm.oracle import OracleClient
from chains.evm.sender import FeePolicy, SendEvent
from chains.evm.vault import VaultClient
from chains.evm.venue import VenueClient
from chains.factory import adapter_for
from orchestrator.liquidation.buffers import BufferUpdater
from orchestrator.liquidation.keeper import Keeper
from orchestrator.liquidation.topup_keeper import RuleIndex, TopUpKeeper
from orchestrator.venues.lanes import LaneBook, lanes, read_books
from orchestrator.venues.registry import open_venue
from orchestrator.watch.accountant import Accountant
from orchestrator.watch.settlements import SettlementWatcher
from orchestrator.watch.watcher import Watcher
from shared.chain import ChainKind, ChainRef, Finality
from shared.errors import ConfigError
from shared.messages import Domain
from shared.settings import Settings
from workers.stores import keys
from workers.stores.accountant import RedisAccountantState
from workers.stores.locks import RedisLockStore
from workers.stores.pool import RedisSignaturePool
from workers.stores.settlements import RedisSettlementStore
from workers.stores.ticks import RedisTickHistory

__all__ = ["Services", "check_redis", "services"]

T = TypeVar("T")
log = structlog.get_logger(__name__)
_services: Services | None = None


def check_redis(url: str) -> None:
    """Refuse to run on a Redis that may evict keys: a lost dedup claim is a silent bug."""
    client = redis.Redis.from_url(url)
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    finally:
        client.close()
    if policy != "noeviction":
        raise ConfigError("redis_url", f"maxmemory-policy is {policy!r}; set noeviction")


class Services:
    """Everything one worker process uses, built on first use (never before fork)."""

    def __init__(self, settings: Settings, *, attester: str | None = None) -> None:
        self.settings = settings
        self.attester_name = attester
        self._runner = asyncio.Runner()
        self._watchers: dict[str, Watcher] = {}
        self._adapters: dict[tuple[str, Finality, tuple[str, ...]], ChainAdapter] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this process's loop, in a copy of the caller's context: log lines
        it emits carry the current task's fields, never a previous task's."""
        return self._runner.run(coro, context=contextvars.copy_context())

    # ----- stores ---------------------------------------------------------------------------

    @cached_property
    def store(self) -> RedisLockStore:
        return RedisLockStore(str(self.settings.redis_url))

    @cached_property
    def pool(self) -> SignaturePool:
        return RedisSignaturePool(str(self.settings.redis_url),
                                  consumer=f"{self.attester_name or 'relay'}:{os.getpid()}")

    @cached_property
    def settlement_store(self) -> SettlementStore:
        return RedisSettlementStore(str(self.settings.redis_url))

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(str(self.settings.redis_url))

    # ----- the sending layer's pricing and its observer -------------------------------------

    @cached_property
    def fees(self) -> FeePolicy:
        return FeePolicy.from_settings(self.settings.fees)

    def on_send(self, event: SendEvent) -> None:
        """Every sending-layer decision: a log line, and a counter per chain and kind that
        ``/metrics`` exports (replacements, re-pricings, budget exhaustion...)."""
        level = "error" if event.kind == "budget_exhausted" else (
            "warning" if event.kind in ("replaced", "repriced", "gap_filled", "rebroadcast",
                                        "replace_refused", "displaced") else "debug")
        getattr(log, level)(f"tx_{event.kind}", chain=event.chain, sender=event.sender,
                            nonce=event.nonce, tx=event.tx_hash, max_fee_wei=event.max_fee_wei,
                            tip_wei=event.tip_wei, detail=event.detail)
        if event.kind != "sent" and event.kind != "mined":
            try:
                self.redis.hincrby(keys.tx_events(), f"{event.chain}:{event.kind}", 1)
            except redis.RedisError:
                pass  # metrics only: never fail a send for a counter

    # ----- chains ---------------------------------------------------------------------------

    @cached_property
    def attester_set(self) -> AttesterSet:
        """The configured set; unsafe sets refuse to start (KEY-02)."""
        return AttesterSet.configured(self.settings.attesters)

    @cached_property
    def _operators(self) -> dict[str, str]:
        """Who runs each attester the settings know (KEY-02 counts operators, not keys)."""
        return {m.address: m.operator or m.address for m in self.settings.attesters.members}

    def live_sets(self, registry: Any) -> LiveSets:
        """The live attester sets of one registry (venue or EVM vault client), from the chain:
        workers follow a rotation without a restart or a settings change."""
        self.attester_set  # noqa: B018 -- the configured roster must itself be safe (KEY-02)
        return LiveSets(registry, operators=self._operators,
                        ttl_s=self.settings.bridge.attester_set_ttl_s)

    def vault_reader(self, chain: str, rpc_urls: list[str] | None = None,
                     sender_key: str | None = None) -> VaultClient:
        """A client of ``chain``'s (first) EVM collateral vault."""
        s, cfg = self.settings, self.settings.chain(chain)
        return self.run(VaultClient.connect(
            rpc_urls or [str(u) for u in cfg.rpc_urls], cfg.vaults[0],
            chain=ChainRef(chain, ChainKind.EVM, cfg.chain_id), sender_key=sender_key,
            retry=s.retry, fees=self.fees, on_send=self.on_send))

    def _evm_vault_chains(self) -> list[str]:
        return [name for name, cfg in self.settings.chains.items()
                if cfg.kind == ChainKind.EVM and cfg.vaults]

    @cached_property
    def venue_domain(self) -> Domain:
        chain_id, venue = self.settings.venue()
        return Domain(chain_id, venue)

    def adapter(self, chain: str, commitment: Finality = Finality.LATEST,
                rpc_urls: list[str] | None = None) -> ChainAdapter:
        """One adapter (and HTTP session) per (chain, commitment, endpoints) per process."""
        key = (chain, commitment, tuple(rpc_urls or ()))
        if key not in self._adapters:
            cfg = self.settings.chain(chain)
            if rpc_urls:
                cfg = cfg.model_copy(update={"rpc_urls": rpc_urls})
            self._adapters[key] = adapter_for(chain, cfg, self.settings.retry,
                                              commitment=commitment)
        return self._adapters[key]

    def venue_client(self, rpc_urls: list[str] | None = None,
                     sender_key: str | None = None) -> VenueClient:
        """A venue client at the configured (or the given) endpoints."""
        s = self.settings
        cfg = s.chain(s.venue_chain)
        chain = ChainRef(s.venue_chain, ChainKind.EVM, cfg.chain_id)
        return self.run(VenueClient.connect(rpc_urls or [str(u) for u in cfg.rpc_urls],
                                            cfg.contracts["venue"], chain=chain,
                                            sender_key=sender_key, retry=s.retry,
                                            fees=self.fees, on_send=self.on_send))

    @cached_property
    def venue_reader(self) -> VenueClient:
        """This process's read-only venue client (the venue watcher's and rule index's)."""
        return self.venue_client()

    # ----- watchers -------------------------------------------------------------------------

    def watcher(self, chain: str) -> Watcher:
        """One watcher per chain per process; Solana re-checks at ``finalized`` commitment."""
        if chain not in self._watchers:
            cfg = self.settings.chain(chain)
            confirm = (self.adapter(chain, Finality.FINALIZED)
                       if cfg.kind == ChainKind.SOLANA else None)
            self._watchers[chain] = Watcher(
                self.adapter(chain), self.store, cfg.finality,
                start_height=cfg.deployment_height, max_block_range=cfg.max_block_range,
                confirm_adapter=confirm, orphan_depth=cfg.orphan_depth,
                orphan_recheck_ms=int(cfg.orphan_recheck_s * 1000))
        return self._watchers[chain]

    @cached_property
    def settlement_watcher(self) -> SettlementWatcher:
        s = self.settings
        cfg = s.chain(s.venue_chain)
        return SettlementWatcher(self.adapter(s.venue_chain), self.venue_reader,
                                 self.settlement_store, cfg.finality, chain=s.venue_chain,
                                 start_height=cfg.deployment_height,
                                 max_block_range=cfg.max_block_range)

    # ----- the bridge -----------------------------------------------------------------------

    def _member(self) -> Any:
        if not self.attester_name:
            raise ConfigError("attester", "this worker has no attester name (--name)")
        return self.settings.attesters.member(self.attester_name)

    @cached_property
    def attester(self) -> AttesterService:
        member = self._member()
        account = load_attester_account(self.settings, member)
        adapters = {key: self.adapter(key, Finality.FINALIZED,
                                      [str(u) for u in member.rpc_urls.get(key, [])] or None)
                    for key, cfg in self.settings.chains.items() if cfg.vaults}
        policies = {key: self.settings.chain(key).finality for key in adapters}
        own = [str(u) for u in member.rpc_urls.get(self.settings.venue_chain, [])] or None
        return AttesterService(member.name, account,
                               sets=self.live_sets(self.venue_client(own)),
                               venue=self.venue_domain, adapters=adapters, policies=policies,
                               pool=self.pool,
                               max_block_range=max(self.settings.chain(k).max_block_range
                                                   for k in adapters))

    @cached_property
    def relay(self) -> RelayService:
        venue = self.venue_client(sender_key=load_relayer_key(self.settings))
        return RelayService(venue, self.venue_domain, self.live_sets(venue), self.store,
                            self.pool, max_batch=self.settings.bridge.max_batch,
                            batch_gas=self.settings.bridge.batch_gas)

    @cached_property
    def settlement_attester(self) -> SettlementAttester:
        s = self.settings
        member = self._member()
        own = [str(u) for u in member.rpc_urls.get(s.venue_chain, [])] or None
        vault_sets = {chain: self.live_sets(self.vault_reader(
            chain, [str(u) for u in member.rpc_urls.get(chain, [])] or None))
            for chain in self._evm_vault_chains()}
        return SettlementAttester(
            member.name, load_attester_account(s, member), load_attester_solana(s, member),
            settings=s, venue_reader=self.venue_client(own),
            venue_adapter=self.adapter(s.venue_chain, Finality.FINALIZED, own),
            pool=self.pool, store=self.settlement_store, vault_sets=vault_sets)

    @cached_property
    def settlement_relay(self) -> SettlementRelay:
        s = self.settings
        key = load_relayer_key(s)
        vaults = {name: self.vault_reader(name, sender_key=key)
                  for name in self._evm_vault_chains()}
        return SettlementRelay(s, self.settlement_store, self.pool,
                               {name: self.live_sets(v) for name, v in vaults.items()}, vaults,
                               load_relayer_solana(s))

    # ----- risk -----------------------------------------------------------------------------

    @cached_property
    def keeper(self) -> Keeper:
        """The risk worker's keeper over the configured venue adapter (registry name, default
        ``reference``), sending liquidations with the risk key."""
        s = self.settings
        return Keeper(self.run(open_venue(s.venue_adapter, s, sender_key=load_risk_key(s),
                                          on_send=self.on_send)))

    @cached_property
    def oracle(self) -> OracleClient:
        """The venue chain's MarkOracle (read-only), shared by the top-up and buffer steps."""
        return self.run(OracleClient.from_settings(self.settings))

    @cached_property
    def topups(self) -> TopUpKeeper:
        """Owners' top-up rules, sent with the keeper's (risk) key and venue client."""
        venue: Any = self.keeper.venue
        return TopUpKeeper(venue.client, self.oracle, chain_time=venue.chain_time)

    @cached_property
    def topup_rules(self) -> RuleIndex:
        cfg = self.settings.chain(self.settings.venue_chain)
        return RuleIndex(self.venue_reader, start_height=cfg.deployment_height,
                         max_block_range=cfg.max_block_range)

    @cached_property
    def buffers(self) -> BufferUpdater:
        """Tick history + buffer updater on the keeper's venue client (one sender per key)."""
        cfg = self.settings.chain(self.settings.venue_chain)
        venue: Any = self.keeper.venue
        return BufferUpdater(venue.client, self.oracle, RedisTickHistory(self.redis),
                             start_height=cfg.deployment_height,
                             max_block_range=cfg.max_block_range)

    # ----- accountant -----------------------------------------------------------------------

    @cached_property
    def accountant(self) -> Accountant:
        """The accountant over its own endpoints (``accountant.rpc_urls``, per chain; default
        the chain's) and its pauser key."""
        s = self.settings
        own = {k: [str(u) for u in v] for k, v in s.accountant.rpc_urls.items()}
        registered = lanes(s)
        adapters = {lane.chain: self.adapter(lane.chain, Finality.LATEST, own.get(lane.chain))
                    for lane in registered}
        venue = self.venue_client(own.get(s.venue_chain), sender_key=load_accountant_key(s))

        async def read() -> list[LaneBook]:
            return await read_books(s, registered, venue, adapters, self.store.orphaned_records)

        async def pause(book: LaneBook, reason: str) -> str:
            lane = book.lane
            return await venue.pause_lane(lane.chain_id, lane.vault_b32, lane.asset_b32)

        return Accountant(read, pause, RedisAccountantState(self.redis))


def services() -> Services:
    """This process's services (built after fork, from the composition root's settings)."""
    global _services
    if _services is None:
        from workers.celery_app import attester_name, process_settings

        _services = Services(process_settings(), attester=attester_name())
    return _services


@worker_process_init.connect
def _fresh_after_fork(**_: Any) -> None:
    """Drop anything inherited from the parent: each pool child builds its own clients."""
    global _services
    _services = None
