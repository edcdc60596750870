"""Use cases that change a delivery: one function each, each committing its own unit of work.

Every function takes the unit of work and the delivery, checks feasibility against the route plan,
reserves atomically (PostgreSQL: the plan row is locked FOR UPDATE; SQLite: one writer), writes the
change log, records events, and commits. Domain errors say why a change cannot be kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from core.db import UnitOfWork
from core.models import Author, Delivery, PickupPoint


@dataclass(frozen=True)
class Actor:
    """Who asked for a change: recorded in the change log."""

    kind: Author
    id: str = ""
    channel: str = ""


SYSTEM = Actor(Author.system)


@dataclass(frozen=True)
class WindowOffer:
    start: datetime
    end: datetime
    day: date
    detour_seconds: int = 0
    vehicle_id: int | None = None
    eta: datetime | None = None


@dataclass(frozen=True)
class PickupOption:
    point: PickupPoint
    distance_m: float
    available_from: datetime  # when the parcel could be there
    hours_today: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class ChangeResult:
    delivery: Delivery
    window_start: datetime | None
    window_end: datetime | None
    vehicle_id: int | None
    eta: datetime | None


class SchedulingError(Exception):
    """A change the plan cannot keep."""


class DeliveryNotChangeable(SchedulingError):
    """Delivered, cancelled, already on the truck past the cut-off..."""


class WindowUnavailable(SchedulingError):
    def __init__(self, message: str, alternatives: list[WindowOffer]) -> None:
        super().__init__(message)
        self.alternatives = alternatives


class PickupPointFull(SchedulingError):
    pass


class PickupPointUnavailable(SchedulingError):
    """Unknown, closed when the parcel could get there, or another retailer's."""


class SlotUnavailable(SchedulingError):
    def __init__(self, message: str, alternatives: list[WindowOffer]) -> None:
        super().__init__(message)
        self.alternatives = alternatives


async def offer_windows(
    uow: UnitOfWork, delivery: Delivery, *, days: int = 3, now: datetime
) -> list[WindowOffer]:
    raise NotImplementedError  # issue 3


async def reschedule_delivery(
    uow: UnitOfWork, delivery: Delivery, start: datetime, end: datetime, actor: Actor, *, now: datetime
) -> ChangeResult:
    raise NotImplementedError  # issue 3


async def pickup_options(
    uow: UnitOfWork, delivery: Delivery, *, now: datetime, limit: int = 5
) -> list[PickupOption]:
    raise NotImplementedError  # issue 3


async def redirect_to_pickup(
    uow: UnitOfWork, delivery: Delivery, pickup_point_id: int, actor: Actor, *, now: datetime
) -> ChangeResult:
    raise NotImplementedError  # issue 3


async def white_glove_slots(
    uow: UnitOfWork, delivery: Delivery, *, days: int = 3, now: datetime
) -> list[WindowOffer]:
    raise NotImplementedError  # issue 3


async def book_white_glove(
    uow: UnitOfWork, delivery: Delivery, start: datetime, end: datetime, actor: Actor, *, now: datetime
) -> ChangeResult:
    raise NotImplementedError  # issue 3


async def set_instructions(uow: UnitOfWork, delivery: Delivery, instructions: str, actor: Actor) -> Delivery:
    raise NotImplementedError  # issue 3
