"""Shared Redis and its degraded mode; the limiter of wrong tracking/postal-code guesses."""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid

import pytest
from structlog.testing import capture_logs

from core.ratelimit import FailureLimiter, sender_key, tracking_guess_limiter
from core.redis import SharedRedis

REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def start_redis_server(port: int, directory) -> asyncio.subprocess.Process:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = await asyncio.create_subprocess_exec(
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        stdout=asyncio.subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return server
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("redis-server did not start")


async def redis_or_skip() -> SharedRedis:
    shared = SharedRedis(REDIS_URL)
    await shared.start()
    if not shared.available:
        await shared.stop()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return shared


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestDegradedMode:
    async def test_without_a_url_redis_is_simply_not_used(self):
        shared = SharedRedis(None)
        await shared.start()
        assert not shared.configured and not shared.available
        await shared.stop()

    async def test_an_unreachable_redis_is_logged_once_and_the_limiter_counts_in_memory(self):
        shared = SharedRedis(closed_port_url(), timeout_seconds=0.2)
        with capture_logs() as logs:
            await shared.start()
            await shared.check()
            limiter = FailureLimiter(shared, name="t", limit=2, window_seconds=60)
            await limiter.record_failure("sms:+14165550100")
            assert await limiter.record_failure("sms:+14165550100") == 2
            assert await limiter.blocked("sms:+14165550100")
        await shared.stop()
        warnings = [e for e in logs if e["event"] == "redis_unavailable"]
        assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
        assert "degraded" in warnings[0]["mode"]

    async def test_a_redis_that_stops_mid_way_is_replaced_by_memory_until_it_answers_again(self, tmp_path):
        port = free_port()
        server = await start_redis_server(port, tmp_path)
        shared = SharedRedis(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.3)
        try:
            await shared.start()
            assert shared.available
            limiter = FailureLimiter(shared, name="t", limit=3, window_seconds=60)
            assert await limiter.record_failure("k") == 1
            server.kill()
            await server.wait()
            with capture_logs() as logs:
                assert await limiter.record_failure("k") == 1  # counted in this process's memory now
                assert await limiter.record_failure("k") == 2
            assert [e["event"] for e in logs] == ["redis_unavailable"]
            assert not shared.available
            server = await start_redis_server(port, tmp_path)
            with capture_logs() as logs:
                assert await shared.check()
            assert [e["event"] for e in logs] == ["redis_available"]
            assert await limiter.failures("k") == 0  # the restarted server forgot; shared counting resumes
        finally:
            await shared.stop()
            if server.returncode is None:
                server.kill()
                await server.wait()


class TestGuessLimiter:
    async def test_the_sixth_wrong_guess_within_the_hour_is_refused_in_memory(self):
        clock = FakeClock()
        limiter = FailureLimiter(SharedRedis(None), name="g", limit=5, window_seconds=3600, clock=clock)
        key = sender_key("telegram", "4242")
        for _ in range(5):
            assert not await limiter.blocked(key)
            await limiter.record_failure(key)
        assert await limiter.blocked(key)
        assert not await limiter.blocked(sender_key("telegram", "4343"))
        clock.now += 3601
        assert not await limiter.blocked(key)

    async def test_processes_sharing_redis_share_the_count_and_no_address_is_stored_in_clear(self):
        first, second = await redis_or_skip(), await redis_or_skip()
        name = f"g-{uuid.uuid4().hex}"
        a = FailureLimiter(first, name=name, limit=5, window_seconds=60)
        b = FailureLimiter(second, name=name, limit=5, window_seconds=60)
        key = sender_key("sms", "+14165550199")
        for limiter in (a, b, a, b, a):
            await limiter.record_failure(key)
        assert await b.blocked(key) and await a.blocked(key)
        assert first.client is not None
        keys = [k.decode() async for k in first.client.scan_iter(match=f"doorstep:{name}:*")]
        assert len(keys) == 1 and "4165550199" not in keys[0]
        assert 0 < await first.client.ttl(keys[0]) <= 60
        await a.clear(key)
        assert not await b.blocked(key)
        await first.stop()
        await second.stop()


class TestTheAppWithoutRedis:
    async def test_with_redis_unreachable_the_app_serves_and_says_once_it_is_degraded(self, settings, acme):
        from httpx import ASGITransport, AsyncClient

        from app import build_context, create_app
        from tests.plans import small_plan

        degraded = settings.model_copy(update={"redis_url": closed_port_url()})
        ctx = build_context(degraded)
        app = create_app(degraded, ctx=ctx)
        with capture_logs() as logs:
            async with (
                app.router.lifespan_context(app),
                AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
            ):
                assert (await http.get("/healthz")).status_code == 200
                plan = await http.post("/api/v1/plans", json=small_plan(prefix="NR"), headers=acme.headers)
                assert plan.status_code == 201, plan.text
                delivery = await http.get("/api/v1/deliveries/NR001", headers=acme.headers)
                assert delivery.status_code == 200
                limiter = tracking_guess_limiter(ctx)
                for _ in range(5):
                    await limiter.record_failure("telegram:1")
                assert await limiter.blocked("telegram:1"), "rate limits still hold, in this process"
        await ctx.engine.dispose()
        warnings = [e for e in logs if e["event"] == "redis_unavailable"]
        assert len(warnings) == 1 and "degraded" in warnings[0]["mode"]
