"""The ``gpupool`` command line.

``gpupool serve --demo`` sets up the books, starts the embedded Ray cluster and runs the
scheduler; ``submit``, ``jobs``, ``job``, ``logs`` and ``cancel`` work the queue; ``quota``
shows the account tree with its three balances; ``quote`` prices a job before it is submitted;
``fairshare`` shows who goes next and why; ``init`` and ``db upgrade`` prepare the database.
Exit codes: 0 success, 1 a domain error (the message says what to change), 2 bad usage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from portal.server import run_service
from portal.settings import PortalSettings
from portal.tokens import ensure_admin
from quotas.admission import DataClass, PriorityClass
from quotas.clock import utc_now
from quotas.db.migrate import upgrade
from quotas.db.repositories import JobRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.errors import BooksError
from quotas.fairshare import decayed_usage, fair_share
from quotas.jobs import JobSpec, JobState
from quotas.quantities import Credits, Rate, format_duration, parse_duration
from quotas.quote import quote
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.base import BackendError
from scheduler.backends.registry import build_backends, close_backends
from scheduler.embedded import embedded_address
from scheduler.queue import request_cancel, submit
from scheduler.settings import SchedulerSettings

app = typer.Typer(
    help="gpupool: one national GPU pool, one ledger, fair share.", no_args_is_help=True
)
db_app = typer.Typer(
    help="Database schema.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
app.add_typer(db_app, name="db")

DataDir = Annotated[Path | None, typer.Option(help="Where gpupool keeps its files.")]


def _time_limit(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--time-limit") from error


def _settings(data_dir: Path | None) -> SchedulerSettings:
    return SchedulerSettings(data_dir=data_dir) if data_dir else SchedulerSettings()


def _engine(data_dir: Path | None) -> Engine:
    return make_engine(_settings(data_dir).database)


@contextmanager
def _books(data_dir: Path | None) -> Iterator[Books]:
    engine = _engine(data_dir)
    try:
        with transaction(session_factory(engine)) as session:
            yield Books(session)
    except BooksError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from error
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Bring the database to the newest schema."""
    engine = _engine(data_dir)
    upgrade(engine)
    typer.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")
    engine.dispose()


@app.command()
def init(
    demo: Annotated[bool, typer.Option(help="Seed the demo pool.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create (or migrate) the database and, with --demo, seed the demo pool."""
    _init(demo, data_dir)


def _init(demo: bool, data_dir: Path | None) -> None:
    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database)
    upgrade(engine)
    typer.echo(f"database: {engine.url.render_as_string(hide_password=True)} (schema up to date)")
    engine.dispose()
    if not demo:
        return
    with _books(data_dir) as books:
        report = seed_demo(books, demo_pool(utc_now()))
    typer.echo("demo pool:" if report.seeded else "demo pool: already seeded")
    for line in report.lines:
        typer.echo(f"  {line}")


@app.command()
def quota(
    period: Annotated[str | None, typer.Option(help="Period (default: the current one).")] = None,
    data_dir: DataDir = None,
) -> None:
    """The account tree with shares, budgets and the three balances, exact from the ledger."""
    with _books(data_dir) as books:
        name = period or books.current_period().name
        tree = books.tree(name)
        typer.echo(f"period {name}    credits: settled / in flight / committed")
        header = f"{'account':<34}{'share':>6}{'budget':>12}{'settled':>12}{'in flight':>12}"
        typer.echo(header + f"{'committed':>12}")

        def show(account_name: str, depth: int) -> None:
            account = tree[account_name]
            balance = books.balances(account_name, name)
            budget = str(account.budget) if account.budget is not None else "-"
            label = ("  " * depth + account.name)[:33]
            typer.echo(
                f"{label:<34}{account.share:>6}{budget:>12}{balance.settled!s:>12}"
                f"{balance.in_flight!s:>12}{balance.committed!s:>12}"
            )
            for child in tree.children(account_name):
                show(child.name, depth + 1)

        show(tree.root.name, 0)


@app.command("quote")
def quote_command(
    gpus: Annotated[int, typer.Option(help="Number of GPUs.")],
    time_limit: Annotated[str, typer.Option(help="Time limit, e.g. 4h or 90m.")],
    flavor: Annotated[list[str] | None, typer.Option(help="Acceptable flavor (repeat).")] = None,
    min_memory_gb: Annotated[
        int | None, typer.Option(help="Any flavor with this much memory.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """What a job would cost on each flavor it accepts, best deal first."""
    seconds = _time_limit(time_limit)
    with _books(data_dir) as books:
        card = books.rate_card()
        lines = quote(books.flavors.all(), card, gpus, seconds, flavor or (), min_memory_gb)
        typer.echo(f"rate card v{card.version}: {gpus} GPUs for {time_limit}")
        typer.echo(f"{'flavor':<12}{'rate':>8}{'credits':>12}{'training/credit':>17}")
        for line in lines:
            typer.echo(
                f"{line.flavor:<12}{line.rate!s:>8}{line.credits!s:>12}"
                f"{line.training_per_credit:>17.2f}"
            )


@app.command("fairshare")
def fairshare_command(data_dir: DataDir = None) -> None:
    """Who goes next and why: share, normalised usage and level fair share per account."""
    settings = _settings(data_dir)
    half_life = timedelta(hours=settings.fair_share_half_life_hours)
    with _books(data_dir) as books:
        now = utc_now()
        tree = books.tree()
        charges: dict[str, list[tuple[datetime, int]]] = {}
        for project, at, milli in books.ledger.usage_charges(now - 10 * half_life):
            charges.setdefault(project, []).append((at, milli))
        usage = {
            project: max(0.0, decayed_usage(items, now, half_life.total_seconds()))
            for project, items in charges.items()
        }
        result = fair_share(tree, usage)
        typer.echo(
            f"{'account':<34}{'share':>6}{'norm share':>11}{'usage':>10}"
            f"{'norm usage':>11}{'level fs':>9}"
        )

        def show(name: str, depth: int) -> None:
            node = result.explain(name)
            label = ("  " * depth + name)[:33]
            typer.echo(
                f"{label:<34}{node.share:>6}{node.norm_share:>11.3f}{node.usage:>10.1f}"
                f"{node.norm_usage:>11.3f}{node.level_fs:>9.2f}"
            )
            for child in tree.children(name):
                show(child.name, depth + 1)

        show(tree.root.name, 0)
        typer.echo("order: " + ", ".join(result.ranking))


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
    _init(demo, settings.data_dir)
    with _books(settings.data_dir) as books:
        token = ensure_admin(books, settings.data_dir / "admin.token")
        clusters = books.clusters.all()
        flavors = books.flavors.all()
    if token:
        typer.echo(f"Admin token: {token}")
    else:
        typer.echo(f"admin token: in {settings.data_dir / 'admin.token'}")
    run_service(settings, clusters, flavors)


@app.command("submit")
def submit_command(
    entrypoint: Annotated[str, typer.Argument(help="The command to run, e.g. 'python train.py'.")],
    project: Annotated[str, typer.Option(help="Project the job is charged to.")],
    gpus: Annotated[int, typer.Option(help="Number of GPUs.")] = 1,
    time_limit: Annotated[str, typer.Option(help="Time limit, e.g. 4h or 90m.")] = "1h",
    flavor: Annotated[list[str] | None, typer.Option(help="Acceptable flavor (repeat).")] = None,
    min_memory_gb: Annotated[
        int | None, typer.Option(help="Any flavor with this much memory.")
    ] = None,
    name: Annotated[str, typer.Option(help="A name for the job.")] = "job",
    priority: Annotated[PriorityClass, typer.Option(help="Priority class.")] = PriorityClass.NORMAL,
    data_class: Annotated[DataClass, typer.Option(help="Data class.")] = DataClass.PUBLIC,
    preemptible: Annotated[bool, typer.Option(help="May be preempted.")] = False,
    submitter: Annotated[str, typer.Option(envvar="USER", help="Who submits.")] = "admin",
    data_dir: DataDir = None,
) -> None:
    """Queue a job; prints its id and what it would cost on each acceptable flavor."""
    seconds = _time_limit(time_limit)
    settings = _settings(data_dir)
    with _books(data_dir) as books:
        spec = JobSpec(
            project=project,
            submitter=submitter,
            name=name,
            entrypoint=entrypoint,
            gpus=gpus,
            time_limit_seconds=seconds,
            flavors=tuple(flavor or ()),
            min_memory_gb=min_memory_gb,
            priority=priority,
            data_class=data_class,
            preemptible=preemptible,
        )
        job, lines = submit(books, spec, int(settings.max_time_limit_hours * 3600))
    typer.echo(f"submitted {job.id} ({name}) to {project}: {gpus} GPUs for {time_limit}")
    typer.echo("quote: " + ", ".join(f"{line.flavor} {line.credits} credits" for line in lines))


@app.command("jobs")
def jobs_command(
    project: Annotated[str | None, typer.Option(help="Only this project's jobs.")] = None,
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    data_dir: DataDir = None,
) -> None:
    """The queue and recent jobs, with each waiting job's position and reason."""
    with _books(data_dir) as books:
        found = JobRepository(books.session).find([state] if state else None, project)
    typer.echo(f"{'job':<16}{'name':<16}{'project':<22}{'gpus':>5}  {'state':<10}{'where / why'}")
    for job in found:
        where = (
            f"{job.placed.cluster} {job.placed.flavor}"
            if job.placed and job.state.holds_capacity
            else job.reason
        )
        if job.position is not None:
            where = f"#{job.position} {where}"
        typer.echo(
            f"{job.id:<16}{job.spec.name[:15]:<16}{job.spec.project[:21]:<22}"
            f"{job.spec.gpus:>5}  {job.state:<10}{where}"
        )


@app.command("job")
def job_command(job_id: str, data_dir: DataDir = None) -> None:
    """One job: state, wait reason, position and estimated start, charges, history."""
    with _books(data_dir) as books:
        jobs = JobRepository(books.session)
        job = jobs.get(job_id)
        events = jobs.events(job_id)
        charged = sum(
            entry.posting.amount.milli
            if entry.posting.kind == "charge"
            else -entry.posting.amount.milli
            for entry in books.ledger.entries(job=job_id, limit=10_000)
            if entry.posting.kind in ("charge", "refund")
        )
    typer.echo(f"{job.id}  {job.spec.name}  project {job.spec.project}  state {job.state}")
    typer.echo(
        f"asked: {job.spec.gpus} GPUs, time limit {format_duration(job.spec.time_limit_seconds)}, "
        f"flavors {', '.join(job.spec.flavors) or 'any'}"
    )
    if job.reason:
        typer.echo(f"reason: {job.reason}")
    if job.position is not None:
        eta = job.eta.isoformat(timespec="minutes") if job.eta else "unknown"
        typer.echo(f"position: {job.position}; estimated start: {eta}")
    if job.placed:
        typer.echo(
            f"placed: {job.placed.cluster} {job.placed.flavor} at {Rate(job.placed.rate_milli)} "
            f"credits/GPU-h (rate card v{job.placed.rate_version}); "
            f"held {Credits(job.placed.hold_milli)}"
        )
    typer.echo(f"charged: {Credits(charged)} credits")
    for event in events:
        typer.echo(
            f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.from_state or '-'} -> "
            f"{event.to_state}  {event.reason}"
        )


@app.command("cancel")
def cancel_command(
    job_id: str,
    actor: Annotated[str, typer.Option("--as", envvar="USER", help="Who cancels.")] = "admin",
    data_dir: DataDir = None,
) -> None:
    """Cancel a job: at once if queued, or ask the scheduler to stop it."""
    with _books(data_dir) as books:
        job = request_cancel(books, job_id, actor)
    if job.state.is_terminal:
        typer.echo(f"{job_id} is {job.state}")
    else:
        typer.echo(f"{job_id}: cancel requested; the scheduler stops it on its next cycle")


@app.command("logs")
def logs_command(job_id: str, data_dir: DataDir = None) -> None:
    """The job's output so far, from the cluster it runs on."""
    settings = _settings(data_dir)
    with _books(data_dir) as books:
        job = JobRepository(books.session).get(job_id)
        clusters = books.clusters.all()
        flavors = books.flavors.all()
    if job.placed is None:
        typer.echo(f"{job_id} has not run yet ({job.state})")
        return
    backends = build_backends(clusters, flavors, embedded_address(settings.data_dir))
    backend = backends.get(job.placed.cluster)
    if backend is None:
        typer.secho(
            f"error: no backend for {job.placed.cluster} is reachable from here",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)

    async def read() -> str:
        try:
            return await backend.logs(job.submission_id)
        finally:
            await close_backends(backends)

    try:
        typer.echo(asyncio.run(read()), nl=False)
    except BackendError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from error
