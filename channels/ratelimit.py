"""Token buckets that pace sends per provider, per sender number and per chat.

The outbox worker never sleeps on a bucket: a send that would exceed a limit is put back in the
outbox for the time the bucket needs, so one busy chat or number does not hold up the others.
With Redis (`REDIS_URL`) the buckets are shared by every worker process (one Lua script takes a
token from all of a send's buckets or from none); without it, or while it does not answer, each
process keeps its own buckets, so N processes may send up to N times the rate.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from channels.base import SendError
from core.redis import REDIS_ERRORS, SharedRedis

# KEYS: the buckets; ARGV: rate and burst of each. Answers "0" (tokens taken) or the seconds to wait.
_TAKE_ALL_OR_NONE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tokens, wait = {}, 0
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local stored = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local level, at = tonumber(stored[1]), tonumber(stored[2])
  if level == nil then level, at = burst, now end
  level = math.min(burst, level + math.max(now - at, 0) * rate)
  tokens[i] = level
  if level < 1 then wait = math.max(wait, (1 - level) / rate) end
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return '0'
"""


@dataclass(frozen=True)
class Limit:
    """At most `rate` sends per second under `key`, with bursts of up to `burst`."""

    key: str
    rate: float
    burst: float = 1.0


class RateLimited(SendError):
    """Not now: the message waits `wait` seconds in the outbox; not counted as an attempt."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limited for {wait:.3f}s")
        self.wait = wait


class _Bucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.updated = rate, burst, burst, now

    def refill(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
        self.updated = now


def redis_key(key: str) -> str:
    """Hashed (keys name chats and numbers), with one hash tag so a cluster keeps them in one slot."""
    return "doorstep:rate:{buckets}:" + hashlib.sha256(key.encode()).hexdigest()[:32]


class RateLimiter:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        shared: Callable[[], SharedRedis | None] | None = None,
    ) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._shared = shared  # looked up at each send: Redis may start, stop or come back later

    def try_acquire(self, limits: Sequence[Limit]) -> float:
        """In this process: take one token from every bucket and answer 0, or none and the wait."""
        now = self._clock()
        wait = 0.0
        buckets = []
        for limit in limits:
            if limit.rate <= 0:
                continue
            bucket = self._buckets.get(limit.key)
            if bucket is None:
                bucket = self._buckets[limit.key] = _Bucket(limit.rate, max(limit.burst, 1.0), now)
            bucket.refill(limit.rate, max(limit.burst, 1.0), now)
            if bucket.tokens < 1.0:
                wait = max(wait, (1.0 - bucket.tokens) / bucket.rate)
            buckets.append(bucket)
        if wait > 0:
            return wait
        for bucket in buckets:
            bucket.tokens -= 1.0
        return 0.0

    async def acquire(self, limits: Sequence[Limit]) -> float:
        """Like `try_acquire`, on the buckets every process shares when Redis answers."""
        active = [limit for limit in limits if limit.rate > 0]
        shared = self._shared() if self._shared is not None else None
        if not active or shared is None or not shared.available or shared.client is None:
            return self.try_acquire(active)
        args: list[str] = []
        for limit in active:
            args += [repr(float(limit.rate)), repr(max(float(limit.burst), 1.0))]
        try:
            answer = await shared.client.eval(
                _TAKE_ALL_OR_NONE, len(active), *[redis_key(limit.key) for limit in active], *args
            )
        except REDIS_ERRORS as exc:
            shared.mark_down(exc)
            return self.try_acquire(active)
        return float(answer.decode() if isinstance(answer, bytes) else answer)

    async def acquire_or_raise(self, limits: Sequence[Limit]) -> None:
        wait = await self.acquire(limits)
        if wait > 0:
            raise RateLimited(wait)
