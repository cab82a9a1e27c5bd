"""``bulkhead admin attesters show|propose|execute``: the attester set each EVM registry holds
(the venue, and every EVM collateral vault), read live and set against the operator's settings,
and a rotation as a two-step owner workflow.

Each registry keeps its own numbered sets (DESIGN §2.5): the venue verifies credits with its
sets, a vault verifies settlements with its own. Workers read those sets live from each
registry (``bridges.live_sets``): attesters sign under the newest live set they belong to and
relayers verify each quorum against the set its message names, so a rotation needs neither a
restart nor a settings change. The settings' ``attesters.members`` are the roster this
deployment runs (names, keys, endpoints, operators): a member a rotation adds must be on it
(and its worker running) before the rotation, or it signs nothing. This view says, per
registry, whether the registry's set and the settings' agree and, if not, how (``drift``).
A previous set still in its grace window is shown with the time it stops being accepted.

A rotation is proposed first (validated, written to ``<home>/attesters/proposal.json``, shown
against the current settings) and executed second: the owner key installs it on every registry
that does not hold it yet, so an execute cut short is finished by running it again. Each
registry keeps the previous set valid for the proposal's grace window of chain time; workers
see the new set within ``bridge.attester_set_ttl_s`` and sign under it from then on. Work
signed under the old set and not relayed within the window is refused ``AttesterSetNotLive``
by the chain; it stays pending and the reconciler re-asks the attesters, who sign it under the
new set. Updating ``attesters.set_index``/``threshold`` in the settings afterwards only turns
``show`` back to in sync.

The Solana vault's authority is an SPL multisig fixed at its creation; it is not a numbered
registry and is not listed or rotated here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils.address import is_hex_address

from bridges.quorum import AttesterSet
from chains.evm.contract import ContractClient
from chains.evm.vault import VaultClient
from chains.evm.venue import VenueClient
from shared.chain import ChainKind, ChainRef
from shared.errors import ConfigError, InputError
from shared.settings import Settings

__all__ = ["Proposal", "attesters_execute", "attesters_propose", "attesters_show", "drift",
           "parse_proposal"]

GRACE_S = (60, 30 * 86_400)  # the grace window an operator may choose, seconds of chain time


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


async def _row(settings: Settings, chain: str, role: str, client: ContractClient
               ) -> dict[str, Any]:
    index, members, threshold = await client.current_attester_set()
    previous: dict[str, Any] | None = None
    if index > 0:
        _, _, grace_end, live = await client.attester_set_at(index - 1)
        previous = {"index": index - 1, "live": live, "grace_end": grace_end,
                    "grace_end_utc": datetime.fromtimestamp(grace_end, UTC).isoformat()}
    problems = drift(AttesterSet.configured(settings.attesters), index, members, threshold)
    return {"chain": chain, "registry": role, "address": client.address, "index": index,
            "threshold": threshold, "members": members, "previous": previous,
            "in_sync": not problems, "drift": problems}


async def _registries(settings: Settings, sender_key: str | None = None
                      ) -> list[tuple[str, str, ContractClient]]:
    """(chain, "venue" | "vault", client) for the venue, then each EVM collateral vault."""
    key = settings.venue_chain
    cfg = settings.chain(key)
    _, venue_address = settings.venue()
    out: list[tuple[str, str, ContractClient]] = [(key, "venue", await VenueClient.connect(
        [str(u) for u in cfg.rpc_urls], venue_address,
        chain=ChainRef(key, cfg.kind, cfg.chain_id), sender_key=sender_key,
        retry=settings.retry))]
    for name in sorted(settings.chains):
        chain = settings.chain(name)
        if chain.kind is not ChainKind.EVM:
            continue
        for vault in chain.vaults:
            out.append((name, "vault", await VaultClient.connect(
                [str(u) for u in chain.rpc_urls], vault,
                chain=ChainRef(name, chain.kind, chain.chain_id), sender_key=sender_key,
                retry=settings.retry)))
    return out


async def attesters_show(settings: Settings) -> list[dict[str, Any]]:
    """One row per EVM registry: the venue first, then each EVM collateral vault."""
    registries = await _registries(settings)
    try:
        return [await _row(settings, chain, role, client) for chain, role, client in registries]
    finally:
        for _, _, client in registries:
            await client.aclose()


# ----- rotation ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proposal:
    """The next attester set: members in signing order (ascending), m, and the grace window
    the current set keeps on every registry."""

    members: tuple[str, ...]
    threshold: int
    grace_s: int


def parse_proposal(members: list[str], threshold: int | None, grace_s: int) -> Proposal:
    """Validate a proposed set with the same rules as a worker's start (KEY-02).

    Raises:
        InputError: naming ``members`` (not an address, repeated, zero, empty), ``threshold``
            (m <= n/2 or m > n) or ``grace`` (outside 60 s .. 30 days).
    """
    bad = [m for m in members if not is_hex_address(m.strip())]
    if bad:
        raise InputError("members", f"not an EVM address: {', '.join(bad)}")
    if not GRACE_S[0] <= grace_s <= GRACE_S[1]:
        raise InputError("grace", f"must be within {GRACE_S[0]}..{GRACE_S[1]} s, got {grace_s}")
    try:
        proposed = AttesterSet.of(0, [m.strip() for m in members], threshold)
    except ConfigError as exc:
        raise InputError(exc.field.rsplit(".", 1)[-1], str(exc)) from exc
    return Proposal(tuple(proposed.members), proposed.threshold, grace_s)


def _proposal_path(settings: Settings) -> Path:
    return settings.home / "attesters" / "proposal.json"


def attesters_propose(settings: Settings, proposal: Proposal) -> dict[str, Any]:
    """Write ``proposal`` (replacing any earlier one, atomically) and say how it differs from
    the set the settings name."""
    path = _proposal_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(proposal), indent=2) + "\n")
    os.replace(tmp, path)  # never a half-written proposal
    mine = {m.lower() for m in AttesterSet.configured(settings.attesters).members}
    theirs = {m.lower() for m in proposal.members}
    return {"members": list(proposal.members), "threshold": proposal.threshold,
            "grace_s": proposal.grace_s, "added": sorted(theirs - mine),
            "removed": sorted(mine - theirs), "file": str(path)}


def _load_proposal(settings: Settings) -> Proposal:
    path = _proposal_path(settings)
    try:
        raw = json.loads(path.read_text())
        return parse_proposal(list(raw["members"]), int(raw["threshold"]), int(raw["grace_s"]))
    except FileNotFoundError as exc:
        raise InputError("proposal", f"no proposal at {path}: run "
                                     "`bulkhead admin attesters propose` first") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError("proposal", f"{path} is not a proposal: {exc}") from exc


async def attesters_execute(settings: Settings, owner_key: str) -> list[dict[str, Any]]:
    """Install the proposal on every registry that does not hold it as its current set yet
    (so running it again after a failure finishes the job and rotates nothing twice).

    Raises:
        InputError: no (valid) proposal. TxRejected: a registry refused (e.g. not the owner):
            the registries before it are rotated, run it again once fixed.
    """
    proposal = _load_proposal(settings)
    wanted = [m.lower() for m in proposal.members]
    rows = []
    registries = await _registries(settings, sender_key=owner_key)
    try:
        for chain, role, client in registries:
            index, members, threshold = await client.current_attester_set()
            if [m.lower() for m in members] == wanted and threshold == proposal.threshold:
                rows.append({"chain": chain, "registry": role, "address": client.address,
                             "index": index, "changed": False, "tx_id": None})
                continue
            tx = await client.rotate_attester_set(proposal.members, proposal.threshold,
                                                  proposal.grace_s)
            rows.append({"chain": chain, "registry": role, "address": client.address,
                         "index": index + 1, "changed": True, "tx_id": tx})
    finally:
        for _, _, client in registries:
            await client.aclose()
    return rows
