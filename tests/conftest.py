"""Shared fixtures: the app on SQLite and on the real PostgreSQL, and retailers with API keys.

Every test that takes `ctx` or `client` runs once per database. PostgreSQL tests are skipped, with
the reason printed, only when no server answers at $TEST_POSTGRES_URL (default: the local one).
Set DOORSTEP_TEST_DATABASES=sqlite to run on SQLite alone while iterating.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

from app import build_context, create_app
from core.config import Settings
from core.context import AppContext
from core.db import make_sync_engine, migrate
from core.tenants import create_retailer

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATABASES = [d for d in os.environ.get("DOORSTEP_TEST_DATABASES", "sqlite,postgresql").split(",") if d]


def postgres_absent_reason() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}".strip()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for every test (migrating each time would cost ~0.3 s)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    reason = postgres_absent_reason()
    if reason:
        print(f"\nSKIP PostgreSQL tests: {reason}")
        pytest.skip(reason)
    name = f"doorstep_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    yield url
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_postgres(url: str) -> None:
    engine = make_sync_engine(url)
    with engine.begin() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                    " AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
    engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "doorstep.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    truncate_postgres(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        public_url="http://testserver",
        scheduler_enabled=False,
        outbox_enabled=False,
        log_json=True,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    context = build_context(settings)
    yield context
    await context.engine.dispose()


@pytest.fixture
async def client(settings: Settings, ctx: AppContext) -> AsyncIterator[AsyncClient]:
    app = create_app(settings, ctx=ctx)
    transport = ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


class TenantKeys:
    def __init__(self, slug: str, key: str, retailer_id: int) -> None:
        self.slug, self.key, self.retailer_id = slug, key, retailer_id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(ctx: AppContext, slug: str, **settings: Any) -> TenantKeys:
    async with ctx.uow() as uow:
        retailer, key = await create_retailer(uow.session, slug, slug.replace("-", " ").title(), **settings)
        await uow.commit()
        return TenantKeys(slug, key, retailer.id or 0)


@pytest.fixture
async def acme(ctx: AppContext) -> TenantKeys:
    return await make_tenant(ctx, "acme")


@pytest.fixture
async def globex(ctx: AppContext) -> TenantKeys:
    return await make_tenant(ctx, "globex")


@pytest.fixture
async def teams(ctx: AppContext, acme: TenantKeys, globex: TenantKeys) -> tuple[TenantKeys, TenantKeys]:
    """Acme and Globex with a plan each, Acme's agent Ana and admin Rita, Globex's admin Gail."""
    from core.models import Role
    from tests.console_helpers import add_user, load_small_plan

    await load_small_plan(ctx, acme.retailer_id, "A")
    await load_small_plan(ctx, globex.retailer_id, "G")
    await add_user(ctx, "ana@acme.test", ["acme"])
    await add_user(ctx, "rita@acme.test", ["acme"], role=Role.retailer_admin)
    await add_user(ctx, "gail@globex.test", ["globex"], role=Role.retailer_admin)
    return acme, globex
