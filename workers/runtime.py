"""Per-process services: one event loop, clients created after fork (never inherited).

``services()`` builds everything lazily on first use inside the pool child, from the settings
the composition root read. Async adapters run on this process's own ``asyncio.Runner``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from functools import cached_property
from typing import Any, TypeVar

import redis
from celery.signals import worker_process_init

from bridges.attestation import Domain
from bridges.pool import SignaturePool
from bridges.quorum import AttesterSet
from chains.base import ChainAdapter, ChainKind, Finality
from chains.factory import adapter_for
from orchestrator.errors import ConfigError
from orchestrator.lock_store import RedisLockStore
from orchestrator.settings import Settings
from orchestrator.watcher import Watcher

__all__ = ["Services", "check_redis", "services"]

T = TypeVar("T")
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
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runner = asyncio.Runner()
        self._watchers: dict[str, Watcher] = {}
        self._adapters: dict[tuple[str, Finality, tuple[str, ...]], ChainAdapter] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    @cached_property
    def store(self) -> RedisLockStore:
        return RedisLockStore(str(self.settings.redis_url))

    @cached_property
    def pool(self) -> SignaturePool:
        return SignaturePool(str(self.settings.redis_url))

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(str(self.settings.redis_url))

    @cached_property
    def attester_set(self) -> AttesterSet:
        """The configured set; unsafe sets refuse to start (KEY-02)."""
        a = self.settings.attesters
        return AttesterSet.of(a.set_index, [m.address for m in a.members], a.threshold,
                              [m.operator or m.address for m in a.members])

    @cached_property
    def keeper(self) -> Any:
        """The risk worker's keeper over the configured venue adapter (registry name, default
        ``reference``), sending liquidations with the risk key."""
        from bridges.keys import load_risk_key
        from orchestrator.liquidation.keeper import Keeper
        from orchestrator.venues.registry import open_venue

        s = self.settings
        name = s.venue_adapter
        return Keeper(self.run(open_venue(name, s, sender_key=load_risk_key(s))))

    @cached_property
    def oracle(self) -> Any:
        """The venue chain's PriceOracle (read-only), shared by the top-up and buffer steps."""
        from orchestrator.feeder import OracleClient

        return self.run(OracleClient.from_settings(self.settings))

    @cached_property
    def topups(self) -> Any:
        """Owners' top-up rules, sent with the keeper's (risk) key and venue client."""
        from orchestrator.liquidation.topup_keeper import TopUpKeeper

        venue = self.keeper.venue
        return TopUpKeeper(venue.client, self.oracle, chain_time=venue.chain_time)

    @cached_property
    def topup_rules(self) -> Any:
        from chains.evm.adapter import make_web3
        from orchestrator.liquidation.topup_keeper import RuleIndex

        cfg = self.settings.chain(self.settings.venue_chain)
        return RuleIndex(make_web3(str(cfg.rpc_urls[0]), self.settings.retry.timeout_s),
                         cfg.contracts["venue"], start_height=cfg.deployment_height,
                         max_block_range=cfg.max_block_range)

    @cached_property
    def buffers(self) -> Any:
        """Tick history + buffer updater on the keeper's venue client (one sender per key)."""
        from orchestrator.liquidation.ticks import build_buffer_updater

        return self.run(build_buffer_updater(self.settings, self.redis,
                                             self.keeper.venue.client, oracle=self.oracle))

    @cached_property
    def settlements(self) -> _SettlementParts:
        return _SettlementParts(self)

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

    def watcher(self, chain: str) -> Watcher:
        """One watcher per chain per process; Solana re-checks at ``finalized`` commitment."""
        if chain not in self._watchers:
            cfg = self.settings.chain(chain)
            confirm = (self.adapter(chain, Finality.FINALIZED)
                       if cfg.kind == ChainKind.SOLANA else None)
            self._watchers[chain] = Watcher(
                self.adapter(chain), self.store, cfg.finality,
                start_height=cfg.deployment_height, max_block_range=cfg.max_block_range,
                confirm_adapter=confirm)
        return self._watchers[chain]

    @cached_property
    def attester(self) -> Any:
        from bridges.attester import AttesterService
        from bridges.keys import load_attester_account

        name = os.environ.get("BULKHEAD_ATTESTER")
        if not name:
            raise ConfigError("attester", "BULKHEAD_ATTESTER is not set for this worker")
        member = self.settings.attesters.member(name)
        account = load_attester_account(self.settings, member)
        adapters = {key: self.adapter(key, Finality.FINALIZED,
                                      [str(u) for u in member.rpc_urls.get(key, [])] or None)
                    for key, cfg in self.settings.chains.items() if cfg.vaults}
        policies = {key: self.settings.chain(key).finality for key in adapters}
        return AttesterService(name, account, set_index=self.attester_set.index,
                               venue=self.venue_domain, adapters=adapters, policies=policies,
                               pool=self.pool)

    @cached_property
    def relay(self) -> Any:
        from bridges.keys import load_relayer_key
        from bridges.relay import RelayService
        from chains.base import ChainRef
        from chains.evm.venue import VenueClient

        cfg = self.settings.chain(self.settings.venue_chain)
        chain = ChainRef(self.settings.venue_chain, ChainKind.EVM, cfg.chain_id)
        venue = self.run(VenueClient.connect(
            [str(u) for u in cfg.rpc_urls], cfg.contracts["venue"], chain=chain,
            sender_key=load_relayer_key(self.settings), retry=self.settings.retry))
        return RelayService(venue, self.venue_domain, self.attester_set, self.store, self.pool,
                            max_batch=self.settings.bridge.max_batch)


class _SettlementParts:
    """Settlement services (the way back), built on demand in the process that needs them."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def venue_reader(self, rpc_urls: list[str] | None = None) -> Any:
        from chains.base import ChainRef
        from chains.evm.venue import VenueClient

        s = self.svc.settings
        cfg = s.chain(s.venue_chain)
        chain = ChainRef(s.venue_chain, ChainKind.EVM, cfg.chain_id)
        return self.svc.run(VenueClient.connect(rpc_urls or [str(u) for u in cfg.rpc_urls],
                                                cfg.contracts["venue"], chain=chain,
                                                retry=s.retry))

    @cached_property
    def reader(self) -> Any:
        """This process's venue reader at the configured endpoints (the venue watcher's)."""
        return self.venue_reader()

    @cached_property
    def store(self) -> Any:
        from bridges.settlement_store import SettlementStore

        return SettlementStore(str(self.svc.settings.redis_url))

    @cached_property
    def attester(self) -> Any:
        from bridges.keys import load_attester_account, load_attester_solana
        from bridges.settler import SettlementAttester

        s = self.svc.settings
        member = s.attesters.member(os.environ["BULKHEAD_ATTESTER"])
        own = [str(u) for u in member.rpc_urls.get(s.venue_chain, [])] or None
        return SettlementAttester(
            member.name, load_attester_account(s, member), load_attester_solana(s, member),
            settings=s, venue_reader=self.venue_reader(own),
            venue_adapter=self.svc.adapter(s.venue_chain, Finality.FINALIZED, own),
            pool=self.svc.pool, store=self.store, redis=self.svc.redis)

    @cached_property
    def relay(self) -> Any:
        from bridges.keys import load_relayer_key, load_relayer_solana
        from bridges.settler import SettlementRelay
        from chains.base import ChainRef
        from chains.evm.venue import VaultClient

        s = self.svc.settings
        key = load_relayer_key(s)
        vaults = {}
        for name, cfg in s.chains.items():
            if cfg.kind == ChainKind.EVM and cfg.vaults:
                vaults[name] = self.svc.run(VaultClient.connect(
                    [str(u) for u in cfg.rpc_urls], cfg.vaults[0],
                    chain=ChainRef(name, ChainKind.EVM, cfg.chain_id), sender_key=key,
                    retry=s.retry))
        return SettlementRelay(s, self.store, self.svc.pool, self.svc.attester_set, vaults,
                               load_relayer_solana(s))


def services() -> Services:
    global _services
    if _services is None:
        from workers.celery_app import settings

        _services = Services(settings)
    return _services


@worker_process_init.connect
def _fresh_after_fork(**_: Any) -> None:
    """Drop anything inherited from the parent: each pool child builds its own clients."""
    global _services
    _services = None
