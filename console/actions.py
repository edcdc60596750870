"""What an agent does from the console: take over, reply, note, hand back, close, act on the delivery.

Hand-off goes through `bot.handoff` (the bot stays silent while an agent owns the conversation);
changes to the delivery go through the same scheduling service as the bot, with the agent recorded
as the actor. A reply is an outbox row plus a Message, written in one transaction; the outbox
worker sends it under the channel's rules.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import col, select

from bot import handoff, privacy
from bot.messages import CAPABILITIES
from channels.media import NotSendable, outgoing_ref, sendable_type
from channels.telegram_format import CAPTION_LIMIT as TELEGRAM_CAPTION_LIMIT
from console.auth import ConsoleUser
from console.queries import WHATSAPP_WINDOW, NotFound, delivery_for_user, sender_recipients, visible
from console.rendering import window as fmt_window
from core.consent import opted_out
from core.context import AppContext
from core.db import UnitOfWork
from core.logging import get_logger
from core.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    Direction,
    Membership,
    Message,
    OutboxMessage,
    OutgoingFile,
    Owner,
    Recipient,
    Retailer,
    Role,
    User,
)
from core.outbox import enqueue
from scheduling import service
from scheduling.service import Actor, ChangeResult

log = get_logger("doorstep.console.actions")

NOTE_LIMIT = 4000

T = TypeVar("T")


class ActionRefused(Exception):
    """An action the console will not do, with the reason to show the agent."""

    status_code = 409


class InvalidInput(ActionRefused):
    status_code = 422


class NotAllowed(ActionRefused):
    status_code = 403


@dataclass(frozen=True)
class ConsoleEvent:
    conversation_id: int
    retailer_id: int | None


@dataclass(frozen=True)
class AgentReplied(ConsoleEvent):
    message_id: int
    outbox_id: int


@dataclass(frozen=True)
class NoteAdded(ConsoleEvent):
    message_id: int


def actor(user: ConsoleUser) -> Actor:
    return Actor(Author.agent, id=user.email, channel="console")


async def _conversation(uow: UnitOfWork, user: ConsoleUser, conversation_id: int) -> Conversation:
    conversation = (
        await uow.session.exec(
            select(Conversation).where(
                Conversation.id == conversation_id,
                visible(user.retailer_ids, include_unassigned=user.role == Role.admin),
            )
        )
    ).first()
    if conversation is None:
        raise NotFound(conversation_id)
    return conversation


async def _pin(uow: UnitOfWork, user: ConsoleUser, conversation: Conversation, now: datetime) -> None:
    """A conversation not yet tied to a retailer (the recipient asked for a person before the bot knew
    which delivery): the agent taking it ties it to the one recipient its sender is, and their next
    delivery, so replies, actions and live updates follow the retailer's rules."""
    candidates = await sender_recipients(uow.session, conversation, user.retailer_ids)
    if len(candidates) != 1:
        return
    recipient = candidates[0]
    deliveries = (
        await uow.session.exec(
            select(Delivery)
            .where(Delivery.recipient_id == recipient.id, Delivery.retailer_id == recipient.retailer_id)
            .order_by(col(Delivery.day), col(Delivery.id))
        )
    ).all()
    today = now.date()
    upcoming = [d for d in deliveries if d.day >= today] or list(deliveries)
    conversation.retailer_id = recipient.retailer_id
    conversation.recipient_id = recipient.id
    if conversation.delivery_id is None and upcoming:
        conversation.delivery_id = upcoming[0].id
    uow.session.add(conversation)


def _scope(user: ConsoleUser, conversation: Conversation) -> list[int] | None:
    """The retailer check bot.handoff repeats; an unassigned conversation was checked by `visible`."""
    if user.role == Role.admin or conversation.retailer_id is None:
        return None
    return sorted(user.retailer_ids)


def _event_line(
    uow: UnitOfWork, conversation: Conversation, user: ConsoleUser, text: str, kind: str, now: datetime
) -> None:
    """A line in the conversation's history ("Ana took over"), seen by agents only."""
    assert conversation.id is not None
    uow.session.add(handoff.history_line(conversation, text, f"console:{kind}", now, user_id=user.id))


# --- ownership -----------------------------------------------------------------------------------


async def take_over(ctx: AppContext, user: ConsoleUser, conversation_id: int) -> None:
    now = ctx.clock()
    async with ctx.uow() as uow:
        conversation = await _conversation(uow, user, conversation_id)
        if conversation.owner == Owner.agent and conversation.assignee_id == user.id:
            return
        await _pin(uow, user, conversation, now)
        _event_line(uow, conversation, user, f"{user.display_name} took over", "taken_over", now)
        try:
            await handoff.take_over(
                uow, conversation_id, user.id, retailer_ids=_scope(user, conversation), now=now
            )
        except handoff.NotTheAssignee:
            raise ActionRefused("Another agent is handling this conversation.") from None
        except handoff.ConversationNotFound:
            raise NotFound(conversation_id) from None
    log.info("console_taken_over", conversation_id=conversation_id, user_id=user.id)


async def colleagues(uow: UnitOfWork, conversation: Conversation) -> list[User]:
    """The agents and admins of the conversation's retailer, who may be given it."""
    if conversation.retailer_id is None:
        return []
    return list(
        (
            await uow.session.exec(
                select(User)
                .join(Membership, col(Membership.user_id) == col(User.id))
                .where(Membership.retailer_id == conversation.retailer_id)
                .order_by(col(User.name), col(User.email))
            )
        ).all()
    )


def may_give_away(user: ConsoleUser, conversation: Conversation) -> bool:
    """The agent handling the conversation may give it to a colleague; a retailer admin may any."""
    handling = conversation.owner == Owner.agent and conversation.assignee_id == user.id
    return handling or user.role != Role.agent


async def assign(ctx: AppContext, user: ConsoleUser, conversation_id: int, assignee_id: int) -> None:
    """Give the conversation to a colleague: its agent hands it over, or a retailer admin reassigns it
    (an agent going home, a French speaker needed); the new agent owns it, the bot stays silent."""
    now = ctx.clock()
    async with ctx.uow() as uow:
        conversation = await _conversation(uow, user, conversation_id)
        if not may_give_away(user, conversation):
            raise ActionRefused(
                "Only the agent handling this conversation, or an admin, can give it to someone."
            )
        assignee = next((u for u in await colleagues(uow, conversation) if u.id == assignee_id), None)
        if assignee is None:
            raise InvalidInput("Choose someone of this retailer's team.")
        if conversation.owner == Owner.agent and conversation.assignee_id == assignee_id:
            return
        name = assignee.name or assignee.email.split("@", 1)[0]
        _event_line(uow, conversation, user, f"{user.display_name} gave it to {name}", "assigned", now)
        try:
            await handoff.assign(
                uow, conversation_id, assignee_id, retailer_ids=_scope(user, conversation), now=now
            )
        except handoff.ConversationNotFound:
            raise NotFound(conversation_id) from None
    log.info("console_assigned", conversation_id=conversation_id, user_id=user.id, assignee_id=assignee_id)


async def hand_back(ctx: AppContext, user: ConsoleUser, conversation_id: int) -> None:
    now = ctx.clock()
    async with ctx.uow() as uow:
        conversation = await _conversation(uow, user, conversation_id)
        if conversation.owner != Owner.agent:
            raise ActionRefused("The bot already answers this conversation.")
        _event_line(
            uow, conversation, user, f"{user.display_name} handed back to the bot", "handed_back", now
        )
        try:
            await handoff.hand_back(
                uow, conversation_id, user.id, retailer_ids=_scope(user, conversation), now=now
            )
        except handoff.ConversationNotFound:
            raise NotFound(conversation_id) from None
    log.info("console_handed_back", conversation_id=conversation_id, user_id=user.id)


async def close(ctx: AppContext, user: ConsoleUser, conversation_id: int) -> None:
    now = ctx.clock()
    async with ctx.uow() as uow:
        conversation = await _conversation(uow, user, conversation_id)
        if conversation.status == ConversationStatus.closed:
            return
        _event_line(uow, conversation, user, f"{user.display_name} closed the conversation", "closed", now)
        try:
            await handoff.close(
                uow, conversation_id, user.id, retailer_ids=_scope(user, conversation), now=now
            )
        except handoff.ConversationNotFound:
            raise NotFound(conversation_id) from None
    log.info("console_closed", conversation_id=conversation_id, user_id=user.id)


# --- messages ------------------------------------------------------------------------------------


def reply_blocker(conversation: Conversation, recipient: Recipient | None, now: datetime) -> str | None:
    """Why a free-text reply would not reach the recipient, or None when it would."""
    if conversation.channel == Channel.whatsapp:
        last = conversation.last_inbound_at or (recipient.whatsapp_last_inbound_at if recipient else None)
        if last is None or last + WHATSAPP_WINDOW <= now:
            return (
                "WhatsApp's 24-hour window is closed: a free-text reply would not arrive. "
                "Wait for the recipient to write, or reach them on another channel."
            )
    if recipient is not None and opted_out(recipient, conversation.channel):
        return f"The recipient opted out of {conversation.channel.value} (STOP): nothing can be sent there."
    return None


@dataclass(frozen=True)
class Upload:
    """A file the agent attached to a reply, as the browser sent it."""

    content: bytes
    filename: str = ""


async def reply(
    ctx: AppContext,
    user: ConsoleUser,
    conversation_id: int,
    text: str,
    token: str,
    upload: Upload | None = None,
) -> int:
    """Queue the agent's reply, with a picture or PDF if attached, on the conversation's channel; the
    same `token` never sends twice."""
    text = text.strip()
    if not text and upload is None:
        raise InvalidInput("Write something to send.")
    if not token or len(token) > 64:
        raise InvalidInput("The form is out of date: reload the page.")
    try:
        content_type = sendable_type(upload.content) if upload is not None else None
    except NotSendable as exc:
        raise InvalidInput(str(exc)) from None
    now = ctx.clock()
    async with ctx.uow() as uow:
        conversation = await _conversation(uow, user, conversation_id)
        assert conversation.id is not None
        if conversation.owner != Owner.agent or conversation.assignee_id != user.id:
            raise ActionRefused("Take over the conversation before replying, so the bot stops answering.")
        limit = CAPABILITIES[conversation.channel].text_limit
        where = conversation.channel.value
        if upload is not None and conversation.channel == Channel.telegram:
            limit, where = TELEGRAM_CAPTION_LIMIT, "a Telegram file's caption"
        if len(text) > limit:
            raise InvalidInput(f"Too long for {where}: {len(text)} characters of {limit}.")
        recipient = (
            await uow.session.get(Recipient, conversation.recipient_id) if conversation.recipient_id else None
        )
        blocker = reply_blocker(conversation, recipient, now)
        if blocker:
            raise ActionRefused(blocker)
        idempotency_key = f"console-reply:{conversation.id}:{token}"
        earlier = (
            await uow.session.exec(
                select(Message)
                .join(OutboxMessage, col(OutboxMessage.id) == col(Message.outbox_id))
                .where(OutboxMessage.idempotency_key == idempotency_key)
            )
        ).first()
        if earlier is not None:  # the same form submitted twice
            assert earlier.id is not None
            return earlier.id
        attachments = []
        if upload is not None and content_type is not None:
            kept = OutgoingFile(
                token=secrets.token_urlsafe(32),
                retailer_id=conversation.retailer_id,
                conversation_id=conversation.id,
                content_type=content_type,
                filename=upload.filename[:120],
                size=len(upload.content),
                content=upload.content,
                created_at=now,
            )
            uow.session.add(kept)
            attachments.append({"content_type": content_type, "ref": outgoing_ref(kept.token)})
        outbox = await enqueue(
            uow.session,
            channel=conversation.channel,
            to_address=conversation.address,
            from_address=conversation.service_address,
            body=text,
            attachments=attachments,
            idempotency_key=idempotency_key,
            retailer_id=conversation.retailer_id,
            conversation_id=conversation.id,
            recipient_id=conversation.recipient_id,
            template_key="agent.reply",
            now=now,
        )
        assert outbox.id is not None
        message = Message(
            conversation_id=conversation.id,
            channel=conversation.channel,
            direction=Direction.outbound,
            author=Author.agent,
            author_user_id=user.id,
            text=text,
            attachments=attachments,
            outbox_id=outbox.id,
            created_at=now,
        )
        uow.session.add(message)
        conversation.updated_at = now
        uow.session.add(conversation)
        await uow.session.flush()
        assert message.id is not None
        uow.record(AgentReplied(conversation.id, conversation.retailer_id, message.id, outbox.id))
        await uow.commit()
        message_id = message.id
    _wake_outbox(ctx)
    log.info(
        "console_replied",
        conversation_id=conversation_id,
        user_id=user.id,
        channel=conversation.channel,
        attachment=content_type,
    )
    return message_id


def _wake_outbox(ctx: AppContext) -> None:
    worker = ctx.components.get("outbox_worker")
    wake = getattr(worker, "wake", None)
    if callable(wake):
        wake()


async def add_note(ctx: AppContext, user: ConsoleUser, conversation_id: int, text: str) -> int:
    text = text.strip()
    if not text:
        raise InvalidInput("Write the note first.")
    if len(text) > NOTE_LIMIT:
        raise InvalidInput(f"A note is at most {NOTE_LIMIT} characters.")
    now = ctx.clock()
    async with ctx.uow() as uow:
        conversation = await _conversation(uow, user, conversation_id)
        assert conversation.id is not None
        message = Message(
            conversation_id=conversation.id,
            channel=conversation.channel,
            direction=Direction.outbound,
            author=Author.agent,
            author_user_id=user.id,
            text=text,
            internal_note=True,
            created_at=now,
        )
        uow.session.add(message)
        await uow.session.flush()
        assert message.id is not None
        uow.record(NoteAdded(conversation.id, conversation.retailer_id, message.id))
        await uow.commit()
        return message.id


# --- acting on the delivery ----------------------------------------------------------------------


def parse_window(value: str) -> tuple[datetime, datetime]:
    """A "start|end" pair of ISO instants (what the offer radio buttons carry)."""
    try:
        start_text, end_text = value.split("|", 1)
        start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
    except ValueError:
        raise InvalidInput("Choose one of the windows offered.") from None
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise InvalidInput("Choose one of the windows offered.")
    return start, end


async def _note_change(ctx: AppContext, user: ConsoleUser, conversation_id: int | None, text: str) -> None:
    if conversation_id is None:
        return
    async with ctx.uow() as uow:
        try:
            conversation = await _conversation(uow, user, conversation_id)
        except NotFound:
            return
        _event_line(uow, conversation, user, text, "delivery_changed", ctx.clock())
        conversation.updated_at = ctx.clock()
        uow.session.add(conversation)
        await uow.commit()


async def _change_delivery(
    ctx: AppContext,
    user: ConsoleUser,
    delivery_id: int,
    conversation_id: int | None,
    change: Callable[[UnitOfWork, Delivery], Awaitable[T]],
    describe: Callable[[Delivery], str],
) -> T:
    """Apply a scheduling change to a delivery the agent may see, then note it in the conversation.

    `describe` says what was done ("rescheduled TOR-1 to ..."), after the agent's name.
    """
    async with ctx.uow() as uow:
        delivery = await delivery_for_user(uow.session, delivery_id, user.retailer_ids)
        result = await change(uow, delivery)
        line = f"{user.display_name} {describe(delivery)}"
    await _note_change(ctx, user, conversation_id, line)
    return result


async def reschedule(
    ctx: AppContext, user: ConsoleUser, delivery_id: int, window: str, conversation_id: int | None
) -> ChangeResult:
    start, end = parse_window(window)
    return await _change_delivery(
        ctx,
        user,
        delivery_id,
        conversation_id,
        lambda uow, delivery: service.reschedule_delivery(
            uow, delivery, start, end, actor(user), now=ctx.clock()
        ),
        lambda delivery: f"rescheduled {delivery.tracking} to {fmt_window(start, end, delivery.timezone)}",
    )


async def redirect(
    ctx: AppContext, user: ConsoleUser, delivery_id: int, pickup_point_id: int, conversation_id: int | None
) -> ChangeResult:
    return await _change_delivery(
        ctx,
        user,
        delivery_id,
        conversation_id,
        lambda uow, delivery: service.redirect_to_pickup(
            uow, delivery, pickup_point_id, actor(user), now=ctx.clock()
        ),
        lambda delivery: f"redirected {delivery.tracking} to a pickup point",
    )


async def book_white_glove(
    ctx: AppContext, user: ConsoleUser, delivery_id: int, window: str, conversation_id: int | None
) -> ChangeResult:
    start, end = parse_window(window)
    return await _change_delivery(
        ctx,
        user,
        delivery_id,
        conversation_id,
        lambda uow, delivery: service.book_white_glove(
            uow, delivery, start, end, actor(user), now=ctx.clock()
        ),
        lambda delivery: (
            f"booked white-glove for {delivery.tracking}: {fmt_window(start, end, delivery.timezone)}"
        ),
    )


async def call_off_white_glove(
    ctx: AppContext, user: ConsoleUser, delivery_id: int, conversation_id: int | None
) -> ChangeResult:
    return await _change_delivery(
        ctx,
        user,
        delivery_id,
        conversation_id,
        lambda uow, delivery: service.cancel_white_glove(uow, delivery, actor(user), now=ctx.clock()),
        lambda delivery: f"called off the white-glove setup of {delivery.tracking}",
    )


async def set_instructions(
    ctx: AppContext, user: ConsoleUser, delivery_id: int, instructions: str, conversation_id: int | None
) -> None:
    instructions = instructions.strip()
    if len(instructions) > 500:
        raise InvalidInput("Instructions are at most 500 characters.")
    await _change_delivery(
        ctx,
        user,
        delivery_id,
        conversation_id,
        lambda uow, delivery: service.set_instructions(uow, delivery, instructions, actor(user)),
        lambda delivery: f"changed the instructions of {delivery.tracking}",
    )


# --- a recipient's request about their personal data ---------------------------------------------


def may_handle_personal_data(user: ConsoleUser) -> bool:
    """Exporting or erasing everything kept about a person is an admin's act, not every agent's."""
    return user.role != Role.agent


async def _person_of(uow: UnitOfWork, user: ConsoleUser, conversation_id: int) -> tuple[int, str]:
    """The retailer and the phone number a personal-data request made in this conversation is about."""
    conversation = await _conversation(uow, user, conversation_id)
    if not may_handle_personal_data(user):
        raise NotAllowed("Only an admin can export or erase a recipient's personal data.")
    if conversation.retailer_id is None:
        raise ActionRefused("This conversation is not tied to a retailer yet: take it over first.")
    phone = None
    if conversation.recipient_id is not None:
        recipient = await uow.session.get(Recipient, conversation.recipient_id)
        if recipient is not None and recipient.retailer_id == conversation.retailer_id:
            phone = recipient.phone
    if phone is None and conversation.channel in (Channel.sms, Channel.whatsapp):
        phone = conversation.address
    if not phone:
        raise ActionRefused("No phone number is known for this recipient.")
    return conversation.retailer_id, phone


async def export_personal_data(ctx: AppContext, user: ConsoleUser, conversation_id: int) -> dict[str, Any]:
    async with ctx.uow() as uow:
        retailer_id, phone = await _person_of(uow, user, conversation_id)
        try:
            exported = await privacy.export_recipient(uow.session, retailer_id, phone)
        except privacy.RecipientUnknown:
            raise ActionRefused("No recipient of this retailer has this number.") from None
    log.info("recipient_exported", retailer_id=retailer_id, by="console", user_id=user.id)
    return exported


async def erase_personal_data(ctx: AppContext, user: ConsoleUser, conversation_id: int) -> None:
    """Erase what the retailer keeps about this conversation's recipient, this conversation included."""
    async with ctx.uow() as uow:
        retailer_id, phone = await _person_of(uow, user, conversation_id)
        retailer = await uow.session.get(Retailer, retailer_id)
        assert retailer is not None
        try:
            erased = await privacy.erase_recipient(uow, retailer, phone, ctx.clock(), actor(user))
        except privacy.RecipientUnknown:
            raise ActionRefused("No recipient of this retailer has this number.") from None
        except privacy.DeliveriesUnderWay as exc:
            raise ActionRefused(
                f"Not yet: {', '.join(exc.trackings)} still under way. Erase once delivered or cancelled."
            ) from None
        await uow.commit()
    await privacy.forget_dialogs(ctx, erased.dialogs)
    log.info("recipient_erased", retailer_id=retailer_id, by="console", user_id=user.id, **erased.deleted)
