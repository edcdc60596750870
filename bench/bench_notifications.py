"""Benchmark: a 100,000-delivery day of notifications on SQLite.

1. Render and enqueue: 100,000 due "window assigned" notifications (three locales, the real default
   templates, babel windows in the plan's time zone) fired by `fire_notifications` in batches of
   2,000: one outbox row, one conversation and one message row each. Prints notifications/s.
2. Memory: tracemalloc's peak during the firing and the process's peak RSS.
3. Send rate: the real outbox worker (`drain_once`, its token buckets) sends to a fake provider
   sender with the SMS limit set to `--rate` per second for `--seconds`; prints the rate held.

Usage: .venv/bin/python bench/bench_notifications.py [--deliveries 100000] [--budget 15] [--rate 10]
       [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from app import build_context
from channels.base import SendResult
from channels.outbox_worker import drain_once, register_rate_limit, senders
from channels.ratelimit import Limit
from core.config import Settings
from core.db import migrate
from core.models import Channel, Delivery, Notification, OutboxMessage, Recipient
from core.tenants import create_retailer
from notifications.outreach import fire_notifications

DAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # Wednesday 10:00 in Toronto: not quiet
LOCALES = ("en", "fr_CA", "es")


class FakeProvider:
    """A Sender that accepts everything at once and records when."""

    def __init__(self) -> None:
        self.sent_at: list[float] = []

    async def send(self, message: OutboxMessage) -> SendResult:
        self.sent_at.append(time.perf_counter())
        return SendResult(provider_id=f"SM{message.id:032d}", segments=1, encoding="GSM-7")


async def seed(ctx, deliveries: int) -> None:
    async with ctx.uow() as uow:
        retailer, _key = await create_retailer(uow.session, "bench", "Bench Home")
        await uow.commit()
        retailer_id = retailer.id
    start_of_day = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)  # 08:00 EST
    async with ctx.engine.begin() as conn:
        await conn.execute(
            insert(Recipient),
            [
                {
                    "id": i,
                    "retailer_id": retailer_id,
                    "name": f"Recipient {i}",
                    "phone": f"+1416{i:07d}",
                    "locale": LOCALES[i % 3],
                    "channel_consent": {},
                    "created_at": NOW,
                }
                for i in range(1, deliveries + 1)
            ],
        )
        await conn.execute(
            insert(Delivery),
            [
                {
                    "id": i,
                    "retailer_id": retailer_id,
                    "tracking": f"B{i:07d}",
                    "recipient_id": i,
                    "day": DAY,
                    "timezone": "America/Toronto",
                    "status": "scheduled",
                    "window_start": start_of_day + timedelta(hours=2 * (i % 6)),
                    "window_end": start_of_day + timedelta(hours=2 * (i % 6) + 2),
                    "address": f"{i} Queen St W",
                    "size": [],
                    "skills": [],
                    "proof": {},
                    "telegram_link_token": f"tok{i:021d}",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(1, deliveries + 1)
            ],
        )
        await conn.execute(
            insert(Notification),
            [
                {
                    "id": i,
                    "retailer_id": retailer_id,
                    "delivery_id": i,
                    "event": "window_assigned",
                    "dedupe_key": f"window_assigned:{i}",
                    "due_at": NOW,
                    "status": "scheduled",
                    "context": {
                        "window_start": (start_of_day + timedelta(hours=2 * (i % 6))).isoformat(),
                        "window_end": (start_of_day + timedelta(hours=2 * (i % 6) + 2)).isoformat(),
                    },
                    "created_at": NOW,
                }
                for i in range(1, deliveries + 1)
            ],
        )


async def render_and_enqueue(ctx, deliveries: int, batch: int, budget: float) -> None:
    ids = list(range(1, deliveries + 1))
    # one batch under tracemalloc (it slows Python several times over), the rest timed without it
    tracemalloc.start()
    summary = await fire_notifications(ctx, ids[:batch], limit=batch)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sent = summary.sent
    started, cpu_started = time.perf_counter(), time.process_time()
    timed = 0
    for i in range(batch, deliveries, batch):
        summary = await fire_notifications(ctx, ids[i : i + batch], limit=batch)
        timed += summary.sent
        if time.perf_counter() - started > budget:
            break  # the machine's 60-second rule: the rest of the day is projected from the rate
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    sent += timed
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"render+enqueue: {timed} notifications in {elapsed:.1f} s = {timed / elapsed:,.0f}/s "
        f"(batches of {batch}); {cpu:.1f} CPU-s = {timed / cpu:,.0f}/CPU-s "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"memory: tracemalloc peak {peak / 1e6:.1f} MB for one batch of {batch}, peak RSS {rss_mb:.0f} MB")
    if sent < deliveries:
        print(
            f"  stopped after the {budget:.0f} s budget with {sent} of {deliveries} enqueued; the whole day "
            f"would take {deliveries / (timed / elapsed):.0f} s at this rate, "
            f"{deliveries / (timed / cpu):.0f} CPU-s"
        )


async def send_rate(ctx, rate: float, seconds: float) -> None:
    provider = FakeProvider()
    senders(ctx)[Channel.sms] = provider
    register_rate_limit(ctx, Channel.sms, lambda _m: [Limit("sms:shared", rate, 1.0)])
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        claimed, _report = await drain_once(ctx)
        if claimed == 0:
            await asyncio.sleep(0.005)
    times = provider.sent_at
    if len(times) < 2:
        print(f"send rate: {len(times)} sends in {seconds:.0f} s")
        return
    span = times[-1] - times[0]
    worst = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    print(
        f"send rate: limit {rate:g}/s, held {(len(times) - 1) / span:.1f}/s over {span:.1f} s "
        f"({len(times)} sends to the fake provider), busiest second {worst}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=10.0, help="the provider limit, sends per second")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--budget", type=float, default=15.0, help="seconds of timed firing at most")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate(url)
        settings = Settings(
            environment="test",
            database_url=url,
            scheduler_enabled=False,
            outbox_enabled=False,
            _env_file=None,  # type: ignore[call-arg]
        )
        ctx = build_context(settings)
        ctx.clock = lambda: NOW
        try:
            t0 = time.perf_counter()
            await seed(ctx, args.deliveries)
            print(
                f"seeded {args.deliveries} deliveries and due notifications "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            await render_and_enqueue(ctx, args.deliveries, args.batch, args.budget)
            origin = time.perf_counter()
            ctx.clock = lambda: NOW + timedelta(seconds=time.perf_counter() - origin)
            await send_rate(ctx, args.rate, args.seconds)
        finally:
            await ctx.engine.dispose()


if __name__ == "__main__":
    import logging

    logging.disable(logging.INFO)
    asyncio.run(main())
