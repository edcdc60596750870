"""The optional shared Redis: rate-limit counters and live updates shared by every process.

Redis is never required. Without `REDIS_URL`, or while the server does not answer, each process
falls back to its own memory (rate limits counted per process, live updates seen only by the
agents connected to the process that made the change) and says so once in the log
(`redis_unavailable`, then `redis_available` when it is back). A health check pings every
`health_seconds`; callers that hit a connection error report it with `mark_down()` so the fallback
starts at once instead of at the next ping.

Every process builds one `SharedRedis` at start (`app.py`) and puts it in
`ctx.components["redis"]`; `shared_redis(ctx)` returns it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.logging import get_logger

log = get_logger("doorstep.redis")

COMPONENT = "redis"
# What a caller catches around a Redis command to fall back to memory.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


class SharedRedis:
    """A Redis client when `url` is set and answering; `available` says whether to use it now."""

    def __init__(self, url: str | None, *, health_seconds: float = 5.0, timeout_seconds: float = 0.5) -> None:
        self.url = url or None
        self.health_seconds = health_seconds
        self.timeout_seconds = timeout_seconds
        self.client: Redis | None = None
        self._available = False
        self._warned = False
        self._task: asyncio.Task[None] | None = None

    @property
    def configured(self) -> bool:
        return self.url is not None

    @property
    def available(self) -> bool:
        return self.client is not None and self._available

    async def start(self) -> None:
        if self.url is None:
            log.info("redis_not_configured", mode="in-process rate limits and live updates")
            return
        self.client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout_seconds,
            socket_connect_timeout=self.timeout_seconds,
            retry_on_timeout=False,
        )
        await self.check()
        self._task = asyncio.create_task(self._watch(), name="redis-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.client is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.client.aclose()
            self.client = None
        self._available = False

    async def check(self) -> bool:
        """Ping now; log the change when Redis goes away or comes back."""
        if self.client is None:
            return False
        try:
            await asyncio.wait_for(self.client.ping(), self.timeout_seconds * 2)
        except REDIS_ERRORS as exc:
            self.mark_down(exc)
            return False
        if not self._available:
            self._available = True
            if self._warned:
                log.info("redis_available", mode="shared")
            self._warned = False
        return True

    def mark_down(self, exc: BaseException | None = None) -> None:
        """A command failed: use the in-process fallback until the next successful ping."""
        was_available = self._available
        self._available = False
        if not self._warned:
            self._warned = True
            log.warning(
                "redis_unavailable",
                mode="degraded: in-process rate limits and live updates",
                error=type(exc).__name__ if exc is not None else "",
                was_available=was_available,
            )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.health_seconds)
            await self.check()


def shared_redis(ctx: Any) -> SharedRedis:
    """The process's SharedRedis (a disabled one when the app did not start one, e.g. in unit tests)."""
    components: dict[str, Any] = ctx.components
    shared = components.get(COMPONENT)
    if shared is None:
        shared = components[COMPONENT] = SharedRedis(None)
    assert isinstance(shared, SharedRedis)
    return shared
