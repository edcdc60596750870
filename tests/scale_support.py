"""Helpers of the multi-process tests and benchmarks: real uvicorn processes on a fresh PostgreSQL database.

`fresh_database()` creates and migrates a database of its own and drops it afterwards;
`AppProcess` runs `uvicorn app:create_app --factory` on a loopback port with the given environment
(its output goes to a log file next to the test); `seed_campaign()` writes a carrier's morning:
N deliveries with their recipients and one due "window_assigned" notification each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from core.db import migrate

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "scale-test-auth-token"
TELEGRAM_CHAT_BASE = 700_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def fresh_database(prefix: str = "doorstep_scale") -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(url)
        yield url
    finally:
        for _ in range(30):  # the server may be restarting (fault tests)
            try:
                with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=2) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.OperationalError:
                time.sleep(1)


def app_environment(database_url: str, port: int, **overrides: Any) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWILIO_", "TELEGRAM_", "REDIS_", "DATABASE_", "OUTBOX_", "SCHEDULER_"))
    }
    closed = f"http://127.0.0.1:{free_port()}"
    env.update(
        {
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "true",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_URL": closed,
            "TELEGRAM_API_URL": closed,
            "SCHEDULER_ENABLED": "true",
            "OUTBOX_ENABLED": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({key.upper(): str(value) for key, value in overrides.items()})
    return env


class AppProcess:
    """One Doorstep process: `uvicorn app:create_app --factory` on a loopback port (or, for the
    benchmarks, another app factory `target` found in `app_dir`)."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        port: int,
        log_dir: Path,
        workers: int = 1,
        *,
        target: str = "app:create_app",
        app_dir: Path | None = None,
    ) -> None:
        self.name, self.env, self.port, self.workers = name, env, port, workers
        self.target, self.app_dir = target, app_dir
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "uvicorn", self.target, "--factory",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        if self.app_dir is not None:
            command += ["--app-dir", str(self.app_dir)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)

    async def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.base_url + "/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} did not start: {self.log_path.read_text()[-3000:]}")

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return (await client.get(self.base_url + "/metrics")).text

    async def is_leader(self) -> bool:
        return "doorstep_scheduler_leader 1.0" in await self.metrics()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_mb(self) -> float:
        """Resident memory of the process (and its workers), from /proc."""
        if self.process is None:
            return 0.0
        pids = [self.process.pid, *children(self.process.pid)]
        return sum(rss_of(pid) for pid in pids) / 1024


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_of(pid: int) -> float:
    """VmRSS in kB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def seed_campaign(
    database_url: str, count: int, *, slug: str = "carrier", telegram_every: int = 0
) -> dict[str, Any]:
    """A retailer with `count` deliveries tomorrow, each owed one due "window_assigned" notice.

    Written in bulk with COPY (the campaign's size is the point, not the plan import); quiet hours are
    off so the test does not depend on the time of day. With `telegram_every` n, every n-th recipient
    (the first included) prefers Telegram, in chat `TELEGRAM_CHAT_BASE + i`; the others get SMS.
    """
    now = datetime.now(UTC)
    start = (now + timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=2)
    day = start.date()
    with psycopg.connect(database_url, autocommit=False) as conn:
        retailer_id = conn.execute(
            "INSERT INTO retailer (slug, name, brand_name, timezone, default_locale, quiet_hours_start,"
            " quiet_hours_end, slot_minutes, settings, created_at)"
            " VALUES (%s, %s, %s, 'America/Toronto', 'en', '00:00', '00:00', 120, '{}', %s) RETURNING id",
            (slug, "Carrier", "Carrier", now),
        ).fetchone()[0]
        with conn.cursor().copy(
            "COPY recipient (retailer_id, name, phone, locale, channel_consent, telegram_chat_id,"
            " preferred_channel, created_at) FROM STDIN"
        ) as copy:
            for i in range(count):
                on_telegram = telegram_every > 0 and i % telegram_every == 0
                chat, channel = (TELEGRAM_CHAT_BASE + i, "telegram") if on_telegram else (None, None)
                phone = f"+1416{2_000_000 + i:07d}"
                copy.write_row((retailer_id, f"R{i}", phone, "en", "{}", chat, channel, now))
        recipients = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM recipient WHERE retailer_id = %s ORDER BY id", (retailer_id,)
            ).fetchall()
        ]
        with conn.cursor().copy(
            "COPY delivery (retailer_id, tracking, recipient_id, day, timezone, status, window_start,"
            " window_end, address, postal_code, lon, lat, instructions, service_seconds, size, skills,"
            " white_glove, proof, failure_reason, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i, recipient_id in enumerate(recipients):
                copy.write_row(
                    (
                        retailer_id, f"CAMP{i:06d}", recipient_id, day, "America/Toronto", "scheduled",
                        start, end, f"{i} Main St", "M5V 2A1", -79.4, 43.65, "", 300, "[]", "[]",
                        False, "{}", "", now, now,
                    )
                )  # fmt: skip
        deliveries = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM delivery WHERE retailer_id = %s ORDER BY id", (retailer_id,)
            ).fetchall()
        ]
        window = f'{{"window_start": "{start.isoformat()}", "window_end": "{end.isoformat()}"}}'
        with conn.cursor().copy(
            "COPY notification (retailer_id, delivery_id, event, dedupe_key, due_at, status, context,"
            " created_at) FROM STDIN"
        ) as copy:
            for delivery_id in deliveries:
                copy.write_row(
                    (
                        retailer_id, delivery_id, "window_assigned", f"window_assigned:{delivery_id}",
                        now - timedelta(minutes=1), "scheduled", window, now,
                    )
                )  # fmt: skip
        conn.commit()
    return {"retailer_id": retailer_id, "count": count, "deliveries": len(deliveries)}


def outbox_id_of(message: Any) -> int | None:
    """The outbox row a fake Twilio message came from: its StatusCallback carries `?outbox=<id>`."""
    callback = getattr(message, "status_callback", None) or ""
    _, _, query = callback.partition("?")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "outbox" and value.isdigit():
            return int(value)
    return None


async def wait_for(predicate: Any, within: float, every: float = 0.5, what: str = "condition") -> Any:
    """Poll the async predicate every `every` seconds until it is truthy; its value, or TimeoutError."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(every)
    raise TimeoutError(f"{what} not reached in {within:.0f}s")
