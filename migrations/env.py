"""Alembic environment: migrations run with a synchronous driver, batch mode for SQLite."""

from alembic import context
from sqlalchemy import engine_from_config, pool, text
from sqlmodel import SQLModel

import core.models  # noqa: F401 - registers every table on SQLModel.metadata

config = context.config
MIGRATION_LOCK_KEY = 7_104_452_310_990_017  # any constant; distinct from core.leader's keys
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = engine_from_config(
            config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        with connectable.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # N processes starting together: one migrates, the others wait here and find it done
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
