"""Database engines, sessions, the unit of work and migrations.

SQLite has one writer: the app gets a single pooled connection in WAL mode, so writers queue in
the pool instead of failing on "database is locked". PostgreSQL gets an ordinary pool.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import ROOT, to_async_url, to_sync_url
from core.events import EventsKept, keep
from core.logging import get_logger
from core.models import utcnow
from core.resilience import is_database_outage

MIGRATIONS = ROOT / "migrations"
# A pooled PostgreSQL connection idle this long is pinged before use (see `ping_when_idle`)
PING_AFTER_IDLE_SECONDS = 2.0
_IDLE_SINCE = "doorstep_idle_since"
log = get_logger("doorstep.db")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":memory:" not in url:
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


def make_engine(
    database_url: str, *, pool_size: int = 10, ping_after_idle_seconds: float = PING_AFTER_IDLE_SECONDS
) -> AsyncEngine:
    url = to_async_url(database_url)
    _ensure_sqlite_dir(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0, pool_timeout=60
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    ping_when_idle(engine, ping_after_idle_seconds)
    return engine


def ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only when it sat idle for `idle_seconds`.

    `pool_pre_ping` pings at every checkout, which on asyncpg is three round trips (BEGIN, the ping,
    ROLLBACK) for each unit of work: as many as half the statements of a short conversation turn. A
    connection handed back a moment ago has just proved itself; one that sat idle may have lost its
    server (a restart, a timeout), so it is pinged and, if dead, replaced before anyone uses it (a
    `DisconnectionError` in a checkout handler makes the pool connect anew). A busy connection
    killed under load fails its statement instead: SQLAlchemy then treats the pool as stale and the
    next checkouts connect anew, so the process still recovers by itself.
    """

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _stamp(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # a new connection, or one in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            log.info("pooled_connection_dead", error=type(error).__name__)
            raise sa_exc.DisconnectionError("the pooled connection did not answer a ping") from error


def make_sync_engine(database_url: str) -> Engine:
    url = to_sync_url(database_url)
    _ensure_sqlite_dir(url)
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(database_url: str) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", to_sync_url(database_url).replace("%", "%%"))
    return config


def migrate(database_url: str) -> None:
    """Bring the schema up to the newest migration (idempotent; run on every start)."""
    _ensure_sqlite_dir(to_sync_url(database_url))
    command.upgrade(alembic_config(database_url), "head")


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


class UnitOfWork:
    """One business transaction: a session, committed explicitly, rolled back otherwise.

    Events recorded during the transaction are published only after the commit, so nobody is told
    of a change that did not happen.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        publish: Callable[[list[Any]], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._publish = publish
        self._clock = clock
        self.session: AsyncSession
        self.events: list[Any] = []

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessionmaker()
        self.events = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Roll back whatever was not committed; a connection lost meanwhile is not a new error.

        When the server went away after the unit's last statement (a restart, a killed backend),
        the rollback and close fail on a connection that no longer exists, while the transaction is
        already gone with it. Raising then would turn a finished request into a failure, or, in a
        dependency's teardown after the response was sent, make the server drop the keep-alive
        connection under the client's next request; the pool discards the dead connection anyway.
        """
        try:
            # Detach first so objects read in this unit keep their values after the rollback.
            self.session.expunge_all()
            await self.session.rollback()
        except Exception as error:
            if not is_database_outage(error):
                raise
            log.info("rollback_on_lost_connection", error=type(error).__name__)
        finally:
            try:
                await self.session.close()
            except Exception as error:
                if not is_database_outage(error):
                    raise

    def record(self, event_: Any) -> None:
        self.events.append(event_)

    async def commit(self) -> None:
        """Commit, then publish the events; the durable ones are kept in this very transaction and
        published with `EventsKept`, so their consumers can be handed them again after a crash."""
        kept = await keep(self.session, self.events, self._clock()) if self.events else ()
        await self.session.commit()
        events, self.events = self.events, []
        if kept:
            events.append(EventsKept(kept))
        if self._publish is not None and events:
            await self._publish(events)


@asynccontextmanager
async def session_scope(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session
