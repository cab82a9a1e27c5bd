"""The e2e tests' worker fleet: :class:`bulkhead.local.fleet.WorkerFleet`, re-exported here."""

from __future__ import annotations

from bulkhead.local.fleet import WorkerFleet

__all__ = ["WorkerFleet"]
