"""The console's part of the demo dataset: a demo agent per retailer, a retailer admin, and a few
conversations in the states an agent meets (asked for a person over SMS, a WhatsApp chat whose
24-hour window has closed, a failed send, a Telegram chat the bot is handling).

Development only: the passwords are fixed and printed by `make run`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from bot.handoff import HANDOFF_REQUESTED, history_line
from console.auth import UserExists, create_user
from console.dashboard import TAKEN_OVER
from core.context import AppContext
from core.db import UnitOfWork
from core.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    Direction,
    Message,
    Notification,
    OutboxMessage,
    OutboxStatus,
    Recipient,
    Retailer,
    Role,
    SavedReply,
)
from scheduling.demo import SEED

DEMO_SAVED_REPLIES = [
    ("Greeting", "Hi {{ first_name }}, this is {{ agent_name }} from {{ brand }}. Let me look into it."),
    ("Planned window", "Your parcel {{ tracking }} is planned for {{ window }}."),
    ("Safe place", "If nobody is home, the driver can leave it in a safe place: just tell me where."),
]
DEMO_PASSWORD = "doorstep-demo"  # noqa: S105 - development dataset, printed by `make run`
DEMO_USERS = [
    ("agent@maple-home.demo", "Camille (agent)", Role.agent, ["maple-home"]),
    ("agent@north-outfitters.demo", "Jordan (agent)", Role.agent, ["north-outfitters"]),
    ("admin@maple-home.demo", "Maple Home admin", Role.retailer_admin, ["maple-home"]),
]


async def load_demo_console(ctx: AppContext) -> dict[str, Any]:
    """Create the demo users and conversations unless they exist (idempotent)."""
    if ctx.settings.environment == "production":
        return {"console": "demo users are not created in production"}
    users = []
    for email, name, role, slugs in DEMO_USERS:
        async with ctx.uow() as uow:
            try:
                await create_user(uow.session, email, role, slugs, password=DEMO_PASSWORD, name=name)
                await uow.commit()
            except UserExists:
                pass
        users.append({"email": email, "password": DEMO_PASSWORD, "role": role.value, "retailers": slugs})
    conversations = history = 0
    for slug in ("maple-home", "north-outfitters"):
        async with ctx.uow() as uow:
            conversations += await _demo_conversations(uow, slug, ctx.clock())
        async with ctx.uow() as uow:
            history += await _demo_history(uow, slug, ctx.clock())
        async with ctx.uow() as uow:
            await _demo_saved_replies(uow, slug)
    return {
        "console": {
            "url": "/console",
            "users": users,
            "conversations_created": conversations,
            "history_notifications_created": history,
        }
    }


async def _demo_saved_replies(uow: UnitOfWork, slug: str) -> None:
    retailer = (await uow.session.exec(select(Retailer).where(Retailer.slug == slug))).first()
    if retailer is None or retailer.id is None:
        return
    if (await uow.session.exec(select(SavedReply).where(SavedReply.retailer_id == retailer.id))).first():
        return
    for title, body in DEMO_SAVED_REPLIES:
        uow.session.add(SavedReply(retailer_id=retailer.id, title=title, body=body))
    await uow.commit()


async def _demo_conversations(uow: UnitOfWork, slug: str, now: datetime) -> int:
    retailer = (await uow.session.exec(select(Retailer).where(Retailer.slug == slug))).first()
    if retailer is None or retailer.id is None:
        return 0
    existing = (
        await uow.session.exec(
            select(Conversation.id).where(Conversation.retailer_id == retailer.id).limit(1)
        )
    ).first()
    if existing is not None:
        return 0
    deliveries = list(
        (
            await uow.session.exec(
                select(Delivery)
                .where(Delivery.retailer_id == retailer.id, col(Delivery.recipient_id).is_not(None))
                .order_by(col(Delivery.day).desc(), col(Delivery.id))
                .limit(12)
            )
        ).all()
    )
    if len(deliveries) < 4:
        return 0
    french = slug == "maple-home"
    scripts: list[tuple[Channel, ConversationStatus, int, list[tuple[Author, str]], bool]] = [
        (
            Channel.sms,
            ConversationStatus.needs_person,
            7,
            [
                (
                    Author.bot,
                    "Votre colis arrive demain entre 10 h et 12 h. Répondez 1 pour changer."
                    if french
                    else "Your parcel arrives tomorrow between 10 and 12. Reply 1 to change it.",
                ),
                (
                    Author.recipient,
                    "Je ne serai pas là, mais ma voisine oui. Je peux parler à quelqu'un?"
                    if french
                    else "I won't be home but my neighbour will. Can I talk to someone?",
                ),
                (
                    Author.bot,
                    "Un agent vous répond bientôt." if french else "An agent will answer you shortly.",
                ),
            ],
            False,
        ),
        (
            Channel.whatsapp,
            ConversationStatus.open,
            26 * 60,
            [
                (Author.recipient, "Can the driver leave it at the back door?"),
                (Author.bot, "Noted: I added this to the delivery instructions."),
            ],
            False,
        ),
        (
            Channel.sms,
            ConversationStatus.open,
            45,
            [(Author.recipient, "WHEN")],
            True,
        ),
        (
            Channel.telegram,
            ConversationStatus.open,
            90,
            [
                (Author.recipient, "/start"),
                (Author.bot, "Hi! Your delivery is scheduled for tomorrow. What would you like to do?"),
            ],
            False,
        ),
    ]
    for (channel, status, minutes_ago, lines, failed), delivery in zip(scripts, deliveries, strict=False):
        recipient = await uow.session.get(Recipient, delivery.recipient_id)
        if recipient is None or recipient.id is None:
            continue
        started = now - timedelta(minutes=minutes_ago)
        address = recipient.phone or "" if channel != Channel.telegram else str(700_000_000 + recipient.id)
        conversation = Conversation(
            channel=channel,
            address=address,
            retailer_id=retailer.id,
            recipient_id=recipient.id,
            delivery_id=delivery.id,
            locale=recipient.locale,
            status=status,
            last_inbound_at=started,
            updated_at=started + timedelta(seconds=len(lines)),
        )
        uow.session.add(conversation)
        await uow.session.flush()
        assert conversation.id is not None
        for i, (author, text) in enumerate(lines):
            inbound = author == Author.recipient
            uow.session.add(
                Message(
                    conversation_id=conversation.id,
                    channel=channel,
                    direction=Direction.inbound if inbound else Direction.outbound,
                    author=author,
                    text=text,
                    created_at=started + timedelta(seconds=i),
                )
            )
        if failed:
            outbox = OutboxMessage(
                retailer_id=retailer.id,
                conversation_id=conversation.id,
                recipient_id=recipient.id,
                channel=channel,
                to_address=address,
                body="Your parcel is on its way: reply with a time that suits you.",
                idempotency_key=f"demo-failed:{slug}:{conversation.id}",
                status=OutboxStatus.failed,
                attempts=5,
                last_error="21614: 'To' number is not a valid mobile number",
                created_at=started + timedelta(minutes=1),
            )
            uow.session.add(outbox)
            await uow.session.flush()
            uow.session.add(
                Message(
                    conversation_id=conversation.id,
                    channel=channel,
                    direction=Direction.outbound,
                    author=Author.bot,
                    text=outbox.body,
                    outbox_id=outbox.id,
                    created_at=started + timedelta(minutes=1),
                )
            )
    await uow.commit()
    return min(len(scripts), len(deliveries))


HISTORY_DAYS = 13
HISTORY_EVENT = "demo_history"  # never a real notification event: the outreach ignores these rows


async def _demo_history(uow: UnitOfWork, slug: str, now: datetime) -> int:
    """Made-up past two weeks for the retailer admin's dashboard: notifications and their receipts,
    recipients answering, and conversations agents took over. Closed conversations; no change log
    rows (those feed the retailers' change API and webhooks)."""
    retailer = (await uow.session.exec(select(Retailer).where(Retailer.slug == slug))).first()
    if retailer is None or retailer.id is None:
        return 0
    done = (
        await uow.session.exec(
            select(Notification.id)
            .where(Notification.retailer_id == retailer.id, Notification.event == HISTORY_EVENT)
            .limit(1)
        )
    ).first()
    if done is not None:
        return 0
    deliveries = list(
        (
            await uow.session.exec(
                select(Delivery)
                .where(Delivery.retailer_id == retailer.id, col(Delivery.recipient_id).is_not(None))
                .order_by(col(Delivery.id))
                .offset(12)  # the first ones carry the live demo conversations
                .limit(40)
            )
        ).all()
    )
    if not deliveries:
        return 0
    rng = random.Random(f"{SEED}:{slug}")  # noqa: S311 - demo data, not security
    conversations: dict[int, Conversation] = {}
    created = 0
    for days_ago in range(HISTORY_DAYS, 0, -1):
        day_start = now - timedelta(days=days_ago)
        for n in range(rng.randint(25, 45)):
            delivery = rng.choice(deliveries)
            recipient = await uow.session.get(Recipient, delivery.recipient_id)
            if recipient is None or recipient.id is None or not recipient.phone:
                continue
            sent_at = day_start.replace(hour=13) + timedelta(minutes=rng.randint(0, 420))
            roll = rng.random()
            status = (
                OutboxStatus.failed
                if roll < 0.04
                else OutboxStatus.sent
                if roll < 0.14
                else OutboxStatus.read
                if roll < 0.3
                else OutboxStatus.delivered
            )
            outbox = OutboxMessage(
                retailer_id=retailer.id,
                recipient_id=recipient.id,
                channel=Channel.sms,
                to_address=recipient.phone,
                body="(demo history) Your delivery is scheduled.",
                idempotency_key=f"demo-history:{slug}:{days_ago}:{n}",
                status=status,
                last_error="30003: Unreachable destination handset" if status == OutboxStatus.failed else "",
                created_at=sent_at,
                sent_at=sent_at,
                status_at=sent_at + timedelta(seconds=20),
            )
            uow.session.add(outbox)
            await uow.session.flush()
            uow.session.add(
                Notification(
                    retailer_id=retailer.id,
                    delivery_id=delivery.id or 0,
                    event=HISTORY_EVENT,
                    dedupe_key=f"demo-history:{slug}:{days_ago}:{n}",
                    due_at=sent_at,
                    status="sent",
                    channel=Channel.sms.value,
                    outbox_id=outbox.id,
                    created_at=sent_at,
                )
            )
            created += 1
            answered = status != OutboxStatus.failed and rng.random() < 0.22
            handed_off = answered and rng.random() < 0.15
            if not answered:
                continue
            conversation = conversations.get(recipient.id)
            if conversation is None:
                conversation = Conversation(
                    channel=Channel.sms,
                    address=recipient.phone,
                    retailer_id=retailer.id,
                    recipient_id=recipient.id,
                    delivery_id=delivery.id,
                    locale=recipient.locale,
                    status=ConversationStatus.closed,
                    updated_at=sent_at,
                )
                uow.session.add(conversation)
                await uow.session.flush()
                conversations[recipient.id] = conversation
            assert conversation.id is not None
            replied_at = sent_at + timedelta(minutes=rng.randint(2, 240))
            uow.session.add(
                Message(
                    conversation_id=conversation.id,
                    channel=Channel.sms,
                    direction=Direction.inbound,
                    author=Author.recipient,
                    text="(demo history) OK, thanks",
                    created_at=replied_at,
                )
            )
            if handed_off:
                asked, taken = replied_at + timedelta(minutes=1), replied_at + timedelta(minutes=3)
                uow.session.add_all(
                    [
                        history_line(
                            conversation,
                            "(demo history) The recipient asked for a person",
                            HANDOFF_REQUESTED,
                            asked,
                        ),
                        history_line(conversation, "(demo history) An agent took over", TAKEN_OVER, taken),
                    ]
                )
            conversation.updated_at = max(conversation.updated_at, replied_at)
    await uow.commit()
    return created
