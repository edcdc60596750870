"""The change log: readable with a cursor, and pushed to the retailer's webhook, signed, with retries."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from sqlmodel import select

from app import create_app
from core.context import AppContext
from core.models import ChangeLog
from scheduling.changelog import SIGNATURE_HEADER, ChangeWebhookPusher, start_change_webhooks, verify
from tests.conftest import make_tenant
from tests.plans import DAY, small_plan
from tests.scheduling_support import NOW, import_plan, window

PLAN_DAY = date.fromisoformat(DAY)
SECRET = "whsec-test-0123456789"


@dataclass
class Receiver:
    """A loopback HTTP server standing in for the retailer's TMS: answers from a script, records requests."""

    answers: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    got: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((headers, body))
        status = self.answers.pop(0) if self.answers else 200
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()
        self.got.set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/doorstep/changes"


@pytest.fixture
async def receiver():
    r = Receiver()
    yield r
    if r.server is not None:
        r.server.close()
        await r.server.wait_closed()


@pytest.fixture(autouse=True)
def fixed_clock(ctx):
    ctx.clock = lambda: NOW


class TestReadingChanges:
    async def test_changes_come_in_order_after_the_cursor_and_only_the_retailers_own(
        self, client, acme, globex
    ):
        await import_plan(client, acme, small_plan())
        await import_plan(client, globex, small_plan())
        for hour in (14, 16):
            response = await client.post(
                "/api/v1/deliveries/T001/reschedule",
                json={"window": window(PLAN_DAY, hour)},
                headers=acme.headers,
            )
            assert response.status_code == 200
        first = (await client.get("/api/v1/changes?since=0&limit=2", headers=acme.headers)).json()
        assert [c["kind"] for c in first["changes"]] == ["plan_imported", "rescheduled"]
        rest = (await client.get(f"/api/v1/changes?since={first['next']}", headers=acme.headers)).json()
        assert [c["kind"] for c in rest["changes"]] == ["rescheduled"]
        change = rest["changes"][0]
        assert change["tracking"] == "T001" and change["actor"] == {
            "kind": "agent",
            "id": "api:acme",
            "channel": "api",
        }
        assert change["before"]["window"]["start"] != change["after"]["window"]["start"]
        empty = (await client.get(f"/api/v1/changes?since={rest['next']}", headers=acme.headers)).json()
        assert empty == {"changes": [], "next": rest["next"]}
        theirs = (await client.get("/api/v1/changes", headers=globex.headers)).json()["changes"]
        assert [c["kind"] for c in theirs] == ["plan_imported"]

    async def test_a_bad_cursor_gets_422(self, client, acme):
        assert (await client.get("/api/v1/changes?since=-1", headers=acme.headers)).status_code == 422
        assert (await client.get("/api/v1/changes?since=abc", headers=acme.headers)).status_code == 422


class TestTheWebhook:
    async def test_each_change_is_pushed_signed_and_retried_after_a_500(self, client, ctx, receiver):
        url = await receiver.start()
        tenant = await make_tenant(
            ctx, "tms", settings={"change_webhook_url": url, "change_webhook_secret": SECRET}
        )
        await import_plan(client, tenant, small_plan())
        response = await client.post(
            "/api/v1/deliveries/T002/reschedule",
            json={"window": window(PLAN_DAY, 14)},
            headers=tenant.headers,
        )
        assert response.status_code == 200
        receiver.answers = [500]
        now = NOW
        ctx.clock = lambda: now
        pusher = ChangeWebhookPusher(ctx, base_delay_seconds=30)
        try:
            assert await pusher.run_once() == 0  # the first change meets a 500
            assert len(receiver.requests) == 1
            assert await pusher.run_once() == 0  # not before its retry time: nothing is sent
            assert len(receiver.requests) == 1
            now = NOW + timedelta(seconds=31)
            assert await pusher.run_once() == 2  # the retry, then the next change, in order
        finally:
            await pusher.close()
        bodies = [json.loads(body) for _, body in receiver.requests]
        assert [b["kind"] for b in bodies] == ["plan_imported", "plan_imported", "rescheduled"]
        assert bodies[2]["tracking"] == "T002"
        for headers, body in receiver.requests:
            assert verify(SECRET, headers[SIGNATURE_HEADER.lower()], body, now=now)
            assert not verify("another-secret", headers[SIGNATURE_HEADER.lower()], body, now=now)
        headers, body = receiver.requests[-1]
        assert not verify(SECRET, headers[SIGNATURE_HEADER.lower()], body + b" ", now=now)
        async with ctx.uow() as uow:
            rows = (await uow.session.exec(select(ChangeLog).order_by(ChangeLog.id))).all()
        assert [(r.webhook_status, r.webhook_attempts) for r in rows] == [("sent", 2), ("sent", 1)]

    async def test_a_change_that_keeps_failing_is_given_up_after_the_last_attempt(
        self, client, ctx, receiver
    ):
        url = await receiver.start()
        tenant = await make_tenant(
            ctx, "down", settings={"change_webhook_url": url, "change_webhook_secret": SECRET}
        )
        await import_plan(client, tenant, small_plan())
        receiver.answers = [503] * 3
        pusher = ChangeWebhookPusher(ctx, max_attempts=3, base_delay_seconds=0)
        try:
            for _ in range(3):
                await pusher.run_once()
        finally:
            await pusher.close()
        async with ctx.uow() as uow:
            row = (await uow.session.exec(select(ChangeLog))).one()
        assert (row.webhook_status, row.webhook_attempts) == ("failed", 3)

    async def test_retailers_without_a_webhook_are_not_pushed(self, client, acme, ctx, receiver):
        await receiver.start()
        await import_plan(client, acme, small_plan())
        pusher = ChangeWebhookPusher(ctx)
        try:
            assert await pusher.run_once() == 0
        finally:
            await pusher.close()
        assert receiver.requests == []

    async def test_the_background_pusher_runs_only_when_the_scheduler_is_enabled(
        self, settings, ctx, receiver
    ):
        url = await receiver.start()
        assert await start_change_webhooks(create_app(settings, ctx=ctx), ctx) is None  # tests: disabled
        enabled = AppContext(
            settings=settings.model_copy(update={"scheduler_enabled": True}),
            engine=ctx.engine,
            sessionmaker=ctx.sessionmaker,
        )
        tenant = await make_tenant(
            enabled, "live", settings={"change_webhook_url": url, "change_webhook_secret": SECRET}
        )
        app = create_app(settings, ctx=enabled)
        assert start_change_webhooks in app.state.starters  # the app starts it with the others
        stop = await start_change_webhooks(app, enabled, poll_seconds=0.05)
        assert stop is not None
        try:
            async with enabled.uow() as uow:
                from core.models import Author, Retailer
                from scheduling.changelog import log_change

                retailer = await uow.session.get(Retailer, tenant.retailer_id)
                await log_change(uow.session, retailer, "note", actor=Author.system, now=enabled.clock())
                await uow.commit()
            await asyncio.wait_for(receiver.got.wait(), timeout=5)
        finally:
            await stop()
        assert json.loads(receiver.requests[0][1])["kind"] == "note"


class TestWebhookUrls:
    async def test_production_refuses_plain_http_and_private_or_loopback_addresses(self):
        from scheduling.changelog import allowed_url

        assert await allowed_url("http://127.0.0.1:9/x", production=False)
        for url in (
            "http://example.com/x",
            "https://127.0.0.1/x",
            "https://10.0.0.5/x",
            "https://[::1]/x",
            "ftp://a/b",
        ):
            assert not await allowed_url(url, production=True), url
        assert not await allowed_url("javascript:alert(1)", production=False)
