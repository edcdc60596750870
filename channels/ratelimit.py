"""Token buckets that pace sends per provider, per sender number and per chat.

The outbox worker never sleeps on a bucket: a send that would exceed a limit is put back in the
outbox for the time the bucket needs, so one busy chat or number does not hold up the others.
Buckets live in this process; with several worker processes give each a share of the rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from channels.base import SendError


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


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def try_acquire(self, limits: Sequence[Limit]) -> float:
        """Take one token from every bucket and answer 0, or take none and answer the seconds to wait."""
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

    def acquire_or_raise(self, limits: Sequence[Limit]) -> None:
        wait = self.try_acquire(limits)
        if wait > 0:
            raise RateLimited(wait)
