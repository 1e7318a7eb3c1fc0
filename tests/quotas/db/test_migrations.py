"""The migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from quotas.db.migrate import alembic_config, current_revision, upgrade
from quotas.db.models import Base
from quotas.db.session import make_engine


def test_autogenerate_finds_no_drift_between_models_and_migrations(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_nothing_and_back_up(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url)
    config = alembic_config(fresh_database_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    upgrade(engine)

    assert current_revision(engine) == "0008"
    assert {"ledger_entries", "accounts", "allocation_requests"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
