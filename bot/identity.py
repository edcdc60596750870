"""Who is writing, and which deliveries they may see and change.

- SMS and WhatsApp: the sender's phone number, which the carrier vouches for. A sender acts only on
  deliveries whose recipient phone is theirs; nothing else unlocks a delivery on these channels.
- Telegram: a chat is linked to a recipient by the deep-link start token of a notification, or by a
  shared contact whose phone matches (the adapter checks the contact is the sender's own).
- Web sandbox: the session is linked to the demo recipient the sandbox picked.
- An unlinked Telegram or web sender may name a delivery by tracking number AND postal code; that links
  the conversation (not the recipient: no proactive messages follow from it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import CompoundSelect, and_, bindparam, union
from sqlmodel import col, or_, select
from sqlmodel.sql.expression import Select

from core.db import UnitOfWork
from core.models import OWN_NUMBER_FIELD, Channel, Conversation, Delivery, DeliveryStatus, Recipient, Retailer
from core.phones import InvalidPhone, to_e164

OPEN_STATUSES = (
    DeliveryStatus.pooled,
    DeliveryStatus.scheduled,
    DeliveryStatus.out_for_delivery,
    DeliveryStatus.arrived,
    DeliveryStatus.failed,
    DeliveryStatus.redirected,
    DeliveryStatus.ready_for_pickup,
)
# Finished deliveries stay visible for a couple of days, so "where is my parcel?" gets an answer.
RECENT_DAYS = 2
_TRACKING = re.compile(r"[^A-Za-z0-9-]")

# Every inbound message runs these: built once, they keep their cache keys between turns
_RECIPIENTS_OF_PHONE = (
    select(Recipient, Retailer)
    .join(Retailer, col(Retailer.id) == col(Recipient.retailer_id))
    .where(Recipient.phone == bindparam("phone"))
)
_DELIVERIES_OF = (
    select(Delivery)
    .where(col(Delivery.recipient_id).in_(bindparam("recipient_ids", expanding=True)))
    .where(or_(col(Delivery.status).in_(OPEN_STATUSES), col(Delivery.day) >= bindparam("since")))
    .where(Delivery.status != DeliveryStatus.cancelled)
    .order_by(col(Delivery.day), col(Delivery.window_start), col(Delivery.id))
)


def _sender_and_number(field: str) -> Select[Retailer, Recipient]:
    """The retailers that have a recipient row with this phone or own the number written to, each
    with that row if any: one round trip where a sender's rows and the number's owner took two.
    The retailers are chosen by id from two indexed lookups (recipient phone, retailer number)."""
    wanted: CompoundSelect[int | None] = union(
        select(Recipient.retailer_id).where(Recipient.phone == bindparam("phone")),
        select(Retailer.id).where(col(getattr(Retailer, field)) == bindparam("service_address")),
    )
    return (
        select(Retailer, Recipient)
        .outerjoin(
            Recipient,
            and_(col(Recipient.retailer_id) == col(Retailer.id), col(Recipient.phone) == bindparam("phone")),
        )
        .where(col(Retailer.id).in_(wanted))
        .order_by(col(Recipient.id))
    )


_SENDER_AND_NUMBER = {channel: _sender_and_number(field) for channel, field in OWN_NUMBER_FIELD.items()}


def phone_channels(channel: Channel) -> bool:
    return channel in (Channel.sms, Channel.whatsapp)


@dataclass
class Sender:
    """Who wrote: their recipient rows, the retailers of those rows that came with them, and the
    retailer owning the number they wrote to (None for the shared numbers and other channels)."""

    recipients: list[Recipient]
    retailers: dict[int, Retailer]
    number_owner: Retailer | None


async def sender_of(
    uow: UnitOfWork, channel: Channel, sender: str, service_address: str, conversation: Conversation
) -> Sender:
    """SMS and WhatsApp read the sender's rows and the number's owner in one query."""
    session = uow.session
    if phone_channels(channel):
        if not service_address:
            pairs = (await session.exec(_RECIPIENTS_OF_PHONE, params={"phone": sender})).all()
            return Sender(
                [recipient for recipient, _ in pairs], {r.id: r for _, r in pairs if r.id is not None}, None
            )
        statement = _SENDER_AND_NUMBER[channel]
        params = {"phone": sender, "service_address": service_address}
        rows = (await session.exec(statement, params=params)).all()
        owner = next((r for r, _ in rows if r.own_number(channel) == service_address), None)
        return Sender(
            [recipient for _, recipient in rows if recipient is not None],
            {r.id: r for r, recipient in rows if recipient is not None and r.id is not None},
            owner,
        )
    recipients: list[Recipient] = []
    if channel == Channel.telegram and sender.lstrip("-").isdigit():
        recipients = list(
            (await session.exec(select(Recipient).where(Recipient.telegram_chat_id == int(sender)))).all()
        )
    if conversation.recipient_id is not None and all(r.id != conversation.recipient_id for r in recipients):
        linked = await session.get(Recipient, conversation.recipient_id)
        if linked is not None:
            recipients.append(linked)
    return Sender(recipients, {}, None)


async def deliveries_of(uow: UnitOfWork, recipient_ids: Sequence[int], today: date) -> list[Delivery]:
    """Open deliveries, and the recently finished ones, soonest first."""
    if not recipient_ids:
        return []
    since = today - timedelta(days=RECENT_DAYS)
    params = {"recipient_ids": list(recipient_ids), "since": since}
    return list((await uow.session.exec(_DELIVERIES_OF, params=params)).all())


async def link_by_start_token(uow: UnitOfWork, token: str, chat_id: str) -> Delivery | None:
    """A notification's deep link: the chat becomes the delivery's recipient on Telegram."""
    if not token or len(token) > 64 or not chat_id.lstrip("-").isdigit():
        return None
    delivery = (await uow.session.exec(select(Delivery).where(Delivery.telegram_link_token == token))).first()
    if delivery is None or delivery.recipient_id is None:
        return None
    recipient = await uow.session.get(Recipient, delivery.recipient_id)
    if recipient is None:
        return None
    recipient.telegram_chat_id = int(chat_id)
    uow.session.add(recipient)
    return delivery


async def link_by_contact(uow: UnitOfWork, phone: str, chat_id: str) -> list[Recipient]:
    """A shared contact Telegram vouches for: every recipient row with that phone gets the chat."""
    try:
        e164 = to_e164(phone)
    except InvalidPhone:
        return []
    if not chat_id.lstrip("-").isdigit():
        return []
    recipients = list((await uow.session.exec(select(Recipient).where(Recipient.phone == e164))).all())
    for recipient in recipients:
        recipient.telegram_chat_id = int(chat_id)
        uow.session.add(recipient)
    return recipients


def normalize_tracking(value: str) -> str:
    return _TRACKING.sub("", value).upper()


def normalize_postal_code(value: str) -> str:
    return value.replace(" ", "").replace("-", "").upper()


async def find_by_tracking_and_postal_code(
    uow: UnitOfWork, tracking: str, postal_code: str, retailer_id: int | None = None
) -> Delivery | None:
    """The delivery only when both match; a wrong postal code and an unknown number look the same."""
    tracking, postal_code = normalize_tracking(tracking), normalize_postal_code(postal_code)
    if not tracking or not postal_code:
        return None
    query = select(Delivery).where(Delivery.tracking == tracking)
    if retailer_id is not None:
        query = query.where(Delivery.retailer_id == retailer_id)
    for delivery in (await uow.session.exec(query)).all():
        if normalize_postal_code(delivery.postal_code) == postal_code:
            return delivery
    return None
