"""Bulkhead's HTTP API: FastAPI app, Prometheus metrics and the live dashboard (I/O)."""

from __future__ import annotations

from bulkhead.api.app import create_app
from bulkhead.api.deps import ApiOptions
from bulkhead.api.server import serve

__all__ = ["ApiOptions", "create_app", "serve"]
