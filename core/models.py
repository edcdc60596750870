"""The data model: every table of Doorstep, as SQLModel classes.

Times that people see (windows, ETAs, quiet hours) are timezone-aware datetimes stored in UTC.
Route arithmetic uses integer seconds since local midnight of the plan's date (VROOM's convention),
kept on the stop beside the aware datetime so the feasibility checks never touch time zones.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def empty_dict() -> dict[Any, Any]:
    return {}


def empty_list() -> list[Any]:
    return []


def json_column(default_factory: Callable[[], Any] = empty_dict, *, server_default: str | None = None) -> Any:
    """A JSON column that is never NULL.

    The factories are Python functions, not the builtins `dict`/`list`: pydantic asks for a default
    factory's signature on every model construction, and a builtin's is parsed from its text
    signature each time (~0.3 ms per object here). `server_default` (JSON text) serves the batched
    Core inserts that leave the column out.
    """
    default = text(f"'{server_default}'") if server_default is not None else None
    return Field(
        default_factory=default_factory, sa_column=Column(JSON, nullable=False, server_default=default)
    )


class Channel(enum.StrEnum):
    sms = "sms"
    whatsapp = "whatsapp"
    telegram = "telegram"
    web = "web"


class DeliveryStatus(enum.StrEnum):
    pooled = "pooled"  # a day without an imported plan yet: waits in the day's pool
    scheduled = "scheduled"
    out_for_delivery = "out_for_delivery"
    arrived = "arrived"
    delivered = "delivered"
    failed = "failed"
    redirected = "redirected"  # to a pickup point
    ready_for_pickup = "ready_for_pickup"
    picked_up = "picked_up"
    cancelled = "cancelled"


class StopStatus(enum.StrEnum):
    planned = "planned"
    arrived = "arrived"
    done = "done"
    failed = "failed"


class Owner(enum.StrEnum):
    bot = "bot"
    agent = "agent"


class ConversationStatus(enum.StrEnum):
    open = "open"
    needs_person = "needs_person"
    closed = "closed"


class Direction(enum.StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class Author(enum.StrEnum):
    recipient = "recipient"
    bot = "bot"
    agent = "agent"
    system = "system"


class OutboxStatus(enum.StrEnum):
    pending = "pending"
    sending = "sending"
    queued = "queued"  # accepted by the provider
    sent = "sent"
    delivered = "delivered"
    read = "read"
    undelivered = "undelivered"
    failed = "failed"
    suppressed = "suppressed"  # opted out or no usable channel: recorded, never sent


class Role(enum.StrEnum):
    agent = "agent"
    retailer_admin = "retailer_admin"
    admin = "admin"


# --- tenants -------------------------------------------------------------------------------------

# The columns holding a retailer's own number on the channels that have one
OWN_NUMBER_FIELD = {Channel.sms: "sms_from", Channel.whatsapp: "whatsapp_from"}


class Retailer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=64)
    name: str = Field(max_length=200)
    brand_name: str = Field(default="", max_length=200)
    timezone: str = Field(default="America/Toronto", max_length=64)
    default_locale: str = Field(default="en", max_length=10)
    quiet_hours_start: str = Field(default="21:00", max_length=5)
    quiet_hours_end: str = Field(default="08:00", max_length=5)
    sms_from: str | None = Field(default=None, index=True, max_length=32)
    whatsapp_from: str | None = Field(default=None, index=True, max_length=32)
    slot_minutes: int = 120
    # free-form settings: slot capacity for days without a plan, reminder time, WhatsApp content SIDs,
    # change webhook URL and secret, arriving-soon threshold...
    settings: dict[str, Any] = json_column()
    created_at: datetime = Field(default_factory=utcnow)

    def own_number(self, channel: Channel) -> str | None:
        """The retailer's own number on SMS or WhatsApp; None elsewhere or when it uses the shared one."""
        field = OWN_NUMBER_FIELD.get(channel)
        number: str | None = getattr(self, field) if field else None
        return number


class ApiKey(SQLModel, table=True):
    """A retailer's API key; only its SHA-256 is stored (keys are 256-bit random, so no slow hash needed)."""

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    key_hash: str = Field(index=True, unique=True, max_length=64)
    prefix: str = Field(max_length=12)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


# --- recipients and deliveries -------------------------------------------------------------------


class Recipient(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("retailer_id", "phone"),)

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    name: str = Field(default="", max_length=200)
    phone: str | None = Field(default=None, index=True, max_length=20)  # E.164
    locale: str = Field(default="en", max_length=10)
    telegram_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, index=True))
    preferred_channel: Channel | None = None
    # per channel: {"sms": {"consent": true, "opted_out_at": null}, ...}
    channel_consent: dict[str, Any] = json_column()
    whatsapp_last_inbound_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("retailer_id", "tracking"),)

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    tracking: str = Field(max_length=64, index=True)
    recipient_id: int | None = Field(default=None, foreign_key="recipient.id", index=True)
    plan_id: int | None = Field(default=None, foreign_key="routeplan.id", index=True)
    day: date = Field(index=True)
    # the first day it can be delivered (the day its plan brought it; moving it later keeps this)
    earliest_day: date | None = None
    timezone: str = Field(default="America/Toronto", max_length=64)
    status: DeliveryStatus = Field(default=DeliveryStatus.scheduled, index=True)
    window_start: datetime | None = None
    window_end: datetime | None = None
    address: str = Field(default="", max_length=500)
    postal_code: str = Field(default="", max_length=16)
    lon: float = 0.0
    lat: float = 0.0
    location_index: int | None = None
    instructions: str = Field(default="", max_length=500)
    service_seconds: int = 300
    size: list[int] = json_column(empty_list)
    skills: list[int] = json_column(empty_list)
    white_glove: bool = False
    white_glove_start: datetime | None = None
    white_glove_end: datetime | None = None
    # the drop-off time before a setup booked through Doorstep (None: none booked so, or sold with it)
    service_seconds_without_setup: int | None = None
    pickup_point_id: int | None = Field(default=None, foreign_key="pickuppoint.id", index=True)
    job_id: int | None = None  # the VROOM job id it came with
    proof: dict[str, Any] = json_column()
    failure_reason: str = Field(default="", max_length=200)
    telegram_link_token: str | None = Field(default=None, index=True, unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def setup_booked_through_doorstep(self) -> bool:
        """Its in-home setup was booked here, not sold with the order: the recipient or an agent may
        call it off (the drop-off time to restore is kept)."""
        return self.service_seconds_without_setup is not None


# --- the route plan ------------------------------------------------------------------------------


class RoutePlan(SQLModel, table=True):
    __table_args__ = (Index("ix_routeplan_retailer_day", "retailer_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    day: date
    timezone: str = Field(max_length=64)
    white_glove_skill: int = 2
    durations: list[list[int]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    speed_kmh: float = 30.0
    version: int = 1  # bumped by every change; PostgreSQL locks the row to serialise changes
    source: dict[str, Any] = json_column()
    created_at: datetime = Field(default_factory=utcnow)


class Vehicle(SQLModel, table=True):
    """A route of the plan: one vehicle's shift. A vehicle with the plan's white-glove skill is a crew."""

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="routeplan.id", index=True)
    vroom_id: int
    description: str = Field(default="", max_length=200)
    start_lon: float | None = None
    start_lat: float | None = None
    end_lon: float | None = None
    end_lat: float | None = None
    start_index: int | None = None
    end_index: int | None = None
    shift_start: int = 0  # seconds since local midnight
    shift_end: int = 86_400
    capacity: list[int] = json_column(empty_list)
    skills: list[int] = json_column(empty_list)
    white_glove: bool = False
    progress_delay: int = 0  # seconds the driver reported running late
    last_event_at: datetime | None = None


class Stop(SQLModel, table=True):
    __table_args__ = (Index("ix_stop_vehicle_seq", "vehicle_id", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: int = Field(foreign_key="vehicle.id", index=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True, unique=True)
    sequence: int
    arrival: int = 0  # seconds since local midnight
    eta: datetime | None = None
    status: StopStatus = StopStatus.planned
    arrived_at: datetime | None = None
    completed_at: datetime | None = None


class PickupPoint(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("retailer_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    external_id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    address: str = Field(default="", max_length=500)
    lon: float
    lat: float
    opening_hours: dict[str, list[list[str]]] = json_column()
    capacity: int = 50  # parcels it can hold per day


class PickupReservation(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("delivery_id"),)

    id: int | None = Field(default=None, primary_key=True)
    pickup_point_id: int = Field(foreign_key="pickuppoint.id", index=True)
    delivery_id: int = Field(foreign_key="delivery.id")
    day: date = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)


class SlotCapacity(SQLModel, table=True):
    """Places taken in a retailer's slot on a day that has no plan yet (the day's pool)."""

    __table_args__ = (UniqueConstraint("retailer_id", "slot_start"),)

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    slot_start: datetime
    slot_end: datetime
    capacity: int
    taken: int = 0


# --- change log ----------------------------------------------------------------------------------


class ChangeLog(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)  # the cursor of GET /api/v1/changes
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id", index=True)
    plan_id: int | None = Field(default=None, index=True)
    kind: str = Field(max_length=64)  # rescheduled, redirected, white_glove_booked, delivered...
    actor: Author = Author.system
    actor_id: str = Field(default="", max_length=200)
    channel: str = Field(default="", max_length=16)
    before: dict[str, Any] = json_column()
    after: dict[str, Any] = json_column()
    created_at: datetime = Field(default_factory=utcnow)
    webhook_status: str = Field(default="pending", max_length=16)  # pending, sent, failed, none
    webhook_attempts: int = 0
    webhook_next_at: datetime | None = None


class KeptEvent(SQLModel, table=True):
    """A domain event committed with the change that caused it, until its consumers have handled it.

    Written in the change's own transaction and deleted in the transaction that plans its
    notifications: a process that dies between the two, or a database that goes away then, leaves
    the row for the sweeper to hand over again (core/events.py).
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=48)
    data: dict[str, Any] = json_column()
    created_at: datetime = Field(default_factory=utcnow, index=True)


# --- conversations -------------------------------------------------------------------------------


class Conversation(SQLModel, table=True):
    """One conversation per sender address, channel and the service number they wrote to.

    Ids are never reused, on SQLite too (AUTOINCREMENT): the dialog state in Redis and the console's
    links are keyed by the id, which must not lead to someone else's conversation once the retention
    purge deleted the newest one.
    """

    __table_args__ = (
        UniqueConstraint("channel", "address", "service_address"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: Channel
    address: str = Field(max_length=64)  # E.164 phone, Telegram chat id or sandbox id
    service_address: str = Field(default="", max_length=64)  # our number they wrote to, "" if shared
    retailer_id: int | None = Field(default=None, foreign_key="retailer.id", index=True)
    recipient_id: int | None = Field(default=None, foreign_key="recipient.id", index=True)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id")
    locale: str = Field(default="en", max_length=10)
    owner: Owner = Owner.bot
    assignee_id: int | None = Field(default=None, foreign_key="user.id")
    status: ConversationStatus = Field(default=ConversationStatus.open, index=True)
    state: dict[str, Any] = json_column()  # dialog state: the engine's own, never aiogram's FSM
    misunderstood: int = 0
    last_inbound_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Message(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("channel", "provider_id"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    channel: Channel
    direction: Direction
    author: Author
    author_user_id: int | None = Field(default=None, foreign_key="user.id")
    text: str = ""
    payload: str | None = Field(default=None, max_length=128)  # a button's payload
    options: list[dict[str, str]] = json_column(empty_list)
    # pictures and files: {"content_type", "ref"}; a recipient's are the channel's media URL or file id,
    # fetched from the channel only when an agent opens them (console/pages.py); an agent's are
    # "doorstep:<token>" of an OutgoingFile
    attachments: list[dict[str, str]] = json_column(empty_list, server_default="[]")
    internal_note: bool = False
    provider_id: str | None = Field(default=None, max_length=64)  # inbound: MessageSid / update id
    # indexed for the retention purge: deleting outbox rows checks this foreign key row by row
    outbox_id: int | None = Field(default=None, foreign_key="outboxmessage.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class InboundReceipt(SQLModel, table=True):
    """Provider ids of webhooks already processed, so a retried webhook is handled once."""

    __table_args__ = (UniqueConstraint("provider", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow)


# --- notifications and the outbox ----------------------------------------------------------------


class Notification(SQLModel, table=True):
    """A proactive notice owed to a recipient; `dedupe_key` makes each one fire once."""

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True)
    event: str = Field(max_length=48)
    dedupe_key: str = Field(unique=True, max_length=200)
    due_at: datetime = Field(index=True)
    status: str = Field(default="scheduled", max_length=16)  # scheduled, sent, suppressed, cancelled
    channel: str | None = Field(default=None, max_length=16)
    outbox_id: int | None = Field(default=None, foreign_key="outboxmessage.id", index=True)
    context: dict[str, Any] = json_column()
    created_at: datetime = Field(default_factory=utcnow)


class OutboxMessage(SQLModel, table=True):
    """Every outbound message is written here before it is sent; workers claim and send."""

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int | None = Field(default=None, foreign_key="retailer.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    recipient_id: int | None = Field(default=None, foreign_key="recipient.id", index=True)
    channel: Channel
    to_address: str = Field(max_length=64)
    from_address: str = Field(default="", max_length=64)
    body: str = ""
    options: list[dict[str, str]] = json_column(empty_list)
    content_sid: str | None = Field(default=None, max_length=64)
    content_variables: dict[str, str] = json_column()
    idempotency_key: str = Field(unique=True, max_length=200)
    status: OutboxStatus = Field(default=OutboxStatus.pending)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    last_error: str = Field(default="", max_length=500)
    provider_id: str | None = Field(default=None, index=True, max_length=64)
    segments: int = 1
    encoding: str = Field(default="", max_length=8)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # the message's kind (OutboundMessage.template_key): picks a WhatsApp template outside the 24 h window
    template_key: str | None = Field(default=None, max_length=64)
    # set when an attempt may have reached the provider without us learning the outcome (timeout, crash):
    # the next attempt asks the provider first instead of sending a visible duplicate
    uncertain_since: datetime | None = None
    status_at: datetime | None = None
    # an agent's picture or PDF, as on its Message: the provider fetches it from PUBLIC_URL/media/<token>
    attachments: list[dict[str, str]] = json_column(empty_list, server_default="[]")


class SavedReply(SQLModel, table=True):
    """An answer a retailer's agents reuse, inserted into the reply box with the conversation's names
    filled in (a sandboxed message template: `{{ first_name }}`, `{{ tracking }}`, `{{ window }}`...)."""

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)
    title: str = Field(max_length=60)
    body: str = Field(max_length=1000)
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class OutgoingFile(SQLModel, table=True):
    """A picture or PDF an agent sends. Twilio and Telegram fetch it themselves from
    `PUBLIC_URL/media/<token>` (channels/media.py), so it lives in the database that every process
    shares; the token is the only way to it from outside."""

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(unique=True, max_length=64)
    retailer_id: int | None = Field(default=None, foreign_key="retailer.id", index=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    content_type: str = Field(max_length=64)
    filename: str = Field(default="", max_length=120)
    size: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


# --- templates -----------------------------------------------------------------------------------


class Template(SQLModel, table=True):
    """A retailer's override of a default template; every save is a new version, the newest active."""

    __table_args__ = (
        UniqueConstraint("retailer_id", "event", "locale", "channel", "version"),
        Index("ix_template_key", "retailer_id", "event", "locale", "channel"),
    )

    id: int | None = Field(default=None, primary_key=True)
    retailer_id: int = Field(foreign_key="retailer.id")
    event: str = Field(max_length=48)
    locale: str = Field(max_length=10)
    channel: Channel
    version: int
    body: str
    content_sid: str | None = Field(default=None, max_length=64)
    active: bool = True
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


# --- console users -------------------------------------------------------------------------------


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True, max_length=200)
    name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=200)
    role: Role = Role.agent
    created_at: datetime = Field(default_factory=utcnow)


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "retailer_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    retailer_id: int = Field(foreign_key="retailer.id", index=True)


class WebSession(SQLModel, table=True):
    """Server-side console session; the cookie holds only a random id's hash lookup."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
