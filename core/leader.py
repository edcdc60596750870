"""One active leader among every Doorstep process: who runs the timed (APScheduler) jobs.

APScheduler 3.x cannot share a job store between processes, so exactly one process runs the
scheduler. The leader is whoever holds a PostgreSQL *session* advisory lock, taken on a dedicated
connection outside the pool. The lock lives as long as that connection: when the leader's process
dies (even by SIGKILL) or its host vanishes (TCP keepalives, set below), PostgreSQL ends the session
and releases the lock, and another process, polling every `retry_seconds`, takes over. A leader
checks every `check_seconds` that its connection still holds the lock and steps down when it does
not (database restarted, network lost). Advisory locks are scoped to the database, so two
Doorstep installations on one server do not elect each other's leaders.

During fail-over two schedulers may overlap for a moment (the old leader has not noticed yet);
timed jobs therefore only claim work with unique keys (notification dedupe keys, outbox
idempotency keys), so a double fire does nothing. The outbox workers do not need a leader: they run
in every process and claim rows with `SELECT ... FOR UPDATE SKIP LOCKED`.

On SQLite there is one process by construction (one writer, one file): it is the leader at once.

Usage (what `app.py` does for the notifications scheduler)::

    leadership = Leadership(settings.database_url, duty=scheduler, metrics=ctx.metrics)
    await leadership.start()      # returns at once; `duty.start()` runs when elected
    ...
    await leadership.stop()       # stops the duty if leading and releases the lock

A duty is anything with `async start()` and `async stop()`; it may be started and stopped several
times over the life of a process (elected, demoted by a database restart, elected again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Any, Protocol

import asyncpg
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.engine import make_url

from core.logging import get_logger
from core.observability import Metrics

log = get_logger("doorstep.leader")

DEFAULT_LOCK_NAME = "doorstep.scheduler"
_gauges: dict[int, Gauge] = {}


class LeaderDuty(Protocol):
    """What only the leader runs (the notifications scheduler)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def asyncpg_dsn(database_url: str) -> str:
    """The database URL without SQLAlchemy's driver suffix, as asyncpg wants it."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _leader_gauge(registry: CollectorRegistry) -> Gauge:
    gauge = _gauges.get(id(registry))
    if gauge is None:
        gauge = Gauge(
            "doorstep_scheduler_leader", "1 while this process runs the timed jobs", registry=registry
        )
        _gauges[id(registry)] = gauge
    return gauge


class Leadership:
    """Runs `duty` while this process holds the leader lock; see the module docstring."""

    def __init__(
        self,
        database_url: str,
        duty: LeaderDuty,
        *,
        name: str = DEFAULT_LOCK_NAME,
        metrics: Metrics | None = None,
        retry_seconds: float = 2.0,
        check_seconds: float = 2.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.database_url = database_url
        self.duty = duty
        self.name = name
        self.key = lock_key(name)
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self.connect_timeout = connect_timeout
        self.is_leader = False
        self.elected = asyncio.Event()  # set while leading; tests and health checks wait on it
        self._gauge = _leader_gauge(metrics.registry) if metrics is not None else None
        self._task: asyncio.Task[None] | None = None
        self._uses_postgres = make_url(database_url).get_backend_name() == "postgresql"

    async def start(self) -> None:
        if not self._uses_postgres:
            await self._take_office()
            return
        self._task = asyncio.create_task(self._campaign(), name=f"leader-election:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._leave_office()

    async def _campaign(self) -> None:
        """Forever: connect, wait for the lock, lead while the connection holds it."""
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(
                    asyncpg_dsn(self.database_url),
                    timeout=self.connect_timeout,
                    server_settings={
                        "application_name": f"doorstep-leader:{self.name}",
                        # a vanished leader host is noticed within about a minute
                        "tcp_keepalives_idle": "15",
                        "tcp_keepalives_interval": "5",
                        "tcp_keepalives_count": "4",
                    },
                )
                while True:
                    if await connection.fetchval("SELECT pg_try_advisory_lock($1)", self.key):
                        break
                    await asyncio.sleep(self.retry_seconds)
                await self._take_office()
                while True:
                    await asyncio.sleep(self.check_seconds)
                    if not await asyncio.wait_for(self._holds_lock(connection), self.check_seconds * 2):
                        log.warning("leader_lock_lost", lock=self.name)
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("leader_election_interrupted", lock=self.name, error=type(exc).__name__)
            finally:
                await self._leave_office()
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), 2)
                    if not connection.is_closed():
                        connection.terminate()
            await asyncio.sleep(self.retry_seconds)

    async def _holds_lock(self, connection: Any) -> bool:
        held: bool = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = pg_backend_pid()"
            " AND ((classid::bigint << 32) | objid::bigint) = $1)",
            self.key,
        )
        return held

    async def _take_office(self) -> None:
        if self.is_leader:
            return
        self.is_leader = True
        self.elected.set()
        if self._gauge is not None:
            self._gauge.set(1)
        log.info("leader_elected", lock=self.name)
        try:
            await self.duty.start()
        except Exception:
            log.exception("leader_duty_failed_to_start", lock=self.name)
            raise

    async def _leave_office(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        self.elected.clear()
        if self._gauge is not None:
            self._gauge.set(0)
        log.info("leader_stepped_down", lock=self.name)
        try:
            await self.duty.stop()
        except Exception:
            log.exception("leader_duty_failed_to_stop", lock=self.name)
