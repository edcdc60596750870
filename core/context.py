"""The composition root's product: everything the app wires together, built once per app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import Settings
from core.db import UnitOfWork
from core.observability import Metrics

EventHandler = Callable[[list[Any]], Awaitable[None]]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime] = system_clock
    metrics: Metrics = field(default_factory=Metrics)
    # called with the events of every committed unit of work (notifications, live updates...)
    event_handlers: list[EventHandler] = field(default_factory=list)
    # components that later layers attach (conversation engine, channel senders, scheduler...)
    components: dict[str, Any] = field(default_factory=dict)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessionmaker, self.publish, self.clock)

    async def publish(self, events: list[Any]) -> None:
        if not events:
            return
        for handler in self.event_handlers:
            await handler(events)
