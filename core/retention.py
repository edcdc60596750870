"""What Doorstep keeps, for how long, and the purge that deletes the rest (daily, in the leader).

Without it every table that grows with traffic grows for ever: a busy carrier's day adds hundreds of
thousands of webhook receipts, outbox rows, messages and notifications, most of them personal data
(phone numbers, names, addresses, what people wrote) that nobody needs once the parcel is long
delivered. Canada's PIPEDA asks that personal information be kept only as long as it serves its
purpose; the periods are settings, and these are their meanings:

- `RETENTION_RECEIPT_DAYS` (7): the provider ids of handled webhooks. They exist only to refuse a
  retried webhook, and providers give up retrying within a day (Telegram keeps an update 24 hours).
- `RETENTION_DAYS` (180; 0 keeps everything), or a retailer's own `settings["retention_days"]` for
  its conversations and notifications (a contract may ask for less, or more): a conversation silent
  that long goes with its messages, its outbox rows and the files agents sent in it; a notification
  goes that long after it was due, once it was sent, suppressed or cancelled. A conversation with a
  message still waiting to be sent is kept; a notification that keeps its row has its outbox link
  cleared with the row.
- Console sessions go once expired.

Kept on purpose: the change log (each retailer's audit trail of its deliveries, read through
`GET /api/v1/changes`), recipients and deliveries (the retailer's own records, imported with its
plans) and kept events (a delivery guarantee, deleted when handled).

Every kind goes oldest first in batches of `batch` rows, each in its own short transaction, so the
purge never holds locks the live traffic waits on for long, and stops anywhere without harm: the
next run takes up where it stopped. Conversations are locked `FOR UPDATE SKIP LOCKED` and checked
again under the lock, so a recipient who writes just then keeps theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Select, delete, exists, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from core.context import AppContext
from core.logging import get_logger
from core.models import (
    Conversation,
    InboundReceipt,
    Message,
    Notification,
    OutboxMessage,
    OutboxStatus,
    OutgoingFile,
    Retailer,
    WebSession,
)

log = get_logger("doorstep.retention")

BATCH = 500  # rows, or conversations with all they carry, per transaction (bench/bench_retention.py)
UNSENT = (OutboxStatus.pending, OutboxStatus.sending)
FINISHED_NOTIFICATIONS = ("sent", "suppressed", "cancelled")


@dataclass(frozen=True)
class RetentionPolicy:
    receipts: timedelta
    conversations: timedelta | None  # None: kept for ever

    @classmethod
    def of(cls, ctx: AppContext) -> RetentionPolicy:
        settings = ctx.settings
        return cls(
            receipts=timedelta(days=settings.retention_receipt_days),
            conversations=period(settings.retention_days),
        )


@dataclass
class Purged:
    """Rows deleted by one purge, by kind (what the log line and the metric report)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, rows: int) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + rows

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def period(days: int) -> timedelta | None:
    return timedelta(days=days) if days > 0 else None


async def retailer_periods(ctx: AppContext) -> dict[int, timedelta | None]:
    """The retailers whose `settings["retention_days"]` sets their own period (0: kept for ever)."""
    async with ctx.sessionmaker() as session:
        rows = (await session.execute(select(col(Retailer.id), col(Retailer.settings)))).all()
    periods: dict[int, timedelta | None] = {}
    for retailer_id, settings in rows:
        days = (settings or {}).get("retention_days")
        if days is None:
            continue
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            log.warning("retention_setting_ignored", retailer_id=retailer_id)
            continue
        periods[retailer_id] = period(days)
    return periods


def within(column: Any, retailers: Sequence[int], *, only: bool) -> Any:
    """`only`: these retailers' rows; otherwise everyone else's (rows of no retailer included)."""
    if only:
        return column.in_(retailers)
    return or_(column.is_(None), column.not_in(retailers)) if retailers else true()


async def purge_expired(
    ctx: AppContext, *, policy: RetentionPolicy | None = None, batch: int = BATCH
) -> Purged:
    """Delete what the retention policy no longer keeps; returns the rows deleted by kind."""
    policy = policy or RetentionPolicy.of(ctx)
    now = ctx.clock()
    purged = Purged()
    await _in_batches(ctx, purged, batch, lambda size: _receipts(ctx, now - policy.receipts, size))
    await _in_batches(ctx, purged, batch, lambda size: _sessions(ctx, now, size))
    own = await retailer_periods(ctx)
    groups: dict[timedelta | None, list[int]] = {}
    for retailer_id, kept_for in own.items():
        groups.setdefault(kept_for, []).append(retailer_id)
    scopes = [(policy.conversations, list(own), False), *((p, ids, True) for p, ids in groups.items())]
    for kept_for, retailers, only in scopes:
        if kept_for is None:
            continue
        cutoff = now - kept_for
        for step in (_notifications, _conversations):
            await _in_batches(ctx, purged, batch, partial(step, ctx, cutoff, retailers=retailers, only=only))
    for kind, rows in purged.counts.items():
        if rows:
            ctx.metrics.retention_deleted.labels(kind).inc(rows)
    log.info("retention_purged", **purged.counts)
    return purged


Step = Callable[[int], Awaitable[tuple[dict[str, int], bool]]]


async def _in_batches(ctx: AppContext, purged: Purged, batch: int, step: Step) -> None:
    """Run `step` until it says it is done; each call is one transaction of at most `batch` rows."""
    while True:
        counts, more = await step(batch)
        for kind, rows in counts.items():
            purged.add(kind, rows)
        if not more:
            return
        await asyncio.sleep(0)  # let the requests waiting on this process through between batches


async def _delete_ids(connection: AsyncConnection, model: Any, ids: Sequence[int | None]) -> int:
    result = await connection.execute(delete(model).where(col(model.id).in_(ids)))
    return int(result.rowcount or 0)


async def _receipts(ctx: AppContext, cutoff: datetime, size: int) -> tuple[dict[str, int], bool]:
    """Oldest first by id, which follows the time of receipt: the scan stops at the first row
    young enough to keep, so it never reads the week of receipts it keeps (no index on the time)."""
    oldest = (
        select(col(InboundReceipt.id), col(InboundReceipt.received_at) < cutoff)
        .order_by(col(InboundReceipt.id))
        .limit(size)
    )
    async with ctx.uow() as uow:
        connection = await uow.session.connection()
        rows = (await connection.execute(oldest)).all()
        old = [receipt_id for receipt_id, is_old in rows if is_old]
        deleted = await _delete_ids(connection, InboundReceipt, old) if old else 0
        await uow.commit()
    return {"receipts": deleted}, len(rows) == size and len(old) == len(rows)


async def _selected(
    ctx: AppContext, kind: str, model: Any, selection: Select[Any], size: int
) -> tuple[dict[str, int], bool]:
    """Delete the rows `selection` picks (at most `size`) in one transaction."""
    async with ctx.uow() as uow:
        connection = await uow.session.connection()
        ids = list((await connection.execute(selection.limit(size))).scalars())
        deleted = await _delete_ids(connection, model, ids) if ids else 0
        await uow.commit()
    return {kind: deleted}, len(ids) == size


def _sessions(ctx: AppContext, now: datetime, size: int) -> Awaitable[tuple[dict[str, int], bool]]:
    expired = select(col(WebSession.id)).where(col(WebSession.expires_at) <= now)
    return _selected(ctx, "sessions", WebSession, expired, size)


def _notifications(
    ctx: AppContext, cutoff: datetime, size: int, *, retailers: Sequence[int], only: bool
) -> Awaitable[tuple[dict[str, int], bool]]:
    finished = (
        select(col(Notification.id))
        .where(
            col(Notification.due_at) < cutoff,
            col(Notification.status).in_(FINISHED_NOTIFICATIONS),
            within(col(Notification.retailer_id), retailers, only=only),
        )
        .order_by(col(Notification.due_at))
    )
    return _selected(ctx, "notifications", Notification, finished, size)


async def _conversations(
    ctx: AppContext, cutoff: datetime, size: int, *, retailers: Sequence[int], only: bool
) -> tuple[dict[str, int], bool]:
    """Silent conversations with everything that hangs on them."""
    waiting = exists().where(
        col(OutboxMessage.conversation_id) == col(Conversation.id), col(OutboxMessage.status).in_(UNSENT)
    )
    silent = (
        select(col(Conversation.id))
        .where(
            col(Conversation.updated_at) < cutoff,
            ~waiting,
            within(col(Conversation.retailer_id), retailers, only=only),
        )
        .order_by(col(Conversation.updated_at))
        .limit(size)
        .with_for_update(of=Conversation, skip_locked=True)  # PostgreSQL; SQLite has one writer
    )
    async with ctx.uow() as uow:
        connection = await uow.session.connection()
        ids: Sequence[int | None] = list((await connection.execute(silent)).scalars())
        if not ids:
            return {}, False
        counts = await delete_conversations(connection, ids)
        await uow.commit()
    return counts, len(ids) == size


async def delete_conversations(connection: AsyncConnection, ids: Sequence[int | None]) -> dict[str, int]:
    """Delete conversations with their messages, outbox rows and agents' files, children first
    (foreign keys); a notification keeps its row without its link to the outbox row that went."""
    their_outbox = select(col(OutboxMessage.id)).where(col(OutboxMessage.conversation_id).in_(ids))
    await connection.execute(
        update(Notification).where(col(Notification.outbox_id).in_(their_outbox)).values(outbox_id=None)
    )
    counts = {}
    for kind, model in (("messages", Message), ("outbox", OutboxMessage), ("files", OutgoingFile)):
        result = await connection.execute(delete(model).where(col(model.conversation_id).in_(ids)))
        counts[kind] = int(result.rowcount or 0)
    counts["conversations"] = await _delete_ids(connection, Conversation, ids)
    return counts
