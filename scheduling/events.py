"""Domain events: past-tense facts the scheduling service records and publishes after commit.

Each is durable (core/events.py): kept in the change's transaction until the notifications it calls
for are planned, so no crash between the two loses them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.events import DurableEvent


@dataclass(frozen=True)
class Event(DurableEvent):
    retailer_id: int
    delivery_id: int


@dataclass(frozen=True)
class WindowAssigned(Event):
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class DeliveryRescheduled(Event):
    window_start: datetime
    window_end: datetime
    actor: str = "system"
    at: datetime | None = None  # the clock of the change: a chat's reply confirming it is from then


@dataclass(frozen=True)
class RedirectedToPickup(Event):
    pickup_point_id: int
    actor: str = "system"
    at: datetime | None = None  # the clock of the change: a chat's reply confirming it is from then


@dataclass(frozen=True)
class WhiteGloveBooked(Event):
    slot_start: datetime
    slot_end: datetime
    actor: str = "system"
    at: datetime | None = None  # the clock of the change: a chat's reply confirming it is from then


@dataclass(frozen=True)
class WhiteGloveCancelled(Event):
    """An in-home setup booked through Doorstep was called off; the parcel still comes in its window."""

    slot_start: datetime
    slot_end: datetime
    actor: str = "system"
    at: datetime | None = None  # the clock of the change: a chat's reply confirming it is from then


# The changes someone asks for (actor, at): confirmed to the recipient, in the chat or by a message
RequestedChange = DeliveryRescheduled | RedirectedToPickup | WhiteGloveBooked | WhiteGloveCancelled


@dataclass(frozen=True)
class EtaChanged(Event):
    eta: datetime
    stops_away: int


@dataclass(frozen=True)
class OutForDelivery(Event):
    eta: datetime | None


@dataclass(frozen=True)
class Arrived(Event):
    pass


@dataclass(frozen=True)
class Delivered(Event):
    proof: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttemptFailed(Event):
    reason: str = ""


@dataclass(frozen=True)
class DeliveryCancelled(Event):
    pass
