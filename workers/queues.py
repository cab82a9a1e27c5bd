"""Queue names by role and chain (DESIGN §4), from settings alone: imported by the Celery
composition root, the ``worker`` command and the API's queue-depth metric without reading
settings at import time."""

from __future__ import annotations

from shared.settings import Settings

__all__ = ["ROLES", "all_queues", "queues_for"]

ROLES = ("watcher", "attester", "relayer", "reconciler", "risk", "accountant")


def queues_for(role: str, cfg: Settings, name: str | None = None) -> list[str]:
    """The queues one worker of ``role`` consumes (an attester's by its ``name``)."""
    if role == "watcher":
        return sorted({f"watch.{k}" for k, c in cfg.chains.items() if c.vaults}
                      | {f"watch.{cfg.venue_chain}"})
    if role == "attester":
        return [f"attest.{name}"]
    if role == "relayer":
        return [f"relay.{cfg.venue_chain}"]
    if role == "reconciler":
        return ["reconcile"]
    if role == "risk":
        return ["risk", f"liquidate.{cfg.venue_chain}"]
    if role == "accountant":
        return ["account"]
    raise ValueError(role)


def all_queues(cfg: Settings) -> list[str]:
    """Every queue some role consumes: each configured attester's, and every other role's."""
    names = {q for role in ROLES if role != "attester" for q in queues_for(role, cfg)}
    names |= {q for m in cfg.attesters.members for q in queues_for("attester", cfg, m.name)}
    return sorted(names)
