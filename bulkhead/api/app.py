"""The HTTP API's composition root: ``create_app(settings)`` (OpenAPI at ``/docs``).

Settings are read once by the caller (``server.serve`` or a test) and passed in; the app opens
its backends in its lifespan and closes them on shutdown. Errors map to status codes here, in
one place: a refused input is a 422 naming the parameter (FastAPI's validation shape), a
backend that cannot be read is a 503 with the reason, never a 500 with a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.responses import JSONResponse, Response

from bulkhead.api import (
    dashboard,
    routes_health,
    routes_locks,
    routes_marks,
    routes_metrics,
    routes_ops,
    routes_venue,
)
from bulkhead.api.deps import ApiOptions, StateFactory, open_state
from bulkhead.api.params import refuse
from shared.errors import InputError, OrchestratorError
from shared.settings import Settings

__all__ = ["create_app"]

API_VERSION = "1"


def create_app(settings: Settings, *, options: ApiOptions | None = None,
               state_factory: StateFactory = open_state) -> FastAPI:
    """Build the app. ``state_factory`` opens the backends (``deps.open_state`` by default)."""
    opts = options or ApiOptions()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with state_factory(settings, opts) as state:
            app.state.api = state
            yield

    app = FastAPI(title="Bulkhead", version=API_VERSION, lifespan=lifespan,
                  description="Locks, attestations, positions, marks and liquidations of a "
                              "Bulkhead deployment; Prometheus metrics at /metrics; dashboard "
                              "at /.")
    for module in (routes_health, routes_metrics, routes_locks, routes_venue, routes_marks,
                   routes_ops, dashboard):
        app.include_router(module.router)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(OrchestratorError, _unavailable)
    app.add_exception_handler(TimeoutError, _unavailable)
    return app


async def _input_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InputError)
    return await request_validation_exception_handler(request, refuse("query", exc.field,
                                                                      str(exc)))


async def _unavailable(request: Request, exc: Exception) -> Response:
    """A chain, the venue or Redis could not be read: 503, with the reason (never a secret:
    our errors carry chain keys and endpoints, not keys)."""
    reason = str(exc) or type(exc).__name__
    return JSONResponse({"detail": f"unavailable: {reason}"[:500]}, status_code=503)
