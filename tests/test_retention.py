"""What is kept and for how long: the retention purge (core/retention.py), on both stores."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, update
from sqlmodel import col, select

from bot.engine import ConversationEngine
from console.auth import open_session
from core.config import Settings
from core.db import is_postgres
from core.models import (
    Channel,
    Conversation,
    InboundReceipt,
    Message,
    Notification,
    OutboxMessage,
    OutboxStatus,
    OutgoingFile,
    User,
    WebSession,
)
from core.retention import RetentionPolicy, purge_expired
from notifications import scheduler as sched
from tests.conftest import make_tenant
from tests.engine_support import NOW, Chat, ScriptedUnderstanding, load_small_plan, understood
from tests.test_hostile_webhooks import rendered_logs  # noqa: F401 - fixture

ADA = "+14165550101"  # T001
BEA = "+14165550102"  # T002
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=20)
POLICY = RetentionPolicy(receipts=timedelta(days=7), conversations=timedelta(days=180))


def talking(ctx, sender: str, at):
    from bot.understanding.model import Intent

    understanding = ScriptedUnderstanding({"where is my parcel": understood(Intent.where_is_parcel)})
    return Chat(ConversationEngine(ctx, clock=lambda: at, understand=understanding), Channel.sms, sender)


async def count(ctx, model, *where) -> int:
    async with ctx.uow() as uow:
        return int((await uow.session.exec(select(func.count()).select_from(model).where(*where))).one())


async def conversation_of(ctx, sender: str) -> Conversation | None:
    async with ctx.uow() as uow:
        return (await uow.session.exec(select(Conversation).where(Conversation.address == sender))).first()


async def mark_sent(ctx) -> None:
    async with ctx.uow() as uow:
        await uow.session.exec(update(OutboxMessage).values(status=OutboxStatus.sent))  # type: ignore[call-overload]
        await uow.commit()


def agents_picture(conversation_id: int, retailer_id: int, at) -> OutgoingFile:
    """A picture an agent sent in the conversation (channels/media.py keeps it for the provider)."""
    return OutgoingFile(
        token=f"picture-{conversation_id}",
        retailer_id=retailer_id,
        conversation_id=conversation_id,
        content_type="image/png",
        size=3,
        content=b"png",
        created_at=at,
    )


async def add_file_and_notifications(ctx, conversation: Conversation, retailer_id: int) -> tuple[int, int]:
    """An agent's file in the conversation; a finished notification due long ago, and a recent one
    whose outbox row is one of the conversation's. Returns the two notifications' ids."""
    async with ctx.uow() as uow:
        outbox_id = (
            await uow.session.exec(
                select(OutboxMessage.id).where(OutboxMessage.conversation_id == conversation.id)
            )
        ).first()
        uow.session.add(agents_picture(conversation.id or 0, retailer_id, OLD))
        delivery_id = conversation.delivery_id
        assert delivery_id is not None
        old = Notification(
            retailer_id=retailer_id,
            delivery_id=delivery_id,
            event="scheduled",
            dedupe_key=f"old:{conversation.id}",
            due_at=OLD,
            status="sent",
        )
        recent = Notification(
            retailer_id=retailer_id,
            delivery_id=delivery_id,
            event="out_for_delivery",
            dedupe_key=f"recent:{conversation.id}",
            due_at=RECENT,
            status="sent",
            outbox_id=outbox_id,
        )
        uow.session.add_all([old, recent])
        await uow.commit()
        return old.id or 0, recent.id or 0


@pytest.fixture
def at_now(ctx):
    ctx.clock = lambda: NOW
    return ctx


class TestConversations:
    async def test_a_silent_conversation_goes_with_everything_that_hangs_on_it(self, at_now, acme):
        ctx = at_now
        await load_small_plan(ctx, acme.retailer_id)
        assert "T001" in await talking(ctx, ADA, OLD).say("where is my parcel")
        assert "T002" in await talking(ctx, BEA, RECENT).say("where is my parcel")
        await mark_sent(ctx)
        silent = await conversation_of(ctx, ADA)
        assert silent is not None
        old_note, recent_note = await add_file_and_notifications(ctx, silent, acme.retailer_id)
        kept = await conversation_of(ctx, BEA)
        assert kept is not None
        kept_messages = await count(ctx, Message, Message.conversation_id == kept.id)

        purged = await purge_expired(ctx, policy=POLICY)

        assert purged.counts["conversations"] == 1
        assert purged.counts["messages"] == 2 and purged.counts["outbox"] == 1
        assert purged.counts["files"] == 1 and purged.counts["notifications"] == 1
        assert await conversation_of(ctx, ADA) is None
        for model in (Message, OutboxMessage, OutgoingFile):
            assert await count(ctx, model, col(model.conversation_id) == silent.id) == 0
        assert await count(ctx, Notification, Notification.id == old_note) == 0
        # the recent notification stays, without its link to the outbox row that went
        async with ctx.uow() as uow:
            recent = await uow.session.get(Notification, recent_note)
            assert recent is not None and recent.outbox_id is None
        assert await conversation_of(ctx, BEA) is not None
        assert await count(ctx, Message, Message.conversation_id == kept.id) == kept_messages
        assert await count(ctx, OutboxMessage, OutboxMessage.conversation_id == kept.id) == 1

    async def test_a_conversation_with_a_message_still_to_send_is_kept(self, at_now, acme):
        ctx = at_now
        await load_small_plan(ctx, acme.retailer_id)
        await talking(ctx, ADA, OLD).say("where is my parcel")  # its reply is still pending
        purged = await purge_expired(ctx, policy=POLICY)
        assert purged.counts.get("conversations", 0) == 0
        assert await conversation_of(ctx, ADA) is not None
        await mark_sent(ctx)
        assert (await purge_expired(ctx, policy=POLICY)).counts["conversations"] == 1

    async def test_a_recipient_who_writes_after_the_purge_starts_afresh(self, at_now, acme):
        ctx = at_now
        await load_small_plan(ctx, acme.retailer_id)
        await talking(ctx, ADA, OLD).say("where is my parcel")
        await mark_sent(ctx)
        before = await conversation_of(ctx, ADA)
        await purge_expired(ctx, policy=POLICY)
        assert "T001" in await talking(ctx, ADA, NOW).say("where is my parcel")
        after = await conversation_of(ctx, ADA)
        assert after is not None and after.created_at == NOW
        # a new id, on SQLite too: the old one keyed the dialog in Redis and the console's links
        assert before is not None and after.id != before.id
        assert await count(ctx, Message, Message.conversation_id == after.id) == 2

    async def test_many_conversations_go_in_batches(self, at_now, acme):
        ctx = at_now
        await load_small_plan(ctx, acme.retailer_id)
        senders = [f"+1416555019{n}" for n in range(5)]
        for sender in senders:
            await talking(ctx, sender, OLD).say("hello")
        await mark_sent(ctx)
        purged = await purge_expired(ctx, policy=POLICY, batch=2)
        assert purged.counts["conversations"] == 5
        assert await count(ctx, Conversation) == 0 and await count(ctx, Message) == 0

    async def test_with_zero_days_conversations_are_kept_for_ever(self, at_now, acme, settings):
        ctx = at_now
        await load_small_plan(ctx, acme.retailer_id)
        await talking(ctx, ADA, OLD).say("where is my parcel")
        await mark_sent(ctx)
        settings.retention_days = 0
        assert RetentionPolicy.of(ctx).conversations is None
        purged = await purge_expired(ctx)
        assert "conversations" not in purged.counts
        assert await conversation_of(ctx, ADA) is not None


async def silent_conversation(ctx, address: str, retailer_id: int | None, days: int) -> None:
    at = NOW - timedelta(days=days)
    async with ctx.uow() as uow:
        uow.session.add(
            Conversation(
                channel=Channel.sms, address=address, retailer_id=retailer_id, created_at=at, updated_at=at
            )
        )
        await uow.commit()


async def addresses_left(ctx) -> list[str]:
    async with ctx.uow() as uow:
        return sorted((await uow.session.exec(select(Conversation.address))).all())


class TestEachRetailersOwnPeriod:
    async def test_a_retailer_keeps_its_conversations_for_the_period_its_settings_name(self, at_now):
        ctx = at_now
        brief = await make_tenant(ctx, "brief", settings={"retention_days": 30})
        forever = await make_tenant(ctx, "forever", settings={"retention_days": 0})
        usual = await make_tenant(ctx, "usual")
        for name, tenant in (("brief", brief), ("forever", forever), ("usual", usual)):
            await silent_conversation(ctx, f"{name}-60", tenant.retailer_id, 60)
            await silent_conversation(ctx, f"{name}-200", tenant.retailer_id, 200)
        await silent_conversation(ctx, "nobody-60", None, 60)
        await silent_conversation(ctx, "nobody-200", None, 200)

        purged = await purge_expired(ctx, policy=POLICY)

        assert purged.counts["conversations"] == 4
        assert await addresses_left(ctx) == ["forever-200", "forever-60", "nobody-60", "usual-60"]

    @pytest.mark.parametrize("setting", ["thirty", -5, True, 2.5])
    async def test_a_setting_that_is_not_a_number_of_days_is_ignored_for_the_default(
        self,
        at_now,
        setting,
        rendered_logs,  # noqa: F811 - the fixture imported above
    ):
        ctx = at_now
        odd = await make_tenant(ctx, "odd", settings={"retention_days": setting})
        await silent_conversation(ctx, "odd-60", odd.retailer_id, 60)
        await silent_conversation(ctx, "odd-200", odd.retailer_id, 200)
        await purge_expired(ctx, policy=POLICY)
        assert await addresses_left(ctx) == ["odd-60"]
        assert any('"retention_setting_ignored"' in line for line in rendered_logs)


class TestReceipts:
    async def test_receipts_older_than_the_period_go_and_a_recent_retry_is_still_refused(self, at_now, acme):
        ctx = at_now
        await load_small_plan(ctx, acme.retailer_id)
        for days in (30, 9, 8):
            await talking(ctx, ADA, NOW - timedelta(days=days)).send("hi", provider_id=f"SM-{days}")
        await talking(ctx, ADA, NOW - timedelta(days=1)).send("hi", provider_id="SM-1")
        purged = await purge_expired(ctx, policy=POLICY, batch=2)
        assert purged.counts["receipts"] == 3
        async with ctx.uow() as uow:
            left = (await uow.session.exec(select(InboundReceipt.external_id))).all()
        assert left == ["SM-1"]
        # the retry of a message received yesterday is still recognised and handled once
        assert await talking(ctx, ADA, NOW).send("hi", provider_id="SM-1") == []

    async def test_receipts_newer_than_the_period_stop_the_scan(self, at_now):
        ctx = at_now
        async with ctx.uow() as uow:
            uow.session.add_all(
                InboundReceipt(provider="sms", external_id=f"SM-{n}", received_at=NOW - timedelta(hours=n))
                for n in range(5)
            )
            await uow.commit()
        assert (await purge_expired(ctx, policy=POLICY, batch=2)).counts["receipts"] == 0
        assert await count(ctx, InboundReceipt) == 5


class TestConsoleSessions:
    async def test_expired_console_sessions_go_and_live_ones_stay(self, at_now):
        ctx = at_now
        async with ctx.uow() as uow:
            user = User(email="ana@acme.test", password_hash="x")
            uow.session.add(user)
            await uow.session.flush()
            await open_session(uow.session, user.id or 0, NOW - timedelta(days=30))
            await open_session(uow.session, user.id or 0, NOW)
            await uow.commit()
        assert (await purge_expired(ctx, policy=POLICY)).counts["sessions"] == 1
        assert await count(ctx, WebSession, col(WebSession.expires_at) > NOW) == 1
        assert await count(ctx, WebSession) == 1


class TestRunning:
    async def test_the_purge_is_counted_in_the_metrics(self, at_now):
        ctx = at_now
        async with ctx.uow() as uow:
            uow.session.add(InboundReceipt(provider="sms", external_id="SM-x", received_at=OLD))
            await uow.commit()
        await purge_expired(ctx, policy=POLICY)
        body, _ = ctx.metrics.render()
        assert b'doorstep_retention_deleted_total{kind="receipts"} 1.0' in body

    async def test_the_leader_purges_daily_at_the_configured_hour(self, settings, ctx):
        settings.retention_hour_utc = 4
        scheduler = sched.ApsNotificationScheduler(ctx, first_sweep_after=3600)
        await scheduler.start()
        try:
            next_run = scheduler.job_times()[sched.RETENTION_JOB]
            assert next_run is not None and (next_run.hour, next_run.minute) == (4, 0)
            async with ctx.uow() as uow:
                uow.session.add(InboundReceipt(provider="sms", external_id="SM-x", received_at=OLD))
                await uow.commit()
            await sched.purge_expired_data()  # what the job runs, in the leader's context
            assert await count(ctx, InboundReceipt) == 0
        finally:
            await scheduler.stop()

    def test_the_command_line_purges_now_and_prints_what_went(self, settings, capsys, monkeypatch):
        import app

        async def old_receipt() -> None:
            from app import build_context

            ctx = build_context(settings)
            try:
                async with ctx.uow() as uow:
                    uow.session.add(InboundReceipt(provider="sms", external_id="SM-x", received_at=OLD))
                    await uow.commit()
            finally:
                await ctx.engine.dispose()

        asyncio.run(old_receipt())
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
        assert app.main(["purge"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["receipts"] == 1

    @pytest.mark.parametrize(
        ("name", "value"),
        [("RETENTION_RECEIPT_DAYS", "1"), ("RETENTION_DAYS", "-1"), ("RETENTION_HOUR_UTC", "24")],
    )
    def test_periods_that_would_lose_a_guarantee_are_refused(self, monkeypatch, name, value):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError, match=name.lower()):
            Settings()


class TestConcurrentTraffic:
    async def test_a_conversation_in_use_is_skipped_not_waited_for(self, at_now, acme):
        """A turn holding the conversation row: the purge passes it by (PostgreSQL row locks)."""
        ctx = at_now
        if not is_postgres(ctx.engine):
            pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
        await load_small_plan(ctx, acme.retailer_id)
        await talking(ctx, ADA, OLD).say("where is my parcel")
        await mark_sent(ctx)
        async with ctx.uow() as turn:
            await turn.session.exec(select(Conversation).where(Conversation.address == ADA).with_for_update())
            purged = await asyncio.wait_for(purge_expired(ctx, policy=POLICY), timeout=10)
            assert purged.counts.get("conversations", 0) == 0
        assert (await purge_expired(ctx, policy=POLICY)).counts["conversations"] == 1
