"""Telegram end to end: signed webhook, real engine, outbox, real aiogram client, strict fake Bot API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from channels.outbox_worker import drain
from channels.ratelimit import RateLimiter
from core.context import AppContext
from core.models import Channel, Delivery, OutboxMessage, OutboxStatus, Recipient, Retailer
from scheduling.plans import import_plan
from tests import telegram_support
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.plans import small_plan
from tests.telegram_support import CHAT_ID, callback_update, contact_update, message_update, signed

fake_api = telegram_support.fake_api
settings = telegram_support.settings

LINK_TOKEN = "dlv_T001_k3y-token"


@pytest.fixture
async def linked_plan(ctx: AppContext, acme, client) -> int:
    """The small plan with a deep-link token on T001; answers T001's recipient id."""
    async with ctx.uow() as uow:
        retailer = await uow.session.get(Retailer, acme.retailer_id)
        await import_plan(uow, retailer, small_plan())
    async with ctx.uow() as uow:
        delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T001"))).one()
        delivery.telegram_link_token = LINK_TOKEN
        uow.session.add(delivery)
        recipient_id = delivery.recipient_id
        await uow.commit()
    assert recipient_id is not None
    return recipient_id


class Clock:
    """The outbox's clock, moved forward by the tests instead of waiting (also drives the rate limits)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def catch_up(self) -> None:
        """Rows written by the engine carry the wall clock: be at least there."""
        self.now = max(self.now, datetime.now(UTC))

    def monotonic(self) -> float:
        return self.now.timestamp()


@pytest.fixture
def clock(ctx: AppContext) -> Clock:
    clock = Clock()
    ctx.clock = clock
    ctx.components["rate_limiter"] = RateLimiter(clock=clock.monotonic)
    return clock


async def deliver(ctx: AppContext, clock: Clock) -> None:
    """Send everything, moving the clock past rate-limit waits and retries."""
    clock.catch_up()
    for _ in range(20):
        await drain(ctx)
        waiting = [r for r in await telegram_rows(ctx) if r.status == OutboxStatus.pending]
        if not waiting:
            return
        clock.now = max(clock.now, min(r.next_attempt_at for r in waiting)) + timedelta(milliseconds=1)
    raise AssertionError("the outbox did not empty")


async def post(client, update) -> None:
    response = await client.post("/webhooks/telegram", json=update, headers=signed())
    assert response.status_code == 200, response.text


async def telegram_rows(ctx: AppContext) -> list[OutboxMessage]:
    async with ctx.uow() as uow:
        query = (
            select(OutboxMessage).where(OutboxMessage.channel == Channel.telegram).order_by(OutboxMessage.id)
        )
        return list((await uow.session.exec(query)).all())


class TestDeepLinkAndButtons:
    async def test_start_token_links_the_chat_then_a_question_gets_a_keyboard_and_a_press_is_answered(
        self, client, ctx: AppContext, fake_api: FakeTelegramAPI, linked_plan: int, clock
    ):
        await post(client, message_update(f"/start {LINK_TOKEN}"))
        async with ctx.uow() as uow:
            recipient = await uow.session.get(Recipient, linked_plan)
            assert recipient is not None and recipient.telegram_chat_id == CHAT_ID
        await deliver(ctx, clock)
        greeting = fake_api.calls_to("sendMessage")
        assert greeting and all(c.params["chat_id"] == CHAT_ID for c in greeting)

        await post(client, message_update("Where is my parcel?"))
        await deliver(ctx, clock)
        reply = fake_api.calls_to("sendMessage")[-1]
        assert "T001" in reply.params["text"]
        keyboard = reply.params["reply_markup"]["inline_keyboard"]
        payloads = [button["callback_data"] for row in keyboard for button in row]
        assert payloads and all(1 <= len(p.encode()) <= 64 for p in payloads)
        assert fake_api.rejected == []

        sent_before = len(fake_api.calls_to("sendMessage"))
        press = callback_update(payloads[0])
        await post(client, press)
        [answer] = fake_api.calls_to("answerCallbackQuery")
        assert answer.params["callback_query_id"] == press["callback_query"]["id"]
        await deliver(ctx, clock)
        assert len(fake_api.calls_to("sendMessage")) > sent_before
        assert fake_api.rejected == []

    async def test_a_duplicate_update_is_processed_once(self, client, ctx, fake_api, linked_plan, clock):
        await post(client, message_update(f"/start {LINK_TOKEN}"))
        update = message_update("Where is my parcel?")
        await post(client, update)
        rows = len(await telegram_rows(ctx))
        await post(client, update)  # Telegram retried the same update_id
        assert len(await telegram_rows(ctx)) == rows
        await deliver(ctx, clock)
        assert len(fake_api.calls_to("sendMessage")) == rows


class TestContactSharing:
    async def test_an_unknown_chat_is_asked_for_its_number_and_sharing_it_links_the_recipient(
        self, client, ctx, fake_api, linked_plan, clock
    ):
        await post(client, message_update("hello"))
        await deliver(ctx, clock)
        ask = fake_api.calls_to("sendMessage")[-1]
        [[button]] = ask.params["reply_markup"]["keyboard"]
        assert button["request_contact"] is True
        await post(client, contact_update("14165550101", CHAT_ID))  # T001's phone, without the "+"
        async with ctx.uow() as uow:
            recipient = await uow.session.get(Recipient, linked_plan)
            assert recipient is not None and recipient.telegram_chat_id == CHAT_ID

    async def test_someone_elses_contact_links_nobody(self, client, ctx, fake_api, linked_plan):
        await post(client, contact_update("14165550101", 12345))
        async with ctx.uow() as uow:
            recipient = await uow.session.get(Recipient, linked_plan)
            assert recipient is not None and recipient.telegram_chat_id is None


class TestSendingThroughTheOutbox:
    async def test_a_5xx_is_retried_later_and_then_sent_once(self, client, ctx, fake_api, linked_plan, clock):
        await post(client, message_update(f"/start {LINK_TOKEN}"))
        fake_api.fail_next(count=1, status=500)
        clock.catch_up()
        report = await drain(ctx)
        assert report.retried == 1
        [row, *_] = await telegram_rows(ctx)
        assert row.status == OutboxStatus.pending and "telegram unavailable" in row.last_error
        assert row.next_attempt_at > clock.now
        await deliver(ctx, clock)
        rows = await telegram_rows(ctx)
        assert all(r.status == OutboxStatus.queued and r.provider_id for r in rows)
        assert len(fake_api.calls_to("sendMessage")) == len(rows)

    async def test_a_429_waits_at_least_the_retry_after_telegram_gave(
        self, client, ctx, fake_api, linked_plan, clock
    ):
        await post(client, message_update(f"/start {LINK_TOKEN}"))
        fake_api.rate_limit_next(retry_after=42)
        clock.catch_up()
        await drain(ctx)
        [row, *_] = await telegram_rows(ctx)
        assert row.status == OutboxStatus.pending
        assert row.next_attempt_at >= clock.now + timedelta(seconds=42)

    async def test_replies_to_one_chat_go_one_per_second(self, client, ctx, fake_api, linked_plan, clock):
        await post(client, message_update(f"/start {LINK_TOKEN}"))
        await post(client, message_update("Where is my parcel?"))
        clock.catch_up()
        report = await drain(ctx)
        assert (report.sent, report.deferred) == (1, len(await telegram_rows(ctx)) - 1)
        waiting = [r for r in await telegram_rows(ctx) if r.status == OutboxStatus.pending]
        assert all(r.attempts == 0 for r in waiting)  # a paced message spends no attempt
        first_wait = (min(r.next_attempt_at for r in waiting) - clock.now).total_seconds()
        assert first_wait == pytest.approx(1.0, abs=0.05)
