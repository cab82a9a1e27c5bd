"""Build the adapter for a configured chain; the one place that dispatches on chain kind."""

from __future__ import annotations

from chains.base import ChainAdapter
from shared.chain import ChainKind, Finality
from shared.settings import ChainSettings, RetrySettings

__all__ = ["adapter_for"]


def adapter_for(key: str, cfg: ChainSettings, retry: RetrySettings,
                *, commitment: Finality = Finality.LATEST) -> ChainAdapter:
    """An adapter for chain ``key``. ``commitment`` only matters where reads carry one (Solana):
    watchers scan at ``latest`` and re-check at ``finalized``."""
    if cfg.kind == ChainKind.EVM:
        from chains.evm.adapter import EvmAdapter

        return EvmAdapter.from_settings(key, cfg, retry)
    from chains.solana.adapter import SolanaAdapter

    return SolanaAdapter.from_settings(key, cfg, retry, commitment=commitment)
