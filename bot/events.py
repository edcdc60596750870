"""Conversation events, published after commit so the agents' console can show them live."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConversationEvent:
    conversation_id: int
    retailer_id: int | None


@dataclass(frozen=True)
class MessageReceived(ConversationEvent):
    message_id: int
    channel: str


@dataclass(frozen=True)
class MessageSent(ConversationEvent):
    message_id: int
    channel: str
    outbox_id: int | None = None


@dataclass(frozen=True)
class HandoffRequested(ConversationEvent):
    reason: str  # "asked" (the recipient asked for a person) or "misunderstood"


@dataclass(frozen=True)
class TakenOver(ConversationEvent):
    user_id: int


@dataclass(frozen=True)
class HandedBack(ConversationEvent):
    user_id: int


@dataclass(frozen=True)
class ConversationClosed(ConversationEvent):
    user_id: int | None


@dataclass(frozen=True)
class RecipientOptedOut(ConversationEvent):
    channel: str
    recipient_ids: tuple[int, ...]


@dataclass(frozen=True)
class RecipientOptedIn(ConversationEvent):
    channel: str
    recipient_ids: tuple[int, ...]
