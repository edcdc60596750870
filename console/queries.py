"""What the console reads: the inbox, one conversation with its history, a delivery's context.

Every query takes the signed-in user's retailer ids and filters by them in SQL: an id in a URL
never reaches a row of another retailer. A conversation of another retailer is "not found".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import String, and_, case, cast, false, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import (
    Author,
    ChangeLog,
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    Direction,
    Message,
    OutboxMessage,
    OutboxStatus,
    Owner,
    PickupPoint,
    Recipient,
    Retailer,
    Stop,
    User,
    Vehicle,
)
from core.phones import mask

FAILED_SENDS = (OutboxStatus.failed, OutboxStatus.undelivered)
INBOX_LIMIT = 100
HISTORY_LIMIT = 500
WHATSAPP_WINDOW = timedelta(hours=24)
DEFAULT_TIMEZONE = "America/Toronto"
BOT_FAILING_AFTER = 2  # messages in a row the bot did not understand (it then offers a person)


class NotFound(Exception):
    """No such row for this user: absent and foreign look the same."""


@dataclass(frozen=True)
class InboxFilters:
    needs_person: bool = False
    mine: bool = False
    channel: Channel | None = None
    retailer_id: int | None = None
    status: str = "active"  # active (needs a person + open), closed, all
    q: str = ""

    def query_string(self) -> str:
        params: dict[str, str] = {}
        if self.needs_person:
            params["needs"] = "1"
        if self.mine:
            params["mine"] = "1"
        if self.channel:
            params["channel"] = self.channel.value
        if self.retailer_id:
            params["retailer"] = str(self.retailer_id)
        if self.status != "active":
            params["status"] = self.status
        if self.q:
            params["q"] = self.q
        return urlencode(params)


@dataclass
class InboxRow:
    id: int
    channel: Channel
    status: ConversationStatus
    owner: Owner
    needs_person: bool
    failed_send: bool
    bot_failing: bool
    assignee: str
    mine: bool
    recipient_name: str
    address: str
    tracking: str
    retailer: str
    timezone: str
    last_text: str
    last_author: str
    last_at: datetime | None
    priority: int


PHONE_CHANNELS = (Channel.sms, Channel.whatsapp)


def visible(retailer_ids: Collection[int], *, include_unassigned: bool = False) -> Any:
    """Conversations of these retailers; plus those not yet tied to a retailer whose sender's phone is
    a recipient of these retailers only (a hand-off asked before the bot knew which delivery);
    `include_unassigned` (admins) adds every conversation without a retailer."""
    ids = sorted(retailer_ids)
    assigned: Any = col(Conversation.retailer_id).in_(ids) if ids else false()
    if include_unassigned:
        return or_(assigned, col(Conversation.retailer_id).is_(None))
    if not ids:
        return false()
    theirs = aliased(Recipient)
    others = aliased(Recipient)
    ours_only = and_(
        col(Conversation.retailer_id).is_(None),
        col(Conversation.channel).in_(PHONE_CHANNELS),
        select(theirs.id)
        .where(col(theirs.phone) == Conversation.address, col(theirs.retailer_id).in_(ids))
        .correlate(Conversation)
        .exists(),
        ~select(others.id)
        .where(col(others.phone) == Conversation.address, col(others.retailer_id).not_in(ids))
        .correlate(Conversation)
        .exists(),
    )
    return or_(assigned, ours_only)


def _scope(query: Any, retailer_ids: Collection[int], *, include_unassigned: bool = False) -> Any:
    return query.where(visible(retailer_ids, include_unassigned=include_unassigned))


async def sender_recipients(
    session: AsyncSession, conversation: Conversation, retailer_ids: Collection[int]
) -> list[Recipient]:
    """For a conversation not yet tied to a retailer: the recipients (of these retailers) its sender is."""
    if conversation.retailer_id is not None or conversation.channel not in PHONE_CHANNELS:
        return []
    return list(
        (
            await session.exec(
                select(Recipient).where(
                    Recipient.phone == conversation.address,
                    col(Recipient.retailer_id).in_(sorted(retailer_ids)),
                )
            )
        ).all()
    )


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


async def inbox(
    session: AsyncSession,
    retailer_ids: Collection[int],
    user_id: int,
    filters: InboxFilters,
    *,
    include_unassigned: bool = False,
    limit: int = INBOX_LIMIT,
) -> list[InboxRow]:
    """Conversations that need a person first (asked, bot failing, failed send), then open ones."""
    last_message_id = (
        select(Message.conversation_id, func.max(Message.id).label("last_id"))
        .where(col(Message.internal_note).is_(False))
        .group_by(col(Message.conversation_id))
        .subquery()
    )
    last_outbox_id = (
        select(OutboxMessage.conversation_id, func.max(OutboxMessage.id).label("last_id"))
        .where(col(OutboxMessage.conversation_id).is_not(None))
        .group_by(col(OutboxMessage.conversation_id))
        .subquery()
    )
    last_message = aliased(Message)
    last_outbox = aliased(OutboxMessage)
    failed = and_(
        col(last_outbox.status).in_(FAILED_SENDS), col(Conversation.status) != ConversationStatus.closed
    )
    needs = col(Conversation.status) == ConversationStatus.needs_person
    failing = and_(
        col(Conversation.misunderstood) >= BOT_FAILING_AFTER,
        col(Conversation.owner) == Owner.bot,
        col(Conversation.status) != ConversationStatus.closed,
    )
    priority = case(
        (or_(needs, failed, failing), 0),
        (
            and_(
                col(Conversation.owner) == Owner.agent, col(Conversation.status) != ConversationStatus.closed
            ),
            1,
        ),
        (col(Conversation.status) == ConversationStatus.open, 2),
        else_=3,
    )
    sender = aliased(Recipient)
    sender_name = (
        select(func.min(sender.name))
        .where(col(sender.phone) == Conversation.address, col(sender.retailer_id).in_(sorted(retailer_ids)))
        .correlate(Conversation)
        .scalar_subquery()
    )
    query = (
        select(
            Conversation,
            func.coalesce(Recipient.name, sender_name),
            Delivery.tracking,
            Retailer.slug,
            Retailer.timezone,
            User.name,
            User.email,
            last_message.text,
            last_message.author,
            last_message.created_at,
            last_outbox.status,
            priority.label("priority"),
        )  # type: ignore[call-overload]
        .outerjoin(Recipient, col(Recipient.id) == col(Conversation.recipient_id))
        .outerjoin(Delivery, col(Delivery.id) == col(Conversation.delivery_id))
        .outerjoin(Retailer, col(Retailer.id) == col(Conversation.retailer_id))
        .outerjoin(User, col(User.id) == col(Conversation.assignee_id))
        .outerjoin(last_message_id, last_message_id.c.conversation_id == Conversation.id)
        .outerjoin(last_message, last_message.id == last_message_id.c.last_id)
        .outerjoin(last_outbox_id, last_outbox_id.c.conversation_id == Conversation.id)
        .outerjoin(last_outbox, last_outbox.id == last_outbox_id.c.last_id)
    )
    query = _scope(query, retailer_ids, include_unassigned=include_unassigned)
    if filters.status == "active":
        query = query.where(Conversation.status != ConversationStatus.closed)
    elif filters.status == "closed":
        query = query.where(Conversation.status == ConversationStatus.closed)
    if filters.needs_person:
        query = query.where(or_(needs, failed, failing))
    if filters.mine:
        query = query.where(Conversation.assignee_id == user_id)
    if filters.channel is not None:
        query = query.where(Conversation.channel == filters.channel)
    if filters.retailer_id is not None:
        query = query.where(Conversation.retailer_id == filters.retailer_id)
    if filters.q.strip():
        query = query.where(_search(filters.q.strip()))
    query = query.order_by(priority, col(Conversation.updated_at).desc(), col(Conversation.id).desc()).limit(
        limit
    )
    rows = []
    for (
        conversation,
        name,
        tracking,
        slug,
        timezone,
        assignee_name,
        assignee_email,
        text,
        author,
        at,
        outbox_status,
        rank,
    ) in (await session.exec(query)).all():
        assert conversation.id is not None
        rows.append(
            InboxRow(
                id=conversation.id,
                channel=conversation.channel,
                status=conversation.status,
                owner=conversation.owner,
                needs_person=conversation.status == ConversationStatus.needs_person,
                failed_send=outbox_status in FAILED_SENDS
                and conversation.status != ConversationStatus.closed,
                bot_failing=conversation.misunderstood >= BOT_FAILING_AFTER
                and conversation.owner == Owner.bot
                and conversation.status != ConversationStatus.closed,
                assignee=(assignee_name or (assignee_email or "").split("@")[0])
                if conversation.assignee_id
                else "",
                mine=conversation.assignee_id == user_id,
                recipient_name=name or "",
                address=_display_address(conversation),
                tracking=tracking or "",
                retailer=slug or "",
                timezone=timezone or DEFAULT_TIMEZONE,
                last_text=(text or "")[:140],
                last_author=str(author or ""),
                last_at=at or conversation.updated_at,
                priority=int(rank),
            )
        )
    return rows


def _search(q: str) -> Any:
    """Tracking number, recipient name or phone (any of the recipient's deliveries counts)."""
    like = f"%{q.lower()}%"
    other = aliased(Delivery)
    tracking_match = (
        select(other.id)
        .where(
            or_(
                col(other.id) == Conversation.delivery_id,
                and_(
                    col(other.recipient_id).is_not(None), col(other.recipient_id) == Conversation.recipient_id
                ),
            ),
            func.lower(other.tracking).like(like),
        )
        .correlate(Conversation)
        .exists()
    )
    conditions = [tracking_match, func.lower(Recipient.name).like(like)]
    digits = _digits(q)
    if len(digits) >= 4:
        conditions.append(col(Recipient.phone).like(f"%{digits}%"))
        conditions.append(cast(Conversation.address, String).like(f"%{digits}%"))
    return or_(*conditions)


def _display_address(conversation: Conversation) -> str:
    if conversation.channel in (Channel.sms, Channel.whatsapp):
        return conversation.address
    return f"{conversation.channel.value} {conversation.address}"


# --- one conversation ----------------------------------------------------------------------------


@dataclass
class HistoryItem:
    """A message or a notification in the recipient's history, with its delivery receipt."""

    at: datetime
    channel: Channel
    direction: Direction
    author: Author
    text: str
    author_name: str = ""
    internal_note: bool = False
    options: list[dict[str, str]] = field(default_factory=list)
    status: str = ""  # the outbox status: pending, sent, delivered, read, failed...
    error: str = ""
    kind: str = "message"  # message, notification, event
    conversation_id: int | None = None
    id: str = ""
    message_id: int | None = None
    attachments: list[dict[str, str]] = field(default_factory=list)  # what the recipient sent with it


@dataclass
class ConversationView:
    conversation: Conversation
    retailer: Retailer | None
    recipient: Recipient | None
    assignee: User | None
    history: list[HistoryItem]
    deliveries: list[Delivery]
    delivery: Delivery | None
    whatsapp_window_open: bool | None  # None: not a WhatsApp conversation
    whatsapp_window_closes: datetime | None


async def retailers_of(session: AsyncSession, retailer_ids: Collection[int]) -> list[Retailer]:
    """The retailers of these ids, by name (the ones a console user may see)."""
    return list(
        (
            await session.exec(
                select(Retailer)
                .where(col(Retailer.id).in_(sorted(retailer_ids)))
                .order_by(col(Retailer.name))
            )
        ).all()
    )


async def visible_message(
    session: AsyncSession,
    conversation_id: int,
    message_id: int,
    retailer_ids: Collection[int],
    *,
    include_unassigned: bool = False,
) -> Message | None:
    """One message of a conversation the user may see (the `visible` rule of the whole page), else None."""
    found: Message | None = (
        await session.exec(
            select(Message)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(Message.id == message_id, Message.conversation_id == conversation_id)
            .where(visible(retailer_ids, include_unassigned=include_unassigned))
        )
    ).first()
    return found


async def load_conversation(
    session: AsyncSession,
    conversation_id: int,
    retailer_ids: Collection[int],
    *,
    include_unassigned: bool = False,
    delivery_id: int | None = None,
    now: datetime,
) -> ConversationView:
    conversation = (
        await session.exec(
            _scope(
                select(Conversation).where(Conversation.id == conversation_id),
                retailer_ids,
                include_unassigned=include_unassigned,
            )
        )
    ).first()
    if conversation is None:
        raise NotFound(conversation_id)
    retailer_id = conversation.retailer_id
    recipient = await session.get(Recipient, conversation.recipient_id) if conversation.recipient_id else None
    if retailer_id is None:
        candidates = await sender_recipients(session, conversation, retailer_ids)
        if len(candidates) == 1:
            recipient, retailer_id = candidates[0], candidates[0].retailer_id
    retailer = await session.get(Retailer, retailer_id) if retailer_id else None
    assignee = await session.get(User, conversation.assignee_id) if conversation.assignee_id else None
    history = await _history(session, conversation, recipient, retailer_id)
    deliveries: list[Delivery] = []
    if retailer_id is not None:
        conditions = [col(Delivery.id) == conversation.delivery_id]
        if recipient is not None:
            conditions.append(Delivery.recipient_id == recipient.id)
        deliveries = list(
            (
                await session.exec(
                    select(Delivery)
                    .where(Delivery.retailer_id == retailer_id, or_(*conditions))
                    .order_by(col(Delivery.day).desc(), col(Delivery.id))
                )
            ).all()
        )
    chosen = next((d for d in deliveries if d.id == delivery_id), None) if delivery_id else None
    if chosen is None:
        chosen = next((d for d in deliveries if d.id == conversation.delivery_id), None)
    if chosen is None and deliveries:
        chosen = deliveries[0]
    window_open: bool | None = None
    closes: datetime | None = None
    if conversation.channel == Channel.whatsapp:
        last_inbound = conversation.last_inbound_at or (
            recipient.whatsapp_last_inbound_at if recipient else None
        )
        if last_inbound is not None:
            closes = last_inbound + WHATSAPP_WINDOW
        window_open = closes is not None and closes > now
    return ConversationView(
        conversation=conversation,
        retailer=retailer,
        recipient=recipient,
        assignee=assignee,
        history=history,
        deliveries=deliveries,
        delivery=chosen,
        whatsapp_window_open=window_open,
        whatsapp_window_closes=closes,
    )


async def _history(
    session: AsyncSession, conversation: Conversation, recipient: Recipient | None, retailer_id: int | None
) -> list[HistoryItem]:
    """Every message of the recipient's conversations with this retailer (all channels), and the
    notifications sent to them, oldest first, each with its delivery receipt."""
    conversation_ids = [conversation.id]
    if recipient is not None and retailer_id is not None:
        conversation_ids = list(
            (
                await session.exec(
                    select(Conversation.id).where(
                        Conversation.recipient_id == recipient.id,
                        col(Conversation.retailer_id) == retailer_id,
                    )
                )
            ).all()
        )
    if conversation.id not in conversation_ids:
        conversation_ids.append(conversation.id)
    rows = (
        await session.exec(
            select(Message, OutboxMessage, User)
            .outerjoin(OutboxMessage, col(OutboxMessage.id) == col(Message.outbox_id))
            .outerjoin(User, col(User.id) == col(Message.author_user_id))
            .where(col(Message.conversation_id).in_(conversation_ids))
            .order_by(col(Message.created_at).desc(), col(Message.id).desc())
            .limit(HISTORY_LIMIT)
        )
    ).all()
    items: list[HistoryItem] = []
    linked_outbox: set[int] = set()
    for message, outbox, user in rows:
        if outbox is not None and outbox.id is not None:
            linked_outbox.add(outbox.id)
        items.append(
            HistoryItem(
                at=message.created_at,
                channel=message.channel,
                direction=message.direction,
                author=message.author,
                text=message.text,
                author_name=(user.name or user.email.split("@")[0]) if user else "",
                internal_note=message.internal_note,
                options=list(message.options or []),
                status=str(outbox.status) if outbox else "",
                error=outbox.last_error if outbox else "",
                kind="event" if message.author == Author.system else "message",
                conversation_id=message.conversation_id,
                id=f"m{message.id}",
                message_id=message.id,
                attachments=list(message.attachments or []),
            )
        )
    mine: Any = col(OutboxMessage.conversation_id).in_(conversation_ids)
    if recipient is not None and retailer_id is not None:
        mine = or_(
            mine,
            and_(
                col(OutboxMessage.recipient_id) == recipient.id,
                col(OutboxMessage.retailer_id) == retailer_id,
            ),
        )
    outbox_rows = (
        await session.exec(
            select(OutboxMessage)
            .where(mine)
            .order_by(col(OutboxMessage.created_at).desc())
            .limit(HISTORY_LIMIT)
        )
    ).all()
    for outbox in outbox_rows:
        if outbox.id in linked_outbox:
            continue
        items.append(
            HistoryItem(
                at=outbox.created_at,
                channel=outbox.channel,
                direction=Direction.outbound,
                author=Author.bot,
                text=outbox.body or (f"template {outbox.template_key or outbox.content_sid}"),
                options=list(outbox.options or []),
                status=str(outbox.status),
                error=outbox.last_error,
                kind="notification" if outbox.conversation_id is None else "message",
                conversation_id=outbox.conversation_id,
                id=f"o{outbox.id}",
            )
        )
    items.sort(key=lambda item: (item.at, item.id))
    return items


# --- a delivery's context ------------------------------------------------------------------------


@dataclass
class DeliveryContext:
    delivery: Delivery
    stop: Stop | None
    vehicle: Vehicle | None
    stops_total: int
    pickup_point: PickupPoint | None
    changes: list[ChangeLog]
    nearest_points: list[tuple[PickupPoint, float]]


async def delivery_for_user(
    session: AsyncSession, delivery_id: int, retailer_ids: Collection[int]
) -> Delivery:
    delivery = (
        await session.exec(
            select(Delivery).where(
                col(Delivery.id) == delivery_id, col(Delivery.retailer_id).in_(list(retailer_ids))
            )
        )
    ).first()
    if delivery is None:
        raise NotFound(delivery_id)
    return delivery


async def delivery_context(session: AsyncSession, delivery: Delivery) -> DeliveryContext:
    from scheduling.routing import haversine_m

    stop = (await session.exec(select(Stop).where(Stop.delivery_id == delivery.id))).first()
    vehicle = await session.get(Vehicle, stop.vehicle_id) if stop else None
    stops_total = 0
    if vehicle is not None:
        stops_total = (
            await session.exec(select(func.count()).select_from(Stop).where(Stop.vehicle_id == vehicle.id))
        ).one()
    point = await session.get(PickupPoint, delivery.pickup_point_id) if delivery.pickup_point_id else None
    changes = list(
        (
            await session.exec(
                select(ChangeLog)
                .where(ChangeLog.delivery_id == delivery.id, ChangeLog.retailer_id == delivery.retailer_id)
                .order_by(col(ChangeLog.id).desc())
                .limit(50)
            )
        ).all()
    )
    points = (
        await session.exec(select(PickupPoint).where(PickupPoint.retailer_id == delivery.retailer_id))
    ).all()
    nearest = sorted(
        ((p, haversine_m((delivery.lon, delivery.lat), (p.lon, p.lat))) for p in points),
        key=lambda pair: pair[1],
    )[:4]
    return DeliveryContext(
        delivery=delivery,
        stop=stop,
        vehicle=vehicle,
        stops_total=stops_total,
        pickup_point=point,
        changes=changes,
        nearest_points=nearest,
    )


def describe_change(change: ChangeLog) -> str:
    """One line for the change log: what changed, from what to what."""
    before, after = change.before or {}, change.after or {}
    parts = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            parts.append(f"{key}: {_short(before.get(key))} → {_short(after.get(key))}")
    return "; ".join(parts[:4])


def _short(value: Any) -> str:
    if value is None or value == "":
        return "–"
    text = str(value)
    if len(text) >= 19 and text[4] == "-" and "T" in text:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text[:40]
        from console.rendering import local

        return local(moment, fmt="%a %H:%M")
    return text[:40]


def masked(address: str) -> str:
    return mask(address)
