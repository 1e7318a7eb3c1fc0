"""The ``gpupool`` command line.

``gpupool init --demo`` creates the database and seeds the demo pool; ``gpupool quota`` shows
the account tree with its three balances; ``gpupool quote`` prices a job before it is submitted;
``gpupool fairshare`` shows who goes next and why; ``gpupool db upgrade`` migrates. Exit codes:
0 success, 1 a domain error (the message says what to change), 2 bad usage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from quotas.clock import utc_now
from quotas.db.migrate import upgrade
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.errors import BooksError
from quotas.fairshare import decayed_usage, fair_share
from quotas.quantities import parse_duration
from quotas.quote import quote
from quotas.seed import seed_demo
from quotas.service import Books
from quotas.settings import Settings

app = typer.Typer(
    help="gpupool: one national GPU pool, one ledger, fair share.", no_args_is_help=True
)
db_app = typer.Typer(
    help="Database schema.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
app.add_typer(db_app, name="db")

DataDir = Annotated[Path | None, typer.Option(help="Where gpupool keeps its files.")]


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir else Settings()


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
    try:
        seconds = parse_duration(time_limit)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--time-limit") from error
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
