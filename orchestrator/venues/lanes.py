"""The collateral lanes a deployment names: one (source chain, vault, asset) each, in the
venue's bytes32 encoding (DESIGN §2.4, §2.7), and each lane's book: what the source vault holds
against what the venue credited (the accountant's and ``bulkhead admin lanes``' figures).

:func:`read_books` reads the source vault's balance through the given adapters first, then the
venue's ``laneAsset`` and ``lanePaused`` (the order :mod:`orchestrator.watch.accountant`
explains), and the lane's orphaned credits from the records given."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from chains.accounts import account_bytes32
from chains.base import ChainAdapter
from chains.evm.venue import VenueClient
from shared.chain import ChainKind
from shared.errors import ConfigError, InputError
from shared.lock_store import archive_key
from shared.locks import LockRecord, LockState
from shared.settings import Settings

__all__ = ["Lane", "LaneBook", "lane_b32", "lanes", "orphaned_credits", "read_books"]


@dataclass(frozen=True, slots=True)
class Lane:
    """One configured (source chain, vault, asset) in the venue's bytes32 encoding."""

    chain: str
    chain_id: int
    vault: str
    vault_b32: bytes
    asset: str
    asset_b32: bytes
    decimals: int


def lane_b32(kind: ChainKind, value: str, field: str) -> bytes:
    """An EVM address left-padded, or a Solana pubkey's 32 bytes (DESIGN §2.4)."""
    try:
        return account_bytes32(kind, value)
    except ValueError as exc:
        raise ConfigError(field, f"{value!r} is not a {kind} address") from exc


def lanes(settings: Settings, chain: str | None = None, asset: str | None = None) -> list[Lane]:
    """The collateral lanes the settings name (chains with vaults), optionally one chain/asset.

    Raises:
        ConfigError: an unknown chain. InputError: a chain with no vaults or an unknown asset.
    """
    keys = [chain] if chain is not None else sorted(settings.chains)
    found = []
    for key in keys:
        cfg = settings.chain(key)
        if chain is not None and not cfg.vaults:
            raise InputError("chain", f"{key} has no vault: not a collateral chain")
        if asset is not None and asset not in cfg.assets and chain is not None:
            known = ", ".join(sorted(cfg.assets)) or "none"
            raise InputError("asset", f"{asset!r} is not configured on {key}; known: {known}")
        for symbol, spec in sorted(cfg.assets.items()):
            if asset is not None and symbol != asset:
                continue
            for vault in cfg.vaults:
                found.append(Lane(key, cfg.chain_id, vault,
                                  lane_b32(cfg.kind, vault, f"chains.{key}.vaults"), symbol,
                                  lane_b32(cfg.kind, spec.address, f"chains.{key}.assets.{symbol}"),
                                  spec.decimals))
    return found


@dataclass(frozen=True, slots=True)
class LaneBook:
    """One lane's figures at one moment, in the asset's source base units."""

    lane: Lane
    held: int  # what the vault holds now
    outstanding: int  # what the venue credited and has not asked back
    ceiling: int
    paused: bool
    # Orphaned locks of this lane that had been credited: (record id, amount).
    orphans: tuple[tuple[str, int], ...] = ()

    @property
    def lane_id(self) -> str:
        return f"{self.lane.chain}:{self.lane.vault}:{self.lane.asset}"

    @property
    def deficit(self) -> int:
        """Credit the vault does not back (0 on a healthy lane)."""
        return max(0, self.outstanding - self.held)

    @property
    def headroom(self) -> int:
        """How much more the venue may credit on this lane before it breaks either bound: the
        ceiling's room, and what the vault holds beyond what is already credited (0 while
        paused)."""
        if self.paused:
            return 0
        return max(0, min(self.ceiling - self.outstanding, self.held - self.outstanding))


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def orphaned_credits(records: Sequence[LockRecord]) -> dict[tuple[str, str, str],
                                                             list[tuple[str, int]]]:
    """Orphaned records that had been credited, by (chain, vault b32 hex, asset b32 hex)."""
    out: dict[tuple[str, str, str], list[tuple[str, int]]] = {}
    for record in records:
        if record.state == LockState.ORPHANED and record.reached(LockState.CREDITED):
            e = record.event
            out.setdefault((e.chain, e.vault.lower(), e.asset.lower()), []).append(
                (archive_key(record), e.amount))
    return out


async def read_books(settings: Settings, lanes: Sequence[Lane], venue: VenueClient,
                     adapters: Mapping[str, ChainAdapter],
                     orphaned: Callable[[], Sequence[LockRecord]]) -> list[LaneBook]:
    """Books of the ``lanes`` the venue registered (an unregistered lane has no credit)."""
    held: dict[Lane, int] = {}
    for lane in lanes:
        asset = settings.chain(lane.chain).assets[lane.asset].address
        held[lane] = await adapters[lane.chain].vault_balance(lane.vault, asset)
    orphans = orphaned_credits(orphaned())
    books = []
    for lane in lanes:
        acct = await venue.lane_asset(lane.chain_id, lane.vault_b32, lane.asset_b32)
        if not acct["registered"]:
            continue
        paused = await venue.lane_paused(lane.chain_id, lane.vault_b32, lane.asset_b32)
        books.append(LaneBook(
            lane, held[lane], acct["outstanding"], acct["ceiling"], paused,
            tuple(orphans.get((lane.chain, _hex(lane.vault_b32), _hex(lane.asset_b32)), ()))))
    return books
