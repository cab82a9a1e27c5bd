"""Heads per chain for ``devnet status`` and, later, ``/readyz``."""

from __future__ import annotations

import asyncio
from typing import Any

from chains.factory import adapter_for
from chains.finality import final_head
from shared.chain import Finality
from shared.errors import OrchestratorError
from shared.settings import Settings

__all__ = ["chain_status"]


async def _one(settings: Settings, key: str) -> dict[str, Any]:
    cfg = settings.chain(key)
    row: dict[str, Any] = {"chain": key, "kind": cfg.kind.value, "chain_id": cfg.chain_id,
                           "rpc_url": str(cfg.rpc_urls[0]), "reachable": False}
    adapter = adapter_for(key, cfg, settings.retry.model_copy(update={"max_attempts": 1}))
    try:
        latest = await adapter.head(Finality.LATEST)
        safe = await adapter.head(Finality.SAFE)
        final = await final_head(adapter, cfg.finality, latest)
        row.update(reachable=True, latest=latest.height, safe=safe.height, final=final.height,
                   lag=latest.height - final.height)
    except OrchestratorError as exc:
        row["error"] = str(exc)
    finally:
        await adapter.aclose()
    return row


async def chain_status(settings: Settings) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(_one(settings, k) for k in sorted(settings.chains))))
