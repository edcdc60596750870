"""A retailer admin's dashboard: per day, notifications sent / delivered / answered, changes made by
recipients and by agents, and hand-offs to agents.

"Answered" means the recipient wrote to us within 24 hours after the notification was queued.
Hand-offs are counted twice over from the lines they leave in a conversation's history: asked for
(the bot queued the conversation for a person, bot.handoff.request_person) and taken over (an agent
took it, console.actions). Days are the retailer's local days.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.handoff import HANDOFF_REQUESTED
from console.pictures import Series, bar_chart_svg
from core.models import (
    Author,
    ChangeLog,
    Conversation,
    Direction,
    Message,
    Notification,
    OutboxMessage,
    OutboxStatus,
    Retailer,
)

SENT = frozenset({OutboxStatus.queued, OutboxStatus.sent, OutboxStatus.delivered, OutboxStatus.read})
DELIVERED = frozenset({OutboxStatus.delivered, OutboxStatus.read})
ANSWER_WITHIN = timedelta(hours=24)


TAKEN_OVER = "console:taken_over"  # the line console.actions writes when an agent takes over


@dataclass
class DayFigures:
    day: date
    sent: int = 0
    delivered: int = 0
    answered: int = 0
    failed: int = 0
    recipient_changes: int = 0
    agent_changes: int = 0
    handoff_requests: int = 0  # the bot queued the conversation for a person
    handoffs: int = 0  # an agent took it over


async def daily_figures(
    session: AsyncSession, retailer_ids: Collection[int], *, days: int, now: datetime
) -> list[DayFigures]:
    ids = sorted(retailer_ids)
    zones = (await session.exec(select(Retailer.timezone).where(col(Retailer.id).in_(ids)))).all()
    tz = ZoneInfo(zones[0] if zones else "America/Toronto")
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    figures = {first + timedelta(days=i): DayFigures(first + timedelta(days=i)) for i in range(days)}

    def bucket(moment: datetime) -> DayFigures | None:
        return figures.get(moment.astimezone(tz).date())

    notices = (
        await session.exec(
            select(OutboxMessage.created_at, OutboxMessage.status, OutboxMessage.recipient_id)
            .join(Notification, col(Notification.outbox_id) == col(OutboxMessage.id))
            .where(col(Notification.retailer_id).in_(ids), OutboxMessage.created_at >= since)
        )
    ).all()
    inbound = (
        await session.exec(
            select(Conversation.recipient_id, Message.created_at)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(
                col(Conversation.retailer_id).in_(ids),
                Message.direction == Direction.inbound,
                Message.created_at >= since,
            )
        )
    ).all()
    replies: dict[int, list[datetime]] = {}
    for recipient_id, at in inbound:
        if recipient_id is not None:
            replies.setdefault(recipient_id, []).append(at)
    for times in replies.values():
        times.sort()
    for created_at, state, recipient_id in notices:
        day = bucket(created_at)
        if day is None:
            continue
        if state in SENT:
            day.sent += 1
        if state in DELIVERED:
            day.delivered += 1
        if state in (OutboxStatus.failed, OutboxStatus.undelivered):
            day.failed += 1
        if state not in SENT:
            continue
        times = replies.get(recipient_id or -1, [])
        i = bisect.bisect_left(times, created_at)
        if i < len(times) and times[i] <= created_at + ANSWER_WITHIN:
            day.answered += 1
    changes = (
        await session.exec(
            select(ChangeLog.created_at, ChangeLog.actor).where(
                col(ChangeLog.retailer_id).in_(ids),
                col(ChangeLog.actor).in_([Author.recipient, Author.agent]),
                ChangeLog.created_at >= since,
            )
        )
    ).all()
    for created_at, actor in changes:
        day = bucket(created_at)
        if day is not None:
            if actor == Author.agent:
                day.agent_changes += 1
            else:
                day.recipient_changes += 1
    handoffs = (
        await session.exec(
            select(Message.created_at, Message.payload)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(
                col(Conversation.retailer_id).in_(ids),
                Message.author == Author.system,
                col(Message.payload).in_([HANDOFF_REQUESTED, TAKEN_OVER]),
                Message.created_at >= since,
            )
        )
    ).all()
    for created_at, payload in handoffs:
        day = bucket(created_at)
        if day is not None:
            if payload == TAKEN_OVER:
                day.handoffs += 1
            else:
                day.handoff_requests += 1
    return [figures[d] for d in sorted(figures)]


def charts(figures: list[DayFigures]) -> list[Markup]:
    labels = [f.day.strftime("%b %d") for f in figures]
    return [
        bar_chart_svg(
            "Notifications",
            labels,
            [
                Series("sent", "#1f6feb", [f.sent for f in figures]),
                Series("delivered", "#2da44e", [f.delivered for f in figures]),
                Series("answered", "#e16f24", [f.answered for f in figures]),
            ],
        ),
        bar_chart_svg(
            "Changes",
            labels,
            [
                Series("by recipients", "#8250df", [f.recipient_changes for f in figures]),
                Series("by agents", "#bf3989", [f.agent_changes for f in figures]),
            ],
        ),
        bar_chart_svg(
            "Hand-offs to agents",
            labels,
            [
                Series("asked for", "#fb8f44", [f.handoff_requests for f in figures]),
                Series("taken over", "#cf222e", [f.handoffs for f in figures]),
            ],
        ),
    ]
