"""Agents' console benchmark: the inbox query, a search, a conversation view with its context
(history, timeline, map, window offers), and the live fan-out, on the demo day (SQLite).

Seeds `--conversations` conversations with `--messages` messages each (and one outbox row per
conversation, every tenth of them failed) over the demo day's recipients, then times each read as
the console does it for the demo agent of one retailer. Prints median and 95th percentile. Exits 1
when the inbox's median exceeds 100 ms or the conversation view's exceeds 300 ms.

    .venv/bin/python bench/bench_console.py [--conversations 2000] [--messages 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert
from sqlmodel import col, select

from app import build_context
from console.live import LiveHub
from console.pages import context_data
from console.queries import InboxFilters, inbox, load_conversation
from core.config import Settings
from core.db import migrate
from core.logging import configure_logging
from core.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    Direction,
    Message,
    OutboxMessage,
    OutboxStatus,
    Recipient,
    Retailer,
)
from scheduling.demo import load_demo


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def timed(label: str, runs: int, work: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(3):  # warm the caches: the figures are for an agent working, not the first click
        await work()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await work()
        times.append((time.perf_counter() - start) * 1000)
    median = statistics.median(times)
    print(f"{label:<44} median {median:7.1f} ms   p95 {percentile(times, 0.95):7.1f} ms   ({runs} runs)")
    return median


async def seed(ctx: Any, conversations: int, messages: int) -> tuple[int, int]:
    async with ctx.uow() as uow:
        recipients = list((await uow.session.exec(select(Recipient).order_by(col(Recipient.id)))).all())
        deliveries = {
            d.recipient_id: d for d in (await uow.session.exec(select(Delivery))).all() if d.recipient_id
        }
    now = ctx.clock()
    channels = [Channel.sms, Channel.whatsapp, Channel.telegram, Channel.web]
    batch = 500
    for first in range(0, conversations, batch):
        async with ctx.uow() as uow:
            rows = []
            for i in range(first, min(first + batch, conversations)):
                recipient = recipients[i % len(recipients)]
                delivery = deliveries.get(recipient.id)
                status = ConversationStatus.needs_person if i % 17 == 0 else ConversationStatus.open
                rows.append(
                    Conversation(
                        channel=channels[i % len(channels)],
                        address=f"{recipient.phone}-{i}",
                        retailer_id=recipient.retailer_id,
                        recipient_id=recipient.id,
                        delivery_id=delivery.id if delivery else None,
                        status=status,
                        updated_at=now - timedelta(minutes=i),
                    )
                )
            uow.session.add_all(rows)
            await uow.session.flush()
            message_rows = [
                {
                    "conversation_id": conversation.id,
                    "channel": conversation.channel,
                    "direction": Direction.inbound if k % 2 == 0 else Direction.outbound,
                    "author": Author.recipient if k % 2 == 0 else Author.bot,
                    "text": f"message {k} of conversation {conversation.id}",
                    "options": [],
                    "internal_note": False,
                    "created_at": conversation.updated_at - timedelta(seconds=messages - k),
                }
                for conversation in rows
                for k in range(messages)
            ]
            connection = await uow.session.connection()
            await connection.execute(insert(Message), message_rows)
            for conversation in rows:
                uow.session.add(
                    OutboxMessage(
                        retailer_id=conversation.retailer_id,
                        conversation_id=conversation.id,
                        recipient_id=conversation.recipient_id,
                        channel=conversation.channel,
                        to_address=conversation.address,
                        body="notice",
                        idempotency_key=f"bench:{conversation.id}",
                        status=OutboxStatus.failed
                        if (conversation.id or 0) % 10 == 0
                        else OutboxStatus.delivered,
                    )
                )
            await uow.commit()
    async with ctx.uow() as uow:
        retailer = (await uow.session.exec(select(Retailer).where(Retailer.slug == "north-outfitters"))).one()
        sample = (
            await uow.session.exec(
                select(Conversation.id).where(
                    Conversation.retailer_id == retailer.id, col(Conversation.delivery_id).is_not(None)
                )
            )
        ).first()
        assert retailer.id is not None and sample is not None
        return retailer.id, sample


async def run(conversations: int, messages: int, runs: int) -> int:
    configure_logging("WARNING", json=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate(url)
        settings = Settings(database_url=url, scheduler_enabled=False, outbox_enabled=False, _env_file=None)
        ctx = build_context(settings)
        try:
            await load_demo(ctx)
            started = time.perf_counter()
            retailer_id, conversation_id = await seed(ctx, conversations, messages)
            print(
                f"seeded {conversations} conversations x {messages} messages in"
                f" {time.perf_counter() - started:.1f} s (demo day, SQLite)"
            )
            ids = frozenset({retailer_id})

            async def read_inbox(filters: InboxFilters) -> None:
                async with ctx.uow() as uow:
                    rows = await inbox(uow.session, ids, 1, filters)
                    assert rows

            async def view() -> None:
                async with ctx.uow() as uow:
                    loaded = await load_conversation(uow.session, conversation_id, ids, now=ctx.clock())
                    assert loaded.delivery is not None
                    await context_data(uow, loaded.delivery, ctx.clock())

            inbox_ms = await timed(
                "inbox (100 rows, needs a person first)", runs, lambda: read_inbox(InboxFilters())
            )
            await timed(
                "inbox filtered: needs a person", runs, lambda: read_inbox(InboxFilters(needs_person=True))
            )
            await timed("inbox search by tracking number", runs, lambda: read_inbox(InboxFilters(q="NO26")))
            view_ms = await timed("conversation view + context (timeline, offers)", runs, view)

            hub = LiveHub(ctx)
            subscribers = [hub.subscribe(frozenset({1 + i % 2})) for i in range(200)]

            class Event:
                def __init__(self, n: int) -> None:
                    self.conversation_id, self.retailer_id = n, 1 + n % 2

            events = [Event(n) for n in range(200)]
            start = time.perf_counter()
            await hub.publish(events)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - start
            delivered = sum(s.queue.qsize() for s in subscribers)
            print(
                f"live fan-out in process: 200 notices to 200 agents ({delivered} deliveries)"
                f" in {elapsed * 1000:.1f} ms ({delivered / elapsed:,.0f} deliveries/s)"
            )
        finally:
            await ctx.engine.dispose()
    failed = inbox_ms > 100 or view_ms > 300
    if failed:
        print("FAIL: inbox median above 100 ms or conversation view above 300 ms")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.conversations, args.messages, args.runs)))
