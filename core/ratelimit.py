"""Failure counters that lock a sender out after too many wrong guesses.

A sender on any channel who names a delivery by tracking number and postal code and gets the pair
wrong counts one failure under its (channel, address). After `limit` failures within
`window_seconds` the sender is refused, right pair or not, until the window passes, and the refusal
reads the same as a wrong pair, so guessing teaches nothing.

Counters live in Redis (`INCR` + `EXPIRE NX`, one fixed window per sender, shared by every process)
and fall back to this process's memory (a sliding window) when Redis is absent or fails; see
`core/redis.py`. Keys are SHA-256 hashes: no phone number is written to Redis.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from core.logging import get_logger
from core.redis import REDIS_ERRORS, SharedRedis, shared_redis

log = get_logger("doorstep.ratelimit")

GUESS_LIMITER = "ratelimit.tracking_guesses"


class MemoryFailures:
    """Failures per key in a sliding window, in this process only."""

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window_seconds
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _live(self, key: str) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        oldest = self._clock() - self.window
        while hits and hits[0] <= oldest:
            hits.popleft()
        return hits

    def count(self, key: str) -> int:
        hits = self._live(key)
        if not hits:
            self._hits.pop(key, None)
        return len(hits)

    def add(self, key: str) -> int:
        hits = self._live(key)
        hits.append(self._clock())
        if len(self._hits) > 100_000:  # bound memory under a flood of distinct senders
            for stale in [k for k, v in self._hits.items() if not v or v[-1] <= self._clock() - self.window]:
                del self._hits[stale]
        return len(hits)

    def clear(self, key: str) -> None:
        self._hits.pop(key, None)


class FailureLimiter:
    """At most `limit` failures per key within `window_seconds`; shared through Redis when it answers."""

    def __init__(
        self,
        redis: SharedRedis,
        *,
        name: str,
        limit: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.name = name
        self.limit = limit
        self.window_seconds = window_seconds
        self.memory = MemoryFailures(window_seconds, clock)

    def _key(self, key: str) -> str:
        return f"doorstep:{self.name}:" + hashlib.sha256(key.encode()).hexdigest()

    async def failures(self, key: str) -> int:
        client = self.redis.client
        if client is not None and self.redis.available:
            try:
                value = await client.get(self._key(key))
                return int(value or 0)
            except REDIS_ERRORS as exc:
                self.redis.mark_down(exc)
        return self.memory.count(key)

    async def blocked(self, key: str) -> bool:
        return await self.failures(key) >= self.limit

    async def record_failure(self, key: str) -> int:
        """Count one failure; answer the failures in the current window."""
        client = self.redis.client
        if client is not None and self.redis.available:
            try:
                name = self._key(key)
                async with client.pipeline(transaction=True) as pipe:
                    pipe.incr(name)
                    pipe.expire(name, max(int(self.window_seconds), 1), nx=True)
                    count, _ = await pipe.execute()
                return int(count)
            except REDIS_ERRORS as exc:
                self.redis.mark_down(exc)
        return self.memory.add(key)

    async def clear(self, key: str) -> None:
        self.memory.clear(key)
        client = self.redis.client
        if client is not None and self.redis.available:
            try:
                await client.delete(self._key(key))
            except REDIS_ERRORS as exc:
                self.redis.mark_down(exc)


def sender_key(channel: str, sender: str) -> str:
    return f"{channel}:{sender}"


def tracking_guess_limiter(ctx: Any) -> FailureLimiter:
    """The process's limiter of wrong tracking/postal-code pairs (TRACKING_GUESS_LIMIT per window)."""
    components: dict[str, Any] = ctx.components
    limiter = components.get(GUESS_LIMITER)
    if limiter is None:
        settings = ctx.settings
        limiter = components[GUESS_LIMITER] = FailureLimiter(
            shared_redis(ctx),
            name="tracking-guesses",
            limit=settings.tracking_guess_limit,
            window_seconds=settings.tracking_guess_window_seconds,
        )
    assert isinstance(limiter, FailureLimiter)
    return limiter
