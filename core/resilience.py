"""Database outages answered cleanly: 503 with a reason and Retry-After, never a 500 or a hang.

While PostgreSQL restarts, requests fail with connection errors (refused, "the database system is
shutting down", a pooled connection that died). They get `503 {"detail": "database unavailable"}`
and `Retry-After: 2`; providers retry webhooks that did not get a 2xx. The pool pings connections
that sat idle before handing them out, and a disconnect on a busy one makes SQLAlchemy replace the
pool's connections (`core.db.ping_when_idle`), so once the server is back the next requests get fresh
connections and the process recovers without a restart.

A transaction PostgreSQL fails to break a deadlock or a serialization conflict with another one
(SQLSTATE 40P01, 40001) is retryable: the API answers 503 with `Retry-After: 1`, and the dialogs run
their change again (`bot.dialogs.changes.retried`).
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from core.logging import get_logger

log = get_logger("doorstep.resilience")

RETRY_AFTER_SECONDS = 2
# SQLSTATE codes of an unreachable or restarting server: class 08 (connection exception),
# admin/crash shutdown, "cannot connect now" (starting up or in recovery), too many connections.
_OUTAGE_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}
# asyncpg's errors for a connection that is gone, known by name (asyncpg is not imported here)
_CONNECTION_ERRORS = {"ConnectionDoesNotExistError", "InterfaceError", "ConnectionFailureError"}


def _outage_cause(exc: BaseException) -> bool:
    for cause in _causes(exc):
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _OUTAGE_SQLSTATES):
            return True
        if isinstance(cause, OSError | asyncio.TimeoutError):
            return True
        if type(cause).__name__ in _CONNECTION_ERRORS:
            return True
    return False


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return chain


def is_bad_value(exc: BaseException) -> bool:
    """A value the column cannot hold (SQLSTATE class 22, an int beyond int32/int64): the client's input."""
    for cause in _causes(exc):
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(cause, OverflowError | sa_exc.DataError) or type(cause).__name__ == "DataError":
            return True
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return True
    return False


# SQLSTATE codes PostgreSQL fails a transaction with to resolve a conflict with another one: running
# it again is the documented remedy (deadlock_detected, serialization_failure).
_CONFLICT_SQLSTATES = {"40P01", "40001"}


def is_transient_conflict(exc: BaseException) -> bool:
    """PostgreSQL failed this transaction to break a deadlock or a serialization conflict."""
    return any(
        (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) in _CONFLICT_SQLSTATES
        for cause in _causes(exc)
    )


def is_database_outage(exc: BaseException) -> bool:
    """Whether an exception means "the database is not reachable now", not a bug in a query."""
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True  # pool exhausted, server gone, SQLite locked beyond its busy timeout
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or _outage_cause(exc)
    # a connect attempt refused before SQLAlchemy could wrap it
    return isinstance(exc, ConnectionError)


def database_unavailable_response() -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": "database unavailable, try again shortly"},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_outage_handlers(app: FastAPI) -> None:
    """Map database outages to 503 and out-of-range values to 422; any other error keeps its 500."""

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_bad_value(exc):
            # a number or text the column cannot hold (an id of 30 digits): the client's mistake
            return JSONResponse(status_code=422, content={"detail": "a value is out of range"})
        if is_transient_conflict(exc):
            # PostgreSQL failed this request's transaction to let a concurrent one through: retryable
            log.warning("database_conflict", path=request.url.path)
            return JSONResponse(
                status_code=503,
                content={"detail": "the change met another one made at the same moment, try again"},
                headers={"Retry-After": "1"},
            )
        if not is_database_outage(exc):
            raise exc
        log.warning("database_unavailable", path=request.url.path, error=type(exc).__name__)
        return database_unavailable_response()

    for exc_class in (sa_exc.DBAPIError, sa_exc.TimeoutError, ConnectionError, OverflowError):
        app.add_exception_handler(exc_class, on_database_error)
