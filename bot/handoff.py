"""Hand-off between the bot and the agents: who owns a conversation, and the events the console shows.

A conversation always has an owner. The bot asks for a person by setting `needs_person` (it stays the
owner until an agent takes over); while an agent owns it the engine records what the recipient says
and answers nothing; hand-back and close give it back to the bot with a fresh dialog.
Each function commits its own unit of work, like the scheduling use cases.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlmodel import select

from bot.events import ConversationClosed, HandedBack, HandoffRequested, TakenOver
from bot.state import reset_dialog
from core.db import UnitOfWork
from core.models import Author, Conversation, ConversationStatus, Direction, Message, Owner, utcnow


class ConversationNotFound(Exception):
    """No such conversation, or one of another retailer (told apart from nothing, so nothing leaks)."""


class NotTheAssignee(Exception):
    """Another agent owns this conversation."""


async def _load(uow: UnitOfWork, conversation_id: int, retailer_ids: Collection[int] | None) -> Conversation:
    conversation = (
        await uow.session.exec(
            select(Conversation).where(Conversation.id == conversation_id).with_for_update()
        )
    ).first()
    if conversation is None:
        raise ConversationNotFound(conversation_id)
    if retailer_ids is not None and conversation.retailer_id not in retailer_ids:
        raise ConversationNotFound(conversation_id)
    return conversation


def history_line(
    conversation: Conversation, text: str, payload: str, now: datetime, *, user_id: int | None = None
) -> Message:
    """A line in the conversation's history for agents only ("Ana took over"), never sent; `payload`
    names its kind (the dashboard counts hand-offs by it)."""
    return Message(
        conversation_id=conversation.id or 0,
        channel=conversation.channel,
        direction=Direction.outbound,
        author=Author.system,
        author_user_id=user_id,
        text=text,
        payload=payload,
        internal_note=True,
        created_at=now,
    )


HANDOFF_REQUESTED = "bot:handoff_requested"  # the payload of the history line a request leaves
REASON_TEXT = {
    "asked": "The recipient asked for a person",
    "misunderstood": "The bot did not understand the recipient",
    "attachment": "The recipient sent a picture or file for a person to look at",
    "personal_data": "The recipient asked about their personal data (to see it or have it erased)",
}


def request_person(uow: UnitOfWork, conversation: Conversation, reason: str, now: datetime) -> bool:
    """Put the conversation in the agents' queue; False when it was already waiting there.

    The request stays in the conversation's history as a line for agents (what the console shows
    and the dashboard counts as hand-offs asked for).
    """
    if conversation.status == ConversationStatus.needs_person:
        return False
    conversation.status = ConversationStatus.needs_person
    conversation.updated_at = now
    uow.session.add(conversation)
    text = REASON_TEXT.get(reason, f"The bot asked for a person ({reason})")
    uow.session.add(history_line(conversation, text, HANDOFF_REQUESTED, now))
    uow.record(HandoffRequested(conversation.id or 0, conversation.retailer_id, reason))
    return True


async def take_over(
    uow: UnitOfWork,
    conversation_id: int,
    user_id: int,
    *,
    retailer_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> Conversation:
    """An agent owns the conversation from now on: the bot records and stays silent."""
    conversation = await _load(uow, conversation_id, retailer_ids)
    if conversation.owner == Owner.agent and conversation.assignee_id not in (None, user_id):
        raise NotTheAssignee(conversation_id)
    return await _give_to_agent(uow, conversation, user_id, now)


async def assign(
    uow: UnitOfWork,
    conversation_id: int,
    assignee_id: int,
    *,
    retailer_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> Conversation:
    """Another agent owns the conversation from now on (who may hand it over is the console's rule)."""
    conversation = await _load(uow, conversation_id, retailer_ids)
    return await _give_to_agent(uow, conversation, assignee_id, now)


async def _give_to_agent(
    uow: UnitOfWork, conversation: Conversation, user_id: int, now: datetime | None
) -> Conversation:
    conversation.owner = Owner.agent
    conversation.assignee_id = user_id
    conversation.status = ConversationStatus.open
    conversation.updated_at = now or utcnow()
    uow.session.add(conversation)
    uow.record(TakenOver(conversation.id or 0, conversation.retailer_id, user_id))
    await uow.commit()
    return conversation


async def _give_to_bot(
    uow: UnitOfWork,
    conversation_id: int,
    retailer_ids: Collection[int] | None,
    status: ConversationStatus,
    now: datetime | None,
) -> Conversation:
    """The bot owns it again, with no assignee and a fresh dialog; the caller records why and commits."""
    conversation = await _load(uow, conversation_id, retailer_ids)
    conversation.owner = Owner.bot
    conversation.assignee_id = None
    conversation.status = status
    conversation.updated_at = now or utcnow()
    reset_dialog(conversation)
    uow.session.add(conversation)
    return conversation


async def hand_back(
    uow: UnitOfWork,
    conversation_id: int,
    user_id: int,
    *,
    retailer_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> Conversation:
    """The bot answers again, starting a fresh dialog (nothing the agent may have changed is assumed)."""
    conversation = await _give_to_bot(uow, conversation_id, retailer_ids, ConversationStatus.open, now)
    uow.record(HandedBack(conversation_id, conversation.retailer_id, user_id))
    await uow.commit()
    return conversation


async def close(
    uow: UnitOfWork,
    conversation_id: int,
    user_id: int | None,
    *,
    retailer_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> Conversation:
    """Close it; the bot owns it again, and the recipient's next message reopens it."""
    conversation = await _give_to_bot(uow, conversation_id, retailer_ids, ConversationStatus.closed, now)
    uow.record(ConversationClosed(conversation_id, conversation.retailer_id, user_id))
    await uow.commit()
    return conversation
