"""A claimed row whose lease could run out mid-send is handed back, never sent by two workers."""

from __future__ import annotations

from datetime import timedelta

from channels.base import SendResult
from channels.outbox_worker import claim, send_claimed, senders
from core.models import Channel, OutboxMessage, OutboxStatus
from core.outbox import enqueue


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[int] = []

    async def send(self, message: OutboxMessage) -> SendResult:
        self.sent.append(message.id or 0)
        return SendResult(provider_id=f"SM{message.id:032d}")


async def queue_one(ctx) -> None:
    async with ctx.uow() as uow:
        await enqueue(
            uow.session, channel=Channel.sms, to_address="+14165550100", body="hi", idempotency_key="k1"
        )
        await uow.commit()


class TestLeases:
    async def test_a_row_whose_lease_is_too_short_for_a_send_goes_back_unsent_without_spending_an_attempt(
        self, ctx
    ):
        sender = RecordingSender()
        senders(ctx)[Channel.sms] = sender
        await queue_one(ctx)
        [row] = await claim(ctx, [Channel.sms])
        row.claimed_until = row.claimed_until - timedelta(seconds=55)  # as if the batch waited 55 s
        async with ctx.uow() as uow:
            stored = await uow.session.get(OutboxMessage, row.id)
            stored.claimed_until = row.claimed_until
            uow.session.add(stored)
            await uow.commit()
        report = await send_claimed(ctx, row)
        assert report.deferred == 1 and sender.sent == []
        async with ctx.uow() as uow:
            stored = await uow.session.get(OutboxMessage, row.id)
            assert (stored.status, stored.claimed_until, stored.attempts) == (OutboxStatus.pending, None, 0)

        [again] = await claim(ctx, [Channel.sms])
        report = await send_claimed(ctx, again)
        assert report.sent == 1 and sender.sent == [again.id]

    async def test_a_row_taken_over_by_another_worker_is_not_handed_back_by_the_first(self, ctx):
        sender = RecordingSender()
        senders(ctx)[Channel.sms] = sender
        await queue_one(ctx)
        [row] = await claim(ctx, [Channel.sms])
        stale = row.model_copy(update={"claimed_until": row.claimed_until - timedelta(seconds=59)})
        report = await send_claimed(ctx, stale)  # its lease is not the stored one any more
        assert report.deferred == 1 and sender.sent == []
        async with ctx.uow() as uow:
            stored = await uow.session.get(OutboxMessage, row.id)
            assert stored.status == OutboxStatus.sending and stored.claimed_until == row.claimed_until
