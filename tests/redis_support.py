"""The real Redis the tests use (started by .ci/run), and a clean skip when it is truly absent."""

from __future__ import annotations

import os

import pytest
from redis.asyncio import Redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def redis_or_skip() -> Redis:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except OSError as exc:  # pragma: no cover - only when no Redis answers
        await client.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    return client
