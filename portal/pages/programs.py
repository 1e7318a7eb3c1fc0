"""The program pages: the programs a viewer may see, and one program's account tree with its
entitled shares, its quota editor (with a preview of the entitled shares a change would make)
and its credit burn-down.

Every read and write goes through ``quotas.cases.programs`` with the viewer's principal, which
changes accounts through the use cases the API's ``PATCH /accounts/{name}`` and
``PUT /accounts/{name}/budget`` call; the form's values are checked by the API's own models.
A preview writes nothing; saving applies every change in one unit of work, so a refusal of one
changes none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from pydantic import ValidationError

from portal.api.accounts import AccountChange, BudgetChange
from portal.api.common import NO_NUL, Segment, csv_response
from portal.deps import PortalDep
from portal.pages.charts import Series, line_chart
from portal.pages.render import Csrf, Viewer, check_form, render, see_other, signed_in
from portal.scopes import MANAGE, READ
from quotas.cases.accounts import program_managers, running_period
from quotas.cases.programs import (
    CHILD_KIND,
    BurnDown,
    NodeChange,
    ProgramTree,
    add_to_program,
    apply_tree_changes,
    preview_tree_changes,
    program_burn_down,
    program_tree,
    visible_programs,
)
from quotas.errors import Conflict, InvalidInput, TreeError
from quotas.quantities import Credits

router = APIRouter(include_in_schema=False)

SCOPES = {
    ("GET", "/programs"): READ,
    ("GET", "/programs/{name}"): READ,
    ("POST", "/programs/{name}"): MANAGE,
    ("POST", "/programs/{name}/preview"): MANAGE,
    ("POST", "/programs/{name}/accounts"): MANAGE,
}

MAX_ROWS = 2_000
"""The most accounts one form may change."""
FIELD = 32
"""The longest value one of the editor's cells takes."""

Column = Annotated[list[str], Form(max_length=MAX_ROWS)]

REFUSALS = (InvalidInput, Conflict, TreeError)
"""Refusals of what was entered, shown on the form it was entered in (a 422); the others (not
found, not allowed) answer as an error page."""


@router.get("/programs")
def programs_page(request: Request, portal: PortalDep) -> HTMLResponse:
    viewer = signed_in(request, portal)
    with portal.books() as books:
        found = visible_programs(books, viewer.principal)
    return render(viewer, "programs.html", period=found.period, programs=found.programs)


# -- one program -----------------------------------------------------------------------------


Draft = dict[str, dict[str, str]]
"""What the editor's cells hold, per account: share, guaranteed, borrowing, budget."""


def _draft_of(tree: ProgramTree, proposed: bool = False) -> Draft:
    draft: Draft = {}
    for node in tree.nodes:
        account = node.proposed if proposed and node.proposed is not None else node.account
        draft[account.name] = {
            "share": str(account.share),
            "guaranteed": str(account.guaranteed_gpus),
            "borrowing": _text(account.borrowing_limit_gpus),
            "budget": _text(account.budget),
        }
    return draft


def _text(value: object | None) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class NewDraft:
    """What the add-an-account form holds."""

    parent: str = ""
    name: str = ""
    display_name: str = ""
    share: str = "1"


def _program_page(
    portal: PortalDep,
    viewer: Viewer,
    name: str,
    tree: ProgramTree | None = None,
    draft: Draft | None = None,
    error: str | None = None,
    new: NewDraft | None = None,
    new_error: str | None = None,
    status: int = 200,
    saved: int | None = None,
    added: str | None = None,
) -> HTMLResponse:
    with portal.books() as books:
        current = program_tree(books, viewer.principal, name)
        burn_down = program_burn_down(books, viewer.principal, name, viewer.t.timezone)
        managers = program_managers(books, viewer.principal, name)
    shown = tree or current
    return render(
        viewer,
        "program.html",
        status=status,
        tree=shown,
        draft={**_draft_of(shown, proposed=shown.is_preview), **(draft or {})},
        error=error,
        managers=managers,
        burn_down=burn_down,
        chart=_burn_down_chart(viewer, burn_down),
        exhausted_day=_exhausted_day(viewer, burn_down),
        parents=current.may_add_under,
        child_kind={kind.value: child.value for kind, child in CHILD_KIND.items()},
        new=new or NewDraft(parent=name),
        new_error=new_error,
        saved=saved,
        added=added,
    )


@router.get("/programs/{name}")
def program_page(
    name: Segment,
    request: Request,
    portal: PortalDep,
    format: Annotated[str, Query(pattern="^(html|csv)$")] = "html",
    saved: Annotated[int | None, Query(ge=0, le=MAX_ROWS)] = None,
    added: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
) -> Response:
    """The program's tree (``?format=csv``: as CSV), with its editor for those who may change
    it, and its burn-down; ``saved`` and ``added`` say what the last form did."""
    viewer = signed_in(request, portal)
    if format == "csv":
        with portal.books() as books:
            tree = program_tree(books, viewer.principal, name)
        return _tree_csv(tree)
    return _program_page(portal, viewer, name, saved=saved, added=added)


@router.post("/programs/{name}/preview")
def preview_changes(
    name: Segment,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    account: Column,
    share: Column,
    guaranteed: Column,
    borrowing: Column,
    budget: Column,
) -> Response:
    """The tree as the form's values would leave it, with the entitled shares old -> new;
    writes nothing."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = _draft_from(account, share, guaranteed, borrowing, budget)
    try:
        with portal.books() as books:
            changes = _changes(draft, running_period(books))
            preview = preview_tree_changes(books, viewer.principal, name, changes)
    except REFUSALS as error:
        return _program_page(portal, viewer, name, draft=draft, error=str(error), status=422)
    return _program_page(portal, viewer, name, tree=preview, draft=draft)


@router.post("/programs/{name}")
def save_changes(
    name: Segment,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    account: Column,
    share: Column,
    guaranteed: Column,
    borrowing: Column,
    budget: Column,
) -> Response:
    """Apply the form's values through the API's use cases, all or none."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = _draft_from(account, share, guaranteed, borrowing, budget)
    try:
        with portal.books() as books:
            changes = _changes(draft, running_period(books))
            changed = apply_tree_changes(books, viewer.principal, name, changes)
    except REFUSALS as error:
        return _program_page(portal, viewer, name, draft=draft, error=str(error), status=422)
    return see_other(f"/programs/{name}?saved={len(changed)}")


@router.post("/programs/{name}/accounts")
def add_account(
    name: Segment,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    parent: Annotated[str, Form(max_length=64)],
    new_name: Annotated[str, Form(max_length=64)],
    display_name: Annotated[str, Form(max_length=200)] = "",
    share: Annotated[str, Form(max_length=FIELD)] = "1",
) -> Response:
    """Add an organization under the program, or a project under one of its organizations."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    new = NewDraft(parent, new_name, display_name, share)
    try:
        try:
            fields = AccountChange.model_validate(
                {"share": share, "display_name": display_name}
            ).model_dump(include={"share", "display_name"})
        except ValidationError as error:
            raise InvalidInput(_invalid(error)) from error
        with portal.books() as books:
            added = add_to_program(books, viewer.principal, name, new_name, parent, **fields)
    except REFUSALS as error:
        return _program_page(portal, viewer, name, new=new, new_error=str(error), status=422)
    return see_other(f"/programs/{name}?added={added.name}")


# -- the editor's values ---------------------------------------------------------------------


def _draft_from(
    account: list[str],
    share: list[str],
    guaranteed: list[str],
    borrowing: list[str],
    budget: list[str],
) -> Draft:
    columns = (share, guaranteed, borrowing, budget)
    if any(len(column) != len(account) for column in columns):
        raise InvalidInput("the form's columns do not line up: reload the page and try again")
    return {
        each: {
            "share": cells[0][:FIELD],
            "guaranteed": cells[1][:FIELD],
            "borrowing": cells[2][:FIELD],
            "budget": cells[3][:FIELD],
        }
        for each, *cells in zip(account, *columns, strict=True)
    }


def _changes(draft: Draft, period: str | None) -> dict[str, NodeChange]:
    """The form's values checked by the API's own models (``AccountChange``, ``BudgetChange``)."""
    changes: dict[str, NodeChange] = {}
    for name, cells in draft.items():
        try:
            fields = AccountChange.model_validate(
                {
                    "share": cells["share"],
                    "guaranteed_gpus": cells["guaranteed"],
                    "borrowing_limit_gpus": cells["borrowing"].strip() or None,
                }
            ).model_dump(include={"share", "guaranteed_gpus", "borrowing_limit_gpus"})
            budget_text = cells["budget"].strip() or None
            budget: Credits | None = None
            if period is not None:
                body = BudgetChange.model_validate({"period": period, "budget": budget_text})
                budget = Credits.of(body.budget) if body.budget is not None else None
        except (ValidationError, ValueError) as error:
            message = _invalid(error) if isinstance(error, ValidationError) else str(error)
            raise InvalidInput(f"{name}: {message}") from error
        changes[name] = NodeChange(fields, period is not None, budget)
    return changes


def _invalid(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(part) for part in item.get("loc", ()))
        parts.append(f"{where}: {item.get('msg', '')}")
    return "; ".join(parts)


# -- the burn-down chart and the CSV ---------------------------------------------------------


def _burn_down_chart(viewer: Viewer, burn_down: BurnDown | None) -> Markup | None:
    if burn_down is None:
        return None
    t = viewer.t
    series = [
        Series(
            t("programs.burn_remaining"),
            [(at, float(amount.decimal)) for at, amount in burn_down.remaining],
            css_class="chart-series-0",
        ),
    ]
    if burn_down.projection:
        series.append(
            Series(
                t("programs.burn_projection"),
                [(at, float(amount.decimal)) for at, amount in burn_down.projection],
                css_class="chart-series-1",
                dashed=True,
            )
        )
    return line_chart(
        t("programs.burn_title"),
        series,
        x_format=t.day,
        y_format=lambda value: t.number(value),
        empty_message=t("programs.burn_empty"),
        y_label=t("programs.burn_axis"),
        description=t("programs.burn_description"),
        chart_id="burn-down",
    )


def _exhausted_day(viewer: Viewer, burn_down: BurnDown | None) -> str:
    """The day the credits run out, written for the viewer (the day is the books', in UTC)."""
    if burn_down is None or burn_down.burn.exhausted_on is None:
        return ""
    day = burn_down.burn.exhausted_on
    return viewer.t.day(datetime.combine(day, time(), tzinfo=viewer.t.timezone))


TREE_COLUMNS = (
    "name",
    "kind",
    "parent",
    "depth",
    "share",
    "entitled_among_siblings",
    "entitled_overall",
    "budget",
    "guaranteed_gpus",
    "borrowing_limit_gpus",
    "available",
    "held",
    "spent",
)


def _tree_csv(tree: ProgramTree) -> Response:
    rows = (
        (
            node.account.name,
            node.account.kind.value,
            node.account.parent or "",
            node.depth,
            node.account.share,
            f"{node.entitled.among_siblings:.6f}",
            f"{node.entitled.overall:.6f}",
            _text(node.account.budget),
            node.account.guaranteed_gpus,
            _text(node.account.borrowing_limit_gpus),
            str(node.balances.available),
            str(node.balances.held),
            str(node.balances.spent),
        )
        for node in tree.nodes
    )
    period = f"-{tree.period}" if tree.period else ""
    return csv_response(TREE_COLUMNS, rows, f"program-{tree.program.name}{period}.csv")
