"""Conversation engine benchmark: latency of whole turns on the demo day (SQLite, one writer).

Each turn is `ConversationEngine.handle()` end to end: de-duplication, conversation lookup, the real
understanding, identity, the dialog, the real scheduling service, the outbox rows and the commit.
Three kinds of turns, each from a different demo recipient so every conversation is fresh:

- status:     "where is my parcel?"                     (reads the plan)
- offer:      "can you deliver tomorrow afternoon?"     (asks the scheduling service for windows)
- confirm:    "yes" to that offer                       (re-plans the route and commits the change)

Prints the median and 95th percentile per kind and the status turns per second. Exits 1 when a
status turn's median exceeds 50 ms or a confirmed change's median exceeds 250 ms.

    .venv/bin/python bench/bench_engine.py [--recipients 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import col, select

from app import build_context
from bot.engine import ConversationEngine
from bot.messages import InboundMessage
from core.config import Settings
from core.db import migrate
from core.logging import configure_logging
from core.models import Channel, Delivery, DeliveryStatus, Recipient
from scheduling.demo import load_demo

STATUS_MEDIAN_MS = 50.0
CHANGE_MEDIAN_MS = 250.0


def summary(name: str, samples: list[float]) -> float:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(f"{name:<8} n={len(ordered):<4} median {median:7.1f} ms   p95 {p95:7.1f} ms")
    return median


async def run(recipients: int) -> int:
    configure_logging("WARNING", json=True)
    directory = tempfile.mkdtemp(prefix="doorstep-bench-")
    url = f"sqlite:///{directory}/bench.db"
    migrate(url)
    ctx = build_context(Settings(database_url=url, _env_file=None, log_level="WARNING"))  # type: ignore[call-arg]
    zone = ZoneInfo("America/Toronto")
    day = (datetime.now(zone) + timedelta(days=1)).date()
    await load_demo(ctx, day=day)
    async with ctx.uow() as uow:
        phones = list(
            (
                await uow.session.exec(
                    select(Recipient.phone)
                    .join(Delivery, col(Delivery.recipient_id) == col(Recipient.id))
                    .where(Delivery.status == DeliveryStatus.scheduled, Delivery.white_glove == False)  # noqa: E712
                    .where(col(Recipient.locale) == "en")
                    .distinct()
                )
            ).all()
        )
    engine = ConversationEngine(ctx)
    engine.warm_up()
    phones = [p for p in phones if p][: recipients * 2]
    status_phones, change_phones = phones[:recipients], phones[recipients:]
    timings: dict[str, list[float]] = {"status": [], "offer": [], "confirm": []}
    counter = 0

    async def turn(kind: str, phone: str, text: str) -> str:
        nonlocal counter
        counter += 1
        message = InboundMessage(channel=Channel.sms, sender=phone, text=text, provider_id=f"bench-{counter}")
        started = time.perf_counter()
        replies = await engine.handle(message)
        timings[kind].append((time.perf_counter() - started) * 1000)
        return "\n".join(r.text for r in replies)

    started = time.perf_counter()
    for phone in status_phones:
        await turn("status", phone, "where is my parcel?")
    status_seconds = time.perf_counter() - started
    changed = 0
    for phone in change_phones:
        asked = await turn("offer", phone, "can you deliver the day after tomorrow between 2 and 4 pm?")
        if "Reply YES or NO" in asked:
            done = await turn("confirm", phone, "yes")
            changed += "Done!" in done
    await engine.close()
    await ctx.engine.dispose()

    print(f"demo day {day}, SQLite, {len(status_phones)} status turns, {len(change_phones)} change requests")
    status_median = summary("status", timings["status"])
    summary("offer", timings["offer"])
    change_median = summary("confirm", timings["confirm"]) if timings["confirm"] else float("inf")
    print(f"status turns/s (sequential, one process): {len(status_phones) / status_seconds:.0f}")
    print(f"changes committed: {changed}/{len(change_phones)}")
    ok = status_median <= STATUS_MEDIAN_MS and change_median <= CHANGE_MEDIAN_MS and changed > 0
    print(
        f"targets: status median <= {STATUS_MEDIAN_MS:.0f} ms, change median <= {CHANGE_MEDIAN_MS:.0f} ms:"
        f" {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=60)
    args = parser.parse_args()
    return asyncio.run(run(args.recipients))


if __name__ == "__main__":
    sys.exit(main())
