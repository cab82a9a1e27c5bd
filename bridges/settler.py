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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from bridges.live_sets import LiveSets
from bridges.ports import Posting, SettlementRecord, SettlementStore, SignaturePool
from bridges.quorum import AttesterSet
from bridges.verifier import Verified, screen, verify
from chains.accounts import account_bytes32
from chains.base import ChainAdapter
from chains.evm.bridge_codec import SettlementRequestedEvent
from chains.finality import final_head
from chains.solana.keys import SolanaKey
from chains.solana.vault import SettlementOrder, SolanaVault, SolanaVaultClient
from shared.chain import ChainKind
from shared.errors import ConfigError, NotYetFinal, TxExpired
from shared.messages import Domain, digest, sign, sign_digest
from shared.settings import ChainSettings, Settings

__all__ = ["SettlementAttester", "SettlementRelay", "order_of", "pool_key", "solana_client"]

log = structlog.get_logger(__name__)
EVM_PER_TX = 40  # settlements per settleBatch transaction


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
                 pool: SignaturePool, store: SettlementStore,
                 vault_sets: Mapping[str, LiveSets]) -> None:
        """``vault_sets``: EVM chain key -> its vault registry's live sets (each vault keeps
        its own numbered sets); this attester signs under the newest one it belongs to."""
        self.name, self.account, self.solana_key = name, account, solana_key
        self.settings, self.venue_reader, self.venue_adapter = settings, venue_reader, venue_adapter
        self.pool, self.store, self.vault_sets = pool, store, vault_sets

    async def _signing_set(self, chain: str) -> AttesterSet | None:
        sets = self.vault_sets[chain]
        await sets.refresh()
        signing = sets.signing_set(self.account.address)
        if signing is None:
            log.warning("attester_not_in_live_set", attester=self.name, chain=chain,
                        current=sets.current.index)
        return signing

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
        key, cfg = source_chain(self.settings, ev)
        if cfg.kind == ChainKind.EVM:
            signing = await self._signing_set(key)
            if signing is None:
                return "not-in-live-set"
            message = ev.to_settlement(signing.index)
            domain = evm_domain(cfg, ev)
            self.pool.post(pool_key(settlement_id), message, domain, self.account.address,
                           sign(message, domain, self.account.key))
            return "signed"
        if self.solana_key is None:
            return "no-solana-key"  # not a signer of the multisig: approving would stall it
        self.store.approve(settlement_id, self.name)
        return "approved"

    async def attest_range(self, start: int, end: int) -> tuple[int, int, bool]:
        """Round 1 for every settlement request in venue heights ``start..end``, final for this
        attester: one read, EVM signatures posted in one write (skipping those whose own
        signature is already there, recognised by its bytes), Solana ones approved. Returns
        (signed, approved, whether any EVM settlement reached the threshold).

        Raises:
            NotYetFinal: ``end`` is above this attester's final head of the venue chain.
        """
        policy = self.settings.chain(self.settings.venue_chain).finality
        final = await final_head(self.venue_adapter, policy)
        if end > final.height:
            raise NotYetFinal(self.settings.venue_chain, end, "final for this attester")
        postings: dict[int, list[Posting]] = {}  # by the signing set's threshold
        approved = 0
        signing_sets: dict[str, AttesterSet | None] = {}
        for ev in await self.venue_reader.events(start, end):
            if not isinstance(ev, SettlementRequestedEvent):
                continue
            sid = "0x" + ev.settlement_id.hex()
            key, cfg = source_chain(self.settings, ev)
            if cfg.kind != ChainKind.EVM:
                if self.solana_key is not None:  # only a multisig signer approves
                    self.store.approve(sid, self.name)
                    approved += 1
                continue
            if key not in signing_sets:
                signing_sets[key] = await self._signing_set(key)
            signing = signing_sets[key]
            if signing is None:
                continue
            message = ev.to_settlement(signing.index)
            domain = evm_domain(cfg, ev)
            dig = digest(message, domain)
            postings.setdefault(signing.threshold, []).append(Posting(
                pool_key(sid), "0x" + dig.hex(), message, domain, self.account.address,
                sign_digest(dig, self.account.key)))
        signed, ready = 0, False
        for threshold, group in postings.items():
            have = self.pool.signatures_of([(p.digest, p.signer) for p in group])
            fresh = [p for p, h in zip(group, have, strict=True) if h != p.signature]
            if fresh:
                signed += len(fresh)
                ready = bool(self.pool.post_many(fresh, threshold, stream=False)) or ready
        return signed, approved, ready or approved > 0

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
                 vault_sets: Mapping[str, LiveSets], vaults: Mapping[str, Any],
                 solana_fee_payer: SolanaKey | None) -> None:
        """``vaults``: chain key -> ``VaultClient`` (with the relayer's key) for EVM sources;
        ``vault_sets``: chain key -> that vault registry's live sets. A Solana vault's
        authority is an SPL multisig fixed at its creation: its m is the settings' threshold."""
        self.settings, self.store, self.pool, self.vault_sets = settings, store, pool, vault_sets
        self.solana_threshold = AttesterSet.configured(settings.attesters).threshold
        self.vaults, self.fee_payer = vaults, solana_fee_payer
        self._verified: dict[str, Verified] = {}

    async def relay_pending(self) -> RelayWork:
        """Execute every pending settlement that has a verified quorum. EVM ones go out in
        ``settleBatch`` transactions of ``EVM_PER_TX`` (one quorum check per item on chain),
        all in flight at once, receipts awaited together; Solana ones run one by one (each is
        a multisig proposal round)."""
        work = RelayWork()
        evm: dict[str, list[tuple[SettlementRecord, Verified]]] = {}
        refreshed: set[str] = set()
        for record in self.store.pending():
            key, cfg = source_chain(self.settings, record.event)
            if cfg.kind == ChainKind.EVM:
                if key not in refreshed:
                    await self.vault_sets[key].refresh()
                    refreshed.add(key)
                verified = self._evm_quorum(key, cfg, record)
                if verified is not None:
                    evm.setdefault(key, []).append((record, verified))
            else:
                await self._solana(key, cfg, record, work)
        sends = [self._evm_batch(key, items[i:i + EVM_PER_TX], work)
                 for key, items in evm.items() for i in range(0, len(items), EVM_PER_TX)]
        results = await asyncio.gather(*sends, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:  # the others are recorded; the task retries what is still pending
            raise failed[0]
        return work

    def _evm_quorum(self, chain: str, cfg: ChainSettings,
                    rec: SettlementRecord) -> Verified | None:
        """A verified quorum over exactly the settlement the venue requested, under a set the
        vault accepts now (pool entries that do not verify are discarded and counted, as for
        credits). A quorum once verified is kept for this process while its set is live: a
        pass re-verifies nothing."""
        sets = self.vault_sets[chain]
        cached = self._verified.get(rec.id_hex)
        if cached is not None:
            index = cached.message.attester_set_index
            if sets.get(index) is not None:
                return cached
            del self._verified[rec.id_hex]  # its set's grace window closed: find a newer one
        domain = evm_domain(cfg, rec.event)
        for dig in self.pool.digests(pool_key(rec.id_hex)):
            found = self.pool.entries(dig)
            if found is None:
                self.pool.discard_message(dig)
                continue
            message, dom, sigs = found
            attesters = sets.get(message.attester_set_index)
            if (dom != domain or attesters is None
                    or message != rec.event.to_settlement(attesters.index)):
                continue
            screened = screen(message, dom, sigs, attesters, dig=bytes.fromhex(dig[2:]))
            if screened.invalid:
                self.pool.discard(dig, screened.invalid)
                log.warning("pool_entries_discarded", settlement=rec.id_hex, digest=dig,
                            labels=list(screened.invalid))
            if len(screened.valid) >= attesters.threshold:
                verified = verify(message, dom, screened.valid.values(), attesters,
                                  dig=bytes.fromhex(dig[2:]))
                self._verified[rec.id_hex] = verified
                return verified
        return None

    async def _evm_batch(self, key: str, items: list[tuple[SettlementRecord, Verified]],
                         work: RelayWork) -> None:
        vault = self.vaults[key]
        batch = [(v.message, list(v.signatures)) for _, v in items]
        out = await vault.settle_batch(batch)  # type: ignore[arg-type]
        for record, _ in items:
            sid = record.event.settlement_id
            if sid in out.settled:
                tx = out.tx_hash
            elif out.skipped.get(sid) == "AlreadyConsumed":
                tx = "already"
            elif str(out.skipped.get(sid, "")).startswith("AttesterSetNotLive"):
                # Its set's grace window closed in flight: the reconciler re-asks, attesters
                # sign under the current set, the next pass sends that quorum.
                self._verified.pop(record.id_hex, None)
                log.warning("settlement_set_expired", settlement=record.id_hex, chain=key,
                            tx=out.tx_hash)
                continue
            else:
                log.error("settlement_refused", settlement=record.id_hex, chain=key,
                          reason=out.skipped.get(sid), tx=out.tx_hash)
                continue
            self.store.mark_executed(record.id_hex, tx)
            self._verified.pop(record.id_hex, None)
            work.executed.append(record.id_hex)
        log.info("settled_batch", chain=key, tx=out.tx_hash, executed=len(out.settled),
                 skipped=len(out.skipped))

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
        members = {m.name: m for m in self.settings.attesters.members if m.solana_pubkey}
        approvers = sorted((n for n in self.store.approvals(rec.id_hex) if n in members),
                           key=lambda n: str(members[n].solana_pubkey))
        if len(approvers) < self.solana_threshold:
            return
        chosen = approvers[: self.solana_threshold]
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
