"""Run the API under uvicorn: the process edge where ``bulkhead api`` hands over its settings."""

from __future__ import annotations

import uvicorn

from bulkhead.api.app import create_app
from bulkhead.api.deps import ApiOptions
from shared.settings import Settings

__all__ = ["serve"]


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, *,
          options: ApiOptions | None = None, log_level: str = "info") -> None:
    """Serve until interrupted. One worker process: every figure is computed from Redis and
    the chains, so replicas are separate processes behind a balancer, not uvicorn workers."""
    uvicorn.run(create_app(settings, options=options), host=host, port=port,
                log_level=log_level, lifespan="on", access_log=False)
