"""The migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import core.models  # noqa: F401 - registers every table on SQLModel.metadata
from core.db import make_sync_engine


def ours(name: str | None, kind: str, _parent: object) -> bool:
    """Doorstep's tables, not APScheduler's job store (it creates its own beside ours)."""
    return kind != "table" or name in SQLModel.metadata.tables


def test_a_migrated_database_has_every_table_column_and_index_of_the_models(database_url):
    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_name": ours})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert differences == []
