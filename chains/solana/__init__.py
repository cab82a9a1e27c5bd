"""Solana collateral chain: lock codec (pure), adapter (I/O) and the trader-side locker."""
