"""Durable domain events: kept in the database by the transaction of the change that caused them.

Events are published after their unit of work commits (core/db.py). Most only feed live views, and
losing one to a crash loses nothing. A `DurableEvent` has consequences that must follow (the
notifications a rescheduled or delivered parcel owes its recipient): the unit of work writes it as a
`KeptEvent` row in the change's own transaction and publishes `EventsKept` with the rows' ids beside
the events. The consumer deletes those rows in the transaction that handles them; rows still there a
while later (the process died after the commit, or the database went away before the handling
committed) are read back with `kept_events` and handed over again. Consumers must therefore be
idempotent, which the notifications' dedupe keys make them.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import delete, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import KeptEvent

FORGET_CHUNK = 1000  # ids per DELETE: far below the drivers' limits on bound parameters


class DurableEvent:
    """Base of the frozen dataclasses whose consumers must hear of them even after a crash."""

    kinds: ClassVar[dict[str, type[DurableEvent]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        DurableEvent.kinds[cls.__name__] = cls


@dataclass(frozen=True)
class EventsKept:
    """Published with a unit's events: the ids of the `KeptEvent` rows its durable events became."""

    ids: tuple[int, ...]


class UnreadableEvent(ValueError):
    """A kept row names no known event or does not fit it (written by another version of the code)."""


@cache
def _datetime_fields(name: str) -> frozenset[str]:
    kind = DurableEvent.kinds[name]
    hints = typing.get_type_hints(kind)
    return frozenset(
        f.name
        for f in fields(kind)  # type: ignore[arg-type]
        if hints[f.name] is datetime or datetime in typing.get_args(hints[f.name])
    )


def encode(event: DurableEvent) -> dict[str, Any]:
    """The row values of one event: its class name and its fields as JSON (datetimes in ISO 8601)."""
    data = {}
    for f in fields(event):  # type: ignore[arg-type]
        value = getattr(event, f.name)
        data[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return {"name": type(event).__name__, "data": data}


def decode(name: str, data: dict[str, Any]) -> DurableEvent:
    kind = DurableEvent.kinds.get(name)
    if kind is None:
        raise UnreadableEvent(f"no event named {name!r}")
    timed = _datetime_fields(name)
    try:
        values = {
            key: datetime.fromisoformat(value) if key in timed and value is not None else value
            for key, value in data.items()
        }
        return kind(**values)
    except (TypeError, ValueError) as error:
        raise UnreadableEvent(f"{name}: {error}") from error


async def keep(session: AsyncSession, events: list[Any], now: datetime) -> tuple[int, ...]:
    """Write the durable events among `events` in the session's transaction; their rows' ids."""
    durable = [encode(e) | {"created_at": now} for e in events if isinstance(e, DurableEvent)]
    if not durable:
        return ()
    # a Core statement on the session's connection: the ORM's bulk path costs more than the insert
    connection = await session.connection()
    table = KeptEvent.__table__  # type: ignore[attr-defined]
    inserted = await connection.execute(insert(table).returning(table.c.id), durable)
    return tuple(inserted.scalars().all())


async def forget(session: AsyncSession, ids: typing.Iterable[int]) -> None:
    """Delete handled rows, in the transaction that handled them."""
    ids = sorted(ids)
    for start in range(0, len(ids), FORGET_CHUNK):  # a plan import keeps one event per delivery
        chunk = ids[start : start + FORGET_CHUNK]
        await session.execute(delete(KeptEvent).where(col(KeptEvent.id).in_(chunk)))


async def kept_events(
    session: AsyncSession, older_than: datetime, limit: int
) -> tuple[list[tuple[int, DurableEvent]], list[int]]:
    """The oldest rows written before `older_than`, decoded, and the ids of rows that cannot be."""
    oldest = select(KeptEvent).where(KeptEvent.created_at < older_than).order_by(col(KeptEvent.id))
    rows = (await session.exec(oldest.limit(limit))).all()
    readable: list[tuple[int, DurableEvent]] = []
    unreadable: list[int] = []
    for row in rows:
        try:
            readable.append((row.id or 0, decode(row.name, row.data)))
        except UnreadableEvent:
            unreadable.append(row.id or 0)
    return readable, unreadable
