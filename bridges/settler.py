"""The way back (DESIGN §2.4): settlements requested on the venue, executed on the source chain.

Attester side (:class:`SettlementAttester`): observe the venue's ``SettlementRequested`` at the
venue chain's finality through its own endpoints, then
- EVM source: sign the EIP-712 ``Settlement`` for the source vault's domain (pool, like locks);
- Solana source: approve (round 1), and later sign the relayer's proposed multisig transfer only
  after checking it against its own observation (round 2).

Relayer side (:class:`SettlementRelay`): execute with ``CollateralVault.settle`` or by
assembling the Solana multisig transfer; the source chain's settled set / settle memo makes it
exactly-once (checked before every submit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from bridges.ports import SettlementRecord, SettlementStore, SignaturePool
from bridges.quorum import AttesterSet
from bridges.verifier import verify
from chains.accounts import account_bytes32
from chains.base import ChainAdapter
from chains.evm.bridge_codec import SettlementRequestedEvent
from chains.finality import final_head
from chains.solana.keys import SolanaKey
from chains.solana.vault import SettlementOrder, SolanaVault, SolanaVaultClient
from shared.chain import ChainKind
from shared.errors import AlreadyConsumed, ConfigError, NotYetFinal, QuorumNotReached, TxExpired
from shared.messages import Domain, Settlement, sign
from shared.settings import ChainSettings, Settings

__all__ = ["SettlementAttester", "SettlementRelay", "order_of", "pool_key", "solana_client"]

log = structlog.get_logger(__name__)
EVM_IN_FLIGHT = 32  # EVM settlements sent before their receipts are awaited


def pool_key(settlement_id: str) -> str:
    return f"settle:{settlement_id}"


def source_chain(settings: Settings, ev: SettlementRequestedEvent) -> tuple[str, ChainSettings]:
    """The configured chain and vault this settlement draws on; anything else is refused."""
    for key, cfg in settings.chains.items():
        if cfg.chain_id != ev.src_chain_id:
            continue
        vaults = {_vault_bytes(cfg.kind, v) for v in cfg.vaults}
        # SECURITY: only registered vaults of a configured chain are ever settled from.
        if ev.src_vault in vaults:
            return key, cfg
    raise ConfigError("settlement", f"no configured vault for chain {ev.src_chain_id}")


def _vault_bytes(kind: ChainKind, vault: str) -> bytes:
    return account_bytes32(kind, vault)


def order_of(ev: SettlementRequestedEvent) -> SettlementOrder:
    """What a Solana vault must pay out for the venue's request."""
    return SettlementOrder(ev.settlement_id, ev.lock_id, int(ev.kind), ev.amount, ev.recipient)


def solana_client(key: str, cfg: ChainSettings) -> SolanaVaultClient:
    return SolanaVaultClient(SolanaVault.from_settings(key, cfg))


def evm_domain(cfg: ChainSettings, ev: SettlementRequestedEvent) -> Domain:
    return Domain(cfg.chain_id, to_checksum_address(ev.src_vault[12:]))


class SettlementAttester:
    def __init__(self, name: str, account: LocalAccount, solana_key: SolanaKey | None, *,
                 settings: Settings, venue_reader: Any, venue_adapter: ChainAdapter,
                 pool: SignaturePool, store: SettlementStore) -> None:
        self.name, self.account, self.solana_key = name, account, solana_key
        self.settings, self.venue_reader, self.venue_adapter = settings, venue_reader, venue_adapter
        self.pool, self.store = pool, store

    async def observe(self, settlement_id: str, height: int) -> SettlementRequestedEvent | None:
        """The request as this attester sees it at venue-chain finality, or None."""
        policy = self.settings.chain(self.settings.venue_chain).finality
        final = await final_head(self.venue_adapter, policy)
        if height > final.height:
            raise NotYetFinal(self.settings.venue_chain, height, "final for this attester")
        for ev in await self.venue_reader.events(height, height):
            if isinstance(ev, SettlementRequestedEvent) and \
                    "0x" + ev.settlement_id.hex() == settlement_id:
                return ev
        log.warning("settle_refused_not_observed", attester=self.name, settlement=settlement_id)
        return None

    async def attest(self, settlement_id: str, height: int) -> str:
        ev = await self.observe(settlement_id, height)
        if ev is None:
            return "not-observed"
        _, cfg = source_chain(self.settings, ev)
        if cfg.kind == ChainKind.EVM:
            message = ev.to_settlement(self.settings.attesters.set_index)
            domain = evm_domain(cfg, ev)
            self.pool.post(pool_key(settlement_id), message, domain, self.account.address,
                           sign(message, domain, self.account.key))
            return "signed"
        self.store.approve(settlement_id, self.name)
        return "approved"

    async def sign_proposal(self, settlement_id: str, height: int) -> str:
        """Round 2 on Solana: sign the proposed transfer iff it is exactly what was observed."""
        if self.solana_key is None:
            raise ConfigError(f"attesters.{self.name}", "no Solana key for this attester")
        proposal = self.store.proposal(settlement_id)
        ev = await self.observe(settlement_id, height)
        if proposal is None or ev is None:
            return "nothing-to-sign"
        key, cfg = source_chain(self.settings, ev)
        client = solana_client(key, cfg)
        message: bytes = proposal["message"]
        client.check_proposal(message, order_of(ev), self.solana_key)
        # SECURITY: one live message per settlement id (see chains.solana.settlement): a
        # different message is signed only after the previous one expired unexecuted. What
        # this attester signed is its own record, never inferred from another's labels.
        prev = self.store.signed_proposal(self.name, settlement_id)
        if prev is not None and prev["message"] != message.hex():
            if await client.block_height() <= prev["last_valid"]:
                return "previous-still-live"
            if await client.find_settlement(ev.settlement_id):
                return "already-executed"
        self.store.remember_signed(self.name, settlement_id, message, proposal["last_valid"])
        self.store.post_ed25519(settlement_id, self.solana_key.pubkey, message,
                                self.solana_key.sign(message))
        return "signed"


@dataclass
class RelayWork:
    executed: list[str] = field(default_factory=list)
    ask_sign: list[tuple[str, int, list[str]]] = field(default_factory=list)  # id, height, names


class SettlementRelay:
    def __init__(self, settings: Settings, store: SettlementStore, pool: SignaturePool,
                 attesters: AttesterSet, vaults: Mapping[str, Any],
                 solana_fee_payer: SolanaKey | None) -> None:
        """``vaults``: chain key -> ``VaultClient`` (with the relayer's key) for EVM sources."""
        self.settings, self.store, self.pool, self.attesters = settings, store, pool, attesters
        self.vaults, self.fee_payer = vaults, solana_fee_payer

    async def relay_pending(self) -> RelayWork:
        """Execute every pending settlement that has a quorum. EVM ones run concurrently (up
        to ``EVM_IN_FLIGHT``): the vault client serializes nonces and the receipts are awaited
        together, so N settlements need not wait N blocks. Solana ones run one by one (each is
        a multisig proposal round)."""
        work = RelayWork()
        gate = asyncio.Semaphore(EVM_IN_FLIGHT)
        evm: list[Awaitable[None]] = []

        async def gated(key: str, cfg: ChainSettings, record: SettlementRecord) -> None:
            async with gate:
                await self._evm(key, cfg, record, work)

        for record in self.store.pending():
            key, cfg = source_chain(self.settings, record.event)
            if cfg.kind == ChainKind.EVM:
                evm.append(gated(key, cfg, record))
            else:
                await self._solana(key, cfg, record, work)
        results = await asyncio.gather(*evm, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:  # the others are recorded; the task retries what is still pending
            raise failed[0]
        return work

    async def _evm(self, key: str, cfg: ChainSettings, rec: SettlementRecord,
                   work: RelayWork) -> None:
        vault = self.vaults[key]
        if await vault.is_settled(rec.event.settlement_id):
            self.store.mark_executed(rec.id_hex, "already")
            work.executed.append(rec.id_hex)
            return
        domain = evm_domain(cfg, rec.event)
        expected = rec.event.to_settlement(self.attesters.index)
        for message, dom, sigs in self.pool.candidates(pool_key(rec.id_hex)):
            if dom != domain or message != expected:
                continue
            try:
                verified = verify(message, dom, sigs.values(), self.attesters)
            except QuorumNotReached:
                continue
            assert isinstance(verified.message, Settlement)
            try:
                settled = await vault.settle(verified.message, list(verified.signatures))
                tx = settled.tx_id
            except AlreadyConsumed:
                tx = "already"
            self.store.mark_executed(rec.id_hex, tx)
            work.executed.append(rec.id_hex)
            log.info("settled", settlement=rec.id_hex, chain=key, tx=tx)
            return

    async def _solana(self, key: str, cfg: ChainSettings, rec: SettlementRecord,
                      work: RelayWork) -> None:
        if self.fee_payer is None:
            raise ConfigError("relayer", "no Solana fee payer key")
        client = solana_client(key, cfg)
        found = await client.find_settlement(rec.event.settlement_id)
        if found:
            self.store.mark_executed(rec.id_hex, found)
            work.executed.append(rec.id_hex)
            return
        proposal = self.store.proposal(rec.id_hex)
        if proposal is not None:
            await self._submit_or_expire(client, rec, proposal, work)
            return
        members = {m.name: m for m in self.settings.attesters.members}
        approvers = sorted((n for n in self.store.approvals(rec.id_hex) if n in members),
                           key=lambda n: str(members[n].solana_pubkey))
        if len(approvers) < self.attesters.threshold:
            return
        chosen = approvers[: self.attesters.threshold]
        signers = [str(members[n].solana_pubkey) for n in chosen]
        message, last_valid = await client.propose(order_of(rec.event), signers, self.fee_payer)
        self.store.propose(rec.id_hex, message, last_valid, signers)
        work.ask_sign.append((rec.id_hex, rec.event.height, chosen))

    async def _submit_or_expire(self, client: SolanaVaultClient, rec: SettlementRecord,
                                proposal: dict[str, Any], work: RelayWork) -> None:
        assert self.fee_payer is not None
        message: bytes = proposal["message"]
        sigs = self.store.ed25519_sigs(rec.id_hex, message)
        if not all(s in sigs for s in proposal["signers"]):
            if await client.block_height() > proposal["last_valid"]:
                self.store.clear_proposal(rec.id_hex)  # expired unsigned: re-propose next round
            return
        try:
            tx = await client.submit(message, sigs, self.fee_payer,
                                     last_valid=proposal["last_valid"])
        except TxExpired:
            self.store.clear_proposal(rec.id_hex)
            return
        self.store.mark_executed(rec.id_hex, tx)
        work.executed.append(rec.id_hex)
        log.info("settled", settlement=rec.id_hex, chain=client.chain, tx=tx)
