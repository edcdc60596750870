"""One turn of a conversation: what came in, what we know, and the replies being built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from bot.i18n import Speaker
from bot.messages import InboundMessage, Option, OutboundMessage
from bot.state import DialogState
from core.db import UnitOfWork
from core.models import Conversation, Delivery, Recipient, Retailer
from scheduling.service import Actor

# Payloads of the fixed menu; the others (win:, wg:, pp:, ret:, dlv:) are accepted only when offered.
MENU_INTENTS = {
    "menu:status": "where_is_parcel",
    "menu:reschedule": "reschedule",
    "menu:pickup": "redirect_pickup",
    "menu:whiteglove": "white_glove",
    "menu:whiteglove_cancel": "cancel_white_glove",
    "menu:instructions": "instructions",
    "menu:person": "human",
    "yes": "yes",
    "no": "no",
}


@dataclass(frozen=True)
class Parsed:
    """What the recipient meant this turn: from the understanding, or from a button's payload."""

    intent: str
    language: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    option: int | None = None
    instructions: str | None = None
    target_language: str | None = None
    postal_code: str | None = None
    tracking: str | None = None
    confidence: float = 1.0
    choice: str | None = None  # an offered payload (win:..., pp:..., ret:...) that was chosen
    not_on: date | None = None  # a day they said they are away: no window offered on it
    away: bool = False  # they said they won't be there and asked no time
    home: bool = False  # to their door rather than a pickup point
    direction: str | None = None  # "earlier" / "later" than the time planned, no time named

    @classmethod
    def of(cls, understood: Any) -> Parsed:
        intent = understood.intent
        return cls(
            intent=str(getattr(intent, "value", intent)),
            language=understood.language,
            window_start=understood.window_start,
            window_end=understood.window_end,
            option=understood.option,
            instructions=understood.instructions,
            target_language=understood.target_language,
            postal_code=understood.postal_code,
            tracking=understood.tracking,
            confidence=float(understood.confidence),
            not_on=getattr(understood, "not_on", None),
            away=bool(getattr(understood, "away", False)),
            home=bool(getattr(understood, "home", False)),
            direction=getattr(understood, "direction", None),
        )

    def as_state(self) -> dict[str, Any]:
        """A request kept while we first ask who or which delivery (JSON for the state store)."""
        return {
            "intent": self.intent,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "instructions": self.instructions,
            "not_on": self.not_on.isoformat() if self.not_on else None,
            "away": self.away,
            "home": self.home,
            "direction": self.direction,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Parsed:
        def instant(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        return cls(
            intent=str(data.get("intent", "unknown")),
            window_start=instant(data.get("window_start")),
            window_end=instant(data.get("window_end")),
            instructions=data.get("instructions"),
            not_on=date.fromisoformat(data["not_on"]) if isinstance(data.get("not_on"), str) else None,
            away=data.get("away") is True,
            home=data.get("home") is True,
            direction=data.get("direction") if data.get("direction") in ("earlier", "later") else None,
        )

    @property
    def has_time(self) -> bool:
        return self.window_start is not None or self.window_end is not None

    def but(self, **changes: Any) -> Parsed:
        return replace(self, **changes)


@dataclass
class Turn:
    uow: UnitOfWork
    message: InboundMessage
    conversation: Conversation
    state: DialogState
    now: datetime
    speaker: Speaker
    checkpoint: Callable[[], Awaitable[None]]
    recover: Callable[[list[Any]], Awaitable[None]]
    recipients: list[Recipient] = field(default_factory=list)
    retailers: dict[int, Retailer] = field(default_factory=dict)
    delivery: Delivery | None = None
    # the sender's deliveries, read once per turn (None: not read yet, or forgotten after a rollback)
    deliveries: list[Delivery] | None = None
    replies: list[OutboundMessage] = field(default_factory=list)
    offered: list[Option] = field(default_factory=list)
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        from core.models import Author

        return Actor(Author.recipient, id=str(self.conversation.id or ""), channel=str(self.message.channel))

    @property
    def recipient(self) -> Recipient | None:
        if self.delivery is not None:
            for recipient in self.recipients:
                if recipient.id == self.delivery.recipient_id:
                    return recipient
        chosen = self.conversation.recipient_id
        for recipient in self.recipients:
            if recipient.id == chosen:
                return recipient
        return self.recipients[0] if len(self.recipients) == 1 else None

    def _(self, message: str, **params: Any) -> str:
        return self.speaker._(message, **params)

    def say(
        self,
        text: str,
        options: list[tuple[Option, dict[str, Any] | None]] | None = None,
        *,
        kind: str | None = None,
        request_contact: bool = False,
    ) -> None:
        """Add a reply; its options become what "1", "2"... mean next turn."""
        finish = self.speaker.finish
        chosen = [Option(finish(option.label), option.payload) for option, _ in options or []]
        self.replies.append(
            OutboundMessage(
                text=finish(text), options=tuple(chosen), template_key=kind, request_contact=request_contact
            )
        )
        if options:
            self.offered = chosen
            self.offers = {option.payload: data for option, data in options if data is not None}

    def option(self, label: str, payload: str, data: dict[str, Any] | None = None) -> tuple[Option, Any]:
        return Option(label[:60], payload[:64]), data

    def previous_options(self) -> list[tuple[Option, Any]]:
        """The options offered last turn, to offer again."""
        offers = self.state.get("offers") or {}
        return [
            (Option(str(o["label"]), str(o["payload"])), offers.get(o["payload"]))
            for o in self.state.get("options") or []
        ]

    def remember_offers(self) -> None:
        """Keep this turn's options for the next one (a reply without options clears them)."""
        if self.replies:
            self.state["options"] = [{"label": o.label, "payload": o.payload} for o in self.offered]
            self.state["offers"] = self.offers
