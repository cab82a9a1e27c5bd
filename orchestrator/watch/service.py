"""Run the per-chain watchers: one catch-up pass (``bulkhead locks``) or forever (``bulkhead watch``).

Composition only: settings in, adapters and watchers built here, all chains polled concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

import structlog

from chains.factory import adapter_for
from orchestrator.watch.watcher import PollReport, Watcher
from shared.chain import ChainKind, Finality
from shared.lock_store import LockStore
from shared.settings import Settings

__all__ = ["build_watchers", "sync_once", "watch_forever"]

log = structlog.get_logger(__name__)


def build_watchers(settings: Settings, store: LockStore, stack: AsyncExitStack,
                   chains: list[str] | None = None) -> list[Watcher]:
    watchers = []
    for key in chains or sorted(settings.chains):
        cfg = settings.chain(key)
        if not cfg.vaults:
            continue
        scan = adapter_for(key, cfg, settings.retry, commitment=Finality.LATEST)
        stack.push_async_callback(scan.aclose)
        confirm = None
        if cfg.kind == ChainKind.SOLANA:
            confirm = adapter_for(key, cfg, settings.retry, commitment=Finality.FINALIZED)
            stack.push_async_callback(confirm.aclose)
        watchers.append(Watcher(scan, store, cfg.finality, start_height=cfg.deployment_height,
                                max_block_range=cfg.max_block_range, confirm_adapter=confirm,
                                orphan_depth=cfg.orphan_depth,
                                orphan_recheck_ms=int(cfg.orphan_recheck_s * 1000)))
    return watchers


async def sync_once(settings: Settings, store: LockStore, *, max_polls: int = 50,
                    chains: list[str] | None = None) -> list[PollReport]:
    """Poll every watcher until its cursor reaches the chain head (bounded by ``max_polls``)."""
    async with AsyncExitStack() as stack:
        watchers = build_watchers(settings, store, stack, chains)

        async def catch_up(watcher: Watcher) -> PollReport:
            report = await watcher.poll()
            for _ in range(max_polls - 1):
                if report.caught_up:
                    break
                report = await watcher.poll()
            return report

        return list(await asyncio.gather(*(catch_up(w) for w in watchers)))


async def watch_forever(settings: Settings, store: LockStore, *,
                        on_report: Callable[[PollReport], None] = lambda _r: None,
                        stop: asyncio.Event | None = None) -> None:
    """Poll each chain at its own interval until ``stop`` is set; a failing poll is logged and
    retried next interval (the cursor only moves after a successful range)."""
    stop = stop or asyncio.Event()
    async with AsyncExitStack() as stack:
        watchers = build_watchers(settings, store, stack)

        async def loop(watcher: Watcher) -> None:
            interval = settings.chain(watcher.chain).poll_interval_s
            while not stop.is_set():
                try:
                    on_report(await watcher.poll())
                except Exception as exc:  # noqa: BLE001 - keep watching; logged with context
                    log.error("watch_poll_failed", chain=watcher.chain, error=str(exc))
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except TimeoutError:
                    pass

        await asyncio.gather(*(loop(w) for w in watchers))
