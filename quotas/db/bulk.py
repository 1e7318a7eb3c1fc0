"""Writing thousands of rows in one statement, as a scheduling cycle does.

On PostgreSQL the rows travel as one JSON document that ``json_to_recordset`` turns back into
typed rows: PostgreSQL parses it far faster than the driver binds thousands of parameters. On
SQLite (in-process, no round trips) one prepared statement runs for every row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Table, bindparam, insert, text, update
from sqlalchemy.orm import Session


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert ``rows`` (each naming the same columns) into ``table``."""
    if not rows:
        return
    session.flush()
    if not _on_postgresql(session):
        session.execute(insert(table), list(rows))
        return
    names, record = _record(session, table, rows)
    columns = ", ".join(names)
    session.execute(
        text(
            f"INSERT INTO {table.name} ({columns}) SELECT {columns} "  # noqa: S608 (the table's own names)
            f"FROM json_to_recordset(CAST(:rows AS json)) AS v({record})"
        ),
        {"rows": _document(rows)},
    )


def update_rows(
    session: Session, table: Table, rows: Sequence[Mapping[str, object]], key: str = "id"
) -> None:
    """Set the columns each row names (all rows name the same ones) of the row whose ``key``
    it gives."""
    if not rows:
        return
    session.flush()
    if not _on_postgresql(session):
        matched = update(table).where(table.c[key] == bindparam(f"b_{key}"))
        session.execute(matched, _rekeyed(rows, key))
        return
    names, record = _record(session, table, rows)
    assignments = ", ".join(f"{name} = v.{name}" for name in names if name != f'"{key}"')
    session.execute(
        text(
            f"UPDATE {table.name} SET {assignments} "  # noqa: S608 (the table's own names)
            f"FROM json_to_recordset(CAST(:rows AS json)) AS v({record}) "
            f'WHERE {table.name}."{key}" = v."{key}"'
        ),
        {"rows": _document(rows)},
    )


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _record(
    session: Session, table: Table, rows: Sequence[Mapping[str, object]]
) -> tuple[list[str], str]:
    """The quoted column names, and the record definition ``json_to_recordset`` reads them by."""
    dialect = session.get_bind().dialect
    names = list(rows[0])
    record = ", ".join(f'"{name}" {table.c[name].type.compile(dialect=dialect)}' for name in names)
    return [f'"{name}"' for name in names], record


def _document(rows: Sequence[Mapping[str, object]]) -> str:
    return json.dumps(list(rows), default=_json_value)


def _json_value(value: object) -> str:
    """Datetimes as ISO 8601, which PostgreSQL reads into ``timestamptz`` columns."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as a column value")


def _rekeyed(rows: Sequence[Mapping[str, object]], key: str) -> list[dict[str, object]]:
    """Core's executemany UPDATE names the key's parameter apart from the column it sets."""
    return [
        {(f"b_{key}" if name == key else name): value for name, value in row.items()}
        for row in rows
    ]
