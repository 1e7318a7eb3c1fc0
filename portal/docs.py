"""The API's interactive documentation (``/docs``): Swagger UI, served by the portal itself.

FastAPI's own ``/docs`` and ``/redoc`` pages load their scripts from a CDN and start Swagger UI
with an inline script, so a page a signed-in browser opens would run code the portal does not
ship. Here every byte comes from the portal: Swagger UI's script and stylesheet from the
``fastapi-offline`` package installed from PyPI (Swagger UI 5, which reads OpenAPI 3.1 as FastAPI
writes it; the ``swagger-ui-bundle`` package still ships Swagger UI 4, which does not), and the
few lines that start it from ``/docs/init.js``. The page carries the sign-in pages' security
headers with a Content-Security-Policy that allows only the portal's own origin: no inline
script, no other host (images may also be ``data:`` URIs, which Swagger UI's stylesheet uses for
its icons and which cannot run code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from portal.problems import Problem
from portal.signin import SECURITY_HEADERS

router = APIRouter(include_in_schema=False)

ASSETS: Final = Path(fastapi_offline.__file__).parent / "static"
ASSET_TYPES: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
"""The only files served from the package, with their media types."""

DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
DOCS_HEADERS: Final = {**SECURITY_HEADERS, "Content-Security-Policy": DOCS_CSP}
ASSET_HEADERS: Final = {**DOCS_HEADERS, "Cache-Control": "public, max-age=86400"}

PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>gpupool API</title>
<link rel="icon" type="image/png" href="{root}/docs/assets/favicon.png">
<link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{root}/docs/init.js"></script>
</body>
</html>
"""


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.format(root=_root(request)), headers=DOCS_HEADERS)


@router.get("/docs/init.js")
def docs_init(request: Request) -> Response:
    """Starts Swagger UI on the portal's OpenAPI document; no validator badge (another host)."""
    openapi_url = f"{_root(request)}{request.app.openapi_url or '/openapi.json'}"
    script = (
        "window.ui = SwaggerUIBundle({"
        f"url: {json.dumps(openapi_url)}, "
        'dom_id: "#swagger-ui", '
        "deepLinking: true, "
        "validatorUrl: null, "
        "presets: [SwaggerUIBundle.presets.apis], "
        'layout: "BaseLayout"'
        "});\n"
    )
    return Response(script, media_type="text/javascript; charset=utf-8", headers=DOCS_HEADERS)


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> FileResponse:
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise Problem(404, "no such documentation asset")
    return FileResponse(ASSETS / name, media_type=media_type, headers=ASSET_HEADERS)
