"""The program pages over the demo pool, through a test client signed in as a browser is: the
programs a viewer may see, a program's tree with the fair-share engine's entitled shares, the
editor's preview (which writes nothing) and save (all or nothing, through the API's use cases),
adding an account, and the credit burn-down."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from quotas.accounts import AccountTree
from quotas.cases.programs import entitlements
from quotas.fairshare import fair_share
from quotas.quantities import Credits
from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in

MANAGER = "jaehyun.kim"  # manages universities: kaist (kaist-nlp, kaist-protein), snu, postech
OTHER_MANAGER = "minji.park"  # manages startups
PROGRAM = "universities"
EDITABLE = (
    "kaist",
    "kaist-nlp",
    "kaist-protein",
    "snu",
    "snu-medical-imaging",
    "postech",
    "postech-materials",
)


def accounts(demo: Demo, user: str = "admin") -> dict[str, dict[str, Any]]:
    listed = demo.client.get("/api/v1/accounts", headers=demo.headers(user)).json()
    return {each["name"]: each for each in listed["accounts"]}


Form = dict[str, list[str]]


def editor_form(demo: Demo, csrf: str, **overrides: dict[str, str]) -> Form:
    """The editor's fields as the page fills them from the API's values, with ``overrides``
    per account (``share``, ``guaranteed``, ``borrowing``, ``budget``; ``kaist_nlp`` for
    kaist-nlp)."""
    found = accounts(demo)
    form: Form = {"csrf": [csrf], "account": [], **{key: [] for key in CELLS}}
    for name in EDITABLE:
        account = found[name]
        cells = {
            "share": str(account["share"]),
            "guaranteed": str(account["guaranteed_gpus"]),
            "borrowing": _text(account["borrowing_limit_gpus"]),
            "budget": account["budget"] or "",
            **overrides.get(name.replace("-", "_"), {}),
        }
        with_row(form, name, cells)
    return form


CELLS = ("share", "guaranteed", "borrowing", "budget")


def with_row(form: Form, name: str, cells: dict[str, str]) -> Form:
    form["account"].append(name)
    for key in CELLS:
        form[key].append(cells[key])
    return form


def _text(value: object) -> str:
    return "" if value is None else str(value)


def entitled_cells(html: str, account: str) -> dict[str, tuple[float, float | None]]:
    """``part -> (now, after)`` of an account's entitled-share cells on the page."""
    row = re.search(rf'<tr data-account="{account}".*?</tr>', html, re.S)
    assert row, f"no row for {account}"
    cells = re.findall(
        r'data-entitled="(\w+)" data-value="([^"]+)"(?: data-after="([^"]+)")?', row.group(0)
    )
    return {part: (float(now), float(after) if after else None) for part, now, after in cells}


def api_tree(demo: Demo) -> AccountTree:
    from quotas.accounts import Account, AccountKind

    return AccountTree.of(
        Account(
            name=each["name"],
            kind=AccountKind(each["kind"]),
            parent=each["parent"],
            share=each["share"],
        )
        for each in accounts(demo).values()
    )


def test_the_programs_page_lists_the_programs_a_viewer_may_see(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    page = demo.client.get("/programs")
    assert page.status_code == 200
    assert 'data-program="universities"' in page.text
    assert 'data-program="startups"' not in page.text
    universities = accounts(demo, MANAGER)[PROGRAM]
    assert f'data-available="{universities["balances"]["available"]}"' in page.text
    assert 'href="/programs/universities"' in page.text

    sign_in(demo.client, demo.tokens["auditor.kim"])
    page = demo.client.get("/programs")
    assert 'data-program="universities"' in page.text
    assert 'data-program="startups"' in page.text

    sign_in(demo.client, demo.tokens["jiwoo.jung"])
    page = demo.client.get("/programs")
    assert page.status_code == 200
    assert "data-program=" not in page.text
    assert "You manage no program" in page.text


def test_the_tree_shows_the_fair_share_engines_entitled_shares(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    page = demo.client.get(f"/programs/{PROGRAM}")
    assert page.status_code == 200
    tree = api_tree(demo)
    engine = fair_share(tree, {}).nodes
    for name in ("universities", *EDITABLE):
        cells = entitled_cells(page.text, name)
        among, _ = cells["among_siblings"]
        overall, _ = cells["overall"]
        assert among == pytest.approx(engine[name].norm_share)
        expected = 1.0
        for step in tree.path(name)[1:]:
            expected *= engine[step.name].norm_share
        assert overall == pytest.approx(expected)
    # kaist has share 2 among kaist, snu and postech (1 each): half the program
    assert entitled_cells(page.text, "kaist")["among_siblings"][0] == pytest.approx(0.5)
    # the program's own row is the admins': no input for it, inputs for the rest
    assert 'id="share-universities"' not in page.text
    assert 'id="share-kaist-nlp"' in page.text
    assert "startups" not in re.sub(r"<header.*?</header>", "", page.text, flags=re.S)


def test_a_preview_shows_the_entitled_shares_a_change_would_make_and_writes_nothing(
    demo: Demo,
) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    before = accounts(demo)
    audit_before = demo.client.get("/api/v1/audit", headers=demo.headers()).json()["total"]
    form = editor_form(demo, csrf, kaist_nlp={"share": "3"}, snu={"share": "2"})
    preview = demo.client.post(f"/programs/{PROGRAM}/preview", data=form)
    assert preview.status_code == 200, preview.text
    assert "Preview: nothing is saved yet" in preview.text

    edited = api_tree(demo)
    edited = edited.with_account(_with_share(edited, "kaist-nlp", 3))
    edited = edited.with_account(_with_share(edited, "snu", 2))
    after = entitlements(edited)
    now = entitlements(api_tree(demo))
    for name in ("kaist-nlp", "kaist-protein", "kaist", "snu", "postech"):
        cells = entitled_cells(preview.text, name)
        assert cells["among_siblings"] == (
            pytest.approx(now[name].among_siblings),
            pytest.approx(after[name].among_siblings),
        )
        assert cells["overall"][1] == pytest.approx(after[name].overall)
    assert entitled_cells(preview.text, "kaist-nlp")["among_siblings"][1] == pytest.approx(0.75)
    assert re.search(r'<tr data-account="kaist-nlp" class="depth-2 changed"', preview.text)
    assert 'id="share-kaist-nlp" name="share" value="3"' in preview.text  # ready to save

    assert accounts(demo) == before
    audit_after = demo.client.get("/api/v1/audit", headers=demo.headers()).json()["total"]
    assert audit_after == audit_before


def _with_share(tree: AccountTree, name: str, share: int) -> Any:
    from dataclasses import replace

    return replace(tree[name], share=share)


def test_saving_applies_every_change_through_the_api_use_cases(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    form = editor_form(
        demo,
        csrf,
        kaist_nlp={"share": "3", "guaranteed": "4", "borrowing": "8"},
        snu={"budget": "12345.5"},
        postech_materials={"borrowing": "2"},
    )
    saved = demo.client.post(f"/programs/{PROGRAM}", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/programs/{PROGRAM}?saved=3"
    found = accounts(demo)
    assert found["kaist-nlp"]["share"] == 3
    assert found["kaist-nlp"]["guaranteed_gpus"] == 4
    assert found["kaist-nlp"]["borrowing_limit_gpus"] == 8
    assert Credits.of(found["snu"]["budget"]) == Credits.of("12345.5")
    assert found["postech-materials"]["borrowing_limit_gpus"] == 2
    assert Credits.of(found["kaist"]["budget"]) == Credits.of(40_000)  # untouched
    page = demo.client.get(saved.headers["location"])
    assert "Saved: 3 accounts changed." in page.text
    audit = demo.client.get("/api/v1/audit?actor=jaehyun.kim", headers=demo.headers()).json()[
        "items"
    ]
    assert {entry["action"] for entry in audit} >= {"account.update", "budget.set"}

    # emptying a budget and a borrowing limit lifts them
    form = editor_form(demo, csrf, snu={"budget": ""}, kaist_nlp={"borrowing": ""})
    demo.client.post(f"/programs/{PROGRAM}", data=form)
    found = accounts(demo)
    assert found["snu"]["budget"] is None
    assert found["kaist-nlp"]["borrowing_limit_gpus"] is None


def test_one_refused_change_changes_nothing_and_the_form_says_why(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    with demo.books() as books:
        period = books.current_period().name
        books.hold("kaist-nlp", "gp-burn-1", Credits.of(500), "test", "a job", period)
    before = accounts(demo)
    # kaist-nlp's share is fine; kaist's budget below what kaist holds is refused by set_budget
    form = editor_form(demo, csrf, kaist_nlp={"share": "7"}, kaist={"budget": "100"})
    answer = demo.client.post(f"/programs/{PROGRAM}", data=form, follow_redirects=False)
    assert answer.status_code == 422
    assert "Nothing was changed" in answer.text
    assert "would be below that" in answer.text
    assert 'id="share-kaist-nlp" name="share" value="7"' in answer.text  # what was typed is kept
    assert accounts(demo) == before

    for bad in ({"share": "-1"}, {"share": "many"}, {"budget": "1.2345"}, {"guaranteed": ""}):
        form = editor_form(demo, csrf, kaist_nlp=bad)
        answer = demo.client.post(f"/programs/{PROGRAM}/preview", data=form)
        assert answer.status_code == 422, bad
        assert "kaist-nlp:" in answer.text
        assert accounts(demo) == before


def test_a_program_manager_may_not_change_the_programs_own_row(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    before = accounts(demo)
    row = {"share": "9", "guaranteed": "24", "borrowing": "", "budget": ""}
    form = with_row(editor_form(demo, csrf), PROGRAM, row)
    for path in (f"/programs/{PROGRAM}/preview", f"/programs/{PROGRAM}"):
        answer = demo.client.post(path, data=form)
        assert answer.status_code == 403
        assert "programs and the pool are changed by admins" in answer.text
    assert accounts(demo) == before


def test_an_admin_edits_the_program_row_too(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    page = demo.client.get(f"/programs/{PROGRAM}")
    assert 'id="share-universities"' in page.text
    row = {"share": "6", "guaranteed": "24", "borrowing": "", "budget": "150000"}
    form = with_row(editor_form(demo, csrf), PROGRAM, row)
    preview = demo.client.post(f"/programs/{PROGRAM}/preview", data=form)
    # universities 6 against startups 2: three quarters of the pool
    cells = entitled_cells(preview.text, PROGRAM)
    assert cells["among_siblings"][1] == pytest.approx(0.75)
    assert entitled_cells(preview.text, "kaist")["overall"][1] == pytest.approx(0.375)
    saved = demo.client.post(f"/programs/{PROGRAM}", data=form, follow_redirects=False)
    assert saved.status_code == 303
    found = accounts(demo)
    assert found[PROGRAM]["share"] == 6
    assert Credits.of(found[PROGRAM]["budget"]) == Credits.of(150_000)


def test_an_auditor_reads_the_tree_without_an_editor(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens["auditor.kim"])
    page = demo.client.get(f"/programs/{PROGRAM}")
    assert page.status_code == 200
    assert 'id="tree-form"' not in page.text
    assert "add-account" not in page.text
    assert "program&#39;s managers (jaehyun.kim)" in page.text
    assert 'name="share"' not in page.text


def test_adding_an_organization_and_a_project(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    page = demo.client.get(f"/programs/{PROGRAM}")
    parents = re.findall(r'<option value="([^"]+)"[^>]*>[^<]*\(adds', page.text)
    assert parents == ["universities", "kaist", "postech", "snu"]
    added = demo.client.post(
        f"/programs/{PROGRAM}/accounts",
        data={"csrf": csrf, "parent": PROGRAM, "new_name": "yonsei", "share": "2"},
        follow_redirects=False,
    )
    assert added.status_code == 303, added.text
    added = demo.client.post(
        f"/programs/{PROGRAM}/accounts",
        data={
            "csrf": csrf,
            "parent": "yonsei",
            "new_name": "yonsei-speech",
            "display_name": "Speech",
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    found = accounts(demo)
    assert found["yonsei"]["kind"] == "organization"
    assert found["yonsei"]["share"] == 2
    assert found["yonsei-speech"]["kind"] == "project"
    assert found["yonsei-speech"]["parent"] == "yonsei"
    page = demo.client.get(added.headers["location"])
    assert "Added yonsei-speech." in page.text
    assert 'data-account="yonsei-speech"' in page.text

    refused = demo.client.post(
        f"/programs/{PROGRAM}/accounts",
        data={"csrf": csrf, "parent": "kaist", "new_name": "Not A Name"},
    )
    assert refused.status_code == 422
    assert "is not a valid name" in refused.text
    under_a_project = demo.client.post(
        f"/programs/{PROGRAM}/accounts",
        data={"csrf": csrf, "parent": "kaist-nlp", "new_name": "deeper"},
    )
    assert under_a_project.status_code == 422
    assert "deeper" not in accounts(demo)


def test_the_tree_downloads_as_csv(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    answer = demo.client.get(f"/programs/{PROGRAM}?format=csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [row["name"] for row in rows][:3] == ["universities", "kaist", "kaist-nlp"]
    found = accounts(demo, MANAGER)
    for row in rows:
        assert row["available"] == found[row["name"]]["balances"]["available"]
        assert int(row["share"]) == found[row["name"]]["share"]
    kaist = next(row for row in rows if row["name"] == "kaist")
    assert float(kaist["entitled_among_siblings"]) == pytest.approx(0.5)


def test_the_burn_down_follows_the_ledger_and_projects_the_recent_burn(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    with demo.books() as books:
        period = books.current_period()
        books.hold("kaist-nlp", "gp-burn-1", Credits.of(7_000), "test", "a job", period.name)
        books.charge("kaist-nlp", "gp-burn-1", Credits.of(7_000), "test", "ran", period.name)
    page = demo.client.get(f"/programs/{PROGRAM}")
    assert page.status_code == 200
    program = accounts(demo, MANAGER)[PROGRAM]["balances"]
    uncharged = Credits.of(program["available"]) + Credits.of(program["held"])
    facts = re.search(r'<dl class="facts burn" ([^>]*)>', page.text)
    assert facts
    values = dict(re.findall(r'data-([\w-]+)="([^"]*)"', facts.group(1)))
    assert values["left"] == str(uncharged)
    # 7,000 credits over the 7-day burn window
    assert Credits.of(values["per-day"]) == Credits.of(1_000)
    fairshare = demo.client.get("/api/v1/reports/fairshare", headers=demo.headers(MANAGER)).json()
    row = next(each for each in fairshare["rows"] if each["name"] == PROGRAM)
    assert values["exhausted-on"] == (row["exhausted_on"] or "")
    assert Credits.of(row["burn_per_day"]) == Credits.of(values["per-day"])
    assert float(row["norm_share"]) == pytest.approx(0.6)  # universities 3 against startups 2
    exhausted = date.fromisoformat(values["exhausted-on"])
    within = exhausted <= (period.ends_at - timedelta(microseconds=1)).date()
    assert values["within"] == ("true" if within else "false")
    if not within:
        assert "not within the period" in page.text
    # the chart: the remaining line runs from the period's start to now, a point per day, and
    # ends at what is left; the projection starts there, dashed
    chart = re.search(r'<svg[^>]*id="burn-down.*?</svg>', page.text, re.S)
    assert chart, "no burn-down chart"
    remaining = series_points(chart.group(0), "Remaining (held + available)")
    projection = series_points(chart.group(0), "Projection at the recent burn")
    assert remaining[0] == (period.starts_at, 0.0)  # the demo's credits came in today
    assert remaining[-1][1] == float(uncharged.decimal)
    # start, each midnight (in the pages' time zone) since, and now: whatever the hour
    midnights = [at for at, _ in remaining[1:-1]]
    day = timedelta(days=1)
    assert all(later - earlier == day for earlier, later in pairwise(midnights))
    if midnights:
        assert period.starts_at < midnights[0] <= period.starts_at + day
        assert midnights[-1] < remaining[-1][0] <= midnights[-1] + day
    days = (remaining[-1][0] - period.starts_at).total_seconds() / 86_400
    assert int(days) - 1 <= len(midnights) <= int(days) + 1
    assert projection[0] == remaining[-1]
    assert projection[-1][0] <= period.ends_at
    assert 'class="chart-line chart-projection"' in chart.group(0)


def series_points(chart: str, name: str) -> list[tuple[datetime, float]]:
    group = re.search(
        rf'<g class="chart-series[^"]*" data-series="{re.escape(name)}".*?</g>', chart, re.S
    )
    assert group, f"no series {name}"
    return [
        (datetime.fromisoformat(x), float(value))
        for x, value in re.findall(r'data-x="([^"]+)" data-value="([^"]+)"', group.group(0))
    ]


def test_a_program_far_from_exhaustion_says_not_within_the_period(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    with demo.books() as books:
        period = books.current_period()
        books.hold("kaist-nlp", "gp-burn-2", Credits.of(1), "test", "a job", period.name)
        books.charge("kaist-nlp", "gp-burn-2", Credits.of(1), "test", "ran", period.name)
    page = demo.client.get(f"/programs/{PROGRAM}")
    assert 'data-within="false"' in page.text
    assert "not within the period" in page.text


def test_the_pages_speak_korean(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    demo.client.cookies.set("gpupool_lang", "ko")
    page = demo.client.get(f"/programs/{PROGRAM}")
    assert "계정 트리" in page.text
    assert "미리 보기" in page.text
    listing = demo.client.get("/programs")
    assert "프로그램" in listing.text


def test_without_a_running_period_the_pages_say_so(demo: Demo) -> None:
    later = datetime.now(UTC) + timedelta(days=800)
    portal = demo.client.app.state.portal  # type: ignore[attr-defined]
    wall_clock = portal.clock
    portal.clock = lambda: later
    try:
        sign_in(demo.client, demo.tokens[MANAGER])
        listing = demo.client.get("/programs")
        page = demo.client.get(f"/programs/{PROGRAM}")
    finally:
        portal.clock = wall_clock
    assert listing.status_code == 200
    assert "No allocation period is running" in listing.text
    assert page.status_code == 200
    assert "nothing to burn down" in page.text
