"""Faults, with real processes: a failing provider, a restarting database.

- The fake Twilio answers 500, then 429 with Retry-After, then hangs past the client's timeout
  (having accepted the message): every message is still delivered, and exactly once.
- PostgreSQL restarts under load: requests during the outage get a clean 503 with a reason (never a
  500, never a hang), and the same process answers 200 again once the server is back, without a
  restart; the scheduler leader is elected again and a new campaign is sent.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.fakes.twilio_api import FakeTwilioApi
from tests.plans import small_plan
from tests.scale_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    POSTGRES_URL,
    ROOT,
    AppProcess,
    app_environment,
    free_port,
    fresh_database,
    outbox_id_of,
    postgres_reachable,
    seed_campaign,
    wait_for,
)

CAN_RESTART = shutil.which("pg_ctlcluster") is not None and Path("/etc/postgresql").is_dir()
pytestmark = [
    pytest.mark.scale,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not postgres_reachable(), reason="PostgreSQL is not reachable"),
]


def create_retailer(database_url: str, slug: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, "app.py", "retailer", "create", slug, "--name", slug.title()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["api_key"]


def restart_postgres() -> None:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=60,
    )


class TestProviderFaults:
    async def test_500s_429s_and_hangs_are_retried_and_every_message_arrives_once(self, tmp_path):
        fake = FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN)
        fake_url = await fake.start()
        fake.fail_next(15, status=500)
        fake.throttle_next(15, retry_after=1)
        fake.hang_next(4.0, count=4, accept=True)  # accepted, but the answer comes after the timeout
        fake.fail_next(5, status=503)
        count = 300
        port = free_port()
        try:
            with fresh_database() as database_url:
                await asyncio.to_thread(seed_campaign, database_url, count)
                env = app_environment(
                    database_url,
                    port,
                    twilio_api_url=fake_url,
                    twilio_messages_per_second=100_000,
                    twilio_timeout_seconds=1.5,
                    outbox_backoff_seconds=0.2,
                    outbox_backoff_max_seconds=2,
                    outbox_max_attempts=12,
                )
                app = AppProcess("app", env, port, tmp_path)
                app.start()
                try:
                    await app.wait_ready()

                    async def all_arrived() -> bool:
                        return len({outbox_id_of(m) for m in fake.messages}) >= count

                    await wait_for(all_arrived, 120, 0.5, what="every message at the provider")
                    await asyncio.sleep(2)
                    with psycopg.connect(database_url) as conn:
                        outbox = dict(
                            conn.execute(
                                "SELECT status, count(*) FROM outboxmessage GROUP BY status"
                            ).fetchall()
                        )
                        retried = conn.execute(
                            "SELECT count(*) FROM outboxmessage WHERE attempts > 1"
                        ).fetchone()[0]
                    metrics = await app.metrics()
                finally:
                    app.stop()
        finally:
            await fake.stop()
        per_row = collections.Counter(outbox_id_of(m) for m in fake.messages)
        assert len(per_row) == count and max(per_row.values()) == 1, "a message arrived twice"
        assert outbox == {"queued": count}
        refused = collections.Counter(r["code"] for r in fake.refusals)
        assert refused[20500] == 20 and refused[20429] == 15, refused
        assert retried >= 35, "the refused and hung attempts were retried"
        assert 'doorstep_sends_total{channel="sms",outcome="TransientSendError"}' in metrics


class TestDatabaseRestart:
    async def test_requests_get_503_during_a_restart_and_the_process_recovers_by_itself(self, tmp_path):
        if not CAN_RESTART:
            pytest.skip("no pg_ctlcluster to restart PostgreSQL with")
        fake = FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN)
        fake_url = await fake.start()
        port = free_port()
        try:
            with fresh_database() as database_url:
                key = await asyncio.to_thread(create_retailer, database_url, "acme")
                headers = {"Authorization": f"Bearer {key}"}
                env = app_environment(
                    database_url,
                    port,
                    twilio_api_url=fake_url,
                    twilio_messages_per_second=100_000,
                    leader_retry_seconds=1,
                )
                app = AppProcess("app", env, port, tmp_path)
                app.start()
                try:
                    await app.wait_ready()
                    async with httpx.AsyncClient(base_url=app.base_url, timeout=10.0) as http:
                        plan = await http.post(
                            "/api/v1/plans", json=small_plan(prefix="DBR"), headers=headers
                        )
                        assert plan.status_code == 201, plan.text
                        await wait_for(app.is_leader, 20, 0.25, what="leader before the restart")
                        outcomes: collections.Counter[int] = collections.Counter()
                        bodies: list[str] = []
                        stop = asyncio.Event()

                        async def load() -> None:
                            while not stop.is_set():
                                try:
                                    response = await http.get("/api/v1/deliveries/DBR001", headers=headers)
                                except httpx.TimeoutException:
                                    outcomes[-1] += 1  # a hang: counted, and asserted absent below
                                    continue
                                outcomes[response.status_code] += 1
                                if response.status_code >= 500:
                                    bodies.append(response.text)
                                await asyncio.sleep(0.01)

                        workers = [asyncio.create_task(load()) for _ in range(4)]
                        await asyncio.sleep(1.0)
                        restarted = time.monotonic()
                        await asyncio.to_thread(restart_postgres)

                        async def healthy_again() -> bool:
                            response = await http.get("/api/v1/deliveries/DBR001", headers=headers)
                            return response.status_code == 200

                        await wait_for(healthy_again, 30, 0.25, what="200 again after the restart")
                        recovered = time.monotonic() - restarted
                        await asyncio.sleep(1.0)
                        stop.set()
                        await asyncio.gather(*workers)

                        await wait_for(app.is_leader, 30, 0.25, what="the scheduler leader elected again")
                        await asyncio.to_thread(seed_campaign, database_url, 50, slug="after-restart")

                        async def campaign_sent() -> bool:
                            return len(fake.messages) >= 50

                        await wait_for(campaign_sent, 90, 0.5, what="a campaign sent after the restart")
                    assert app.process is not None and app.process.poll() is None, (
                        "the same process all along"
                    )
                finally:
                    app.stop()
        finally:
            await fake.stop()
        print(f"\nDatabase restart: outcomes {dict(outcomes)}, 200 again {recovered:.1f}s after it began")
        assert outcomes[200] > 0 and outcomes[503] > 0, outcomes
        assert set(outcomes) <= {200, 503}, f"only 200 or a clean 503, never a 500 or a hang: {outcomes}"
        assert all(json.loads(b)["detail"].startswith("database unavailable") for b in bodies)


class TestStartingTogether:
    async def test_three_processes_starting_together_on_an_empty_database_migrate_once(self):
        name = f"doorstep_scale_mig_{os.getpid()}_{int(time.time())}"
        base = POSTGRES_URL.rsplit("/", 1)[0]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{base}/{name}"
        try:
            script = f"from core.db import migrate; migrate({url!r})"
            processes = [
                await asyncio.create_subprocess_exec(
                    sys.executable, "-c", script, cwd=ROOT, stderr=asyncio.subprocess.PIPE
                )
                for _ in range(3)
            ]
            results = [(await p.wait(), (await p.stderr.read()).decode()[-500:]) for p in processes]
            assert [code for code, _ in results] == [0, 0, 0], results
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
        finally:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def test_app_py_serve_with_two_workers_has_exactly_one_scheduler_leader(self, tmp_path):
        with fresh_database() as database_url:
            port = free_port()
            log = (tmp_path / "serve.log").open("wb")
            server = await asyncio.create_subprocess_exec(
                sys.executable, "app.py", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "2", cwd=ROOT, env=app_environment(database_url, port), stdout=log, stderr=log,
            )  # fmt: skip
            try:
                leaders: collections.Counter[str] = collections.Counter()

                async def both_workers_seen() -> bool:
                    try:
                        async with httpx.AsyncClient(timeout=3.0) as http:  # a new connection: any worker
                            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                    except httpx.HTTPError:
                        return False
                    for line in text.splitlines():
                        if line.startswith("doorstep_scheduler_leader "):
                            leaders[line.split()[1]] += 1
                    return leaders["1.0"] >= 3 and leaders["0.0"] >= 3

                await wait_for(both_workers_seen, 90, 0.1, what="both workers answering, one of them leading")
                assert set(leaders) == {"1.0", "0.0"}, "two workers: one leads, the other follows"
            finally:
                server.terminate()
                await server.wait()
                log.close()
