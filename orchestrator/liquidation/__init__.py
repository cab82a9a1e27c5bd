"""Liquidation: read positions from the venue (snapshot), plan with the pure risk core
(orchestrator.risk), execute on the venue chain; seizures then settle through the bridge."""
