"""The e2e tests' worker fleet: :class:`workers.fleet.WorkerFleet`, re-exported here."""

from __future__ import annotations

from workers.fleet import WorkerFleet

__all__ = ["WorkerFleet"]
