"""Errors as RFC 9457 problem details (``application/problem+json``), never a traceback.

Domain errors from the books map to HTTP statuses here, once, for every route.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from quotas.errors import (
    BooksError,
    Conflict,
    Forbidden,
    InsufficientCredits,
    InvalidInput,
    InvalidRuntimeEnv,
    InvalidTransition,
    MissingScope,
    NotFound,
    PoolStorageFull,
    ProjectStorageFull,
    TreeError,
    Unspecified,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

STATUS_OF: list[tuple[type[BooksError], int]] = [
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (InsufficientCredits, 409),
    (InvalidTransition, 409),
    (TreeError, 422),
    (InvalidInput, 422),
    (InvalidRuntimeEnv, 400),
    (Unspecified, 400),
    (ProjectStorageFull, 413),
    (PoolStorageFull, 507),
]


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_errors(errors: Sequence[Mapping[str, Any]], drop: int = 0) -> str:
    """What was wrong, field by field, from a validation error's first five items (pydantic's
    ``errors()``), each field's location without its first ``drop`` parts."""
    parts = []
    for item in errors[:5]:
        where = ".".join(str(part) for part in item.get("loc", ())[drop:])
        message = item.get("msg", "")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def status_of(error: BooksError) -> int:
    for kind, status in STATUS_OF:
        if isinstance(error, kind):
            return status
    return 400


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, error: Problem) -> JSONResponse:
        return problem(error.status, error.detail, error.headers, **error.extra)

    @app.exception_handler(BooksError)
    async def on_books_error(request: Request, error: BooksError) -> JSONResponse:
        if isinstance(error, MissingScope):
            return problem(status_of(error), str(error), needs=[error.scope])
        return problem(status_of(error), str(error))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "where": ".".join(str(part) for part in item.get("loc", ())),
                "problem": item.get("msg", ""),
            }
            for item in error.errors()
        ]
        summary = field_errors(error.errors())
        return problem(422, f"invalid request: {summary}", errors=errors)

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, error: HTTPException) -> JSONResponse:
        return problem(error.status_code, str(error.detail), dict(error.headers or {}))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal error; it was logged")
