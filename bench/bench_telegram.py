"""Benchmark: the Telegram channel, in and out.

1. Webhook: Doorstep in one uvicorn process (uvloop, httptools) on SQLite with the demo dataset, 200
   recipients linked to Telegram chats. The load generator (this process, httpx) posts updates with the
   secret header and fresh update_ids from those chats, at bounded concurrency for a bounded time:
   secret check, Update validation, aiogram's dispatcher, the conversation engine, the reply written to
   the outbox. Prints updates/s and p50/p99 latency.
2. Sender: TelegramSender through the real aiogram client to the loopback fake Bot API (which checks
   every call against the spec), unpaced: sendMessage/s with an inline keyboard, to show the sender is
   far above Telegram's own limit of about 30 messages/s.
3. Rendering: telegram_format.render of a reply with four options, in microseconds.

    .venv/bin/python bench/bench_telegram.py [--seconds 6] [--concurrency 16] [--sends 500]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_webhooks import free_port, server, wait_ready  # noqa: E402

from channels.telegram_bot import TelegramSender, build_bot  # noqa: E402
from channels.telegram_format import render  # noqa: E402
from core.config import Settings  # noqa: E402
from core.models import Channel, OutboxMessage  # noqa: E402
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402

PYTHON = sys.executable
SECRET = "bench-telegram-webhook-secret-0123456789"
TOKEN = "123456:bench-token"
CHATS = 200
WARM_UP = 4.0  # seconds of traffic before measuring
FIRST_CHAT = 910_000_000
TEXTS = [
    "Where is my parcel?",
    "Quand arrive mon colis?",
    "¿Dónde está mi paquete?",
    "Talk to a person",
    "hi",
]
OPTIONS = [
    {"label": "Reschedule", "payload": "menu:reschedule"},
    {"label": "Pickup point", "payload": "menu:pickup"},
    {"label": "Delivery note", "payload": "menu:instructions"},
    {"label": "Talk to a person", "payload": "menu:person"},
]


class NoOpEngine:
    async def handle(self, message: object) -> list[object]:
        return []


def adapter_app() -> object:
    """Doorstep's app with an engine that does nothing: the Telegram adapter's own cost."""
    from app import create_app

    app = create_app()
    # no engine at all, not even its parsers warming in a thread while we measure
    app.state.starters = [s for s in app.state.starters if getattr(s, "__name__", "") != "start_engine"]

    async def replace_engine(_app: object, ctx: object) -> None:
        ctx.components["engine"] = NoOpEngine()  # type: ignore[attr-defined]

    app.state.starters.append(replace_engine)
    return app


def link_chats(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM recipient ORDER BY id LIMIT ?", (CHATS,))]
        for i, recipient_id in enumerate(ids):
            conn.execute(
                "UPDATE recipient SET telegram_chat_id = ? WHERE id = ?", (FIRST_CHAT + i, recipient_id)
            )
    return [FIRST_CHAT + i for i in range(len(ids))]


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        value: int = conn.execute(sql).fetchone()[0]
        return value


async def fire(
    base: str, chats: list[int], seconds: float, concurrency: int
) -> tuple[list[float], int, float]:
    update_ids = itertools.count(1)
    chat_cycle = itertools.cycle(chats)
    texts = itertools.cycle(TEXTS)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:

        async def one() -> tuple[float, bool]:
            chat = next(chat_cycle)
            update = {
                "update_id": next(update_ids),
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Bench"},
                    "text": next(texts),
                },
            }
            start = time.perf_counter()
            try:
                response = await client.post("/webhooks/telegram", json=update, headers=headers)
            except httpx.TransportError:
                return time.perf_counter() - start, False
            return time.perf_counter() - start, response.status_code == 200

        async def worker(until: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                elapsed, ok = await one()
                if record:
                    latencies.append(elapsed)
                    errors += not ok

        warm = time.perf_counter() + WARM_UP  # the engine warms its parsers in a thread at start
        await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, True) for _ in range(concurrency)))
        took = time.perf_counter() - start
    return latencies, errors, took


async def webhook_bench(seconds: float, concurrency: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        env = {
            **os.environ,
            "ENVIRONMENT": "development",
            "DATABASE_URL": f"sqlite:///{db}",
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "TELEGRAM_API_URL": "http://127.0.0.1:9",
            "TWILIO_API_URL": "http://127.0.0.1:9",
            "OUTBOX_ENABLED": "false",
            "SCHEDULER_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": "",
        }
        await asyncio.to_thread(
            subprocess.run,
            [PYTHON, "app.py", "demo"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        chats = link_chats(db)
        results = []
        for name, target in (
            ("adapter only (no-op engine)", "bench_telegram:adapter_app"),
            ("Doorstep (engine + reply in outbox)", "app:create_app"),
        ):
            port = free_port()
            process = server(target, port, env, ROOT / "bench")
            try:
                await wait_ready(f"http://127.0.0.1:{port}", process)
                results.append((name, *await fire(f"http://127.0.0.1:{port}", chats, seconds, concurrency)))
            finally:
                process.terminate()
                process.wait(timeout=30)
        replies = count(db, "SELECT count(*) FROM outboxmessage WHERE channel = 'telegram'")
    print(
        "webhook, 1 uvicorn process (uvloop, httptools), SQLite, demo dataset, "
        f"{concurrency} concurrent, {seconds:g} s"
    )
    errors = 0
    for name, latencies, failed, took in results:
        ordered = sorted(latencies)
        p50 = ordered[len(ordered) // 2] * 1000 if ordered else float("nan")
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else float("nan")
        print(
            f"  {name:<38} {len(latencies) / took:>7.0f} updates/s"
            f"  p50 {p50:>6.1f} ms  p99 {p99:>6.1f} ms  errors {failed}"
        )
        errors += failed
    print(f"  replies written to the outbox by the engine: {replies}")
    return 1 if errors else 0


async def sender_bench(sends: int) -> None:
    fake = await FakeTelegramAPI(token=TOKEN).start()
    settings = Settings(telegram_api_url=fake.base_url, telegram_bot_token=TOKEN, _env_file=None)  # type: ignore[arg-type, call-arg]
    bot = build_bot(settings)
    sender = TelegramSender(bot)
    rows = [
        OutboxMessage(
            id=i,
            channel=Channel.telegram,
            to_address=str(FIRST_CHAT + i),
            body="Your parcel MH2611250007 arrives Thu 2-4 PM.",
            options=OPTIONS,
            idempotency_key=str(i),
        )
        for i in range(sends)
    ]
    try:
        await sender.send(rows[0])  # warm the connection
        gate = asyncio.Semaphore(8)  # the outbox worker's send concurrency

        async def one(row: OutboxMessage) -> None:
            async with gate:
                await sender.send(row)

        start = time.perf_counter()
        await asyncio.gather(*(one(row) for row in rows[1:]))
        took = time.perf_counter() - start
    finally:
        await bot.session.close()
        await fake.stop()
    assert not fake.rejected, fake.rejected[:3]
    print(
        f"sender: {sends - 1} sendMessage with an inline keyboard through aiogram to the spec-checking fake, "
        f"8 concurrent: {(sends - 1) / took:.0f} messages/s (Telegram allows about 30/s)"
    )


def render_bench() -> None:
    text = "Your parcel MH2611250007 arrives **Thu Dec 3, 2–4 PM**. Anything to change?"
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        render(text, OPTIONS)
    took = time.perf_counter() - start
    print(f"rendering: {took / n * 1e6:.1f} µs per reply with four options")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sends", type=int, default=500)
    args = parser.parse_args()
    render_bench()
    await sender_bench(args.sends)
    return await webhook_bench(args.seconds, args.concurrency)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
