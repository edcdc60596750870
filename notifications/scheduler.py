"""Timed notifications with APScheduler 3.x: jobs persisted in the app's own database.

One job per notification, id "notification:{id}", running the module-level `fire_notification`
with the notification's id only (jobs are pickled into the job store: never objects). Adding a
job again replaces it, so a moved window moves its job; a cancelled notification's job is removed.
A restart finds the jobs in the store; a job that missed its time while the app was down runs at
start (misfire grace below) and re-checks everything before sending.

A sweeper job every `SWEEP_SECONDS` first plans the notifications of scheduling events committed
but never handled (kept events, core/events.py: a process died after a change's commit), then fires
any due notification whose job was never added: those planned in a process that is not the leader
(see core/leader.py), or while the scheduler was off. The Notification rows are the truth; the job
store is how they fire on time.

The same scheduler runs the daily retention purge (core/retention.py) at `RETENTION_HOUR_UTC`: the
leader's timed jobs all live here, so each fires once across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from core.context import AppContext
from core.db import make_sync_engine
from core.leader import Leadership
from core.logging import get_logger
from core.retention import purge_expired
from notifications.outreach import fire_notifications, make_event_handler, replay_kept_events

log = get_logger("doorstep.notifications.scheduler")

JOB_TABLE = "apscheduler_jobs"
SWEEP_SECONDS = 30
SWEEP_BATCH = 1000
SWEEP_JOB = "notifications:sweep"
RETENTION_JOB = "retention:daily"
STOP_GRACE_SECONDS = 30.0
MISFIRE_GRACE_SECONDS = 12 * 3600  # a job late by more (app down half a day) is left to the sweeper
_context: AppContext | None = None  # the app whose jobs run in this process (set while leading)


def job_id(notification_id: int) -> str:
    return f"notification:{notification_id}"


def _bound_context() -> AppContext:
    if _context is None:
        raise RuntimeError("the notifications scheduler is not running in this process")
    return _context


_running: set[asyncio.Task[Any]] = set()  # jobs in flight, awaited at stop rather than cancelled


@contextlib.contextmanager
def _tracked(job: str) -> Iterator[None]:
    """Run a job as itself: awaited at stop, and logging under its own name.

    APScheduler's timer callbacks run in the context of whoever last woke the scheduler (often a web
    request adding a job), and each job's task copies it; the job's log lines would carry that
    request's id. Each job is a task of its own, so clearing here touches no one else's context.
    """
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(job=job)
    task = asyncio.current_task()
    if task is not None:
        _running.add(task)
    try:
        yield
    finally:
        if task is not None:
            _running.discard(task)


async def fire_notification(notification_id: int) -> None:
    """The job: fire one notification if it is still owed (re-checked inside)."""
    ctx = _bound_context()
    with _tracked(job_id(notification_id)):
        await fire_notifications(ctx, [notification_id])


async def sweep_due_notifications() -> int:
    """The sweeper job: plan what the scheduling events nobody handled call for, then fire every due
    notification, in batches; returns how many notifications were handled."""
    ctx = _bound_context()
    with _tracked(SWEEP_JOB):
        await replay_kept_events(ctx, batch=SWEEP_BATCH)
        handled = 0
        while True:
            summary = await fire_notifications(ctx, None, limit=SWEEP_BATCH)
            batch = summary.sent + summary.suppressed + summary.skipped + summary.postponed
            handled += batch
            if batch < SWEEP_BATCH or summary.sent + summary.suppressed + summary.skipped == 0:
                return handled


async def purge_expired_data() -> None:
    """The daily job: delete what the retention policy no longer keeps."""
    ctx = _bound_context()
    with _tracked(RETENTION_JOB):
        await purge_expired(ctx)


def job_store_url(database_url: str) -> str:
    """Where the timed jobs persist: the app's PostgreSQL database, or a SQLite file beside the app's.

    APScheduler writes its store synchronously from the event loop's thread; on a single SQLite file
    that write would wait for the lock held by the app's own writer on that same loop, a deadlock that
    ends only with "database is locked". A sibling file has a lock of its own.
    """
    if not database_url.startswith("sqlite") or ":memory:" in database_url:
        return database_url
    prefix, path = database_url.split(":///", 1)
    stem, dot, suffix = path.rpartition(".")
    jobs_path = f"{stem}-jobs.{suffix}" if dot and "/" not in suffix else f"{path}-jobs"
    return f"{prefix}:///{jobs_path}"


class ApsNotificationScheduler:
    """The leader's duty (core.leader.LeaderDuty) and the outreach's NotificationScheduler."""

    def __init__(
        self, ctx: AppContext, *, sweep_seconds: float = SWEEP_SECONDS, first_sweep_after: float = 1.0
    ) -> None:
        self.ctx = ctx
        self.sweep_seconds = sweep_seconds
        self.first_sweep_after = first_sweep_after
        self._scheduler: AsyncIOScheduler | None = None
        self._engine: Engine | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def _build(self) -> AsyncIOScheduler:
        self._engine = make_sync_engine(job_store_url(self.ctx.settings.database_url))
        store = SQLAlchemyJobStore(engine=self._engine, tablename=JOB_TABLE)
        return AsyncIOScheduler(
            jobstores={"default": store},
            executors={"default": AsyncIOExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS},
            timezone=UTC,
        )

    async def start(self) -> None:
        global _context
        if self.running:
            return
        _context = self.ctx
        scheduler = self._build()
        scheduler.start()
        scheduler.add_job(
            sweep_due_notifications,
            trigger="interval",
            seconds=self.sweep_seconds,
            id=SWEEP_JOB,
            replace_existing=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=self.first_sweep_after),
        )
        scheduler.add_job(
            purge_expired_data,
            trigger="cron",
            hour=self.ctx.settings.retention_hour_utc,
            minute=0,
            id=RETENTION_JOB,
            replace_existing=True,
        )
        self._scheduler = scheduler
        log.info("notifications_scheduler_started")

    async def stop(self) -> None:
        global _context
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.pause()  # no new job starts; those running finish their transaction
            if _running:
                await asyncio.wait(list(_running), timeout=STOP_GRACE_SECONDS)
            scheduler.shutdown(wait=False)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if _context is self.ctx:
            _context = None
        log.info("notifications_scheduler_stopped")

    async def schedule(self, notifications: Sequence[tuple[int, datetime]]) -> None:
        if not self.running or not notifications:
            return  # not the leader: the leader's sweeper fires them when due
        await asyncio.to_thread(self._add_jobs, list(notifications))

    async def unschedule(self, notification_ids: Sequence[int]) -> None:
        if not self.running or not notification_ids:
            return
        await asyncio.to_thread(self._remove_jobs, list(notification_ids))

    def _add_jobs(self, notifications: list[tuple[int, datetime]]) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        for notification_id, due_at in notifications:
            scheduler.add_job(
                fire_notification,
                trigger="date",
                run_date=due_at,
                args=[notification_id],
                id=job_id(notification_id),
                replace_existing=True,
            )

    def _remove_jobs(self, notification_ids: list[int]) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        for notification_id in notification_ids:
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(job_id(notification_id))

    def job_times(self) -> dict[str, datetime | None]:
        """Every job in the store and when it runs next (for tests and operators)."""
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}


async def start_notifications(_app: FastAPI, ctx: AppContext) -> Callable[[], Awaitable[None]] | None:
    """The app's starter: outreach listens to scheduling events in every process; the timed jobs run
    only in the elected leader (on SQLite, this process at once) when SCHEDULER_ENABLED."""
    ctx.event_handlers.append(make_event_handler(ctx))
    if not ctx.settings.scheduler_enabled:
        return None
    scheduler = ApsNotificationScheduler(ctx)
    ctx.components["notifications.scheduler"] = scheduler
    leadership = Leadership(
        ctx.settings.database_url,
        duty=scheduler,
        metrics=ctx.metrics,
        retry_seconds=ctx.settings.leader_retry_seconds,
    )
    await leadership.start()
    return leadership.stop
