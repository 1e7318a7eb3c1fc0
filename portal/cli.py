"""The ``gpupool`` command line: a client of the portal's REST API, plus the local set-up.

``serve``, ``init`` and ``db upgrade`` work on this machine's database. Every other command
talks to a running portal through ``portal.client`` with the token of whoever signed in
(``gpupool login``; see ``portal.client`` for where the URL and token come from), so it sees and
may do exactly what that person may in the portal. Read commands take ``--json`` to print the
API's own JSON; reports take ``--csv`` to print the API's CSV.

Exit codes scripts can rely on:
  0  done;
  1  refused by the books: not found, a conflict, invalid input (the API's 4xx answers);
  2  bad usage: an unknown option or a value that cannot be read;
  3  not signed in, or the token was refused (401) or lacks the right (403);
  4  the portal cannot be reached, or it failed (5xx).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import textwrap
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from typer.core import TyperGroup

from jobs.model import JobState
from portal.client import (
    DEFAULT_URL,
    Api,
    ApiError,
    ClientSettings,
    NotSignedIn,
    Params,
    Unreachable,
    forget_credentials,
    resolve_credentials,
    store_credentials,
    stored_credentials,
)
from portal.server import run_service
from portal.settings import PortalSettings
from quotas.access import Scope
from quotas.admission import DataClass, PriorityClass
from quotas.cases import invitations
from quotas.clock import utc_now
from quotas.db.migrate import upgrade
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.errors import BooksError
from quotas.invitations import DEFAULT_LIFETIME, MAX_LIFETIME
from quotas.quantities import format_duration, parse_duration
from quotas.seed import seed_demo
from quotas.service import Books
from quotas.tokens import ADMIN_USER, ensure_admin
from scheduler.settings import SchedulerSettings

OK, REFUSED, USAGE, SIGNED_OUT, UNREACHABLE = 0, 1, 2, 3, 4


def fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class ApiGroup(TyperGroup):
    """Turns the client's errors into one line on stderr and the documented exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except ApiError as error:
            if error.status == 401:
                fail(f"{error.detail}; sign in again with `gpupool login`", SIGNED_OUT)
            if error.status == 403:
                fail(error.detail, SIGNED_OUT)
            if error.status >= 500:
                fail(f"the portal answered {error.status}: {error.detail}", UNREACHABLE)
            fail(error.detail, REFUSED)
        except NotSignedIn as error:
            fail(str(error), SIGNED_OUT)
        except Unreachable as error:
            fail(str(error), UNREACHABLE)
        except BooksError as error:
            fail(str(error), REFUSED)


app = typer.Typer(
    cls=ApiGroup,
    help="gpupool: one national GPU pool, one ledger, fair share.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
quota_app = typer.Typer(help="The account tree: shares, budgets, balances.")
request_app = typer.Typer(help="Allocation requests: ask for credits, review, release.")
report_app = typer.Typer(help="Reports: fair share, utilisation, spend, wait times.")


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="The data dir of a `gpupool serve` on this machine: its admin token and URL are "
            "used when nobody signed in (default GPUPOOL_DATA_DIR, else .gpupool).",
        ),
    ] = None,
) -> None:
    """gpupool: one national GPU pool, one ledger, fair share."""
    if data_dir is not None:
        ctx.meta[DATA_DIR_KEY] = data_dir


app.add_typer(db_app, name="db")
app.add_typer(quota_app, name="quota")
app.add_typer(request_app, name="request")
app.add_typer(report_app, name="report")

DataDir = Annotated[Path | None, typer.Option(help="Where gpupool keeps its files.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print the API's CSV.")]
Period = Annotated[str | None, typer.Option(help="Period, e.g. 2026-q3 (default: current).")]
Flavors = Annotated[list[str] | None, typer.Option("--flavor", help="Acceptable flavor (repeat).")]
Since = Annotated[
    str | None,
    typer.Option(
        help="Window start: ISO 8601, or how long before --until, e.g. 24h, 7d or 1h30m "
        "(default: 7 days before --until)."
    ),
]
Until = Annotated[str | None, typer.Option(help="Window end, ISO 8601 (default: now).")]
MinMemory = Annotated[int | None, typer.Option(help="Any flavor with this much GPU memory.")]


# -- talking to the portal ------------------------------------------------------------------


DATA_DIR_KEY = "gpupool.data_dir"
"""Where ``gpupool --data-dir`` keeps the data dir for the command it runs (``ctx.meta``)."""


def _client_settings(ctx: typer.Context) -> ClientSettings:
    data_dir = ctx.meta.get(DATA_DIR_KEY)
    return ClientSettings(data_dir=data_dir) if data_dir is not None else ClientSettings()


def _api(ctx: typer.Context) -> Api:
    """A client for the signed-in principal; tests inject the HTTP client as ``obj``."""
    credentials = resolve_credentials(_client_settings(ctx))
    api = Api(
        credentials.url, credentials.token, ctx.find_object(httpx.Client), credentials.found_at
    )
    ctx.call_on_close(api.close)
    return api


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return ", ".join(_cell(item) for item in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _numeric(text: str) -> bool:
    try:
        Decimal(text.lstrip("#").rstrip("%"))
    except InvalidOperation:
        return False
    return True


TABLE_WIDTH = 100
"""A table is drawn to fit this many columns of a terminal (``--json`` and ``--csv`` hold every
character)."""
NARROWEST = 8
"""A column of text is not cut narrower than this, nor than its header."""
WIDEST = 40
"""A column of text is cut to this width when the table is drawn in parts anyway."""
WRAPPED = 20
"""The last column, when it is text (a reason, a message), wraps onto more lines rather than
being cut, but not narrower than this."""
GAP = "  "
TIME = re.compile(r"\d{4}-\d\d-\d\d( \d\d:\d\d(:\d\d)?)?$")
"""A time as ``_when`` writes it: kept whole in a table, like a number."""


def _span(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1)


def _fitted(
    widths: Sequence[int], header: Sequence[str], kept: Sequence[bool], wraps: bool
) -> list[int]:
    """``widths`` narrowed until the table fits ``TABLE_WIDTH``: the last column first when it
    ``wraps`` (onto more lines: nothing is lost), then the widest text column. A column
    ``kept`` (numbers and times: one cut short would be wrong) keeps its width, and so does the
    first column (what each row is) while it is no wider than ``WIDEST``. When the table cannot
    fit so, only text wider than ``WIDEST`` is cut (it is drawn in parts)."""
    floors = [max(len(name), NARROWEST) for name in header]
    if widths:
        floors[0] = max(floors[0], min(widths[0], WIDEST))
        if wraps:
            floors[-1] = max(len(header[-1]), WRAPPED)
    least = [width if kept[i] else min(width, floors[i]) for i, width in enumerate(widths)]
    if _span(least) > TABLE_WIDTH:
        return [width if kept[i] else min(width, WIDEST) for i, width in enumerate(widths)]
    fitted = list(widths)
    last = len(fitted) - 1
    while _span(fitted) > TABLE_WIDTH:
        if wraps and fitted[last] > least[last]:
            fitted[last] = max(least[last], fitted[last] - (_span(fitted) - TABLE_WIDTH))
            continue
        widest = max(
            (i for i, width in enumerate(fitted) if width > least[i]), key=lambda i: fitted[i]
        )
        fitted[widest] -= 1
    return fitted


def _parts(widths: Sequence[int]) -> list[list[int]]:
    """The columns of each part of a table too wide for ``TABLE_WIDTH`` even cut: each part
    starts with the first column, so every line still says which row it is."""
    parts: list[list[int]] = [[0]] if widths else []
    for i in range(1, len(widths)):
        part = parts[-1]
        if len(part) > 1 and _span([widths[j] for j in [*part, i]]) > TABLE_WIDTH:
            parts.append([0, i])
        else:
            part.append(i)
    return parts


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Aligned columns, a column of numbers aligned right, fitted to ``TABLE_WIDTH``: the last
    column, when it is text, wraps onto more lines; other wide text is cut (ending in ``…``);
    and a table of more columns than fit even so is drawn in parts of columns, one after
    another, each led by the first column."""
    cells = [[_one_line(_cell(value)) for value in row] for row in rows]
    right = [
        bool(cells) and all(row[i] == "-" or _numeric(row[i]) for row in cells)
        for i in range(len(header))
    ]
    kept = [
        right[i] or (bool(cells) and all(row[i] == "-" or TIME.match(row[i]) for row in cells))
        for i in range(len(header))
    ]
    wraps = len(header) > 1 and not kept[-1]
    widths = _fitted(
        [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(header)],
        header,
        kept,
        wraps,
    )
    last = len(header) - 1

    def lines(values: Sequence[str], part: Sequence[int]) -> list[str]:
        shown = [
            _cut(values[i], widths[i]).rjust(widths[i])
            if right[i]
            else _cut(values[i], widths[i]).ljust(widths[i])
            for i in part
        ]
        if not (wraps and part[-1] == last and len(values[last]) > widths[last]):
            return [GAP.join(shown).rstrip()]
        first, *rest = textwrap.wrap(values[last], widths[last]) or [""]
        indent = " " * (_span([widths[i] for i in part[:-1]]) + len(GAP))
        return [GAP.join([*shown[:-1], first]).rstrip(), *(indent + more for more in rest)]

    for n, part in enumerate(_parts(widths)):
        if n:
            typer.echo("")
        for row in [header, *cells]:
            for text in lines(row, part):
                typer.echo(text)


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def _time_limit(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--time-limit") from error
    return text


def _credits(text: str, hint: str) -> str:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not an amount of credits", param_hint=hint) from None
    if not amount.is_finite():
        raise typer.BadParameter(f"{text!r} is not an amount of credits", param_hint=hint)
    return text


# -- local set-up: these work on this machine's database, not through the portal -----------


def _settings(data_dir: Path | None) -> SchedulerSettings:
    return SchedulerSettings(data_dir=data_dir) if data_dir else SchedulerSettings()


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Bring the database to the newest schema."""
    engine = make_engine(_settings(data_dir).database)
    upgrade(engine)
    typer.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")
    engine.dispose()


@app.command()
def init(
    demo: Annotated[bool, typer.Option(help="Seed the demo pool.")] = False,
    data_dir: DataDir = None,
    new_admin_token: Annotated[
        bool,
        typer.Option(help="Revoke the bootstrap admin's tokens and print a new one (lost it?)."),
    ] = False,
) -> None:
    """Create (or migrate) the database and, with --demo, seed the demo pool."""
    _init(demo, data_dir)
    if not new_admin_token:
        return
    settings = _settings(data_dir)
    engine = make_engine(settings.database)
    try:
        with transaction(session_factory(engine)) as session:
            token = ensure_admin(Books(session), settings.data_dir / "admin.token", reissue=True)
    finally:
        engine.dispose()
    typer.echo(f"Admin token: {token} (the bootstrap admin's earlier tokens are revoked)")


def _init(demo: bool, data_dir: Path | None) -> bool:
    """Migrate the database, and seed the demo pool when asked; whether it was seeded now."""
    settings = _settings(data_dir)
    # The database, the admin token and the session key live here: the service's alone.
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.data_dir.chmod(0o700)
    engine = make_engine(settings.database)
    try:
        upgrade(engine)
        typer.echo(
            f"database: {engine.url.render_as_string(hide_password=True)} (schema up to date)"
        )
        if not demo:
            return False
        with transaction(session_factory(engine)) as session:
            report = seed_demo(Books(session), demo_pool(utc_now()))
    finally:
        engine.dispose()
    typer.echo("demo pool:" if report.seeded else "demo pool: already seeded")
    for line in report.lines:
        typer.echo(f"  {line}")
    return report.seeded


def demo_signins(books: Books, base_url: str, seeded: bool) -> list[str]:
    """What ``serve --demo`` says about signing in as each demo persona: a one-time sign-in
    link each when the demo pool was seeded just now (once per database, like the admin
    token), else only how to make new ones."""
    personas = [(role, user) for role, user in demo_pool(utc_now()).personas]
    if not personas or not books.people.has_user(personas[0][1]):
        return []
    if not seeded:
        named = ", ".join(f"{user} ({role})" for role, user in personas)
        return [
            f"demo personas: {named}",
            "  `gpupool users invite <user>` makes a new sign-in link for one of them",
        ]
    admin = books.roles.principal(ADMIN_USER)
    lines = [f"Sign in as a demo persona (each link works once, for {DEFAULT_LIFETIME.days} days):"]
    roles = max(len(role) for role, _ in personas)
    users = max(len(user) for _, user in personas)
    for role, user in personas:
        issued = invitations.invite(books, admin, user).invitation
        link = f"{base_url}/signin?invite={issued.invitation}"
        lines.append(f"  {role.ljust(roles)}  {user.ljust(users)}  {link}")
    return lines


@app.command()
def serve(
    demo: Annotated[bool, typer.Option(help="Seed the demo pool on first start.")] = False,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run gpupool: the portal, the scheduler, and a local Ray cluster when none is configured."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = PortalSettings(**overrides)  # type: ignore[arg-type]
    seeded = _init(demo, settings.data_dir)
    engine = make_engine(settings.database)
    try:
        with transaction(session_factory(engine)) as session:
            books = Books(session)
            token = ensure_admin(books, settings.data_dir / "admin.token")
            signins = demo_signins(books, settings.base_url, seeded) if demo else []
            clusters = books.clusters.all()
            flavors = books.flavors.all()
    finally:
        engine.dispose()
    token_file = settings.data_dir / "admin.token"
    if token:
        typer.echo(f"Admin token: {token}")
    elif token_file.exists():
        typer.echo(f"admin token: in {token_file}")
    else:
        typer.echo(
            "admin token: issued before, and not kept in this data dir; "
            "`gpupool init --new-admin-token` replaces it"
        )
    for line in signins:
        typer.echo(line)
    run_service(settings, clusters, flavors)


# -- signing in -----------------------------------------------------------------------------


def _who(me: Any) -> str:
    if isinstance(me, dict):
        return str(me.get("user") or me.get("name") or me.get("id") or "?")
    return "?"


@app.command()
def login(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help=f"The portal (default {DEFAULT_URL}).")] = None,
    token: Annotated[
        str | None, typer.Option(help="A personal access token (asked for when left out).")
    ] = None,
    invitation: Annotated[
        str | None,
        typer.Option(
            help="An invitation (gpi_..., or its sign-in link): used up for a token of yours "
            "with every scope, living 30 days."
        ),
    ] = None,
) -> None:
    """Check a token with the portal and keep it for the next commands (file mode 0600)."""
    settings = ClientSettings()
    try:
        stored = stored_credentials(settings)
    except NotSignedIn:
        stored = None
    address = (url or settings.url or (stored.url if stored else DEFAULT_URL)).rstrip("/")
    if invitation is not None and token is not None:
        raise typer.BadParameter("give a token or an invitation, not both", param_hint="--token")
    if invitation is not None:
        token = _redeem(ctx, address, invitation)
    secret = (token or typer.prompt("token", hide_input=True)).strip()
    if not secret:
        raise typer.BadParameter("the token is empty", param_hint="--token")
    api = Api(address, secret, ctx.find_object(httpx.Client))
    try:
        me = api.get("/me")
    finally:
        api.close()
    path = store_credentials(settings, address, secret)
    typer.echo(f"signed in to {address} as {_who(me)}; credentials kept in {path}")


def _redeem(ctx: typer.Context, address: str, invitation: str) -> str:
    """A token of the invited person for ``invitation`` (or a link holding it), using it up."""
    _, _, tail = invitation.strip().partition("invite=")
    secret = (tail or invitation).strip().split("&")[0]
    body = {"invitation": secret, "token_name": "gpupool login", "scopes": sorted(Scope)}
    with Api(address, "", ctx.find_object(httpx.Client)) as api:
        answer = api.post("/invitations/redeem", body)
    return str(answer["token"])


@app.command()
def logout() -> None:
    """Forget the stored token."""
    settings = ClientSettings()
    if forget_credentials(settings):
        typer.echo(f"signed out: removed {settings.credentials_file}")
    else:
        typer.echo("not signed in")


@app.command()
def whoami(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Who the portal takes you for: user, roles, projects."""
    me = _api(ctx).get("/me")
    if as_json:
        _print_json(me)
        return
    if not isinstance(me, dict):
        typer.echo(str(me))
        return
    for key, value in me.items():
        if isinstance(value, dict):
            value = [f"{name} ({role})" for name, role in value.items()]
        typer.echo(f"{key}: {_cell(value)}")


# -- jobs -----------------------------------------------------------------------------------


def _quote_table(lines: list[dict[str, Any]]) -> None:
    _table(
        ["flavor", "rate", "credits", "training/credit"],
        [
            [line["flavor"], line["rate"], line["credits"], f"{line['training_per_credit']:.2f}"]
            for line in lines
        ],
    )


@app.command("submit")
def submit_command(
    ctx: typer.Context,
    entrypoint: Annotated[str, typer.Argument(help="The command to run, e.g. 'python train.py'.")],
    project: Annotated[str, typer.Option(help="Project the job is charged to.")],
    gpus: Annotated[int, typer.Option(help="Number of GPUs.")] = 1,
    time_limit: Annotated[str, typer.Option(help="Time limit, e.g. 4h or 90m.")] = "1h",
    flavor: Flavors = None,
    min_memory_gb: MinMemory = None,
    name: Annotated[str, typer.Option(help="A name for the job.")] = "job",
    priority: Annotated[PriorityClass, typer.Option(help="Priority class.")] = PriorityClass.NORMAL,
    data_class: Annotated[DataClass, typer.Option(help="Data class.")] = DataClass.PUBLIC,
    preemptible: Annotated[bool, typer.Option(help="May be preempted.")] = False,
    as_json: AsJson = False,
) -> None:
    """Queue a job; prints its id and what it would cost on each acceptable flavor."""
    body = {
        "project": project,
        "entrypoint": entrypoint,
        "name": name,
        "gpus": gpus,
        "time_limit": _time_limit(time_limit),
        "flavors": flavor or [],
        "min_memory_gb": min_memory_gb,
        "priority": priority.value,
        "data_class": data_class.value,
        "preemptible": preemptible,
    }
    answer = _api(ctx).post("/jobs", body)
    if as_json:
        _print_json(answer)
        return
    job = answer["job"]
    typer.echo(
        f"submitted {job['id']} ({job['name']}) to {job['project']}: "
        f"{job['gpus']} GPUs for {format_duration(job['time_limit_seconds'])}; {job['state']}"
    )
    typer.echo("quote (credits for the whole time limit, best deal first):")
    _quote_table(answer["quote"])


@app.command("quote")
def quote_command(
    ctx: typer.Context,
    gpus: Annotated[int, typer.Option(help="Number of GPUs.")],
    time_limit: Annotated[str, typer.Option(help="Time limit, e.g. 4h or 90m.")],
    flavor: Flavors = None,
    min_memory_gb: MinMemory = None,
    as_json: AsJson = False,
) -> None:
    """What a job would cost on each flavor it accepts, best deal first."""
    body = {
        "gpus": gpus,
        "time_limit": _time_limit(time_limit),
        "flavors": flavor or [],
        "min_memory_gb": min_memory_gb,
    }
    answer = _api(ctx).post("/quote", body)
    if as_json:
        _print_json(answer)
        return
    typer.echo(f"rate card v{answer['rate_card_version']}: {gpus} GPUs for {time_limit}")
    _quote_table(answer["lines"])


def _where(job: dict[str, Any]) -> str:
    if job.get("cluster") and JobState(job["state"]).holds_capacity:
        return f"{job['cluster']} {job['flavor']}"
    where = str(job.get("reason") or "")
    if job.get("position") is not None:
        where = f"#{job['position']} {where}"
    return where


@app.command("jobs")
def jobs_command(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Only this project's jobs.")] = None,
    state: Annotated[
        list[JobState] | None, typer.Option(help="Only jobs in this state (repeat).")
    ] = None,
    all_jobs: Annotated[
        bool,
        typer.Option(
            "--all", help="Finished jobs too (default: waiting, running and rejected ones)."
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """The queue, the running jobs and the rejected ones you may see, with each waiting job's
    position and reason (a rejected job stays listed, so its reason is not lost)."""
    shown = [s for s in JobState if not s.is_terminal or s is JobState.REJECTED]
    states = state or ([] if all_jobs else shown)
    query = {"project": project, "state": [s.value for s in states] or None, "limit": limit}
    page = _fetch(_api(ctx), "/jobs", query, as_json, as_csv)
    if page is None:
        return
    items: list[dict[str, Any]] = page["items"]
    _table(
        ["job", "name", "project", "gpus", "state", "submitted", "where / why"],
        [
            [
                job["id"],
                job["name"][:24],
                job["project"],
                job["gpus"],
                job["state"],
                _when(job["submitted_at"]),
                _where(job),
            ]
            for job in items
        ],
    )
    if page["total"] > len(items):
        typer.echo(f"({len(items)} of {page['total']}; --limit shows more)")


@app.command("job")
def job_command(ctx: typer.Context, job_id: str, as_json: AsJson = False) -> None:
    """One job: state, wait reason, position and estimated start, placement, charges, history."""
    job = _api(ctx).get(f"/jobs/{job_id}")
    if as_json:
        _print_json(job)
        return
    typer.echo(f"{job['id']}  {job['name']}  project {job['project']}  state {job['state']}")
    typer.echo(
        f"asked: {job['gpus']} GPUs, time limit {format_duration(job['time_limit_seconds'])}, "
        f"flavors {', '.join(job['flavors']) or 'any'}; by {job['submitter']}"
    )
    typer.echo(f"runs: {job['entrypoint']}")
    if job.get("reason"):
        typer.echo(f"reason: {job['reason']}")
    if job.get("position") is not None:
        typer.echo(f"position: {job['position']}; estimated start: {_when(job.get('eta'))}")
    if job.get("cluster"):
        typer.echo(
            f"placed: {job['cluster']} {job['flavor']} at {job['rate']} credits/GPU-h "
            f"(rate card v{job['rate_card_version']}); held {job['held']}"
        )
    if job.get("cancel_requested") and not JobState(job["state"]).is_terminal:
        typer.echo("cancel requested: the scheduler stops it on its next cycle")
    typer.echo(f"charged: {job['charged']} credits")
    for event in job["events"]:
        typer.echo(
            f"  {_when(event['at'])}  {event['from_state'] or '-'} -> "
            f"{event['to_state']}  {event['reason']}"
        )


@app.command("cancel")
def cancel_command(ctx: typer.Context, job_id: str) -> None:
    """Cancel a job: at once if queued, or ask the scheduler to stop it."""
    job = _api(ctx).post(f"/jobs/{job_id}/cancel")
    if JobState(job["state"]).is_terminal:
        typer.echo(f"{job_id} is {job['state']}")
    else:
        typer.echo(f"{job_id}: cancel requested; the scheduler stops it on its next cycle")


@app.command("logs")
def logs_command(
    ctx: typer.Context,
    job_id: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
) -> None:
    """The job's output so far (with -f, as it is written until the job ends)."""
    api = _api(ctx)
    job = api.get(f"/jobs/{job_id}")
    state = JobState(job["state"])
    if job.get("cluster") is None:
        why = f"{state}: {job['reason']}" if job.get("reason") else str(state)
        if not follow or state.is_terminal:
            typer.echo(f"{job_id} has not run ({why})", err=True)
            return
        typer.echo(f"{job_id} has not started ({why}); its output follows once it runs", err=True)
    if not follow:
        typer.echo(api.get_text(f"/jobs/{job_id}/logs"), nl=False)
        return
    for chunk in api.stream_text(f"/jobs/{job_id}/logs/stream"):
        typer.echo(chunk, nl=False)


# -- quotas ---------------------------------------------------------------------------------


def _tree_rows(accounts: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Accounts depth first from the root, with their depth, in the API's order."""
    names = {account["name"] for account in accounts}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for account in accounts:
        parent = account.get("parent")
        children.setdefault(parent if parent in names else None, []).append(account)

    def walk(parent: str | None, depth: int) -> Iterator[tuple[int, dict[str, Any]]]:
        for account in children.get(parent, []):
            yield depth, account
            yield from walk(account["name"], depth + 1)

    return walk(None, 0)


@quota_app.callback(invoke_without_command=True)
def quota(ctx: typer.Context, period: Period = None, as_json: AsJson = False) -> None:
    """The account tree with shares, budgets and the three balances, exact from the ledger."""
    if ctx.invoked_subcommand is not None:
        return
    answer = _api(ctx).get("/accounts", {"period": period})
    if as_json:
        _print_json(answer)
        return
    typer.echo(
        f"period {answer['period']}    credits: spent / held / available (what new jobs can use)"
    )
    rows = []
    for depth, account in _tree_rows(answer["accounts"]):
        balances = account["balances"]
        rows.append(
            [
                "  " * depth + account["name"],
                account["kind"],
                account["share"],
                account.get("budget"),
                balances["spent"],
                balances["held"],
                balances["available"],
            ]
        )
    _table(["account", "kind", "share", "budget", "spent", "held", "available"], rows)


@quota_app.command("set-share")
def set_share(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account name.")],
    share: Annotated[int, typer.Argument(min=0, help="Its share among its siblings.")],
) -> None:
    """Set an account's fair-share weight among its siblings."""
    answer = _api(ctx).patch(f"/accounts/{account}", {"share": share})
    shown = answer.get("share", share) if isinstance(answer, dict) else share
    typer.echo(f"{account}: share {shown}")


@quota_app.command("set-budget")
def set_budget(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="Account name.")],
    amount: Annotated[
        str, typer.Argument(help="Budget in credits, e.g. 12000 or 12000.5; 'none' lifts it.")
    ],
    period: Period = None,
) -> None:
    """Set an account's budget for a period: the most it may commit."""
    budget = None if amount.strip().lower() == "none" else _credits(amount, "AMOUNT")
    api = _api(ctx)
    name = period or api.get("/accounts")["period"]
    api.put(f"/accounts/{account}/budget", {"period": name, "budget": budget})
    if budget is None:
        typer.echo(f"{account}: no budget in {name}")
    else:
        typer.echo(f"{account}: budget {budget} credits in {name}")


GrantedPriority = Annotated[PriorityClass, typer.Option(help="A priority class above normal.")]


def _moment(text: str, hint: str) -> str:
    """An ISO 8601 instant with its offset, as the API takes it."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=hint) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{text!r} needs an offset, e.g. +09:00 or Z", param_hint=hint)
    return moment.isoformat()


@quota_app.command("priority-grants")
def priority_grants(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name.")],
    as_json: AsJson = False,
) -> None:
    """The priority classes above normal (urgent) a project may submit, and who granted them."""
    answer = _api(ctx).get(f"/accounts/{project}/priority-grants")
    if as_json:
        _print_json(answer)
        return
    if not answer:
        typer.echo(f"{project}: no priority grants; its work runs as normal or opportunistic")
        return
    rows = [
        [
            grant["priority"],
            grant["granted_by"],
            _when(grant["granted_at"]),
            _when(grant["expires_at"]) if grant["expires_at"] else "until revoked",
            "yes" if grant["in_force"] else "no (lapsed)",
        ]
        for grant in answer
    ]
    _table(["priority", "granted by", "granted at", "expires", "in force"], rows)


@quota_app.command("grant-priority")
def grant_priority(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name.")],
    priority: GrantedPriority = PriorityClass.URGENT,
    expires: Annotated[
        str | None,
        typer.Option(
            help="When it lapses, ISO 8601 with an offset, e.g. 2026-12-31T00:00:00+09:00 "
            "(default: until revoked)."
        ),
    ] = None,
) -> None:
    """Let a project submit work of a class above normal (program manager or admin)."""
    body = {"expires_at": _moment(expires, "--expires") if expires is not None else None}
    grant = _api(ctx).put(f"/accounts/{project}/priority-grants/{priority.value}", body)
    until = f"until {grant['expires_at']}" if grant["expires_at"] else "until revoked"
    typer.echo(f"{project}: may submit {grant['priority']} work {until}")


@quota_app.command("revoke-priority")
def revoke_priority(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name.")],
    priority: GrantedPriority = PriorityClass.URGENT,
) -> None:
    """Withdraw a project's priority grant; its queued jobs keep their class."""
    _api(ctx).delete(f"/accounts/{project}/priority-grants/{priority.value}")
    typer.echo(f"{project}: may no longer submit {priority.value} work")


# -- allocation requests --------------------------------------------------------------------


class Decision(StrEnum):
    APPROVE = "approve"
    ADJUST = "adjust"
    DECLINE = "decline"


def _request_line(request: dict[str, Any]) -> str:
    awarded = request.get("awarded")
    line = (
        f"allocation request {request['id']}: {request['project']} asks {request['requested']} "
        f"credits in {request.get('period', '-')}; {request['state']}"
    )
    if awarded is not None:
        line += f", awarded {awarded}"
    return line


def _show_request(request: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(request)
        return
    typer.echo(_request_line(request))
    if request.get("reviewer"):
        typer.echo(f"reviewed by {request['reviewer']}: {request.get('reason') or '-'}")


@request_app.command("list")
def request_list(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Only this project's requests.")] = None,
    state: Annotated[str | None, typer.Option(help="Only requests in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Allocation requests you may see."""
    query = {"project": project, "state": state, "limit": limit}
    page = _fetch(_api(ctx), "/allocation-requests", query, as_json, as_csv)
    if page is None:
        return
    _table(
        ["id", "project", "period", "state", "requested", "awarded", "reviewer"],
        [
            [
                item["id"],
                item["project"],
                item.get("period"),
                item["state"],
                item["requested"],
                item.get("awarded"),
                item.get("reviewer"),
            ]
            for item in page["items"]
        ],
    )
    if page["total"] > len(page["items"]):
        typer.echo(f"({len(page['items'])} of {page['total']})")


@request_app.command("show")
def request_show(ctx: typer.Context, request_id: int, as_json: AsJson = False) -> None:
    """One allocation request with its justification and tranches."""
    request = _api(ctx).get(f"/allocation-requests/{request_id}")
    if as_json:
        _print_json(request)
        return
    _show_request(request, False)
    typer.echo(f"flavors: {', '.join(request.get('flavors') or []) or 'any'}")
    typer.echo(f"justification: {request.get('justification', '')}")
    tranches = request.get("tranches") or []
    if tranches:
        typer.echo("tranches:")
        _table(
            ["seq", "amount", "released"],
            [
                [
                    tranche.get("seq"),
                    tranche.get("amount"),
                    _when(tranche.get("released_at")) if tranche.get("released_at") else "no",
                ]
                for tranche in tranches
            ],
        )


@request_app.command("create")
def request_create(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="The project that asks.")],
    requested: Annotated[str, typer.Option(help="Credits asked for.")],
    justification: Annotated[str, typer.Option(help="Why the project needs them.")],
    period: Period = None,
    flavor: Flavors = None,
    tranche: Annotated[
        list[int] | None,
        typer.Option(help="Percent of the award released per tranche (repeat; default 100)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Draft an allocation request; `gpupool request submit ID` sends it for review."""
    body: dict[str, Any] = {
        "project": project,
        "requested": _credits(requested, "--requested"),
        "justification": justification,
        "flavors": flavor or [],
        "tranche_percents": tranche or [100],
    }
    if period is not None:
        body["period"] = period
    request = _api(ctx).post("/allocation-requests", body)
    if as_json:
        _print_json(request)
        return
    typer.echo(f"created {_request_line(request)}")
    typer.echo(f"send it for review with `gpupool request submit {request['id']}`")


@request_app.command("submit")
def request_submit(ctx: typer.Context, request_id: int, as_json: AsJson = False) -> None:
    """Send a draft for review (approved at once within the program's auto-approval tier)."""
    _show_request(_api(ctx).post(f"/allocation-requests/{request_id}/submit"), as_json)


@request_app.command("review")
def request_review(
    ctx: typer.Context,
    request_id: int,
    decision: Annotated[Decision, typer.Argument(help="approve, adjust or decline.")],
    reason: Annotated[str, typer.Option(help="Why; shown to the project.")],
    awarded: Annotated[str | None, typer.Option(help="Credits awarded (with adjust).")] = None,
    as_json: AsJson = False,
) -> None:
    """A program manager approves, adjusts (with --awarded) or declines a request."""
    body: dict[str, Any] = {"decision": decision.value, "reason": reason}
    if awarded is not None:
        body["awarded"] = _credits(awarded, "--awarded")
    elif decision is Decision.ADJUST:
        raise typer.BadParameter("adjust names the amount awarded", param_hint="--awarded")
    _show_request(_api(ctx).post(f"/allocation-requests/{request_id}/review", body), as_json)


@request_app.command("withdraw")
def request_withdraw(ctx: typer.Context, request_id: int, as_json: AsJson = False) -> None:
    """Withdraw a draft or a request waiting for review."""
    _show_request(_api(ctx).post(f"/allocation-requests/{request_id}/withdraw"), as_json)


@request_app.command("release")
def request_release(
    ctx: typer.Context,
    request_id: int,
    seq: Annotated[int, typer.Argument(help="The tranche's number, from 1.")],
    as_json: AsJson = False,
) -> None:
    """Release the next tranche of an award to the project."""
    answer = _api(ctx).post(f"/allocation-requests/{request_id}/tranches/{seq}/release")
    if as_json:
        _print_json(answer)
        return
    typer.echo(f"allocation request {request_id}: tranche {seq} released")


# -- reports --------------------------------------------------------------------------------


def _report(
    ctx: typer.Context, path: str, params: dict[str, str | None], as_json: bool, as_csv: bool
) -> None:
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    api = _api(ctx)
    if as_csv:
        typer.echo(api.get_text(path, {**params, "format": "csv"}), nl=False)
        return
    answer = api.get(path, params)
    if as_json:
        _print_json(answer)
        return
    _show_rows(answer)


def _fetch(api: Api, path: str, params: Params, as_json: bool, as_csv: bool) -> Any:
    """A list from the API to draw, or ``None`` once ``--json`` or ``--csv`` printed the API's
    own answer (the CSV: its ``?format=csv``, the same rows)."""
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    if as_csv:
        typer.echo(api.get_text(path, {**params, "format": "csv"}), nl=False)
        return None
    answer = api.get(path, params)
    if as_json:
        _print_json(answer)
        return None
    return answer


def _more(page: dict[str, Any], offset: int = 0) -> None:
    """Under a table of one page: how many there are in all, and how to see the next."""
    shown = len(page["items"])
    if page["total"] > offset + shown:
        typer.echo(f"({shown} of {page['total']}; --offset {offset + shown} for more)")


def _flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show_rows(answer: Any) -> None:
    """Any report: its plain fields as lines, each list of rows as a table (accounts as a tree)."""
    if isinstance(answer, list):
        answer = {"rows": answer}
    if not isinstance(answer, dict):
        typer.echo(str(answer))
        return
    tables = {
        key: value
        for key, value in answer.items()
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value)
    }
    for key, value in answer.items():
        if key not in tables:
            shown = "none" if value in ([], None) else value
            typer.echo(f"{key}: {shown if isinstance(shown, str | int | float) else _cell(shown)}")
    for key, rows in tables.items():
        if len(tables) > 1:
            typer.echo(f"{key}:")
        if all("name" in row and "parent" in row for row in rows):
            rows = [
                {**row, "name": "  " * depth + str(row["name"]), "parent": _DROP}
                for depth, row in _tree_rows(rows)
            ]
        flat = [_flat(_exhaustion(row)) for row in rows]
        header = [
            name
            for name in dict.fromkeys(name for row in flat for name in row)
            if flat[0].get(name) is not _DROP
        ]
        _table(header, [[row.get(name) for name in header] for row in flat])


NOT_WITHIN = "not within the period"


def _exhaustion(row: dict[str, Any]) -> dict[str, Any]:
    """A fair-share row says when its credits run out, or that they outlast the period
    (rather than a date after it, when they have expired anyway)."""
    if "outlasts_period" not in row:
        return row
    shown = {key: value for key, value in row.items() if key != "outlasts_period"}
    if row["outlasts_period"]:
        shown["exhausted_on"] = NOT_WITHIN
    return shown


_DROP = object()
"""A column a table leaves out (an account's parent, once the rows are drawn as a tree)."""


@report_app.command("fairshare")
def report_fairshare(
    ctx: typer.Context, period: Period = None, as_json: AsJson = False, as_csv: AsCsv = False
) -> None:
    """Who goes next and why: share, usage and fair-share factor per account."""
    _report(ctx, "/reports/fairshare", {"period": period}, as_json, as_csv)


@report_app.command("utilisation")
def report_utilisation(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Busy GPU-time over available GPU-time (total less what was down), per cluster and
    flavor."""
    _report(ctx, "/reports/utilisation", {"since": since, "until": until}, as_json, as_csv)


@report_app.command("spend")
def report_spend(
    ctx: typer.Context,
    by: Annotated[
        str | None,
        typer.Option(help="funder, program, organization, project (default), flavor or site."),
    ] = None,
    period: Period = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Credits charged in a period (and their worth in won), grouped."""
    _report(ctx, "/reports/spend", {"by": by, "period": period}, as_json, as_csv)


@report_app.command("wait-times")
def report_wait_times(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Per program: jobs admitted in the window and how long they waited, p50/p90/p99."""
    _report(ctx, "/reports/wait-times", {"since": since, "until": until}, as_json, as_csv)


@app.command("fairshare")
def fairshare_command(
    ctx: typer.Context, period: Period = None, as_json: AsJson = False, as_csv: AsCsv = False
) -> None:
    """Same as `gpupool report fairshare`."""
    _report(ctx, "/reports/fairshare", {"period": period}, as_json, as_csv)


# -- people: users, invitations and roles ---------------------------------------------------

MAX_INVITE_DAYS = MAX_LIFETIME.days

users_app = typer.Typer(help="Users, and inviting people (a one-time sign-in link).")
invitations_app = typer.Typer(help="Invitations not yet used: list, revoke.")
roles_app = typer.Typer(help="Roles: pi, researcher, program manager, auditor, admin.")
app.add_typer(users_app, name="users")
app.add_typer(invitations_app, name="invitations")
app.add_typer(roles_app, name="roles")

ListCsv = Annotated[bool, typer.Option("--csv", help="Print CSV.")]


class GrantedRole(StrEnum):
    RESEARCHER = "researcher"
    PI = "pi"
    PROGRAM_MANAGER = "program_manager"
    AUDITOR = "auditor"
    ADMIN = "admin"


class MemberRole(StrEnum):
    RESEARCHER = "researcher"
    PI = "pi"


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else _cell(value) for value in row])
    typer.echo(out.getvalue(), nl=False)


def _listing(
    header: Sequence[str], rows: Sequence[Sequence[Any]], answer: Any, as_json: bool, as_csv: bool
) -> None:
    if as_json:
        _print_json(answer)
    elif as_csv:
        _csv(header, rows)
    else:
        _table(header, rows)


def _days(text: str) -> int:
    """``7d``, ``48h`` or ``2w`` as whole days (rounded up), as the API takes them."""
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--expires") from error
    return max(1, -(-seconds // 86_400))


@users_app.command("list")
def users_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 500,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    as_json: AsJson = False,
    as_csv: ListCsv = False,
) -> None:
    """Users with their pool-wide roles (admin and auditor)."""
    answer = _api(ctx).get("/users", {"limit": limit, "offset": offset})
    rows = [
        [user["name"], user["display_name"], user["email"], user["roles"]]
        for user in answer["items"]
    ]
    _listing(["user", "name", "email", "pool roles"], rows, answer, as_json, as_csv)
    if not (as_json or as_csv) and answer["total"] > offset + len(rows):
        typer.echo(f"({answer['total']} in all; --offset {offset + len(rows)} for more)")


@users_app.command("invite")
def users_invite(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Their user name, e.g. minji.park.")],
    name: Annotated[str, typer.Option(help="Display name, for a new user.")] = "",
    email: Annotated[str, typer.Option(help="E-mail address, for a new user.")] = "",
    expires: Annotated[
        str, typer.Option(help=f"How long the link works, e.g. 7d (at most {MAX_INVITE_DAYS}d).")
    ] = f"{DEFAULT_LIFETIME.days}d",
    project: Annotated[
        str | None,
        typer.Option(help="Make them a member of this project (needed unless you are an admin)."),
    ] = None,
    role: Annotated[MemberRole, typer.Option(help="Their role in the project.")] = (
        MemberRole.RESEARCHER
    ),
    as_json: AsJson = False,
) -> None:
    """Invite a person: prints a sign-in link that works once (the user is made if new)."""
    body: dict[str, Any] = {
        "user": user,
        "display_name": name,
        "email": email,
        "expires_in_days": _days(expires),
        "project": project,
        "role": role.value,
    }
    api = _api(ctx)
    answer = api.post("/invitations", body)
    if as_json:
        _print_json(answer)
        return
    made = " (new user)" if answer["created_user"] else ""
    member = f", {answer['role']} of {answer['project']}" if answer["project"] else ""
    typer.echo(
        f"invited {answer['user']}{made}{member}; works once, until {_when(answer['expires_at'])}"
    )
    typer.echo(f"sign-in link: {api.url}/signin?invite={answer['invitation']}")
    typer.echo(
        f"or on the command line: gpupool login --url {api.url} --invitation {answer['invitation']}"
    )


@invitations_app.command("list")
def invitations_list(ctx: typer.Context, as_json: AsJson = False, as_csv: ListCsv = False) -> None:
    """Invitations not yet used, revoked or expired (all for admins; yours for anyone else)."""
    answer = _api(ctx).get("/invitations")
    rows = [
        [
            each["id"],
            each["user"],
            each["invited_by"],
            _when(each["created_at"]),
            _when(each["expires_at"]),
        ]
        for each in answer
    ]
    if not rows and not (as_json or as_csv):
        typer.echo("no pending invitations")
        return
    _listing(["id", "user", "invited by", "issued", "expires"], rows, answer, as_json, as_csv)


@invitations_app.command("revoke")
def invitations_revoke(
    ctx: typer.Context, invitation_id: Annotated[int, typer.Argument(min=1, help="Its id.")]
) -> None:
    """Revoke an invitation before it is used: its link no longer signs anyone in."""
    _api(ctx).delete(f"/invitations/{invitation_id}")
    typer.echo(f"invitation {invitation_id} revoked")


ProgramOption = Annotated[str | None, typer.Option(help="The program (for program_manager).")]
ProjectOption = Annotated[str | None, typer.Option(help="The project (for pi and researcher).")]
UserArgument = Annotated[str, typer.Argument(help="User name.")]
RoleArgument = Annotated[GrantedRole, typer.Argument(help="The role.")]


def _held_in(role: GrantedRole, program: str | None, project: str | None) -> str | None:
    """The account a role is held in, checked against the role."""
    if role is GrantedRole.PROGRAM_MANAGER:
        if program is None or project is not None:
            raise typer.BadParameter(
                "a program manager is named with --program", param_hint="--program"
            )
        return program
    if role in (GrantedRole.PI, GrantedRole.RESEARCHER):
        if project is None or program is not None:
            raise typer.BadParameter(f"a {role} is named with --project", param_hint="--project")
        return project
    if program is not None or project is not None:
        raise typer.BadParameter(f"{role} is held pool-wide: no --program or --project")
    return None


@roles_app.command("grant")
def roles_grant(
    ctx: typer.Context,
    user: UserArgument,
    role: RoleArgument,
    program: ProgramOption = None,
    project: ProjectOption = None,
) -> None:
    """Grant a role: pi or researcher of a project (--project), program_manager of a program
    (--program), auditor or admin pool-wide."""
    account = _held_in(role, program, project)
    api = _api(ctx)
    if role is GrantedRole.PROGRAM_MANAGER:
        api.put(f"/accounts/{account}/managers/{user}", {})
        typer.echo(f"{user}: program manager of {account}")
    elif account is not None:
        api.put(f"/accounts/{account}/members/{user}", {"role": role.value})
        typer.echo(f"{user}: {role.value} of {account}")
    else:
        api.post(f"/users/{user}/roles", {"role": role.value})
        typer.echo(f"{user}: {role.value}")


@roles_app.command("revoke")
def roles_revoke(
    ctx: typer.Context,
    user: UserArgument,
    role: RoleArgument,
    program: ProgramOption = None,
    project: ProjectOption = None,
) -> None:
    """Revoke a role; a pi who is no longer one stays a researcher of the project (revoke
    researcher to take them out of it)."""
    account = _held_in(role, program, project)
    api = _api(ctx)
    if role is GrantedRole.PROGRAM_MANAGER:
        api.delete(f"/accounts/{account}/managers/{user}")
        typer.echo(f"{user}: no longer a program manager of {account}")
    elif role is GrantedRole.PI:
        api.put(f"/accounts/{account}/members/{user}", {"role": GrantedRole.RESEARCHER.value})
        typer.echo(f"{user}: no longer pi of {account}; still a researcher of it")
    elif role is GrantedRole.RESEARCHER:
        api.delete(f"/accounts/{account}/members/{user}")
        typer.echo(f"{user}: no longer a member of {account}")
    else:
        api.delete(f"/users/{user}/roles/{role.value}")
        typer.echo(f"{user}: no longer {role.value}")


# -- the books' records: ledger and audit log; clusters; tokens -----------------------------

Limit = Annotated[int, typer.Option(min=1, max=500, help="At most this many.")]
Offset = Annotated[int, typer.Option(min=0, help="Skip this many.")]


def _pocket(pocket: dict[str, Any]) -> str:
    """A ledger pocket in a few characters: its job, else its account, else ``funder`` (the
    kind of entry says which of the account's balances moved)."""
    return str(pocket.get("job") or pocket.get("account") or "funder")


def _minute(value: str | None) -> str:
    """A time to the minute, as a table of many columns has room for."""
    return _when(value)[:16]


@app.command("ledger")
def ledger_command(
    ctx: typer.Context,
    account: Annotated[
        str | None, typer.Option(help="Entries into or out of this account.")
    ] = None,
    job: Annotated[str | None, typer.Option(help="Entries of this job.")] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="contribution, appropriation, award, hold, charge, ... (repeat)."),
    ] = None,
    period: Period = None,
    funder: Annotated[str | None, typer.Option(help="Credits of this funder only.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Ledger entries you may see, newest first: where every credit came from and went."""
    query: Params = {
        "account": account,
        "job": job,
        "kind": kind or None,
        "period": period,
        "funder": funder,
        "limit": limit,
        "offset": offset,
    }
    page = _fetch(_api(ctx), "/ledger", query, as_json, as_csv)
    if page is None:
        return
    _table(
        ["id", "at", "kind", "amount", "from -> to", "funder", "reason"],
        [
            [
                entry["id"],
                _minute(entry["at"]),
                entry["kind"],
                entry["amount"],
                f"{_pocket(entry['source'])} -> {_pocket(entry['target'])}",
                entry["funder"],
                entry["reason"],
            ]
            for entry in page["items"]
        ],
    )
    _more(page, offset)


AUDIT_VALUE = 40
"""A value in the audit table's ``change`` column is cut to this many characters (``--json``
and ``--csv`` hold it whole)."""


def _value(value: Any) -> str:
    if isinstance(value, dict | list) and value:
        return "{…}" if isinstance(value, dict) else "[…]"
    return _cut(_cell(value), AUDIT_VALUE)


def _change(before: Any, after: Any) -> str:
    """What an audited change did, field by field (``share 2 -> 4``); a record made or removed
    shows its fields."""
    if not isinstance(after, dict):
        if not isinstance(before, dict):
            return "-"
        return "removed: " + ", ".join(f"{key} {_value(value)}" for key, value in before.items())
    if not isinstance(before, dict):
        return ", ".join(f"{key} {_value(value)}" for key, value in after.items())
    return ", ".join(
        f"{key} {_value(before.get(key))} -> {_value(value)}"
        for key, value in after.items()
        if before.get(key) != value
    )


@app.command("audit")
def audit_command(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option(help="Changes made by this user.")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. budget.set, account.update.")] = None,
    target: Annotated[str | None, typer.Option(help="e.g. account/kaist-nlp.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """The audit log, newest first: who changed what, with before and after (admin and
    auditor)."""
    query: Params = {
        "actor": actor,
        "action": action,
        "target": target,
        "limit": limit,
        "offset": offset,
    }
    page = _fetch(_api(ctx), "/audit", query, as_json, as_csv)
    if page is None:
        return
    _table(
        ["id", "at", "actor", "action", "target", "change"],
        [
            [
                entry["id"],
                _minute(entry["at"]),
                entry["actor"],
                entry["action"],
                entry["target"],
                _change(entry["before"], entry["after"]),
            ]
            for entry in page["items"]
        ],
    )
    _more(page, offset)


def _tenancy(cluster: dict[str, Any]) -> str:
    owner = cluster.get("dedicated_to")
    return f"{cluster['tenancy']} ({owner})" if owner else str(cluster["tenancy"])


def _capacity_rows(clusters: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per cluster and flavor: what it declares, what jobs hold, what is down and
    what is free now (idle: total less allocated less down)."""
    rows = []
    for cluster in clusters:
        for group in cluster["node_groups"]:
            down = group["down"]
            rows.append(
                [
                    cluster["name"],
                    cluster["site"],
                    cluster["backend"],
                    _tenancy(cluster),
                    group["flavor"],
                    group["nodes"],
                    group["gpus_per_node"],
                    group["total"],
                    group["allocated"],
                    down,
                    group["idle"],
                ]
            )
    return rows


@app.command("clusters")
def clusters_command(ctx: typer.Context, as_json: AsJson = False, as_csv: AsCsv = False) -> None:
    """Clusters and their capacity: per flavor the GPUs declared, allocated to jobs, down and
    free now; where each is and who may use it (tenancy)."""
    clusters = _fetch(_api(ctx), "/clusters", {}, as_json, as_csv)
    if clusters is not None:
        rows = _capacity_rows(clusters)
        header = ["cluster", "site", "backend", "tenancy", "flavor", "nodes", "total", "allocated",
                  "down", "free"]  # fmt: skip
        _table(header, [[*row[:5], f"{row[5]}x{row[6]}", *row[7:]] for row in rows])
        total, down, free = (sum(row[i] for row in rows) for i in (7, 9, 10))
        typer.echo(f"{free} of {total} GPUs free now; {down} down")


tokens_app = typer.Typer(help="Your personal access tokens: list, create, revoke.")
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("list")
def tokens_list(ctx: typer.Context, as_json: AsJson = False, as_csv: ListCsv = False) -> None:
    """Your tokens that are not revoked (never their secrets)."""
    answer = _api(ctx).get("/tokens")
    rows = [
        [
            token["id"],
            token["name"],
            token["scopes"],
            _when(token["created_at"]),
            _when(token["expires_at"]) if token["expires_at"] else "never",
            _when(token["last_used_at"]) if token["last_used_at"] else "never",
        ]
        for token in answer
    ]
    header = ["id", "name", "scopes", "created", "expires", "last used"]
    _listing(header, rows, answer, as_json, as_csv)


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What it is for, e.g. 'ci on lab server'.")],
    scope: Annotated[
        list[Scope] | None, typer.Option(help="read, jobs or manage (repeat; default all).")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="How long it lives, e.g. 30d (default: as long as the token you use)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Make a personal access token; its secret is printed once."""
    body = {
        "name": name,
        "scopes": [each.value for each in (scope or list(Scope))],
        "expires_in_days": _days(expires) if expires is not None else None,
    }
    issued = _api(ctx).post("/tokens", body)
    if as_json:
        _print_json(issued)
        return
    until = _when(issued["expires_at"]) if issued["expires_at"] else "never"
    typer.echo(
        f"token {issued['id']} ({issued['name']}): {', '.join(issued['scopes'])}; expires {until}"
    )
    typer.echo(f"secret (shown once): {issued['token']}")


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=1, help="Its id.")]
) -> None:
    """Revoke a token (yours, or anyone's as admin): it signs nobody in any more."""
    _api(ctx).delete(f"/tokens/{token_id}")
    typer.echo(f"token {token_id} revoked")


# -- the pool's funds: contributions and appropriations -------------------------------------

funds_app = typer.Typer(help="The pool's funds: funders' contributions, appropriations.")
app.add_typer(funds_app, name="funds")

Reason = Annotated[str, typer.Option(help="Why; kept with the ledger entry.")]


def _period_or_current(api: Api, period: str | None) -> str:
    return period or str(api.get("/accounts")["period"])


def _posted(posted: dict[str, Any]) -> str:
    """The ledger entries a movement wrote, by funder."""
    entries = posted["entries"]
    parts = ", ".join(f"{entry['funder']} {entry['amount']}" for entry in entries)
    ids = ", ".join(str(entry["id"]) for entry in entries)
    return f"{parts}; ledger {'entry' if len(entries) == 1 else 'entries'} {ids}"


@funds_app.callback(invoke_without_command=True)
def funds(
    ctx: typer.Context, period: Period = None, as_json: AsJson = False, as_csv: ListCsv = False
) -> None:
    """Each funder's contributed and unappropriated credits, and what each program received
    (admin and auditor)."""
    if ctx.invoked_subcommand is not None:
        return
    answer = _api(ctx).get("/funds", {"period": period})
    if as_json:
        _print_json(answer)
        return
    funders = [
        ["funder", each["name"], each["contributed"], each["unappropriated"], "", ""]
        for each in answer["funders"]
    ]
    programs = [
        [
            "program",
            each["name"],
            "",
            "",
            each["appropriated"],
            each["balances"]["available"],
        ]
        for each in answer["programs"]
    ]
    header = ["kind", "name", "contributed", "unappropriated", "appropriated", "available"]
    if as_csv:
        _csv(["period", *header], [[answer["period"], *row] for row in funders + programs])
        return
    typer.echo(
        f"period {answer['period']}    the pool holds {answer['unappropriated']} credits "
        "for appropriation"
    )
    _table(header, funders + programs)


@funds_app.command("contribute")
def funds_contribute(
    ctx: typer.Context,
    funder: Annotated[str, typer.Argument(help="The funder, e.g. msit.")],
    amount: Annotated[str, typer.Argument(help="Credits, e.g. 50000 or 50000.5.")],
    reason: Reason,
    period: Period = None,
    as_json: AsJson = False,
) -> None:
    """Record a funder's contribution to the pool (admin); appropriate it to programs next."""
    credits = _credits(amount, "CREDITS")
    api = _api(ctx)
    name = _period_or_current(api, period)
    body = {"period": name, "credits": credits, "reason": reason}
    posted = api.post(f"/funders/{funder}/contributions", body)
    if as_json:
        _print_json(posted)
        return
    typer.echo(f"{funder}: contributed {posted['credits']} credits to the pool in {name}")
    typer.echo(_posted(posted))


@funds_app.command("appropriate")
def funds_appropriate(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="The program, e.g. universities.")],
    amount: Annotated[str, typer.Argument(help="Credits, e.g. 20000 or 20000.5.")],
    reason: Reason,
    period: Period = None,
    funder: Annotated[
        str | None, typer.Option(help="Only this funder's credits (default: funder by funder).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Appropriate the pool's credits to a program (admin)."""
    credits = _credits(amount, "CREDITS")
    api = _api(ctx)
    name = _period_or_current(api, period)
    body = {"period": name, "credits": credits, "reason": reason, "funder": funder}
    posted = api.post(f"/accounts/{program}/appropriations", body)
    if as_json:
        _print_json(posted)
        return
    typer.echo(f"{program}: appropriated {posted['credits']} credits in {name}")
    typer.echo(_posted(posted))


# -- the trace simulator ----------------------------------------------------------------------


@app.command()
def simulate(
    trace: Annotated[
        Path | None,
        typer.Option(
            help="A trace: the Philly format (timestamp,duration,num_gpus,gpu_time,cluster) or "
            "a CSV of submit_time,duration,gpus,tenant[,flavors,priority] (seconds).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    synthetic: Annotated[
        int | None, typer.Option(help="Instead of a trace: a synthetic national trace of N jobs.")
    ] = None,
    organizations: Annotated[
        int, typer.Option(help="Organizations of the synthetic trace.")
    ] = 1_000,
    limit: Annotated[int | None, typer.Option(help="Replay only the first N jobs.")] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="GPUs per flavor, e.g. v100-32g:128,a100-80g:128,h100-80g:128 "
            "(flavor:gpus[:per_node]), or a JSON/TOML file of clusters.",
        ),
    ] = None,
    tree: Annotated[
        Path | None,
        typer.Option(
            help="A JSON/TOML file of programs, organizations and projects with shares, budgets "
            "and credits (default: each tenant a project of equal share, no budget binding).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="A policy to run (repeat): gpupool, fifo, slurm, kueue, gavel (default: all)."
        ),
    ] = None,
    what_if: Annotated[
        Path | None,
        typer.Option(
            help="A JSON/TOML file changing shares, budgets, credits, rates or clusters: gpupool "
            "runs the scenario as it is and as changed, and the two are compared.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    from_db: Annotated[
        bool,
        typer.Option(
            help="Replay the pool's own jobs of the last --days from its database against "
            "today's tree, credits, clusters and rates."
        ),
    ] = False,
    days: Annotated[float, typer.Option(help="With --from-db: how many days back.")] = 7.0,
    reference_flavor: Annotated[
        str, typer.Option(help="The flavor the trace's durations were measured on.")
    ] = "v100-32g",
    seed: Annotated[int, typer.Option(help="Seeds model types and synthetic traces.")] = 1,
    cycle_seconds: Annotated[
        int | None, typer.Option(help="The simulated scheduler's cycle (default 60).")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Where summary.json, the CSVs and the plots go.")
    ] = Path("simulation"),
    progress: Annotated[
        bool, typer.Option(help="A progress bar on stderr (default: when it is a terminal).")
    ] = True,
    data_dir: DataDir = None,
) -> None:
    """Replay a trace through gpupool's own engine and baseline policies, and compare them."""
    from scheduler.simulator import report  # numpy, scipy and matplotlib: only when simulating
    from scheduler.simulator.policies import POLICIES
    from scheduler.simulator.run import (
        DEFAULT_CLUSTER,
        TraceRequest,
        build_scenario,
        settings_with,
        simulate_all,
    )
    from scheduler.simulator.run import (
        from_db as replay_db,
    )
    from scheduler.simulator.run import (
        what_if as run_what_if,
    )

    chosen = policy or list(POLICIES)
    unknown = [name for name in chosen if name not in POLICIES]
    if unknown:
        fail(f"no policy {', '.join(unknown)}: choose among {', '.join(POLICIES)}", USAGE)
    sources = sum((trace is not None, synthetic is not None, from_db))
    if sources != 1:
        fail("name one source of jobs: --trace FILE, --synthetic JOBS or --from-db", USAGE)
    settings = settings_with(cycle_seconds=cycle_seconds)
    if from_db:
        engine = make_engine(_settings(data_dir).database)
        try:
            with transaction(session_factory(engine)) as session:
                scenario = replay_db(Books(session), days, utc_now(), settings)
        finally:
            engine.dispose()
        source = f"the pool's database, last {days:g} days"
    else:
        request = TraceRequest(trace, synthetic, organizations, limit=limit)
        scenario = build_scenario(
            request,
            cluster or DEFAULT_CLUSTER,
            tree,
            seed,
            reference_flavor,
            settings,
        )
        source = request.describe()

    def bar(name: str) -> report.Progress | None:
        return report.Progress(label=name) if progress else None

    meta = {
        "source": source,
        "jobs": len(scenario.jobs),
        "cluster": cluster or ("the pool's clusters" if from_db else DEFAULT_CLUSTER),
        "gpus": scenario.gpus,
        "seed": seed,
        "command": "gpupool simulate",
    }
    typer.echo(
        f"replaying {len(scenario.jobs):,} jobs of {source} on {scenario.gpus:,} GPUs", err=True
    )
    if what_if is not None:
        results, said = run_what_if(scenario, what_if, bar)
        written = report.write_outputs(
            out, results, scenario.assumptions, {**meta, "what_if": said}
        )
        typer.echo("what if: " + "; ".join(said))
        typer.echo(report.comparison(results["gpupool"][0], results["gpupool-what-if"][0]))
    else:
        results = simulate_all(scenario, chosen, bar)
        written = report.write_outputs(out, results, scenario.assumptions, meta)
        typer.echo(report.table(results))
    typer.echo("assumptions:")
    for line in scenario.assumptions:
        typer.echo(textwrap.fill(line, 98, initial_indent="- ", subsequent_indent="  "))
    typer.echo(f"{len(written)} files in {out}/: summary.json, per-tenant CSVs, plots")
