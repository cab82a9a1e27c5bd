"""``bulkhead admin attesters show``: the attester set each EVM registry holds (the venue, and
every EVM collateral vault), read live, set against the operator's settings.

Each registry keeps its own numbered sets (DESIGN §2.5): the venue verifies credits with its
sets, a vault verifies settlements with its own. Attesters sign under ``attesters.set_index``
and the relayer checks quorums against ``attesters.members``/``threshold``, so after a rotation
both registries and the settings must agree, or locks (venue) or settlements (vault) stop. This
view says, per registry, whether they agree and, if not, how (``drift``). A previous set still
in its grace window is shown with the time it stops being accepted.

The Solana vault's authority is an SPL multisig fixed at its creation; it is not a numbered
registry and is not listed here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridges.quorum import AttesterSet
from chains.evm.contract import ContractClient
from chains.evm.vault import VaultClient
from chains.evm.venue import VenueClient
from shared.chain import ChainKind, ChainRef
from shared.settings import Settings

__all__ = ["attesters_show", "drift"]


def drift(configured: AttesterSet, index: int, members: list[str], threshold: int) -> list[str]:
    """What differs between the configured set and a registry's current one (empty: in sync)."""
    out = []
    if index != configured.index:
        out.append(f"set index {index} on chain, {configured.index} in settings")
    on_chain = {m.lower() for m in members}
    mine = {m.lower() for m in configured.members}
    if added := sorted(on_chain - mine):
        out.append(f"members not in settings: {', '.join(added)}")
    if missing := sorted(mine - on_chain):
        out.append(f"settings members not on chain: {', '.join(missing)}")
    if threshold != configured.threshold:
        out.append(f"threshold {threshold} on chain, {configured.threshold} in settings")
    return out


def _configured(settings: Settings) -> AttesterSet:
    a = settings.attesters
    return AttesterSet.of(a.set_index, [m.address for m in a.members], a.threshold,
                          [m.operator or m.address for m in a.members])


async def _row(settings: Settings, chain: str, role: str, client: ContractClient
               ) -> dict[str, Any]:
    index, members, threshold = await client.current_attester_set()
    previous: dict[str, Any] | None = None
    if index > 0:
        _, _, grace_end, live = await client.attester_set_at(index - 1)
        previous = {"index": index - 1, "live": live, "grace_end": grace_end,
                    "grace_end_utc": datetime.fromtimestamp(grace_end, UTC).isoformat()}
    problems = drift(_configured(settings), index, members, threshold)
    return {"chain": chain, "registry": role, "address": client.address, "index": index,
            "threshold": threshold, "members": members, "previous": previous,
            "in_sync": not problems, "drift": problems}


async def attesters_show(settings: Settings) -> list[dict[str, Any]]:
    """One row per EVM registry: the venue first, then each EVM collateral vault."""
    rows = []
    key = settings.venue_chain
    cfg = settings.chain(key)
    _, venue_address = settings.venue()
    venue = await VenueClient.connect([str(u) for u in cfg.rpc_urls], venue_address,
                                      chain=ChainRef(key, cfg.kind, cfg.chain_id),
                                      retry=settings.retry)
    try:
        rows.append(await _row(settings, key, "venue", venue))
    finally:
        await venue.aclose()
    for name in sorted(settings.chains):
        chain = settings.chain(name)
        if chain.kind is not ChainKind.EVM:
            continue
        for vault in chain.vaults:
            client = await VaultClient.connect([str(u) for u in chain.rpc_urls], vault,
                                               chain=ChainRef(name, chain.kind, chain.chain_id),
                                               retry=settings.retry)
            try:
                rows.append(await _row(settings, name, "vault", client))
            finally:
                await client.aclose()
    return rows
