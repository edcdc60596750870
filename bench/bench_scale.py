"""Production-mode figures on this machine: PostgreSQL and Redis, one and two processes, in one run.

1. Inbound messages per second through the whole path (signed Twilio webhook, stored, understood,
   answered into the outbox) with p50/p99, for one and two uvicorn processes on PostgreSQL, each as a
   ratio to a bare FastAPI endpoint that only checks the Twilio signature and answers TwiML (the same
   number of processes, the same load generator, the same run). Two loads: closed-loop at bounded
   concurrency (capacity) and open-loop at 100 then 300 messages/s per process (latency at a rate
   Doorstep sustains and at the target rate, measured from each request's scheduled time, so
   queueing counts). Between bare and Doorstep, two floors (bench/floor_turn.py): the turn's
   statements hand-written on asyncpg with the real understanding and nothing else, in one
   transaction per message ("floor") and for concurrent messages together, set-based, in one
   transaction per batch ("batched"): what each of the two designs cannot go below here.
2. Notifications end to end: due notifications fired by the scheduler leader, rendered, written to
   the outbox and sent by both processes' outbox workers to loopback fakes of Twilio's REST API and of
   the Telegram Bot API (every 20th recipient prefers Telegram), while Telegram updates (texts and
   photos) arrive at both processes' webhooks and are answered.
3. Resident memory per process and start-up time (process start to the first 200 of /healthz): the
   inbound processes run as a production SMS and WhatsApp deployment (no TELEGRAM_BOT_TOKEN, so
   aiogram is never imported), the notification processes with all three channels on and in use.

The load generator is this process: a raw HTTP/1.1 client on keep-alive connections sending
pre-signed requests (each with a fresh MessageSid from one of 400 recipients), so it costs little
next to the servers. Servers, PostgreSQL and the generator share the machine's 2 cores: the figures
are a floor, and `load average` is printed so a busy machine can be recognised. Doorstep's processes
run in production mode with Redis (database 7, or BENCH_REDIS_URL, emptied at start) when it answers.

    .venv/bin/python bench/bench_scale.py [--seconds 4] [--notifications 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402 - after the path is set
from tests.fakes.twilio_api import FakeTwilioApi  # noqa: E402
from tests.scale_support import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    TELEGRAM_CHAT_BASE,
    AppProcess,
    app_environment,
    free_port,
    fresh_database,
    outbox_id_of,
    postgres_reachable,
    seed_campaign,
)

PATH = "/webhooks/twilio/messages"
PUBLIC_URL = "https://doorstep.bench.example"
SHARED_SMS = "+15145550100"
RECIPIENTS = 400
BODIES = ["Where is my parcel?", "When is my delivery coming?", "Quand arrive mon colis?", "1"]
TARGET_RATE = 300  # messages/s per process for the latency figure
SUSTAINABLE_RATE = 100  # messages/s per process: the latency when Doorstep is not overloaded
OPEN_LOOP_RATES = (SUSTAINABLE_RATE, TARGET_RATE)  # the overload last
# Each phase of a server's measure takes its MessageSids from its own block: a sid seen before would
# be answered as a retried webhook, at a fraction of a turn's cost
SIDS_PER_PHASE = 10_000_000
SIDS_PER_SERVER = SIDS_PER_PHASE * (1 + len(OPEN_LOOP_RATES))
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")  # emptied at each run
TELEGRAM_TOKEN = "123456:bench-scale-token"
TELEGRAM_SECRET = "bench-scale-telegram-secret-0123456789"
TELEGRAM_EVERY = 20  # every 20th recipient of the campaign prefers Telegram
TELEGRAM_UPDATES = 150  # per process, while the campaign runs
TELEGRAM_STRANGERS = 900_000_000  # first chat id of the updates' senders
COMPARED = (  # the servers each Doorstep figure is measured beside, in the same run
    ("bare", "bench_webhooks:bare_app"),
    ("floor", "floor_turn:floor_app"),
    ("batched", "floor_turn:batched_floor_app"),
)


def fresh_redis() -> str | None:
    """The benchmark's own Redis database, emptied (a previous run's dialog states would otherwise meet
    the same conversation ids in a fresh PostgreSQL database); None when no Redis answers."""
    try:
        with redis.Redis.from_url(BENCH_REDIS_URL, socket_connect_timeout=2) as client:
            client.flushdb()
    except redis.ConnectionError:
        return None
    return BENCH_REDIS_URL


def signed_requests(count: int, host: str, offset: int) -> list[bytes]:
    """Ready-to-send webhook requests, each signed as Twilio would for PUBLIC_URL."""
    validator = RequestValidator(AUTH_TOKEN)
    requests = []
    for i in range(count):
        n = offset + i
        sid = f"SM{n:032x}"
        form = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": f"+1416{2_000_000 + n % RECIPIENTS:07d}",
            "To": SHARED_SMS,
            "Body": BODIES[n % len(BODIES)],
            "NumMedia": "0",
            "ApiVersion": "2010-04-01",
        }
        body = urllib.parse.urlencode(form).encode()
        signature = validator.compute_signature(PUBLIC_URL + PATH, form)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read the status and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def call(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Measure:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    unanswered: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def closed_loop(port: int, requests: list[bytes], concurrency: int, seconds: float) -> Measure:
    """As fast as the server answers, `concurrency` requests in flight."""
    measure = Measure()
    feed = iter(requests)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        connection = await Connection.open(port)
        try:
            for request in feed:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                status = await connection.call(request)
                if status == 200:
                    measure.latencies.append(time.perf_counter() - started)
                else:
                    measure.errors += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    measure.seconds = time.perf_counter() - started
    return measure


async def open_loop(port: int, requests: list[bytes], rate: float, seconds: float) -> Measure:
    """`rate` requests per second on schedule; latency counted from the scheduled time."""
    measure = Measure()
    idle: list[Connection] = [await Connection.open(port) for _ in range(32)]
    count = min(len(requests), int(rate * seconds))
    started = time.perf_counter()

    async def one(request: bytes, due: float) -> None:
        connection = idle.pop() if idle else await Connection.open(port)
        try:
            status = await connection.call(request)
        except (OSError, asyncio.IncompleteReadError):
            measure.errors += 1
            return
        if status == 200:
            measure.latencies.append(time.perf_counter() - due)
        else:
            measure.errors += 1
        idle.append(connection)

    tasks = []
    for i in range(count):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[i], due)))
    # a server that cannot keep up is not waited for: what is unanswered 2 s after the last send counts
    _, late = await asyncio.wait(tasks, timeout=2.0)
    for task in late:
        task.cancel()
    measure.unanswered = len(late)
    measure.seconds = time.perf_counter() - started
    for connection in idle:
        connection.close()
    return measure


@dataclass
class Figures:
    capacity: Measure
    offered: dict[int, Measure]  # by messages/s offered per process, open loop
    rss_mb: list[float]
    cpu_ms_per_message: float  # server CPU during the capacity phase: the figure a busy machine does not skew


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def measure_server(process: AppProcess, seconds: float, processes: int, offset: int) -> Figures:
    host = f"127.0.0.1:{process.port}"
    capacity_requests = signed_requests(int(4000 * seconds), host, offset)
    await closed_loop(process.port, capacity_requests[:200], 8, 1.0)  # warm up
    pids = worker_pids(process)
    cpu_before = cpu_seconds(pids)
    capacity = await closed_loop(process.port, capacity_requests[200:], 16 * processes, seconds)
    cpu = (cpu_seconds(pids) - cpu_before) / max(len(capacity.latencies), 1) * 1000
    offered = {}
    for n, rate in enumerate(OPEN_LOOP_RATES, start=1):
        await asyncio.sleep(0.5)
        requests = signed_requests(int(rate * processes * seconds) + 10, host, offset + n * SIDS_PER_PHASE)
        offered[rate] = await open_loop(process.port, requests, rate * processes, seconds)
    rss = [rss_mb(pid) for pid in pids]
    return Figures(capacity, offered, rss, cpu)


def worker_pids(process: AppProcess) -> list[int]:
    """The serving processes: uvicorn's workers when there are several (the master only supervises,
    and multiprocessing's resource tracker, its other child, serves nothing)."""
    assert process.process is not None
    pid = process.process.pid
    if process.workers == 1:
        return [pid]
    try:
        children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return [pid]
    return [child for child in children if not _is_resource_tracker(child)] or [pid]


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Inbound:
    figures: dict[str, Figures]  # by server: those of COMPARED, then doorstep
    startup: float  # doorstep's


def bare_env(port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_URL": PUBLIC_URL, "PYTHONPATH": str(ROOT / "bench")})
    return env


async def inbound(
    database_url: str, seconds: float, log_dir: Path, shared: dict[str, str]
) -> dict[int, Inbound]:
    results = {}
    offset = 0
    for processes in (1, 2):
        compared: dict[str, Figures] = {}
        for name, target in COMPARED:
            port = free_port()
            env = {**bare_env(port), "DATABASE_URL": database_url}
            server = AppProcess(
                f"{name}-{processes}", env, port, log_dir, processes, target=target, app_dir=ROOT / "bench"
            )
            server.start()
            await server.wait_ready(120)
            offset += SIDS_PER_SERVER
            compared[name] = await measure_server(server, seconds, processes, offset)
            server.stop()

        port = free_port()
        # a production deployment on SMS and WhatsApp: no TELEGRAM_BOT_TOKEN, so no aiogram in memory
        env = app_environment(
            database_url,
            port,
            public_url=PUBLIC_URL,
            outbox_enabled="false",
            scheduler_enabled="false",
            environment="production",
            secret_key="bench-secret-key",
            **shared,
        )
        app = AppProcess(f"doorstep-{processes}", env, port, log_dir, workers=processes)
        started = time.perf_counter()
        app.start()
        await app.wait_ready(120)
        startup = time.perf_counter() - started
        offset += SIDS_PER_SERVER
        compared["doorstep"] = await measure_server(app, seconds, processes, offset)
        app.stop()
        results[processes] = Inbound(compared, startup)
    return results


async def telegram_traffic(ports: list[int], per_process: int) -> int:
    """Telegram updates to each process's webhook while the campaign runs, from chats Doorstep does not
    know yet (so each is answered, with the share-your-number keyboard): texts in the three languages
    and photos, so the process validates and sends what a Telegram deployment does. The count of
    updates refused."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    refused = 0
    async with httpx.AsyncClient(timeout=30.0) as client:
        for i in range(per_process):
            for n, port in enumerate(ports):
                chat = TELEGRAM_STRANGERS + n * per_process + i
                message: dict[str, object] = {
                    "message_id": i + 1,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Bench"},
                }
                if i % 4 == 3:
                    message["photo"] = [
                        {"file_id": f"p{i}", "file_unique_id": f"u{i}", "width": 40, "height": 30}
                    ]
                else:
                    message["text"] = BODIES[i % len(BODIES)]
                update = {"update_id": chat, "message": message}
                response = await client.post(
                    f"http://127.0.0.1:{port}/webhooks/telegram", json=update, headers=headers
                )
                refused += response.status_code != 200
            await asyncio.sleep(0.02)
    return refused


@dataclass
class Campaign:
    elapsed: float
    delivered: int  # notifications that reached a fake provider, counted once each
    on_telegram: int
    replies_on_telegram: int  # the bot's answers to the Telegram updates
    refused: int
    rss_mb: list[float]


async def notifications(database_url: str, count: int, log_dir: Path, shared: dict[str, str]) -> Campaign:
    twilio = FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN)
    twilio_url = await twilio.start()
    telegram = await FakeTelegramAPI(token=TELEGRAM_TOKEN).start()
    await asyncio.to_thread(
        seed_campaign, database_url, count, slug="bench-campaign", telegram_every=TELEGRAM_EVERY
    )
    on_telegram = len(range(0, count, TELEGRAM_EVERY))

    def campaign_chats() -> set[int]:
        chats = {int(call.params["chat_id"]) for call in telegram.calls_to("sendMessage")}
        return {chat for chat in chats if TELEGRAM_CHAT_BASE <= chat < TELEGRAM_CHAT_BASE + count}

    def delivered() -> int:
        return len({outbox_id_of(m) for m in twilio.messages}) + len(campaign_chats())

    apps = []
    try:
        for name in ("notify-a", "notify-b"):
            port = free_port()
            env = app_environment(
                database_url,
                port,
                twilio_api_url=twilio_url,
                twilio_messages_per_second=100_000,
                telegram_bot_token=TELEGRAM_TOKEN,
                telegram_api_url=telegram.base_url,
                telegram_webhook_secret=TELEGRAM_SECRET,
                environment="production",
                secret_key="bench-secret-key",
                **shared,
            )
            apps.append(AppProcess(name, env, port, log_dir))
        for app in apps:
            app.start()
        await asyncio.gather(*(app.wait_ready(120) for app in apps))
        started = time.perf_counter()
        traffic = asyncio.create_task(telegram_traffic([app.port for app in apps], TELEGRAM_UPDATES))
        deadline = started + 300
        while time.perf_counter() < deadline:
            if delivered() >= count:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        refused = await traffic
        await asyncio.sleep(2)  # the last answers leave the outbox
        rss = [app.rss_mb() for app in apps]
        strangers = {int(c.params["chat_id"]) for c in telegram.calls_to("sendMessage")} - campaign_chats()
        assert not telegram.rejected, telegram.rejected[:3]
    finally:
        for app in apps:
            app.stop()
        await telegram.stop()
        await twilio.stop()
    return Campaign(elapsed, delivered(), on_telegram, len(strangers), refused, rss)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per load phase")
    parser.add_argument("--notifications", type=int, default=2000)
    args = parser.parse_args()
    if not postgres_reachable():
        print("bench_scale: PostgreSQL is not reachable; nothing measured")
        return 0
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"doorstep-bench-scale-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    redis_url = fresh_redis()
    shared = {"redis_url": redis_url} if redis_url else {}
    print(f"Redis: {redis_url or 'not reachable, so the processes run degraded (no shared state)'}")
    with fresh_database("doorstep_bench") as database_url:
        await asyncio.to_thread(seed_campaign, database_url, RECIPIENTS, slug="bench-inbound")
        from psycopg import connect

        with connect(database_url, autocommit=True) as conn:  # inbound only: no notifications due
            conn.execute("UPDATE notification SET status = 'cancelled'")
        results = await inbound(database_url, args.seconds, log_dir, shared)
    print("\ninbound SMS through the whole path (signed webhook, stored, understood, answered):")
    columns = ("processes", "server", "msg/s", "p50 ms", "p99 ms", "ratio", "CPU ms/msg")
    header = " ".join(f"{c:>{w}}" for c, w in zip(columns, (9, 9, 7, 7, 7, 6, 10), strict=True))
    for processes, result in results.items():
        bare, app = result.figures["bare"], result.figures["doorstep"]
        print(f"\n  capacity (closed loop, {16 * processes} in flight):")
        print("  " + header)
        for name, figures in result.figures.items():
            m = figures.capacity
            ratio = m.rate / bare.capacity.rate if bare.capacity.rate else float("nan")
            print(
                f"  {processes:>9} {name:>9} {m.rate:7.0f} {m.ms(0.5):7.1f} {m.ms(0.99):7.1f} {ratio:6.2f}"
                f" {figures.cpu_ms_per_message:10.2f}"
            )
        for rate in OPEN_LOOP_RATES:
            print(f"  at {rate * processes} msg/s offered (open loop, {rate}/s per process):")
            for name, figures in result.figures.items():
                m = figures.offered[rate]
                print(
                    f"  {processes:>9} {name:>9} {m.rate:7.0f} {m.ms(0.5):7.1f} {m.ms(0.99):7.1f}"
                    f"   errors {m.errors}, unanswered after 2 s: {m.unanswered}"
                )
        rss = ", ".join(f"{v:.0f}" for v in app.rss_mb)
        print(
            f"  doorstep resident memory per process (SMS and WhatsApp, Telegram off): {rss} MB;"
            f" start-up to first /healthz: {result.startup:.1f} s"
        )
    with fresh_database("doorstep_bench") as database_url:
        campaign = await notifications(database_url, args.notifications, log_dir, shared)
    sent = campaign.delivered
    print(
        "\nnotifications end to end (leader fires, renders, outbox; 2 processes send to fake Twilio and"
        " Telegram APIs):"
        f"\n  {sent}/{args.notifications} in {campaign.elapsed:.1f} s = {sent / campaign.elapsed:.0f}"
        f" notifications/s ({campaign.on_telegram} of them on Telegram, paced at Telegram's 30/s)"
        f"\n  meanwhile {TELEGRAM_UPDATES} Telegram updates to each process (texts and photos from unknown"
        f" chats): {campaign.replies_on_telegram} chats answered, {campaign.refused} refused"
        "\n  resident memory of these processes (SMS, WhatsApp and Telegram on and in use):"
        f" {', '.join(f'{v:.0f}' for v in campaign.rss_mb)} MB"
    )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(log_dir, ignore_errors=True)  # the servers' logs are kept only when a run fails
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
