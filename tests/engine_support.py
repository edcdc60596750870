"""Helpers for the conversation engine's tests: a day's plan, a fixed clock, a scripted understanding."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import select

from bot.engine import ConversationEngine
from bot.messages import InboundMessage, OutboundMessage
from bot.understanding.model import Intent, Understanding
from core.context import AppContext
from core.models import Channel, Retailer
from scheduling.plans import import_plan
from tests.plans import DAY, small_plan

# Wednesday Dec 2 2026, 10:00 in Toronto: the day before the small plan's day.
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def understood(intent: Intent = Intent.unknown, **fields: Any) -> Understanding:
    values: dict[str, Any] = {
        "language": None,
        "window_start": None,
        "window_end": None,
        "option": None,
        "instructions": None,
        "target_language": None,
        "postal_code": None,
        "tracking": None,
        "confidence": 0.9,
    }
    values.update(fields)
    return Understanding(intent=intent, **values)


@dataclass
class ScriptedUnderstanding:
    """A fake of the understanding port: fixed answers per text, and a record of what it was asked."""

    answers: dict[str, Understanding] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def __call__(
        self, text: str, *, locale: str, now: datetime, timezone: str, default_day: date | None = None
    ) -> Understanding:
        self.asked.append((text, locale))
        if text.strip().isdigit():
            return understood(Intent.choose_option, option=int(text.strip()))
        return self.answers.get(text, understood())


async def load_small_plan(ctx: AppContext, retailer_id: int, prefix: str = "T", day: str = DAY) -> None:
    async with ctx.uow() as uow:
        retailer = await uow.session.get(Retailer, retailer_id)
        assert retailer is not None
        await import_plan(uow, retailer, small_plan(day=day, prefix=prefix))


class Chat:
    """One sender talking to the engine: `await chat.say("hi")` returns the replies' texts."""

    def __init__(
        self, engine: ConversationEngine, channel: Channel, sender: str, service_address: str = ""
    ) -> None:
        self.engine, self.channel, self.sender, self.service_address = (
            engine,
            channel,
            sender,
            service_address,
        )
        self.count = 0
        self.last: list[OutboundMessage] = []

    async def send(self, text: str = "", **extra: Any) -> list[OutboundMessage]:
        self.count += 1
        message = InboundMessage(
            channel=self.channel,
            sender=self.sender,
            text=text,
            provider_id=extra.pop("provider_id", f"{self.channel}-{self.sender}-{self.count}"),
            service_address=self.service_address,
            **extra,
        )
        self.last = await self.engine.handle(message)
        return self.last

    async def say(self, text: str = "", **extra: Any) -> str:
        return "\n".join(reply.text for reply in await self.send(text, **extra))

    def payloads(self) -> list[str]:
        return [option.payload for reply in self.last for option in reply.options]


async def retailer_names(ctx: AppContext) -> dict[int, str]:
    async with ctx.uow() as uow:
        return {r.id or 0: r.name for r in (await uow.session.exec(select(Retailer))).all()}
