"""Pieces every REST route shares: strict request models, pages, CSV answers.

A list a page downloads answers ``?format=csv`` with the rows its JSON holds (the same filters,
page and visibility): ``csv_response`` for rows already shaped, ``page_csv`` for a list of
models, whose nested models become dotted columns (``source.account``) and whose lists and
mappings become one cell each. Every cell a spreadsheet would run as a formula is defused.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from quotas.spreadsheets import defused

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


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


Format = Annotated[
    ReportFormat, Query(alias="format", description="json (default) or csv: the same rows")
]

CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "The rows, as JSON or CSV"}
}


def csv_response(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    filename: str,
    total: int | None = None,
) -> Response:
    """A CSV download; cells that a spreadsheet would run as formulas are defused. ``total``
    (the rows matching over all pages, for a paged list) is sent as ``X-Total-Count``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([defused(value) for value in row])
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if total is not None:
        headers["X-Total-Count"] = str(total)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def page_csv(
    model: type[BaseModel], items: Sequence[BaseModel], filename: str, total: int | None = None
) -> Response:
    """``items`` (each a ``model``) as CSV: one line each, a column per field in the model's
    order, a nested model's fields as ``field.name``."""
    header = csv_columns(model)
    rows = (flat_cells(item.model_dump(mode="json")) for item in items)
    cells = ([row.get(name) for name in header] for row in rows)
    return csv_response(header, cells, filename, total)


def csv_columns(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The columns of ``model``'s CSV: its fields, a nested model's as dotted names."""
    columns: list[str] = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        nested = _model_in(kind)
        if nested is not None:
            columns += csv_columns(nested, f"{prefix}{name}.")
        else:
            columns.append(f"{prefix}{name}")
    return columns


def _model_in(kind: Any) -> type[BaseModel] | None:
    """The model a field holds (alone or ``| None``), else ``None``."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return kind
    for each in getattr(kind, "__args__", ()):
        if isinstance(each, type) and issubclass(each, BaseModel) and not _is_list(kind):
            return each
    return None


def _is_list(kind: Any) -> bool:
    return getattr(kind, "__origin__", None) in (list, dict, tuple, set)


def flat_cells(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A dumped model as one CSV line: lists joined with ``; ``, and an object both as its JSON
    (the cell of a free-form mapping) and as its fields under dotted names (the cells of a
    nested model); the columns pick which."""
    cells: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, list):
            cells[f"{prefix}{key}"] = "; ".join(
                json.dumps(item, ensure_ascii=False) if isinstance(item, dict) else str(item)
                for item in value
            )
        elif isinstance(value, dict):
            cells[f"{prefix}{key}"] = json.dumps(value, ensure_ascii=False, sort_keys=True)
            cells.update(flat_cells(value, f"{prefix}{key}."))
        else:
            cells[f"{prefix}{key}"] = value
    return cells
