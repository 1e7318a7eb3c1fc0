"""The pages' own stylesheet and script, served by gpupool itself (no CDN: the portal must work
on an air-gapped network).

Only the files in ``static/`` are served, by name from a table read at start, so no path a
client sends can reach another file. Each URL carries the file's content hash, so browsers keep
a file until it changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Response

from portal.problems import Problem

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str


@cache
def assets() -> dict[str, Asset]:
    found = {}
    for path in sorted(STATIC.iterdir()):
        if path.suffix in MEDIA_TYPES and path.is_file():
            body = path.read_bytes()
            version = hashlib.sha256(body).hexdigest()[:12]
            found[path.name] = Asset(body, MEDIA_TYPES[path.suffix], version)
    return found


def asset_url(name: str) -> str:
    return f"/assets/{name}?v={assets()[name].version}"


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    found = assets().get(name)
    if found is None:
        raise Problem(404, "no such asset")
    return Response(
        found.body,
        media_type=found.media_type,
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )
