"""A person's requests about their data, made to a retailer: to see it, and to have it erased.

People may ask a retailer for what it holds about them (PIPEDA's access principle, GDPR's article
15) or to delete it (PIPEDA's withdrawal of consent, GDPR's article 17). Both name the person by
phone number, in a POST body rather than a URL (URLs end up in access logs), and reach what this
retailer holds only: its recipients with that number, their deliveries, and the conversations the
retailer has with them (by recipient, or by their phone number or Telegram chat on the retailer's
side). A conversation the shared number now holds for another retailer is that retailer's.

`POST /api/v1/recipients/export` answers with all of it as JSON: the recipients, deliveries,
notifications and every message of those conversations, agents' internal notes marked as such.

`POST /api/v1/recipients/erase` deletes it at once rather than after the retention period
(core/retention.py):

- the retailer's conversations with them (by recipient, or by their phone number or Telegram chat
  on the retailer's side), with every message, outbox row (those not yet sent are never sent),
  agents' file and dialog state, in the database and in Redis;
- on their deliveries: address, postal code, instructions, proof of delivery, failure reason and the
  Telegram link token cleared, and the instructions in the change log; the location of a past day's
  delivery rounded to two decimals (about a kilometre: the route keeps its shape, the door is gone),
  today's kept while the day's routes are computed from it;
- their notifications' contexts, and those still scheduled cancelled;
- the recipient: name, phone, Telegram chat, consents and preferred channel.

Refused with 409 while one of their deliveries is still under way (the driver needs the address):
the answer names them, to cancel or to erase once delivered. The change log's entries stay (each
retailer's audit trail), without instructions, and gain one recording the erasure: who, when and how
much went, no personal data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import delete, or_, update
from sqlmodel import col, select

from bot.identity import OPEN_STATUSES
from core.context import AppContext
from core.db import UnitOfWork
from core.logging import get_logger
from core.models import (
    ChangeLog,
    Conversation,
    Delivery,
    Message,
    Notification,
    OutboxMessage,
    Recipient,
    Retailer,
)
from core.phones import InvalidPhone, to_e164
from core.retention import delete_conversations
from core.web import Ctx, CurrentRetailer, Uow
from scheduling.api import api_actor
from scheduling.changelog import log_change
from scheduling.plans import iso
from scheduling.service import Actor

log = get_logger("doorstep.bot.privacy")


class RecipientUnknown(LookupError):
    pass


class DeliveriesUnderWay(Exception):
    def __init__(self, trackings: Sequence[str]) -> None:
        super().__init__(", ".join(trackings))
        self.trackings = list(trackings)


@dataclass
class Erased:
    recipients: int = 0
    deliveries: int = 0
    notifications_cancelled: int = 0
    deleted: dict[str, int] = field(default_factory=dict)
    # (conversation id, dialog generation) of each conversation deleted: their dialog keys in Redis
    dialogs: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Theirs:
    """What one retailer holds about the person with one phone number."""

    recipients: Sequence[Recipient]
    deliveries: Sequence[Delivery]
    conversations: Sequence[Conversation]


async def theirs(session: Any, retailer_id: int, phone: str, *, for_update: bool = False) -> Theirs:
    def locked(statement: Any) -> Any:
        return statement.with_for_update() if for_update else statement

    recipients = (
        await session.exec(
            locked(select(Recipient).where(Recipient.retailer_id == retailer_id, Recipient.phone == phone))
        )
    ).all()
    if not recipients:
        raise RecipientUnknown(phone)
    recipient_ids = [r.id for r in recipients]
    deliveries = (
        await session.exec(
            locked(
                select(Delivery)
                .where(Delivery.retailer_id == retailer_id, col(Delivery.recipient_id).in_(recipient_ids))
                .order_by(col(Delivery.day), col(Delivery.id))
            )
        )
    ).all()
    addresses = {phone, *(str(r.telegram_chat_id) for r in recipients if r.telegram_chat_id is not None)}
    conversations = (
        await session.exec(
            locked(
                select(Conversation)
                .where(
                    Conversation.retailer_id == retailer_id,
                    or_(
                        col(Conversation.recipient_id).in_(recipient_ids),
                        col(Conversation.address).in_(addresses),
                    ),
                )
                .order_by(col(Conversation.id))
            )
        )
    ).all()
    return Theirs(recipients, deliveries, conversations)


async def erase_recipient(
    uow: UnitOfWork, retailer: Retailer, phone: str, now: datetime, actor: Actor
) -> Erased:
    """Erase what this retailer's recipients with this phone number left in Doorstep; not committed.

    The change log records the erasure (who, when, how much went) once per delivery, so the retailer's
    own systems, reading the feed or its webhook, learn to erase their copy of those deliveries too.
    """
    session = uow.session
    retailer_id = retailer.id or 0
    found = await theirs(session, retailer_id, phone, for_update=True)
    recipients, deliveries = found.recipients, found.deliveries
    recipient_ids = [r.id for r in recipients]
    under_way = sorted(d.tracking for d in deliveries if d.status in OPEN_STATUSES)
    if under_way:
        raise DeliveriesUnderWay(under_way)
    erased = Erased(recipients=len(recipients), deliveries=len(deliveries))
    erased.dialogs = [(c.id or 0, int(c.state.get("generation", 0))) for c in found.conversations]
    connection = await session.connection()
    erased.deleted = await delete_conversations(connection, [c.id for c in found.conversations])
    erased.deleted["outbox"] += await _outbox_of(connection, retailer_id, recipient_ids)

    delivery_ids = [d.id for d in deliveries]
    if delivery_ids:
        notes = col(Notification.delivery_id).in_(delivery_ids)
        cancelled = await connection.execute(
            update(Notification)
            .where(notes, col(Notification.status) == "scheduled")
            .values(status="cancelled")
        )
        erased.notifications_cancelled = int(cancelled.rowcount or 0)
        await connection.execute(update(Notification).where(notes).values(context={}))
        await _forget_changes(uow, delivery_ids)
    for delivery in deliveries:
        delivery.address = delivery.postal_code = delivery.instructions = delivery.failure_reason = ""
        delivery.proof = {}
        delivery.telegram_link_token = None
        if delivery.day < now.astimezone(ZoneInfo(delivery.timezone)).date():
            # a day still running computes its routes from every stop's place, done ones included
            delivery.lon, delivery.lat = round(delivery.lon, 2), round(delivery.lat, 2)
        delivery.updated_at = now
        session.add(delivery)
    for recipient in recipients:
        recipient.name = ""
        recipient.phone = None
        recipient.telegram_chat_id = None
        recipient.channel_consent = {}
        recipient.preferred_channel = None
        recipient.whatsapp_last_inbound_at = None
        session.add(recipient)
    summary = {**erased.deleted, "notifications_cancelled": erased.notifications_cancelled}
    recorded: Sequence[Delivery | None] = deliveries or [None]
    for erased_delivery in recorded:
        await log_change(
            session,
            retailer,
            "personal_data_erased",
            actor=actor.kind,
            actor_id=actor.id,
            channel=actor.channel,
            delivery_id=erased_delivery.id if erased_delivery else None,
            plan_id=erased_delivery.plan_id if erased_delivery else None,
            after=summary,
            now=now,
        )
    return erased


async def _outbox_of(connection: Any, retailer_id: int, recipient_ids: list[int | None]) -> int:
    """The retailer's outbox rows to these recipients that no deleted conversation took along."""
    rows = select(col(OutboxMessage.id)).where(
        col(OutboxMessage.retailer_id) == retailer_id, col(OutboxMessage.recipient_id).in_(recipient_ids)
    )
    ids = list((await connection.execute(rows)).scalars())
    if not ids:
        return 0
    for model in (Notification, Message):
        await connection.execute(update(model).where(col(model.outbox_id).in_(ids)).values(outbox_id=None))
    result = await connection.execute(delete(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))
    return int(result.rowcount or 0)


async def _forget_changes(uow: UnitOfWork, delivery_ids: list[int | None]) -> None:
    """The change log keeps what changed and when, not the instructions people wrote."""
    entries = (
        await uow.session.exec(select(ChangeLog).where(col(ChangeLog.delivery_id).in_(delivery_ids)))
    ).all()
    for entry in entries:
        for side in ("before", "after"):
            values = getattr(entry, side)
            if isinstance(values, dict) and values.get("instructions"):
                setattr(entry, side, {**values, "instructions": ""})
                uow.session.add(entry)


async def forget_dialogs(ctx: AppContext, dialogs: Sequence[tuple[int, int]]) -> None:
    """Drop the deleted conversations' dialog states from the engine's store (Redis keeps its own)."""
    engine = ctx.components.get("engine")
    if engine is not None and dialogs:
        await engine.state_store.forget(dialogs)


async def export_recipient(session: Any, retailer_id: int, phone: str) -> dict[str, Any]:
    """Everything this retailer holds in Doorstep about the person with this phone number."""
    found = await theirs(session, retailer_id, phone)
    conversation_ids = [c.id for c in found.conversations]
    messages = (
        await session.exec(
            select(Message)
            .where(col(Message.conversation_id).in_(conversation_ids))
            .order_by(col(Message.created_at), col(Message.id))
        )
    ).all()
    notifications = (
        await session.exec(
            select(Notification)
            .where(col(Notification.delivery_id).in_([d.id for d in found.deliveries]))
            .order_by(col(Notification.due_at), col(Notification.id))
        )
    ).all()
    tracking = {d.id: d.tracking for d in found.deliveries}
    said: dict[int, list[dict[str, Any]]] = {}
    for message in messages:
        said.setdefault(message.conversation_id, []).append(
            {
                "at": message.created_at.isoformat(),
                "direction": str(message.direction),
                "author": str(message.author),
                "text": message.text,
                "attachments": [a.get("content_type", "") for a in message.attachments],
                "internal_note": message.internal_note,
            }
        )
    return {
        "recipients": [
            {
                "name": r.name,
                "phone": r.phone,
                "locale": r.locale,
                "telegram_chat_id": r.telegram_chat_id,
                "preferred_channel": r.preferred_channel,
                "channel_consent": r.channel_consent,
                "since": r.created_at.isoformat(),
            }
            for r in found.recipients
        ],
        "deliveries": [
            {
                "tracking": d.tracking,
                "day": d.day.isoformat(),
                "status": str(d.status),
                "window": {"start": iso(d.window_start), "end": iso(d.window_end)},
                "address": d.address,
                "postal_code": d.postal_code,
                "instructions": d.instructions,
                "white_glove": {"start": iso(d.white_glove_start), "end": iso(d.white_glove_end)}
                if d.white_glove
                else None,
                "proof": d.proof,
                "failure_reason": d.failure_reason,
            }
            for d in found.deliveries
        ],
        "notifications": [
            {
                "tracking": tracking.get(n.delivery_id, ""),
                "event": n.event,
                "due_at": n.due_at.isoformat(),
                "status": n.status,
                "channel": n.channel,
            }
            for n in notifications
        ],
        "conversations": [
            {
                "channel": str(c.channel),
                "address": c.address,
                "locale": c.locale,
                "started": c.created_at.isoformat(),
                "messages": said.get(c.id or 0, []),
            }
            for c in found.conversations
        ],
    }


# --- the API ---------------------------------------------------------------------------------------


class PersonRequest(BaseModel):
    phone: str = Field(
        min_length=3, max_length=32, description="The recipient's phone number", examples=["+14165550123"]
    )


class ErasureResult(BaseModel):
    recipients: int = Field(description="recipients of this retailer with that phone number, now erased")
    deliveries: int = Field(description="their deliveries, cleared of address, instructions and proof")
    conversations: int
    messages: int
    outbox: int = Field(description="outbox rows deleted (those not yet sent will not be)")
    files: int = Field(description="pictures and PDFs agents had sent them")
    notifications_cancelled: int


def e164_or_422(raw: str) -> str:
    try:
        return to_e164(raw)
    except InvalidPhone as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"description": "no recipient of this retailer has this phone number"}
}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["recipients"])

    @router.post("/recipients/export", responses=UNKNOWN)
    async def export(body: PersonRequest, retailer: CurrentRetailer, uow: Uow) -> dict[str, Any]:
        """Everything Doorstep holds for this retailer about a person (a person's access request)."""
        phone = e164_or_422(body.phone)
        try:
            found = await export_recipient(uow.session, retailer.id or 0, phone)
        except RecipientUnknown:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no recipient with this phone number") from None
        log.info("recipient_exported", retailer_id=retailer.id, conversations=len(found["conversations"]))
        return found

    @router.post(
        "/recipients/erase",
        responses={
            **UNKNOWN,
            409: {"description": "a delivery of theirs is still under way (named in the answer)"},
        },
    )
    async def erase(body: PersonRequest, retailer: CurrentRetailer, uow: Uow, ctx: Ctx) -> ErasureResult:
        """Erase a recipient's personal data and conversations now (a person's erasure request)."""
        phone = e164_or_422(body.phone)
        try:
            erased = await erase_recipient(uow, retailer, phone, ctx.clock(), api_actor(retailer))
        except RecipientUnknown:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no recipient with this phone number") from None
        except DeliveriesUnderWay as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                {
                    "message": "deliveries still under way: erase once they are delivered or cancelled",
                    "trackings": exc.trackings,
                },
            ) from None
        await uow.commit()
        await forget_dialogs(ctx, erased.dialogs)
        deleted = erased.deleted
        log.info("recipient_erased", retailer_id=retailer.id, recipients=erased.recipients, **deleted)
        return ErasureResult(
            recipients=erased.recipients,
            deliveries=erased.deliveries,
            conversations=deleted.get("conversations", 0),
            messages=deleted.get("messages", 0),
            outbox=deleted.get("outbox", 0),
            files=deleted.get("files", 0),
            notifications_cancelled=erased.notifications_cancelled,
        )

    return router
