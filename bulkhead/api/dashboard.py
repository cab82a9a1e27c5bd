"""The dashboard page: static HTML, JS and CSS that poll the JSON API (no server rendering).

Everything is served from this package (no CDN: it works air-gapped); the margin-ratio chart
is drawn on a plain ``<canvas>`` from samples the page keeps while it is open.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).parent / "static"
_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard")
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html",
                        headers={"Cache-Control": "no-store"})


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    if name not in _FILES:  # a fixed list: no path from the URL ever reaches the filesystem
        raise HTTPException(404, "not found")
    return FileResponse(STATIC_DIR / name, media_type=_FILES[name],
                        headers={"Cache-Control": "no-store"})
