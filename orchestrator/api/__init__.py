"""Bulkhead's HTTP API: FastAPI app, Prometheus metrics and the live dashboard (I/O)."""

from __future__ import annotations

from orchestrator.api.app import create_app
from orchestrator.api.deps import ApiOptions
from orchestrator.api.server import serve

__all__ = ["ApiOptions", "create_app", "serve"]
