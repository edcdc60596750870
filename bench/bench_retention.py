"""Benchmark: the daily retention purge on PostgreSQL, and what live traffic feels while it runs.

Seeds a fresh database with `--conversations` SMS conversations as a busy carrier's would hold them:
each with four messages (two in, two out), three outbox rows (two replies, one notification), one
sent notification and two webhook receipts. Half the conversations fell silent 200 days ago, half 10
days ago; receipts are spread over the last 30 days. Then, at once:

- the purge (`core.retention.purge_expired`, the default policy: 180 days, receipts 7 days, batches
  of 500) on its own engine, timing each of its transactions (the time it holds its locks);
- a probe on another engine standing for conversation turns on the conversations kept: lock and stamp
  one (`UPDATE ... RETURNING`), insert a message, commit, one after another.

Prints rows deleted by kind and per second, the purge's transactions (p50, max), and the probe's
latency (p50, p99, max) during the purge against the same probe for as long without it.

Usage: .venv/bin/python bench/bench_retention.py [--conversations 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402 - after the path is set
from sqlalchemy import event, insert, text  # noqa: E402

from app import build_context  # noqa: E402
from core.config import Settings  # noqa: E402
from core.context import AppContext  # noqa: E402
from core.models import (  # noqa: E402
    Conversation,
    Delivery,
    InboundReceipt,
    Message,
    Notification,
    OutboxMessage,
    Recipient,
)
from core.retention import purge_expired  # noqa: E402
from core.tenants import create_retailer  # noqa: E402
from tests.scale_support import fresh_database, postgres_reachable  # noqa: E402

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
SILENT = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=10)
CHUNK = 5000


def context(url: str) -> AppContext:
    settings = Settings(
        environment="test",
        database_url=url,
        scheduler_enabled=False,
        outbox_enabled=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    ctx = build_context(settings)
    ctx.clock = lambda: NOW
    return ctx


async def insert_chunked(ctx: AppContext, model: Any, rows: list[dict[str, Any]]) -> None:
    async with ctx.engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            await conn.execute(insert(model), rows[start : start + CHUNK])


async def seed(ctx: AppContext, count: int) -> None:
    async with ctx.uow() as uow:
        retailer, _key = await create_retailer(uow.session, "bench", "Bench Home")
        await uow.commit()
        retailer_id = retailer.id
    ids = range(1, count + 1)
    phone = "+1416{:07d}".format
    await insert_chunked(
        ctx,
        Recipient,
        [
            {
                "id": i,
                "retailer_id": retailer_id,
                "name": f"R {i}",
                "phone": phone(i),
                "channel_consent": {},
                "created_at": SILENT,
            }
            for i in ids
        ],
    )
    await insert_chunked(
        ctx,
        Delivery,
        [
            {
                "id": i,
                "retailer_id": retailer_id,
                "tracking": f"B{i:07d}",
                "recipient_id": i,
                "day": date(2026, 5, 16),
                "timezone": "America/Toronto",
                "status": "delivered",
                "address": f"{i} Queen St W",
                "size": [],
                "skills": [],
                "proof": {},
                "telegram_link_token": f"tok{i:021d}",
                "created_at": SILENT,
                "updated_at": SILENT,
            }
            for i in ids
        ],
    )

    def when(i: int) -> datetime:
        return SILENT if i % 2 else RECENT

    common = {
        "channel": "sms",
        "from_address": "+15145550100",
        "status": "sent",
        "options": [],
        "content_variables": {},
        "attachments": [],
    }
    await insert_chunked(
        ctx,
        Conversation,
        [
            {
                "id": i,
                "channel": "sms",
                "address": phone(i),
                "retailer_id": retailer_id,
                "recipient_id": i,
                "delivery_id": i,
                "state": {},
                "created_at": when(i),
                "updated_at": when(i),
            }
            for i in ids
        ],
    )
    await insert_chunked(
        ctx,
        OutboxMessage,
        [
            {
                **common,
                "id": 3 * i + n,
                "to_address": phone(i),
                "retailer_id": retailer_id,
                "conversation_id": i,
                "recipient_id": i,
                "body": f"Your parcel B{i:07d} arrives between 2 and 4 pm at {i} Queen St W.",
                "idempotency_key": f"k{3 * i + n}",
                "created_at": when(i),
            }
            for i in ids
            for n in range(3)
        ],
    )
    await insert_chunked(
        ctx,
        Message,
        [
            {
                "conversation_id": i,
                "channel": "sms",
                "direction": "outbound" if n % 2 else "inbound",
                "author": "bot" if n % 2 else "recipient",
                "text": "Where is my parcel?" if n % 2 == 0 else f"It arrives at {i} Queen St W.",
                "outbox_id": 3 * i + n // 2 if n % 2 else None,
                "options": [],
                "attachments": [],
                "created_at": when(i),
            }
            for i in ids
            for n in range(4)
        ],
    )
    await insert_chunked(
        ctx,
        Notification,
        [
            {
                "retailer_id": retailer_id,
                "delivery_id": i,
                "event": "delivered",
                "dedupe_key": f"delivered:{i}",
                "due_at": when(i),
                "status": "sent",
                "outbox_id": 3 * i + 2,
                "context": {},
                "created_at": when(i),
            }
            for i in ids
        ],
    )
    await insert_chunked(
        ctx,
        InboundReceipt,
        [
            {
                "provider": "sms",
                "external_id": f"SM{i:08d}{n}",
                "received_at": NOW - timedelta(days=30 * (1 - i / count)),
            }
            for i in ids
            for n in range(2)
        ],
    )
    with psycopg.connect(ctx.settings.database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # as autovacuum would have, long before the purge


def transaction_timer(ctx: AppContext) -> list[float]:
    """The duration of every transaction on `ctx`'s engine, from BEGIN to COMMIT."""
    durations: list[float] = []
    started: dict[int, float] = {}
    engine = ctx.engine.sync_engine

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        started[id(conn)] = time.perf_counter()

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        if id(conn) in started:
            durations.append(time.perf_counter() - started.pop(id(conn)))

    return durations


async def probe(ctx: AppContext, count: int, stop: asyncio.Event) -> list[float]:
    """Turn-like transactions on the conversations kept (the even ids), until `stop`."""
    latencies: list[float] = []
    stamp = text("UPDATE conversation SET updated_at = :now WHERE id = :id RETURNING id")
    message = text(
        "INSERT INTO message (conversation_id, channel, direction, author, text, options, attachments,"
        " internal_note, created_at)"
        " VALUES (:id, 'sms', 'inbound', 'recipient', 'hi', '[]', '[]', false, :now)"
    )
    n = 0
    while not stop.is_set():
        conversation_id = 2 * (n % (count // 2)) + 2
        n += 1
        started = time.perf_counter()
        async with ctx.engine.begin() as conn:
            await conn.execute(stamp, {"now": NOW, "id": conversation_id})
            await conn.execute(message, {"now": NOW, "id": conversation_id})
        latencies.append(time.perf_counter() - started)
    return latencies


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    median, worst = statistics.median(ordered), ordered[-1]
    return f"p50 {median * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {worst * 1e3:.1f} ms"


async def run(url: str, count: int) -> None:
    seeding = context(url)
    started = time.perf_counter()
    await seed(seeding, count)
    await seeding.engine.dispose()
    seconds = time.perf_counter() - started
    print(f"seeded {count:,} conversations, {count * 13:,} rows in all, in {seconds:.1f} s")

    purging, probing = context(url), context(url)
    try:
        stop = asyncio.Event()
        baseline_task = asyncio.create_task(probe(probing, count, stop))
        await asyncio.sleep(3.0)
        stop.set()
        baseline = await baseline_task

        durations = transaction_timer(purging)
        stop = asyncio.Event()
        during_task = asyncio.create_task(probe(probing, count, stop))
        started, cpu = time.perf_counter(), time.process_time()
        purged = await purge_expired(purging)
        elapsed = time.perf_counter() - started
        stop.set()
        during = await during_task
    finally:
        await purging.engine.dispose()
        await probing.engine.dispose()
    kinds = ", ".join(f"{kind} {rows:,}" for kind, rows in purged.counts.items())
    print(
        f"purge: {purged.total:,} rows in {elapsed:.1f} s = {purged.total / elapsed:,.0f} rows/s "
        f"(this process's CPU {time.process_time() - cpu:.1f} s, shared with the probe; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"  deleted: {kinds}")
    print(f"  its {len(durations)} transactions: {quantiles(durations)}")
    print(f"probe (lock, stamp, insert, commit) alone: {len(baseline)} turns, {quantiles(baseline)}")
    print(f"probe during the purge:                   {len(during)} turns, {quantiles(during)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=40_000)
    args = parser.parse_args()
    if not postgres_reachable():
        print("PostgreSQL is not reachable at 127.0.0.1:5432: nothing measured")
        return
    with fresh_database("doorstep_bench_retention") as url:
        asyncio.run(run(url, args.conversations))


if __name__ == "__main__":
    import logging

    logging.disable(logging.INFO)
    main()
