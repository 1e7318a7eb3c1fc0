"""The report pages, the ledger and the audit log over the demo pool: each table cell and chart
mark holds the number the API's report gives, for the viewer's scope.

Reports with numbers in them run over the reports API's scene (``tests/portal/test_reports_api``):
four jobs run, charged and refunded by the scheduler on simulated backends, one left running and
one queued, against an injected clock."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from quotas.accounts import AccountTree
from quotas.demo import demo_pool
from quotas.fairshare import fair_share
from quotas.reports import SpendBy, day_starts, usage_by_project, usage_share_history
from tests.portal import test_reports_api
from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in
from tests.portal.test_reports_api import Scene

MANAGER = "jaehyun.kim"
"""Program manager of ``universities``."""
RESEARCHER = "jiwoo.jung"
AUDITOR = "auditor.kim"

ROW = re.compile(r'<tr data-(?:account|name|program|cluster)="([^"]*)"(.*?)</tr>', re.S)
CELL = re.compile(r'data-field="([^"]+)" data-value="([^"]*)"')


@pytest.fixture
def played(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Scene:
    """The reports API's scene: jobs run, charged and refunded; one running, one queued."""
    scene: Scene = test_reports_api.scene.__wrapped__(demo, monkeypatch)
    return scene


def cells(html: str, table_id: str) -> dict[str, dict[str, str]]:
    """Row key -> field -> data-value of the table ``table_id``."""
    start = html.index(f'id="{table_id}"')
    table = html[start : html.index("</table>", start)]
    return {key: dict(CELL.findall(body)) for key, body in ROW.findall(table)}


def marks(html: str, chart_id: str) -> list[tuple[str, str]]:
    """(label, data-value) of each bar of the chart ``chart_id``."""
    start = html.index(f'id="{chart_id}"')
    chart = html[start : html.index("</svg>", start)]
    return re.findall(r'data-label="([^"]*)"[^>]*?data-value="([^"]*)"', chart)


def api(demo: Demo, path: str, user: str = "admin") -> dict:  # type: ignore[type-arg]
    answer = demo.client.get(f"/api/v1{path}", headers=demo.headers(user))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_reports_index_names_the_viewers_scope(demo: Demo) -> None:
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/reports")
    assert page.status_code == 200
    assert "whole pool" in page.text
    assert 'href="/audit"' in page.text
    sign_in(demo.client, demo.tokens[MANAGER])
    page = demo.client.get("/reports")
    assert page.status_code == 200
    assert "universities" in page.text
    assert 'href="/audit"' not in page.text


def test_the_fair_share_table_holds_the_apis_rows(played: Scene) -> None:
    demo = played.demo
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/reports/fairshare")
    assert page.status_code == 200, page.text
    report = api(demo, "/reports/fairshare")
    shown = cells(page.text, "fairshare-table")
    assert list(shown) == [row["name"] for row in report["rows"]]
    for row in report["rows"]:
        got = shown[row["name"]]
        assert int(got["share"]) == row["share"]
        assert float(got["norm_share"]) == row["norm_share"]
        assert float(got["usage"]) == pytest.approx(row["usage"], rel=1e-6)
        assert float(got["norm_usage"]) == pytest.approx(row["norm_usage"], rel=1e-6)
        assert got["level_fs"] == ("inf" if row["level_fs"] is None else got["level_fs"])
    money = cells(page.text, "fairshare-credits")
    for row in report["rows"]:
        for field in ("awarded", "spent", "held", "available"):
            assert Decimal(money[row["name"]][field]) == Decimal(row[field])
    assert f"period={report['period']}" in page.text
    assert "format=csv" in page.text


def test_fair_share_charts_plot_entitled_share_and_the_engines_usage_share(played: Scene) -> None:
    demo = played.demo
    sign_in(demo.client, demo.admin_token)
    report = {row["name"]: row for row in api(demo, "/reports/fairshare")["rows"]}
    page = demo.client.get("/reports/fairshare?node=universities&node=kaist-nlp")
    assert page.status_code == 200, page.text
    for name in ("universities", "kaist-nlp"):
        start = page.text.index(f'id="fs-{name}"')
        chart = page.text[start : page.text.index("</svg>", start)]
        series = dict(re.findall(r'data-series="([^"]+)"(.*?)</g>', chart, re.S))
        entitled = re.findall(r'data-value="([^"]+)"', series["Entitled share"])
        used = re.findall(r'data-value="([^"]+)"', series["Usage share"])
        assert entitled
        assert len(entitled) == len(used)
        assert {float(v) for v in entitled} == {report[name]["norm_share"]}
        assert float(used[-1]) == pytest.approx(report[name]["norm_usage"], abs=1e-3)
        assert float(used[-1]) > 0


def test_a_program_manager_sees_only_their_program(played: Scene) -> None:
    demo = played.demo
    sign_in(demo.client, demo.tokens[MANAGER])
    page = demo.client.get("/reports/fairshare")
    assert page.status_code == 200
    shown = cells(page.text, "fairshare-table")
    report = api(demo, "/reports/fairshare", MANAGER)
    assert list(shown) == [row["name"] for row in report["rows"]]
    assert "universities" in shown
    assert "startups" not in shown
    spend = demo.client.get("/reports/spend")
    assert spend.status_code == 200
    assert "startups" not in spend.text
    assert 'value="funder"' not in spend.text
    assert demo.client.get("/reports/spend?by=funder").status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/reports",
        "/reports/fairshare",
        "/reports/utilisation",
        "/reports/spend",
        "/reports/wait-times",
        "/audit",
    ],
)
def test_a_researcher_may_not_read_the_reports(demo: Demo, path: str) -> None:
    sign_in(demo.client, demo.tokens[RESEARCHER])
    page = demo.client.get(path)
    assert page.status_code == 403
    assert "<table" not in page.text


def test_utilisation_table_and_daily_bars_sum_to_the_apis_hours(played: Scene) -> None:
    demo = played.demo
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/reports/utilisation?since=3d")
    assert page.status_code == 200, page.text
    window = re.search(r'data-since="([^"]+)" data-until="([^"]+)"', page.text)
    assert window
    since, until = window.groups()
    report = api(demo, "/reports/utilisation?" + urlencode({"since": since, "until": until}))
    assert any(row["allocated_gpu_hours"] > 0 for row in report["rows"])
    shown = cells(page.text, "utilisation-table")
    assert len(shown) == len({row["cluster"] for row in report["rows"]}) or shown
    for row in report["rows"]:
        key = f"util-{row['cluster']}-{row['flavor']}"
        bars = marks(page.text, key)
        assert len(bars) in (3 * 3, 3 * 4)  # three parts a day over 3 or 4 calendar days
        total = sum(float(v) for _, v in bars)
        assert total == pytest.approx(row["total_gpu_hours"], abs=0.01)
    first = report["rows"][0]
    row_cells = re.search(
        rf'data-cluster="{first["cluster"]}" data-flavor="{first["flavor"]}">(.*?)</tr>',
        page.text,
        re.S,
    )
    assert row_cells
    values = dict(CELL.findall(row_cells.group(1)))
    assert float(values["total_gpu_hours"]) == first["total_gpu_hours"]
    assert float(values["idle_gpu_hours"]) == first["idle_gpu_hours"]
    assert "format=csv" in page.text


def test_a_window_that_cannot_be_read_is_refused_on_the_page(demo: Demo) -> None:
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/reports/utilisation?since=last+tuesday")
    assert page.status_code == 422
    assert "cannot read the time" in page.text


@pytest.mark.parametrize("by", list(SpendBy))
def test_spend_chart_and_table_hold_the_apis_rows(played: Scene, by: SpendBy) -> None:
    demo = played.demo
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get(f"/reports/spend?by={by.value}")
    assert page.status_code == 200, page.text
    report = api(demo, f"/reports/spend?by={by.value}")
    assert report["rows"]
    bars = marks(page.text, "spend-chart")
    assert [Decimal(v) for _, v in bars] == [Decimal(row["credits"]) for row in report["rows"]]


def test_the_spend_tree_adds_up_to_the_apis_groups_and_downloads(played: Scene) -> None:
    demo = played.demo
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/reports/spend")
    by_funder = {row["name"]: row for row in api(demo, "/reports/spend?by=funder")["rows"]}
    by_project = {row["name"]: row for row in api(demo, "/reports/spend?by=project")["rows"]}
    tree = re.findall(
        r'<tr data-kind="([^"]+)" data-name="([^"]+)" data-path="([^"]+)">(.*?)</tr>',
        page.text,
        re.S,
    )
    funders = {name: dict(CELL.findall(body)) for kind, name, _, body in tree if kind == "funder"}
    assert funders
    assert set(funders) == set(by_funder)
    for name, values in funders.items():
        assert Decimal(values["credits"]) == Decimal(by_funder[name]["credits"])
        assert int(values["krw"]) == by_funder[name]["krw"]
    projects: dict[str, Decimal] = {}
    for kind, name, _, body in tree:
        if kind == "project":
            projects[name] = projects.get(name, Decimal(0)) + Decimal(
                dict(CELL.findall(body))["credits"]
            )
    assert projects == {name: Decimal(row["credits"]) for name, row in by_project.items()}
    download = demo.client.get("/reports/spend?format=csv")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(download.text)))
    assert lines[0] == ["level", "kind", "name", "path", "credits", "krw", "jobs"]
    assert len(lines) - 1 == len(tree)


def test_wait_times_page_holds_the_apis_percentiles(played: Scene) -> None:
    demo = played.demo
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/reports/wait-times?since=30d")
    assert page.status_code == 200, page.text
    since, until = re.search(r'data-since="([^"]+)" data-until="([^"]+)"', page.text).groups()  # type: ignore[union-attr]
    report = api(demo, "/reports/wait-times?" + urlencode({"since": since, "until": until}))
    assert report["rows"]
    shown = cells(page.text, "wait-table") if report["rows"] else {}
    for row in report["rows"]:
        assert float(shown[row["program"]]["p90_seconds"]) == row["p90_seconds"]
    bars = marks(page.text, "wait-chart")
    assert [float(v) for _, v in bars] == [
        row[f"p{p}_seconds"] for row in report["rows"] for p in (50, 90, 99)
    ]


def test_the_ledger_filters_and_pages_as_the_api_does(demo: Demo) -> None:
    sign_in(demo.client, demo.admin_token)
    everything = api(demo, "/ledger?limit=1")["total"]
    page = demo.client.get("/ledger")
    assert page.status_code == 200
    assert f'data-total="{everything}"' in page.text
    awards = api(demo, "/ledger?kind=award&limit=1")["total"]
    filtered = demo.client.get("/ledger?kind=award")
    assert f'data-total="{awards}"' in filtered.text
    future = demo.client.get("/ledger?since=2999-01-01")
    assert "No entry matches." in future.text
    recent = demo.client.get("/ledger?since=7d")
    assert recent.status_code == 200
    assert "/api/v1/ledger?" in page.text
    assert "format=csv" in page.text


def test_the_ledger_of_a_program_manager_is_their_programs(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    page = demo.client.get("/ledger")
    assert page.status_code == 200
    total = api(demo, "/ledger?limit=1", MANAGER)["total"]
    assert f'data-total="{total}"' in page.text
    assert demo.client.get("/ledger?account=startups").status_code == 404


def test_the_audit_log_is_the_auditors(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[AUDITOR])
    page = demo.client.get("/audit")
    assert page.status_code == 200
    total = api(demo, "/audit?limit=1", AUDITOR)["total"]
    assert f'data-total="{total}"' in page.text
    none_since = demo.client.get("/audit?since=2999-01-01")
    assert "No entry matches." in none_since.text
    assert api(demo, "/audit?since=2999-01-01T00:00:00Z", AUDITOR)["total"] == 0


def test_korean_headings_keep_the_numbers(played: Scene) -> None:
    demo = played.demo
    sign_in(demo.client, demo.admin_token)
    english = demo.client.get("/reports/fairshare")
    demo.client.cookies.set("gpupool_lang", "ko")
    korean = demo.client.get("/reports/fairshare")
    assert "<h1>공정 배분</h1>" in korean.text
    assert cells(korean.text, "fairshare-credits") == cells(english.text, "fairshare-credits")


# -- the series the charts draw, against the reports' own arithmetic ---------------------------


def test_usage_share_history_is_fair_share_at_each_moment() -> None:

    now = datetime(2026, 3, 10, tzinfo=UTC)
    tree = AccountTree.of(demo_pool(now).accounts)
    charges = [
        ("kaist-nlp", now - timedelta(days=3), 4_000),
        ("snu-medical-imaging", now - timedelta(days=2), 6_400),
        ("kaist-nlp", now - timedelta(days=1), 1_000),
        ("kaist-nlp", now - timedelta(hours=20), -1_000),
    ]
    moments = [now - timedelta(days=d) for d in (4, 2, 1, 0)]
    half_life = 7 * 24 * 3600.0
    history = usage_share_history(tree, charges, moments, half_life, ["kaist-nlp", "universities"])
    for position, moment in enumerate(moments):
        made = [(p, at, milli) for p, at, milli in charges if at <= moment]
        expected = fair_share(tree, usage_by_project(made, moment, half_life))
        for name in ("kaist-nlp", "universities"):
            point = history[name][position]
            assert point.at == moment
            assert point.norm_share == expected.explain(name).norm_share
            assert point.norm_usage == pytest.approx(expected.explain(name).norm_usage, abs=1e-12)


def test_day_starts_are_the_pools_midnights() -> None:

    seoul = ZoneInfo("Asia/Seoul")
    since = datetime(2026, 3, 1, 12, tzinfo=UTC)  # 21:00 in Seoul
    until = datetime(2026, 3, 3, 15, tzinfo=UTC)  # 00:00 on the 4th in Seoul: not inside
    assert day_starts(since, until, seoul) == [
        datetime(2026, 3, 1, 15, tzinfo=UTC),
        datetime(2026, 3, 2, 15, tzinfo=UTC),
    ]
