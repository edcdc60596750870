"""The outbox sender: claims and leases, restarts, backoff, rate limits, forward-only statuses."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from app import build_context, create_app
from channels.base import OutcomeUnknownError, PermanentSendError, SendResult, TransientSendError
from channels.outbox_worker import (
    OutboxWorker,
    advance_status,
    backoff,
    claim,
    drain,
    register_rate_limit,
    senders,
)
from channels.ratelimit import Limit, RateLimiter, redis_key
from core.config import Settings
from core.consent import set_opt_out
from core.context import AppContext
from core.models import Channel, OutboxMessage, OutboxStatus, Recipient
from core.outbox import enqueue
from core.redis import SharedRedis
from tests.twilio_support import twilio_settings

T0 = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


class RecordingSender:
    """A Sender that records what it was given and answers from a script (results or errors)."""

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.sent: list[OutboxMessage] = []

    async def send(self, message: OutboxMessage) -> SendResult:
        self.sent.append(message)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return SendResult(provider_id=f"P{message.id}-{len(self.sent)}", segments=2, encoding="GSM-7")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return twilio_settings(
        database_url, outbox_max_attempts=3, outbox_backoff_seconds=10.0, outbox_lease_seconds=60.0
    )


@pytest.fixture
def clock(ctx: AppContext) -> list[datetime]:
    now = [T0]
    ctx.clock = lambda: now[0]
    return now


@pytest.fixture
def sender(ctx: AppContext) -> RecordingSender:
    fake = RecordingSender()
    senders(ctx)[Channel.telegram] = fake
    return fake


async def put(
    ctx: AppContext, key: str = "m1", channel: Channel = Channel.telegram, at: datetime = T0, **fields: Any
) -> int:
    async with ctx.uow() as uow:
        row = await enqueue(
            uow.session,
            channel=channel,
            to_address="4242",
            body="hi",
            idempotency_key=key,
            not_before=at,
            **fields,
        )
        await uow.commit()
        return row.id or 0


async def row_of(ctx: AppContext, row_id: int) -> OutboxMessage:
    async with ctx.uow() as uow:
        row = await uow.session.get(OutboxMessage, row_id)
        assert row is not None
        return row


class TestDrain:
    async def test_a_due_row_is_sent_once_and_its_provider_id_kept(self, ctx, clock, sender):
        row_id = await put(ctx)
        assert (await drain(ctx)).sent == 1
        assert (await drain(ctx)).handled == 0
        row = await row_of(ctx, row_id)
        assert (row.status, row.provider_id, row.segments, row.attempts) == (
            OutboxStatus.queued,
            f"P{row_id}-1",
            2,
            1,
        )
        assert row.claimed_until is None and row.sent_at == T0
        assert len(sender.sent) == 1

    async def test_a_row_not_due_yet_waits(self, ctx, clock, sender):
        await put(ctx, at=T0 + timedelta(minutes=5))
        assert (await drain(ctx)).handled == 0
        clock[0] = T0 + timedelta(minutes=5)
        assert (await drain(ctx)).sent == 1

    async def test_rows_of_a_channel_without_sender_are_left_for_the_process_that_has_one(
        self, ctx, clock, sender
    ):
        row_id = await put(ctx, channel=Channel.web)
        assert (await drain(ctx)).handled == 0
        assert (await row_of(ctx, row_id)).status == OutboxStatus.pending


class TestOptOut:
    async def test_a_message_queued_before_the_recipient_opted_out_is_suppressed_not_sent(
        self, ctx, clock, sender, acme
    ):
        async with ctx.uow() as uow:
            recipient = Recipient(retailer_id=acme.retailer_id, phone="+14165550101")
            set_opt_out(recipient, Channel.telegram, True, T0)
            uow.session.add(recipient)
            await uow.commit()
            recipient_id = recipient.id
        notice = await put(ctx, key="notice", recipient_id=recipient_id, template_key="eta")
        confirmation = await put(ctx, key="confirm", recipient_id=recipient_id, template_key="optout")
        report = await drain(ctx)
        assert (report.suppressed, report.sent) == (1, 1)
        assert [m.id for m in sender.sent] == [confirmation]
        row = await row_of(ctx, notice)
        assert (row.status, row.attempts) == (OutboxStatus.suppressed, 0)
        assert "opted out" in row.last_error


class TestRetries:
    async def test_transient_errors_back_off_exponentially_then_fail(self, ctx, clock, sender):
        sender.script = [TransientSendError("503"), TransientSendError("503"), TransientSendError("503")]
        row_id = await put(ctx)
        await drain(ctx)
        first = await row_of(ctx, row_id)
        assert first.status == OutboxStatus.pending and first.last_error == "503"
        assert T0 + timedelta(seconds=5) <= first.next_attempt_at <= T0 + timedelta(seconds=10)
        clock[0] = first.next_attempt_at
        await drain(ctx)
        second = await row_of(ctx, row_id)
        assert timedelta(seconds=10) <= second.next_attempt_at - clock[0] <= timedelta(seconds=20)
        clock[0] = second.next_attempt_at
        await drain(ctx)
        last = await row_of(ctx, row_id)
        assert (last.status, last.attempts) == (OutboxStatus.failed, 3)
        assert last.last_error == "gave up after 3 attempts: 503"

    async def test_retry_after_is_honoured(self, ctx, clock, sender):
        sender.script = [TransientSendError("429", retry_after=120)]
        row_id = await put(ctx)
        await drain(ctx)
        assert (await row_of(ctx, row_id)).next_attempt_at >= T0 + timedelta(seconds=120)

    async def test_a_permanent_error_fails_at_once(self, ctx, clock, sender):
        sender.script = [PermanentSendError("blocked by the user")]
        row_id = await put(ctx)
        report = await drain(ctx)
        row = await row_of(ctx, row_id)
        assert (report.failed, row.status, row.last_error, row.attempts) == (
            1,
            OutboxStatus.failed,
            "blocked by the user",
            1,
        )

    async def test_an_unknown_outcome_marks_the_row_uncertain_for_the_next_attempt(self, ctx, clock, sender):
        sender.script = [OutcomeUnknownError("timeout")]
        row_id = await put(ctx)
        await drain(ctx)
        row = await row_of(ctx, row_id)
        assert row.uncertain_since == T0
        clock[0] = row.next_attempt_at
        await drain(ctx)
        assert sender.sent[-1].uncertain_since == T0  # the sender is told to ask the provider first
        assert (await row_of(ctx, row_id)).uncertain_since is None

    async def test_a_crashing_sender_does_not_lose_the_message(self, ctx, clock, sender):
        sender.script = [RuntimeError("bug")]
        row_id = await put(ctx)
        await drain(ctx)
        row = await row_of(ctx, row_id)
        assert row.status == OutboxStatus.pending and "RuntimeError" in row.last_error


class TestRestart:
    async def test_rows_claimed_by_a_worker_that_died_are_claimed_again_after_the_lease(
        self, ctx, clock, sender, settings
    ):
        row_id = await put(ctx)
        claimed = await claim(ctx, [Channel.telegram])  # ...and the process dies before sending
        assert [r.id for r in claimed] == [row_id]
        assert (await drain(ctx)).handled == 0  # leased: nobody else takes it

        restarted = build_context(settings)
        try:
            restarted.clock = lambda: T0 + timedelta(seconds=61)
            replacement = RecordingSender()
            senders(restarted)[Channel.telegram] = replacement
            assert (await drain(restarted)).sent == 1
            assert replacement.sent[0].uncertain_since == T0  # it may have gone out: check first
            row = await row_of(restarted, row_id)
            assert (row.status, row.attempts) == (OutboxStatus.queued, 2)
        finally:
            await restarted.engine.dispose()

    async def test_a_worker_whose_lease_ran_out_does_not_overwrite_the_new_owner(self, ctx, clock, sender):
        row_id = await put(ctx)
        (stale,) = await claim(ctx, [Channel.telegram])
        clock[0] = T0 + timedelta(seconds=61)
        await drain(ctx)  # a second worker re-claims and sends
        from channels.outbox_worker import send_claimed

        await send_claimed(ctx, stale)  # the first one wakes up late
        row = await row_of(ctx, row_id)
        assert (row.status, row.provider_id) == (OutboxStatus.queued, f"P{row_id}-1")


class TestConcurrentWorkers:
    async def test_two_workers_on_postgresql_never_claim_the_same_row(self, ctx, clock, sender, settings):
        if ctx.engine.dialect.name != "postgresql":
            pytest.skip("SQLite has one writer: one worker process")
        ids = {await put(ctx, key=f"k{i}") for i in range(20)}
        other = build_context(settings)
        other.clock = ctx.clock
        try:
            first, second = await asyncio.gather(
                claim(ctx, [Channel.telegram], limit=15), claim(other, [Channel.telegram], limit=15)
            )
        finally:
            await other.engine.dispose()
        a, b = {r.id for r in first}, {r.id for r in second}
        assert not a & b
        assert a | b == ids


class TestRateLimits:
    async def test_a_chat_limit_defers_without_spending_attempts(self, ctx, clock, sender):
        limiter_time = [0.0]
        ctx.components["rate_limiter"] = RateLimiter(clock=lambda: limiter_time[0])
        register_rate_limit(
            ctx, Channel.telegram, lambda row: [Limit("tg", 30, 30), Limit(f"tg:{row.to_address}", 1)]
        )
        ids = [await put(ctx, key=f"k{i}") for i in range(3)]
        report = await drain(ctx)
        assert (report.sent, report.deferred) == (1, 2)
        waiting = [await row_of(ctx, i) for i in ids[1:]]
        assert all(r.attempts == 0 and r.status == OutboxStatus.pending for r in waiting)
        assert all(r.next_attempt_at == T0 + timedelta(seconds=1) for r in waiting)

    def test_a_token_bucket_refills_at_its_rate(self):
        now = [0.0]
        limiter = RateLimiter(clock=lambda: now[0])
        limits = [Limit("n", rate=2, burst=2)]
        assert [limiter.try_acquire(limits) for _ in range(3)] == [0.0, 0.0, 0.5]
        now[0] = 0.5
        assert limiter.try_acquire(limits) == 0.0

    def test_a_send_takes_from_every_bucket_or_from_none(self):
        limiter = RateLimiter(clock=lambda: 0.0)
        assert limiter.try_acquire([Limit("all", 30, 30), Limit("chat:1", 1)]) == 0.0
        assert limiter.try_acquire([Limit("all", 30, 30), Limit("chat:1", 1)]) == 1.0
        assert limiter.try_acquire([Limit("all", 30, 30), Limit("chat:2", 1)]) == 0.0  # 28 left overall


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def forget_buckets(shared: SharedRedis) -> None:
    assert shared.client is not None
    keys = await shared.client.keys("doorstep:rate:*")
    if keys:
        await shared.client.delete(*keys)


@pytest.fixture
async def shared_redis() -> AsyncIterator[SharedRedis]:
    shared = SharedRedis(REDIS_URL)
    await shared.start()
    if not shared.available:
        await shared.stop()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    await forget_buckets(shared)
    yield shared
    await forget_buckets(shared)
    await shared.stop()


class TestSharedRateLimits:
    async def test_two_processes_share_a_sender_numbers_bucket_through_redis(self, shared_redis: SharedRedis):
        first, second = RateLimiter(shared=lambda: shared_redis), RateLimiter(shared=lambda: shared_redis)
        limits = [Limit("twilio:+15145550100", rate=0.1, burst=2)]
        assert await first.acquire(limits) == 0
        assert await second.acquire(limits) == 0
        wait = await first.acquire(limits)
        assert 9 < wait <= 10  # the third send waits for a token, whichever process makes it
        assert await second.acquire(limits) > 9

    async def test_a_send_takes_from_all_its_shared_buckets_or_from_none(self, shared_redis: SharedRedis):
        limiter = RateLimiter(shared=lambda: shared_redis)
        assert await limiter.acquire([Limit("tg", 0.001, 30), Limit("tg:1", 1)]) == 0
        assert await limiter.acquire([Limit("tg", 0.001, 30), Limit("tg:1", 1)]) > 0
        assert await limiter.acquire([Limit("tg", 0.001, 30), Limit("tg:2", 1)]) == 0
        assert shared_redis.client is not None
        level = await shared_redis.client.hget(redis_key("tg"), "tokens")
        assert 27.9 < float(level) < 28.1

    async def test_keys_in_redis_do_not_name_the_chat_or_number(self, shared_redis: SharedRedis):
        await RateLimiter(shared=lambda: shared_redis).acquire([Limit("twilio:+15145550100", 1)])
        assert shared_redis.client is not None
        keys = [k.decode() for k in await shared_redis.client.keys("doorstep:rate:*")]
        assert keys and not any("5145550100" in k for k in keys)

    async def test_without_redis_each_process_counts_for_itself(self):
        down = SharedRedis("redis://127.0.0.1:9/0", timeout_seconds=0.1)
        await down.start()
        try:
            limiter = RateLimiter(shared=lambda: down)
            assert await limiter.acquire([Limit("n", 1)]) == 0  # in this process's memory
            assert await limiter.acquire([Limit("n", 1)]) > 0
        finally:
            await down.stop()


class TestStatusOrder:
    @pytest.mark.parametrize(
        ("start", "news", "end"),
        [
            (OutboxStatus.queued, OutboxStatus.sent, OutboxStatus.sent),
            (OutboxStatus.sent, OutboxStatus.queued, OutboxStatus.sent),
            (OutboxStatus.delivered, OutboxStatus.sent, OutboxStatus.delivered),
            (OutboxStatus.read, OutboxStatus.delivered, OutboxStatus.read),
            (OutboxStatus.sent, OutboxStatus.undelivered, OutboxStatus.undelivered),
            (OutboxStatus.failed, OutboxStatus.delivered, OutboxStatus.failed),
            (OutboxStatus.delivered, OutboxStatus.failed, OutboxStatus.delivered),
            (OutboxStatus.sending, OutboxStatus.delivered, OutboxStatus.delivered),
        ],
    )
    def test_statuses_only_move_forward(self, start, news, end):
        row = OutboxMessage(channel=Channel.sms, to_address="+1", idempotency_key="k", status=start)
        advance_status(row, news, T0)
        assert row.status == end

    def test_backoff_doubles_within_jitter_and_respects_the_cap(self):
        for attempt, (low, high) in {1: (1, 2), 2: (2, 4), 3: (4, 8), 10: (50, 100)}.items():
            assert low <= backoff(attempt, 2.0, 100.0) <= high
        assert backoff(1, 2.0, 100.0, retry_after=30) == 30


class TestBackgroundWorker:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return twilio_settings(database_url, outbox_enabled=True, outbox_poll_seconds=0.05)

    @pytest.fixture
    async def running(self, settings: Settings, ctx: AppContext) -> AsyncIterator[AppContext]:
        app = create_app(settings, ctx=ctx)
        async with app.router.lifespan_context(app), AsyncClient():
            yield ctx

    async def test_the_app_starts_a_worker_that_sends_what_is_queued(self, running: AppContext):
        fake = RecordingSender()
        senders(running)[Channel.web] = fake
        assert isinstance(running.components["outbox_worker"], OutboxWorker)
        row_id = await put(running, channel=Channel.web, at=datetime.now(UTC))
        running.components["outbox_worker"].wake()
        for _ in range(500):
            if fake.sent:
                break
            await asyncio.sleep(0.02)
        assert [m.id for m in fake.sent] == [row_id]
        for _ in range(500):
            if (await row_of(running, row_id)).status == OutboxStatus.queued:
                break
            await asyncio.sleep(0.02)
        assert (await row_of(running, row_id)).status == OutboxStatus.queued

    async def test_stopping_the_app_lets_a_send_in_flight_finish(self, settings: Settings, ctx: AppContext):
        started = asyncio.Event()

        class SlowSender(RecordingSender):
            async def send(self, message: OutboxMessage) -> SendResult:
                started.set()
                await asyncio.sleep(0.3)
                return await super().send(message)

        app = create_app(settings, ctx=ctx)
        async with app.router.lifespan_context(app):
            senders(ctx)[Channel.web] = SlowSender()
            row_id = await put(ctx, channel=Channel.web, at=datetime.now(UTC))
            ctx.components["outbox_worker"].wake()
            await asyncio.wait_for(started.wait(), timeout=5)
        row = await row_of(ctx, row_id)
        assert (row.status, row.claimed_until) == (OutboxStatus.queued, None)
