"""GET /playground: the browser playground, a static page (api/playground/) that calls this API.

No auth here: the page holds no data. It asks for an API key, keeps it in the browser, and sends
it as `Authorization: Bearer` on every API call. Assets are served from a fixed folder by name
only (no sub-paths), so no request can reach a file outside it.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from api.errors import not_found

router = APIRouter(tags=["playground"], include_in_schema=False)
ASSETS = Path(__file__).resolve().parents[1] / "playground"
_NAME = re.compile(r"^[a-z0-9_-]+\.(html|js|css|svg)$")
_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
# Revalidate every time: the page is small, and a stale module after an upgrade breaks imports.
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


@router.get("/playground")
async def playground_root() -> RedirectResponse:
    # Relative asset and API URLs in the page resolve against the trailing slash (a relative
    # Location keeps this working behind a proxy that adds a path prefix).
    return RedirectResponse("playground/", status_code=307)


@router.get("/playground/")
async def playground_index() -> FileResponse:
    return await playground_asset("index.html")


@router.get("/playground/{name}")
async def playground_asset(name: str) -> FileResponse:
    path = ASSETS / name
    if not _NAME.match(name) or not path.is_file():
        raise not_found("playground asset", name)
    return FileResponse(path, media_type=_TYPES[name.rsplit(".", 1)[1]], headers=_HEADERS)
