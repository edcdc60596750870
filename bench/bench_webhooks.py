"""Inbound Twilio webhooks per second on one process, against a bare FastAPI endpoint in the same run.

Two uvicorn processes (uvloop + httptools) on loopback, one after the other:
  bare  - a FastAPI app whose only route validates X-Twilio-Signature and answers empty TwiML;
  app   - Doorstep itself on SQLite with the demo dataset: signature, InboundMessage, the conversation
          engine (identity, understanding, dialog, messages stored, reply written to the outbox).
The load generator (this process, httpx) posts signed form bodies, as Twilio would, from the demo
recipients' phones with fresh MessageSids, at bounded concurrency for a bounded time, and prints
requests/s, p50 and p99 latency, and Doorstep's throughput as a ratio of the bare endpoint's.
Both servers and the generator share this machine's cores, so absolute figures are a floor.

    .venv/bin/python bench/bench_webhooks.py [--seconds 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI, HTTPException, Request, Response
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TOKEN = "bench-twilio-auth-token-0123456789abcdef"
PUBLIC_URL = "https://doorstep.bench.example"
PATH = "/webhooks/twilio/messages"
SHARED_SMS = "+15145550100"
BODIES = [
    "When is my parcel coming?",
    "Can you deliver tomorrow after 3pm?",
    "Where is my delivery?",
    "Quand arrive mon colis?",
    "¿Cuándo llega mi paquete?",
    "1",
]


def bare_app() -> FastAPI:
    """The floor: read the form, check the signature as Doorstep does, answer TwiML."""
    app = FastAPI()
    validator = RequestValidator(os.environ.get("TWILIO_AUTH_TOKEN", TOKEN))
    public = os.environ.get("PUBLIC_URL", PUBLIC_URL)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(PATH)
    async def inbound(request: Request) -> Response:
        form = await request.form()
        if not validator.validate(
            public + request.url.path, form, request.headers.get("X-Twilio-Signature", "")
        ):
            raise HTTPException(403)
        return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', media_type="text/xml")

    return app


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to compare servers on a busy machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    latencies: list[float]
    errors: int
    seconds: float
    server_cpu: float = float("nan")

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu / len(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server(target: str, port: int, env: dict[str, str], app_dir: Path) -> subprocess.Popen[bytes]:
    command = [
        PYTHON, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log",
        "--app-dir", str(app_dir),
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env)


async def wait_ready(base: str, process: subprocess.Popen[bytes], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not start")


async def fire(name: str, base: str, phones: list[str], seconds: float, concurrency: int, pid: int) -> Result:
    validator = RequestValidator(TOKEN)
    senders = itertools.cycle(phones)
    bodies = itertools.cycle(BODIES)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:

        async def one() -> tuple[float, bool]:
            form = {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": "AC" + "0" * 32,
                "From": next(senders),
                "To": SHARED_SMS,
                "Body": next(bodies),
                "NumMedia": "0",
                "ApiVersion": "2010-04-01",
            }
            headers = {"X-Twilio-Signature": validator.compute_signature(PUBLIC_URL + PATH, form)}
            start = time.perf_counter()
            response = await client.post(PATH, data=form, headers=headers)
            return time.perf_counter() - start, response.status_code == 200 and "<Response/>" in response.text

        async def worker(until: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                elapsed, ok = await one()
                if record:
                    latencies.append(elapsed)
                    errors += not ok

        warm_until = time.perf_counter() + 1.0
        await asyncio.gather(*(worker(warm_until, False) for _ in range(concurrency)))
        cpu_before = cpu_seconds(pid)
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, True) for _ in range(concurrency)))
        took = time.perf_counter() - start
        cpu = cpu_seconds(pid) - cpu_before
    return Result(name, latencies, errors, took, cpu)


INBOUND_SQL = "SELECT count(*) FROM message WHERE direction = 'inbound'"


def demo_phones(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [
            row[0] for row in conn.execute("SELECT phone FROM recipient WHERE phone IS NOT NULL ORDER BY id")
        ]


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        value: int = conn.execute(sql).fetchone()[0]
        return value


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        env = {
            **os.environ,
            "ENVIRONMENT": "development",
            "DATABASE_URL": f"sqlite:///{db}",
            "PUBLIC_URL": PUBLIC_URL,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_SMS_FROM": SHARED_SMS,
            "TWILIO_API_URL": "http://127.0.0.1:9",
            "TELEGRAM_API_URL": "http://127.0.0.1:9",
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
        phones = demo_phones(db)
        results: list[Result] = []
        for name, target, app_dir in (
            ("bare FastAPI (signature + TwiML)", "bench_webhooks:bare_app", ROOT / "bench"),
            ("Doorstep (signature + engine + reply in outbox)", "app:create_app", ROOT),
        ):
            port = free_port()
            process = server(target, port, env, app_dir)
            try:
                await wait_ready(f"http://127.0.0.1:{port}", process)
                before = count(db, "SELECT count(*) FROM outboxmessage")
                inbound_before = count(db, INBOUND_SQL)
                results.append(
                    await fire(
                        name, f"http://127.0.0.1:{port}", phones, args.seconds, args.concurrency, process.pid
                    )
                )
                replies = count(db, "SELECT count(*) FROM outboxmessage") - before
                inbound = count(db, INBOUND_SQL) - inbound_before
            finally:
                process.terminate()
                process.wait(timeout=30)

    bare, full = results
    print(f"inbound Twilio webhooks, 1 uvicorn process (uvloop, httptools), SQLite, demo dataset, "
          f"{args.concurrency} concurrent, {args.seconds:g} s each")  # fmt: skip
    print(
        f"{'endpoint':<50} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'server CPU ms/req':>18}"
    )
    for r in results:
        print(
            f"{r.name:<50} {r.rate:>8.0f} {r.quantile(0.5):>8.1f} {r.quantile(0.99):>8.1f} {r.errors:>7}"
            f" {r.cpu_ms_per_request:>18.2f}"
        )
    print(f"ratio Doorstep / bare: {full.rate / bare.rate:.2f} in req/s, "
          f"{bare.cpu_ms_per_request / full.cpu_ms_per_request:.2f} in server CPU per request")  # fmt: skip
    print("machine load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(f"Doorstep run with warm-up: {inbound} inbound messages stored, {replies} replies in the outbox "
          f"(mean {statistics.fmean(full.latencies) * 1000:.1f} ms)")  # fmt: skip
    return 1 if full.errors or bare.errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
