"""The outbox sender: claims due rows, sends them through the channel's sender, records the outcome.

Every outbound message is an outbox row before anything is sent, so nothing accepted is lost across
a restart. A claim is a lease (`claimed_until`): the rows of a worker that died are claimed again
when it runs out, and marked `uncertain_since` so the sender asks the provider before re-sending.
On PostgreSQL several workers share the table with `FOR UPDATE SKIP LOCKED`; on SQLite there is
one writer. Retries back off exponentially with jitter (at least the provider's Retry-After) on
transient errors; after the last attempt the row is `failed` with its reason, for the agents'
console. Per-channel rate-limit policies are checked before a send; a limited row waits without
spending an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import and_, or_
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import (
    OutcomeUnknownError,
    PermanentSendError,
    Sender,
    SendResult,
    TransientSendError,
)
from channels.ratelimit import Limit, RateLimited, RateLimiter
from core.consent import opted_out
from core.context import AppContext
from core.db import is_postgres
from core.logging import get_logger
from core.models import Channel, OutboxMessage, OutboxStatus, Recipient
from core.redis import COMPONENT as REDIS_COMPONENT
from core.redis import SharedRedis

log = get_logger("doorstep.outbox")

RateLimitPolicy = Callable[[OutboxMessage], Sequence[Limit]]

CLAIM_BATCH = 50
SEND_CONCURRENCY = 8

# Provider-reported progress only moves forward; failed and undelivered are final.
_RANK = {
    OutboxStatus.pending: 0,
    OutboxStatus.sending: 0,
    OutboxStatus.queued: 1,
    OutboxStatus.sent: 2,
    OutboxStatus.delivered: 3,
    OutboxStatus.read: 4,
}
FINAL = frozenset({OutboxStatus.failed, OutboxStatus.undelivered, OutboxStatus.suppressed})
# Kinds of message that go even to a recipient who opted out: the confirmation that they did, and
# the answer to HELP (carriers require one).
ALWAYS_SENT = frozenset({"optout", "help"})


@dataclass(frozen=True)
class OutboxMessageFailed:
    """Published after a message is given up on, so the agents' console can show it."""

    outbox_id: int
    retailer_id: int | None
    conversation_id: int | None
    channel: Channel
    reason: str


# --- registries on the app context ---------------------------------------------------------------


def senders(ctx: AppContext) -> dict[Channel, Sender]:
    registry: dict[Channel, Sender] = ctx.components.setdefault("senders", {})
    return registry


def rate_limiter(ctx: AppContext) -> RateLimiter:
    """The process's buckets, shared through Redis with the other processes when it answers."""
    limiter = ctx.components.get("rate_limiter")
    if not isinstance(limiter, RateLimiter):
        limiter = ctx.components["rate_limiter"] = RateLimiter(shared=lambda: _redis_of(ctx))
    return limiter


def _redis_of(ctx: AppContext) -> SharedRedis | None:
    shared = ctx.components.get(REDIS_COMPONENT)
    return shared if isinstance(shared, SharedRedis) else None


def rate_limit_policies(ctx: AppContext) -> dict[Channel, RateLimitPolicy]:
    policies: dict[Channel, RateLimitPolicy] = ctx.components.setdefault("rate_limits", {})
    return policies


def register_rate_limit(ctx: AppContext, channel: Channel, policy: RateLimitPolicy) -> None:
    """A channel's limits, checked before each send (e.g. Telegram: 30/s overall, 1/s per chat)."""
    rate_limit_policies(ctx)[channel] = policy


def wake(ctx: AppContext) -> None:
    """Tell the running worker that rows are due now (a webhook just queued a reply)."""
    worker = ctx.components.get("outbox_worker")
    if isinstance(worker, OutboxWorker):
        worker.wake()


# --- status ----------------------------------------------------------------------------------------


def advance_status(row: OutboxMessage, new: OutboxStatus, at: datetime, error: str = "") -> bool:
    """Move a row's status forward only; answer whether it changed. Out-of-order news is ignored."""
    if row.status in FINAL:
        return False
    if new in FINAL:
        if _RANK.get(row.status, 0) >= _RANK[OutboxStatus.delivered]:
            return False  # it arrived; a late failure report cannot undo that
    elif _RANK[new] <= _RANK.get(row.status, 0):
        return False
    row.status = new
    row.status_at = at
    if error:
        row.last_error = error[:500]
    return True


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with equal jitter, never shorter than the provider's Retry-After."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security
    return float(max(delay, retry_after or 0.0))


# --- claiming and sending --------------------------------------------------------------------------


async def claim(
    ctx: AppContext, channels: Sequence[Channel], limit: int = CLAIM_BATCH
) -> list[OutboxMessage]:
    """Lease up to `limit` due rows of these channels to this worker.

    A row whose recipient opted out of its channel since it was queued is suppressed here, before
    anything is rendered or sent (only the confirmation of the opt-out itself still goes).
    """
    if not channels:
        return []
    now = ctx.clock()
    lease = timedelta(seconds=ctx.settings.outbox_lease_seconds)
    due = or_(
        and_(col(OutboxMessage.status) == OutboxStatus.pending, col(OutboxMessage.next_attempt_at) <= now),
        and_(col(OutboxMessage.status) == OutboxStatus.sending, col(OutboxMessage.claimed_until) < now),
    )
    query = (
        select(OutboxMessage)
        .where(due, col(OutboxMessage.channel).in_(list(channels)))
        .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
        .limit(limit)
    )
    if is_postgres(ctx.engine):
        query = query.with_for_update(skip_locked=True)
    async with ctx.uow() as uow:
        rows = list((await uow.session.exec(query)).all())
        stopped = await _opted_out(uow.session, rows)
        for row in rows:
            if row.id in stopped:
                row.status = OutboxStatus.suppressed
                row.status_at = now
                row.claimed_until = None
                row.last_error = "the recipient opted out of this channel"
                continue
            if row.status == OutboxStatus.sending:
                # its worker died mid-send: the provider may already have the message
                started = (row.claimed_until or now) - lease
                row.uncertain_since = row.uncertain_since or started
            row.status = OutboxStatus.sending
            row.claimed_until = now + lease
            row.attempts += 1
        await uow.commit()
    return rows


async def _opted_out(session: AsyncSession, rows: Sequence[OutboxMessage]) -> set[int]:
    recipient_ids = {row.recipient_id for row in rows if row.recipient_id is not None}
    if not recipient_ids:
        return set()
    recipients = {
        r.id: r
        for r in (await session.exec(select(Recipient).where(col(Recipient.id).in_(recipient_ids)))).all()
    }
    stopped = set()
    for row in rows:
        recipient = recipients.get(row.recipient_id)
        if (
            recipient is not None
            and opted_out(recipient, row.channel)
            and row.template_key not in ALWAYS_SENT
        ):
            stopped.add(row.id or 0)
    return stopped


@dataclass
class DrainReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    suppressed: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.deferred + self.suppressed

    def add(self, other: DrainReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.deferred += other.deferred
        self.suppressed += other.suppressed


async def release(ctx: AppContext, row: OutboxMessage) -> None:
    """Give a claimed row back, unsent and without spending an attempt, if the lease is still ours."""
    async with ctx.uow() as uow:
        current = await uow.session.get(OutboxMessage, row.id)
        if current is None or current.claimed_until != row.claimed_until:
            return
        current.status = OutboxStatus.pending
        current.claimed_until = None
        current.attempts = max(current.attempts - 1, 0)
        await uow.commit()


async def send_claimed(ctx: AppContext, row: OutboxMessage) -> DrainReport:
    """Send one claimed row and record what happened."""
    report = DrainReport()
    started = ctx.clock()
    if row.claimed_until is not None and (
        (row.claimed_until - started).total_seconds() < ctx.settings.twilio_timeout_seconds
    ):
        # The batch waited so long that the lease could run out mid-send and another worker take the
        # row over (a visible duplicate): hand it back untouched instead.
        await release(ctx, row)
        report.deferred = 1
        return report
    sender = senders(ctx).get(row.channel)
    result: SendResult | None = None
    error: Exception | None = None
    try:
        if sender is None:
            raise PermanentSendError(f"no sender for channel {row.channel}")
        policy = rate_limit_policies(ctx).get(row.channel)
        if policy is not None:
            await rate_limiter(ctx).acquire_or_raise(policy(row))
        result = await sender.send(row)
    except (RateLimited, TransientSendError, PermanentSendError) as exc:
        error = exc
    except Exception as exc:  # a sender's bug must not lose the message: retry, then fail
        log.exception("outbox_sender_crashed", outbox_id=row.id, channel=str(row.channel))
        error = TransientSendError(f"sender error: {exc.__class__.__name__}")

    now = ctx.clock()
    settings = ctx.settings
    outcome = "sent" if result is not None else error.__class__.__name__
    ctx.metrics.sends.labels(str(row.channel), outcome).inc()
    if result is not None:
        ctx.metrics.send_latency.labels(str(row.channel)).observe((now - started).total_seconds())
    async with ctx.uow() as uow:
        current = await uow.session.get(OutboxMessage, row.id)
        if current is None or current.claimed_until != row.claimed_until:
            return report  # our lease ran out and another worker took the row over
        current.claimed_until = None
        if result is not None:
            current.provider_id = result.provider_id
            current.segments = result.segments
            current.encoding = result.encoding
            current.sent_at = now
            current.uncertain_since = None
            current.last_error = ""
            if current.status == OutboxStatus.sending:
                current.status = OutboxStatus.queued
                current.status_at = now
            report.sent = 1
            log.info("outbox_sent", outbox_id=row.id, channel=str(row.channel), attempts=current.attempts)
        elif isinstance(error, RateLimited):
            current.status = OutboxStatus.pending
            current.attempts = max(current.attempts - 1, 0)
            current.next_attempt_at = now + timedelta(seconds=error.wait)
            report.deferred = 1
        elif isinstance(error, TransientSendError) and current.attempts < settings.outbox_max_attempts:
            if isinstance(error, OutcomeUnknownError):
                current.uncertain_since = current.uncertain_since or started
            delay = backoff(
                current.attempts,
                settings.outbox_backoff_seconds,
                settings.outbox_backoff_max_seconds,
                error.retry_after,
            )
            current.status = OutboxStatus.pending
            current.next_attempt_at = now + timedelta(seconds=delay)
            current.last_error = str(error)[:500]
            report.retried = 1
            log.warning(
                "outbox_retry",
                outbox_id=row.id,
                channel=str(row.channel),
                attempts=current.attempts,
                delay=round(delay, 3),
                reason=str(error),
            )
        else:
            reason = str(error) if error is not None else "unknown error"
            if isinstance(error, TransientSendError):
                reason = f"gave up after {current.attempts} attempts: {reason}"
            current.status = OutboxStatus.failed
            current.status_at = now
            current.last_error = reason[:500]
            uow.record(
                OutboxMessageFailed(
                    outbox_id=current.id or 0,
                    retailer_id=current.retailer_id,
                    conversation_id=current.conversation_id,
                    channel=current.channel,
                    reason=current.last_error,
                )
            )
            report.failed = 1
            log.warning(
                "outbox_failed", outbox_id=row.id, channel=str(row.channel), reason=current.last_error
            )
        await uow.commit()
    return report


async def drain_once(ctx: AppContext, limit: int = CLAIM_BATCH) -> tuple[int, DrainReport]:
    """Claim one batch and send it; answer how many rows were claimed and what became of them."""
    claimed = await claim(ctx, list(senders(ctx)), limit)
    report = DrainReport(suppressed=sum(row.status == OutboxStatus.suppressed for row in claimed))
    rows = [row for row in claimed if row.status == OutboxStatus.sending]
    if not claimed:
        return 0, report
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def guarded(row: OutboxMessage) -> DrainReport:
        async with gate:
            return await send_claimed(ctx, row)

    for part in await asyncio.gather(*(guarded(row) for row in rows)):
        report.add(part)
    return len(claimed), report


async def drain(ctx: AppContext) -> DrainReport:
    """Send everything due now (tests and the command line call this; the worker loops on it)."""
    total = DrainReport()
    while True:
        claimed, report = await drain_once(ctx)
        total.add(report)
        if claimed == 0:
            return total


# --- the background worker -----------------------------------------------------------------------


class OutboxWorker:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self, grace: float = 5.0) -> None:
        """Let the batch in flight finish (its rows would otherwise wait out their lease), then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        poll = self.ctx.settings.outbox_poll_seconds
        while not self._stopping:
            self._wake.clear()
            claimed = 0
            try:
                claimed, _report = await drain_once(self.ctx)
            except OperationalError as exc:  # SQLite busy, PostgreSQL restarting: try again shortly
                log.warning("outbox_claim_failed", error=exc.__class__.__name__)
            except Exception:
                log.exception("outbox_worker_error")
            if claimed >= CLAIM_BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll)


async def start_outbox_worker(_app: FastAPI, ctx: AppContext) -> Callable[[], Awaitable[Any]] | None:
    """Starter for app.py: run the worker in this process when OUTBOX_ENABLED."""
    if not ctx.settings.outbox_enabled:
        return None
    worker = OutboxWorker(ctx)
    ctx.components["outbox_worker"] = worker
    worker.start()
    return worker.stop


def install(app: FastAPI) -> None:
    """Run the outbox sender in this process when OUTBOX_ENABLED (senders register at start)."""
    app.state.starters.append(start_outbox_worker)
