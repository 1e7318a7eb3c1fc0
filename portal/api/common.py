"""Pieces every REST route shares: strict request models, pages, CSV answers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")

MAX_PAGE = 500
MAX_OFFSET = 1_000_000

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1-{MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")]


def answer(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as the JSON answer, serialised once: FastAPI checks a returned model against
    the route's ``response_model`` again, which a busy route (a submission) need not pay for.
    The route still names ``response_model`` for its schema."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")


NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold NUL characters: input with one is refused (422), never stored."""
Segment = Annotated[str, Path(max_length=200, pattern=NO_NUL)]
"""A name in a path: an account, project or user."""


class Strict(BaseModel):
    """A request body: unknown fields are refused, never ignored, and only text a database can
    store is accepted (no NUL characters, no lone surrogates)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def storable_text(cls, data: Any) -> Any:
        if _unstorable(data):
            raise ValueError("text may not contain NUL characters or lone surrogates")
        return data


def _unstorable(value: object) -> bool:
    """Text a database cannot keep: a NUL character, or a lone surrogate (not UTF-8)."""
    if isinstance(value, str):
        return "\x00" in value or (not value.isascii() and not _utf8(value))
    if isinstance(value, dict):
        return any(_unstorable(key) or _unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_unstorable(item) for item in value)
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Items matching the filters, over all pages")
    limit: int
    offset: int


def csv_response(header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    """A CSV download; cells that a spreadsheet would run as formulas are defused."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not _number(value):
        return "'" + value
    return "" if value is None else value


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
