"""The APScheduler job store: jobs persist in the database, survive a restart, move and disappear."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from core.models import Notification, OutboxMessage
from notifications import scheduler as sched
from tests.test_hostile_webhooks import rendered_logs  # noqa: F401 - fixture
from tests.test_notifications_outreach import delivery, rows, setup


@pytest.fixture
def later():
    return datetime.now(UTC) + timedelta(days=30)


class TestJobStore:
    async def test_a_job_survives_a_restart_moves_and_disappears(self, ctx, later):
        first = sched.ApsNotificationScheduler(ctx, sweep_seconds=3600, first_sweep_after=3600)
        await first.start()
        try:
            await first.schedule([(41, later)])
            assert first.job_times()["notification:41"] == later
        finally:
            await first.stop()
        assert not first.running

        second = sched.ApsNotificationScheduler(ctx, sweep_seconds=3600, first_sweep_after=3600)
        await second.start()
        try:
            assert second.job_times()["notification:41"] == later  # read back from the database
            await second.schedule([(41, later + timedelta(hours=1))])  # the window moved
            assert second.job_times()["notification:41"] == later + timedelta(hours=1)
            assert list(second.job_times()).count("notification:41") == 1
            await second.unschedule([41])  # the delivery was cancelled
            assert "notification:41" not in second.job_times()
        finally:
            await second.stop()

    async def test_the_job_fires_its_notification_by_id_and_only_once(self, ctx):
        _clock, _ = await setup(ctx)
        d = await delivery(ctx, "T001")
        (note,) = await rows(
            ctx, Notification, Notification.delivery_id == d.id, Notification.event == "window_assigned"
        )
        running = sched.ApsNotificationScheduler(ctx, sweep_seconds=3600, first_sweep_after=3600)
        await running.start()
        try:
            await sched.fire_notification(note.id)
            await sched.fire_notification(note.id)  # a double fire during fail-over
        finally:
            await running.stop()
        sent = await rows(ctx, OutboxMessage, OutboxMessage.idempotency_key == f"notif:{note.id}")
        assert len(sent) == 1

    async def test_the_sweeper_fires_what_no_job_was_added_for(self, ctx):
        await setup(ctx)
        running = sched.ApsNotificationScheduler(ctx, sweep_seconds=3600, first_sweep_after=3600)
        await running.start()
        try:
            assert await sched.sweep_due_notifications() == 5
        finally:
            await running.stop()
        assert len(await rows(ctx, OutboxMessage)) == 5

    async def test_a_job_outside_the_leader_process_refuses_to_run(self):
        with pytest.raises(RuntimeError):
            await sched.fire_notification(1)


class TestJobLogs:
    async def test_a_job_added_during_a_request_logs_as_that_job_not_as_the_request(
        self,
        ctx,
        rendered_logs,  # noqa: F811 - the fixture imported above
    ):
        """APScheduler's timer runs in the context of whoever last woke it; a job must not inherit a
        web request's id, or its log lines would be read as that request's."""
        await setup(ctx)
        d = await delivery(ctx, "T001")
        (note,) = await rows(
            ctx, Notification, Notification.delivery_id == d.id, Notification.event == "window_assigned"
        )
        running = sched.ApsNotificationScheduler(ctx, sweep_seconds=3600, first_sweep_after=3600)
        await running.start()

        async def during_a_request() -> None:
            structlog.contextvars.bind_contextvars(request_id="the-request-that-planned-it")
            await running.schedule([(note.id, datetime.now(UTC))])

        try:
            await asyncio.create_task(during_a_request())
            for _ in range(200):
                if await rows(ctx, OutboxMessage, OutboxMessage.idempotency_key == f"notif:{note.id}"):
                    break
                await asyncio.sleep(0.05)
        finally:
            await running.stop()
        fired = [json.loads(line) for line in rendered_logs if '"notifications_fired"' in line]
        assert fired, "the job fired"
        assert "request_id" not in fired[0]
        assert fired[0]["job"] == f"notification:{note.id}"


class TestAppStart:
    async def test_the_app_registers_outreach_and_the_leader_runs_the_scheduler(self, settings, ctx):
        from app import create_app

        settings.scheduler_enabled = True
        app = create_app(settings, ctx=ctx)
        async with app.router.lifespan_context(app):
            scheduler = ctx.components["notifications.scheduler"]
            for _ in range(100):
                if scheduler.running:
                    break
                await asyncio.sleep(0.05)
            assert scheduler.running and "notifications:sweep" in scheduler.job_times()
        assert not scheduler.running
        assert any(getattr(h, "__name__", "") == "on_events" for h in ctx.event_handlers)


class TestWhereJobsPersist:
    def test_on_sqlite_the_job_store_is_a_file_of_its_own_beside_the_database(self):
        from notifications.scheduler import job_store_url

        assert job_store_url("sqlite:////srv/var/doorstep.db") == "sqlite:////srv/var/doorstep-jobs.db"
        assert job_store_url("sqlite:///var/data") == "sqlite:///var/data-jobs"

    def test_on_postgresql_the_jobs_live_in_the_same_database(self):
        from notifications.scheduler import job_store_url

        url = "postgresql://postgres@127.0.0.1:5432/test"
        assert job_store_url(url) == url
