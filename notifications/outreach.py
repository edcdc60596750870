"""Proactive notifications: scheduling events become Notification rows, due rows become outbox rows.

Two halves:
- `plan_for_events` (the event handler, after the scheduling service's commit) creates or moves
  one Notification per (event, delivery, discriminator): the unique `dedupe_key` makes each fire
  once, however often an event is published or a process restarts. Moving a window moves the
  reminders; a cancellation or a redirection cancels what is still owed.
- `fire_notifications` (the timed job, or the sweeper) re-checks everything at fire time (the
  delivery is still in that state, the window unchanged, consent per channel, quiet hours in the
  plan's time zone), picks one channel, renders the retailer's template and writes one outbox row
  with the idempotency key "notif:{id}", all in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from babel.dates import format_time
from sqlalchemy import insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from core.consent import opted_out
from core.context import AppContext
from core.events import EventsKept, forget, kept_events
from core.logging import get_logger
from core.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
    Notification,
    OutboxMessage,
    Owner,
    PickupPoint,
    Recipient,
    Retailer,
    Stop,
    StopStatus,
)
from core.outbox import outbox_values
from notifications.events import EVENTS, LOCALES
from notifications.templates import (
    ActiveTemplate,
    TemplateProblem,
    Window,
    active_templates,
    default_body,
    format_window,
    options_for,
    render_source,
    whatsapp_variables,
)
from notifications.timing import (
    ARRIVING_MINUTES,
    DEFAULT_MORNING_TIME,
    DEFAULT_REMINDER_TIME,
    BadTimeOfDay,
    arriving_stops,
    local_time_on,
    quiet_until,
)
from scheduling import events as ev

log = get_logger("doorstep.notifications")

SCHEDULED, SENT, SUPPRESSED, CANCELLED, SKIPPED = "scheduled", "sent", "suppressed", "cancelled", "skipped"
WHATSAPP_WINDOW = timedelta(hours=24)
UPCOMING = {DeliveryStatus.scheduled, DeliveryStatus.out_for_delivery}
# events whose message is about one precise window or slot: skipped if it changed since
WINDOW_BOUND = {"window_assigned", "reschedule_confirmed"}
# the bot's reply confirming a change the recipient made in a conversation (bot/dialogs/changes.py)
CHAT_CONFIRMATIONS: dict[type[ev.Event], str] = {
    ev.DeliveryRescheduled: "reschedule.done",
    ev.RedirectedToPickup: "pickup.done",
    ev.WhiteGloveBooked: "whiteglove.done",
    ev.WhiteGloveCancelled: "whiteglove.cancelled",
}
CHAT_CONFIRMATION_GRACE = timedelta(minutes=2)
# a scheduling event's kept row older than this was not handled after its commit: the sweeper replays it
KEPT_EVENT_GRACE = timedelta(seconds=30)


class NotificationScheduler(Protocol):
    """Where due times go: APScheduler in the leader process, nothing elsewhere (the sweeper catches up)."""

    async def schedule(self, notifications: Sequence[tuple[int, datetime]]) -> None: ...

    async def unschedule(self, notification_ids: Sequence[int]) -> None: ...


class NoScheduler:
    async def schedule(self, notifications: Sequence[tuple[int, datetime]]) -> None:
        return None

    async def unschedule(self, notification_ids: Sequence[int]) -> None:
        return None


def scheduler_of(ctx: AppContext) -> NotificationScheduler:
    scheduler: NotificationScheduler = ctx.components.get("notifications.scheduler") or NoScheduler()
    return scheduler


def setting(retailer: Retailer, key: str, default: str) -> str:
    value = retailer.settings.get(key)
    return str(value) if value else default


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class Wanted:
    """A notification an event asks for."""

    event: str
    delivery_id: int
    retailer_id: int
    key: str
    due_at: datetime
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    wanted: list[Wanted] = field(default_factory=list)
    cancel: list[tuple[int, set[str]]] = field(default_factory=list)  # (delivery, events) still owed


def _reminder_at(retailer: Retailer, delivery: Delivery, start: datetime) -> datetime:
    day_before = start.astimezone(_zone(delivery.timezone)).date() - timedelta(days=1)
    return local_time_on(
        day_before, setting(retailer, "reminder_time", DEFAULT_REMINDER_TIME), delivery.timezone
    )


def _morning_of(retailer: Retailer, delivery: Delivery, start: datetime) -> datetime:
    day = start.astimezone(_zone(delivery.timezone)).date()
    return local_time_on(day, setting(retailer, "morning_time", DEFAULT_MORNING_TIME), delivery.timezone)


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _day_key(delivery: Delivery, start: datetime) -> str:
    return start.astimezone(_zone(delivery.timezone)).date().isoformat()


def _window_notifications(
    plan: Plan, retailer: Retailer, delivery: Delivery, start: datetime, end: datetime, now: datetime
) -> None:
    """The reminder the day before and the out-for-delivery message the morning of a window."""
    assert delivery.id is not None
    day = _day_key(delivery, start)
    reminder = _reminder_at(retailer, delivery, start)
    if reminder > now:
        plan.wanted.append(
            Wanted(
                "day_before_reminder",
                delivery.id,
                retailer.id or 0,
                f"day_before_reminder:{delivery.id}:{day}",
                reminder,
                {"day": day},
            )
        )
    morning = _morning_of(retailer, delivery, start)
    if end > now:
        plan.wanted.append(
            Wanted(
                "out_for_delivery",
                delivery.id,
                retailer.id or 0,
                f"out_for_delivery:{delivery.id}:{day}",
                max(morning, now),
                {"day": day},
            )
        )
    plan.cancel.append((delivery.id, {"day_before_reminder", "out_for_delivery", "arriving_soon"}))


def confirmation(
    event: ev.RequestedChange,
    name: str,
    discriminator: object,
    now: datetime,
    context: dict[str, Any],
) -> Wanted:
    """The message confirming a change: at once when someone else made it; when the recipient made it
    in a conversation, the bot confirmed it there, so this one waits `CHAT_CONFIRMATION_GRACE` and
    goes only if that reply never did (the turn failed after the change was committed).

    The reply is looked for from the change's own clock (`event.at`, the turn's: its replies carry
    the same time), so an earlier change's reply cannot stand for it; an event kept by an older
    version, without `at`, looks back the grace instead."""
    d, r = event.delivery_id, event.retailer_id
    key = f"{name}:{d}:{discriminator}"
    if not event.actor.startswith(Author.recipient.value):
        return Wanted(name, d, r, key, now, context)
    since = event.at if event.at is not None else now - CHAT_CONFIRMATION_GRACE
    unless = {"unless_said": CHAT_CONFIRMATIONS[type(event)], "since": _iso(since)}
    return Wanted(name, d, r, key, now + CHAT_CONFIRMATION_GRACE, context | unless)


def plan_for(event: ev.Event, retailer: Retailer, delivery: Delivery, now: datetime, plan: Plan) -> None:
    """What one scheduling event means for the notifications of its delivery."""
    d = delivery.id or 0
    r = retailer.id or 0
    if isinstance(event, ev.WindowAssigned):
        window = {"window_start": _iso(event.window_start), "window_end": _iso(event.window_end)}
        stamp = f"{event.window_start.timestamp():.0f}-{event.window_end.timestamp():.0f}"
        plan.wanted.append(Wanted("window_assigned", d, r, f"window_assigned:{d}:{stamp}", now, window))
        _window_notifications(plan, retailer, delivery, event.window_start, event.window_end, now)
    elif isinstance(event, ev.DeliveryRescheduled):
        window = {"window_start": _iso(event.window_start), "window_end": _iso(event.window_end)}
        stamp = f"{event.window_start.timestamp():.0f}-{event.window_end.timestamp():.0f}"
        plan.wanted.append(confirmation(event, "reschedule_confirmed", stamp, now, window))
        _window_notifications(plan, retailer, delivery, event.window_start, event.window_end, now)
    elif isinstance(event, ev.RedirectedToPickup):
        plan.cancel.append(
            (d, {"day_before_reminder", "out_for_delivery", "arriving_soon", "white_glove_reminder"})
        )
        plan.wanted.append(
            confirmation(
                event,
                "redirect_confirmed",
                event.pickup_point_id,
                now,
                {"pickup_point_id": event.pickup_point_id},
            )
        )
    elif isinstance(event, ev.WhiteGloveBooked):
        slot = {"slot_start": _iso(event.slot_start), "slot_end": _iso(event.slot_end)}
        stamp = f"{event.slot_start.timestamp():.0f}-{event.slot_end.timestamp():.0f}"
        plan.wanted.append(confirmation(event, "white_glove_confirmed", stamp, now, slot))
        plan.cancel.append((d, {"white_glove_reminder"}))
        reminder = _reminder_at(retailer, delivery, event.slot_start)
        if reminder > now:
            day = _day_key(delivery, event.slot_start)
            plan.wanted.append(
                Wanted("white_glove_reminder", d, r, f"white_glove_reminder:{d}:{day}", reminder, slot)
            )
    elif isinstance(event, ev.WhiteGloveCancelled):
        stamp = f"{event.slot_start.timestamp():.0f}-{event.slot_end.timestamp():.0f}"
        plan.cancel.append((d, {"white_glove_confirmed", "white_glove_reminder"}))
        plan.wanted.append(confirmation(event, "white_glove_cancelled", stamp, now, {}))
    elif isinstance(event, ev.OutForDelivery):
        start = delivery.window_start or now
        day = _day_key(delivery, start)
        context: dict[str, Any] = {"day": day, "eta": _iso(event.eta)}
        plan.wanted.append(Wanted("out_for_delivery", d, r, f"out_for_delivery:{d}:{day}", now, context))
    elif isinstance(event, ev.EtaChanged):
        threshold = arriving_stops(retailer.settings)
        close = event.stops_away <= threshold or event.eta - now <= timedelta(minutes=ARRIVING_MINUTES)
        if close and delivery.status in UPCOMING:
            day = _day_key(delivery, delivery.window_start or event.eta)
            context = {"day": day, "eta": _iso(event.eta), "stops_away": event.stops_away}
            plan.wanted.append(Wanted("arriving_soon", d, r, f"arriving_soon:{d}:{day}", now, context))
    elif isinstance(event, ev.Delivered):
        plan.cancel.append(
            (
                d,
                {
                    "day_before_reminder",
                    "out_for_delivery",
                    "arriving_soon",
                    "white_glove_reminder",
                    "attempt_failed",
                },
            )
        )
        plan.wanted.append(Wanted("delivered", d, r, f"delivered:{d}", now, {"proof": dict(event.proof)}))
    elif isinstance(event, ev.AttemptFailed):
        day = _day_key(delivery, delivery.window_start or now)
        plan.cancel.append((d, {"out_for_delivery", "arriving_soon"}))
        plan.wanted.append(
            Wanted(
                "attempt_failed", d, r, f"attempt_failed:{d}:{day}", now, {"reason": event.reason, "day": day}
            )
        )
    elif isinstance(event, ev.DeliveryCancelled):
        plan.cancel.append((d, set(EVENTS)))


def superseded(event: ev.Event, delivery: Delivery) -> bool:
    """Has the delivery changed since the event, so that planning it now would undo what a newer
    event planned (a replayed reschedule moving the reminders back to the window it left)?"""
    if isinstance(event, ev.WindowAssigned | ev.DeliveryRescheduled):
        return (event.window_start, event.window_end) != (delivery.window_start, delivery.window_end)
    if isinstance(event, ev.RedirectedToPickup):
        return event.pickup_point_id != delivery.pickup_point_id
    if isinstance(event, ev.WhiteGloveBooked):
        return (event.slot_start, event.slot_end) != (delivery.white_glove_start, delivery.white_glove_end)
    if isinstance(event, ev.WhiteGloveCancelled):
        return delivery.white_glove_start is not None  # booked again since
    return False


async def plan_for_events(
    ctx: AppContext, events: Iterable[Any], *, kept: Sequence[int] = (), replayed: bool = False
) -> list[int]:
    """Create, move or cancel the notifications the events call for; returns the ids scheduled.

    `kept` are the ids of the events' `KeptEvent` rows, deleted in the same transaction. A `replayed`
    event (handed over again by the sweeper, a while after its commit) is planned only if the
    delivery still is as it left it.
    """
    relevant = [e for e in events if isinstance(e, ev.Event)]
    if not relevant and not kept:
        return []
    now = ctx.clock()
    for attempt in range(2):
        try:
            scheduled, cancelled = await _apply(ctx, relevant, now, kept, replayed)
        except IntegrityError:
            if attempt:
                raise
            continue  # another process created the same notification: read it this time
        scheduler = scheduler_of(ctx)
        if cancelled:
            await scheduler.unschedule(cancelled)
        if scheduled:
            await scheduler.schedule(scheduled)
        return [i for i, _ in scheduled]
    return []


async def _apply(
    ctx: AppContext, relevant: list[ev.Event], now: datetime, kept: Sequence[int], replayed: bool
) -> tuple[list[tuple[int, datetime]], list[int]]:
    async with ctx.uow() as uow:
        session = uow.session
        await forget(session, kept)
        delivery_ids = {e.delivery_id for e in relevant}
        deliveries = {
            d.id: d
            for d in (await session.exec(select(Delivery).where(col(Delivery.id).in_(delivery_ids)))).all()
        }
        retailers = {
            r.id: r
            for r in (
                await session.exec(
                    select(Retailer).where(col(Retailer.id).in_({d.retailer_id for d in deliveries.values()}))
                )
            ).all()
        }
        plan = Plan()
        for event in relevant:
            delivery = deliveries.get(event.delivery_id)
            if delivery is None or delivery.retailer_id != event.retailer_id:
                continue
            if replayed and superseded(event, delivery):
                continue
            plan_for(event, retailers[delivery.retailer_id], delivery, now, plan)
        delivery_ids |= await _arriving_from_progress(session, relevant, deliveries, retailers, now, plan)

        wanted_keys = {w.key for w in plan.wanted}
        existing: dict[str, Notification] = {}
        owed: dict[int, list[Notification]] = {}
        for chunk in _chunks(sorted(delivery_ids), 500):
            for row in (
                await session.exec(select(Notification).where(col(Notification.delivery_id).in_(chunk)))
            ).all():
                existing[row.dedupe_key] = row
                if row.status == SCHEDULED:
                    owed.setdefault(row.delivery_id, []).append(row)

        cancelled: list[int] = []
        for delivery_id, kinds in plan.cancel:
            for row in owed.get(delivery_id, []):
                if row.event in kinds and row.dedupe_key not in wanted_keys and row.status == SCHEDULED:
                    row.status = CANCELLED
                    session.add(row)
                    cancelled.append(row.id or 0)

        touched: list[Notification] = []
        for want in {w.key: w for w in plan.wanted}.values():
            found = existing.get(want.key)
            if found is None:
                row = Notification(
                    retailer_id=want.retailer_id,
                    delivery_id=want.delivery_id,
                    event=want.event,
                    dedupe_key=want.key,
                    due_at=want.due_at,
                    context=want.context,
                    created_at=now,
                )
            elif found.status in (SCHEDULED, CANCELLED):
                row = found
                # still owed: it moves to the new due time (a window moved, an event came early)
                row.status = SCHEDULED
                row.due_at = want.due_at
                row.context = {**row.context, **want.context}
            else:
                continue  # already sent, suppressed or skipped: it fired once
            session.add(row)
            touched.append(row)
        await session.flush()
        scheduled = [(row.id or 0, row.due_at) for row in touched]
        await uow.commit()
    log.info("notifications_planned", scheduled=len(scheduled), cancelled=len(cancelled))
    return scheduled, cancelled


PROGRESS = (ev.OutForDelivery, ev.Arrived, ev.Delivered, ev.AttemptFailed)


async def _arriving_from_progress(
    session: Any,
    relevant: list[ev.Event],
    deliveries: dict[int | None, Delivery],
    retailers: dict[int | None, Retailer],
    now: datetime,
    plan: Plan,
) -> set[int]:
    """A stop reported on a route brings the next ones closer: those now within the retailer's
    `arriving_stops` stops, or 30 minutes by their ETA, are told once that the driver is coming."""
    moved = [e.delivery_id for e in relevant if isinstance(e, PROGRESS) and e.delivery_id in deliveries]
    if not moved:
        return set()
    vehicle_ids = set(
        (await session.exec(select(Stop.vehicle_id).where(col(Stop.delivery_id).in_(moved)))).all()
    )
    if not vehicle_ids:
        return set()
    rows = (
        await session.exec(
            select(Stop, Delivery)
            .join(Delivery, col(Delivery.id) == col(Stop.delivery_id))
            .where(col(Stop.vehicle_id).in_(vehicle_ids), Stop.status == StopStatus.planned)
            .order_by(col(Stop.vehicle_id), col(Stop.sequence))
        )
    ).all()
    ahead: dict[int, int] = {}
    touched: set[int] = set()
    for stop, delivery in rows:
        retailer = retailers.get(delivery.retailer_id)
        if retailer is None or delivery.status not in UPCOMING or delivery.id is None:
            continue
        stops_away = ahead.get(stop.vehicle_id, 0)
        ahead[stop.vehicle_id] = stops_away + 1
        threshold = arriving_stops(retailer.settings)
        soon = stop.eta is not None and stop.eta - now <= timedelta(minutes=ARRIVING_MINUTES)
        if stops_away <= threshold or soon:
            day = _day_key(delivery, delivery.window_start or now)
            context: dict[str, Any] = {"day": day, "eta": _iso(stop.eta), "stops_away": stops_away}
            key = f"arriving_soon:{delivery.id}:{day}"
            plan.wanted.append(Wanted("arriving_soon", delivery.id, retailer.id or 0, key, now, context))
            touched.add(delivery.id)
    return touched


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def make_event_handler(ctx: AppContext) -> Any:
    async def on_events(events: list[Any]) -> None:
        kept = [i for e in events if isinstance(e, EventsKept) for i in e.ids]
        try:
            await plan_for_events(ctx, events, kept=kept)
        except Exception:
            # the change is committed and stays; its kept events wait for the sweeper (replay_kept_events)
            log.exception("notifications_planning_failed", events=len(events), kept=len(kept))

    return on_events


async def replay_kept_events(ctx: AppContext, *, batch: int = 1000) -> int:
    """Plan the notifications of scheduling events committed more than `KEPT_EVENT_GRACE` ago and
    never handled: the process died after the change's commit, the database went away before the
    planning committed, or nothing listened (the command line's `import-plan` and `demo`). Returns
    how many events were handed over."""
    handled = 0
    while True:
        now = ctx.clock()
        async with ctx.uow() as uow:
            found, unreadable = await kept_events(uow.session, now - KEPT_EVENT_GRACE, batch)
            if unreadable:
                log.error("kept_events_unreadable", ids=unreadable)
                await forget(uow.session, unreadable)
                await uow.commit()
        if found:
            log.warning("kept_events_replayed", events=len(found))
            await plan_for_events(ctx, [e for _, e in found], kept=[i for i, _ in found], replayed=True)
        handled += len(found)
        if len(found) + len(unreadable) < batch:
            return handled


# --- firing --------------------------------------------------------------------------------------


@dataclass
class FireSummary:
    sent: int = 0
    postponed: int = 0
    suppressed: int = 0
    skipped: int = 0
    failed: int = 0
    outbox_ids: list[int] = field(default_factory=list)
    postponed_to: list[tuple[int, datetime]] = field(default_factory=list)


def recipient_locale(recipient: Recipient | None, retailer: Retailer) -> str:
    for candidate in (recipient.locale if recipient else None, retailer.default_locale, "en"):
        if not candidate:
            continue
        if candidate in LOCALES:
            return candidate
        language = candidate.replace("-", "_").split("_")[0].lower()
        match = next((loc for loc in LOCALES if loc.split("_")[0] == language), None)
        if match:
            return match
    return "en"


def still_relevant(note: Notification, delivery: Delivery) -> bool:
    """Is the message still true now? A stale one is skipped rather than sent."""
    status = delivery.status
    event = note.event
    context = note.context
    if status == DeliveryStatus.cancelled and event != "delivered":
        return False
    if event in WINDOW_BOUND:
        return context.get("window_start") == _iso(delivery.window_start) and context.get(
            "window_end"
        ) == _iso(delivery.window_end)
    if event in ("day_before_reminder", "out_for_delivery", "arriving_soon"):
        if status not in UPCOMING or delivery.window_start is None:
            return False
        return context.get("day") == _day_key(delivery, delivery.window_start)
    if event == "delivered":
        return status == DeliveryStatus.delivered
    if event == "attempt_failed":
        return status == DeliveryStatus.failed
    if event == "redirect_confirmed":
        return status in (DeliveryStatus.redirected, DeliveryStatus.ready_for_pickup) and (
            context.get("pickup_point_id") == delivery.pickup_point_id
        )
    if event in ("white_glove_confirmed", "white_glove_reminder"):
        same_slot = context.get("slot_start") == _iso(delivery.white_glove_start)
        return same_slot and (event == "white_glove_confirmed" or status in UPCOMING)
    if event == "white_glove_cancelled":
        return delivery.white_glove_start is None
    return True


def choose_channel(
    recipient: Recipient,
    *,
    now: datetime,
    whatsapp_template: bool,
) -> Channel | None:
    """One channel: the preferred or linked one first, WhatsApp only when it may be used, SMS last."""
    candidates: list[Channel] = []
    if recipient.preferred_channel is not None:
        candidates.append(Channel(recipient.preferred_channel))
    if recipient.telegram_chat_id is not None:
        candidates.append(Channel.telegram)
    whatsapp_used = recipient.whatsapp_last_inbound_at is not None or bool(
        recipient.channel_consent.get("whatsapp", {}).get("consent")
    )
    if whatsapp_used:
        candidates.append(Channel.whatsapp)
    candidates.append(Channel.sms)
    for channel in dict.fromkeys(candidates):
        if opted_out(recipient, channel):
            continue
        if channel == Channel.telegram and recipient.telegram_chat_id is None:
            continue
        if channel in (Channel.sms, Channel.whatsapp) and not recipient.phone:
            continue
        if channel == Channel.whatsapp:
            window_open = (
                recipient.whatsapp_last_inbound_at is not None
                and now - recipient.whatsapp_last_inbound_at < WHATSAPP_WINDOW
            )
            if not (window_open or whatsapp_template):
                continue
        if channel == Channel.web:
            continue  # the sandbox shows messages only while a session is open
        return channel
    return None


def render_context(
    ctx: AppContext,
    note: Notification,
    retailer: Retailer,
    delivery: Delivery,
    recipient: Recipient | None,
    locale: str,
    point: PickupPoint | None,
    eta: datetime | None,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "brand": retailer.brand_name or retailer.name,
        "recipient_name": recipient.name if recipient else "",
        "tracking": delivery.tracking,
        "address": delivery.address,
        "window": Window(delivery.window_start, delivery.window_end)
        if delivery.window_start and delivery.window_end
        else None,
        "day": delivery.day,
        "locale": locale,
        "timezone": delivery.timezone,
    }
    extra = note.context
    event = note.event
    if event == "window_assigned":
        token = delivery.telegram_link_token or ""
        context["telegram_link"] = (
            f"https://t.me/{ctx.settings.telegram_bot_username}?start={token}" if token else ""
        )
    elif event in ("out_for_delivery", "arriving_soon"):
        noted = extra.get("eta")
        context["eta"] = datetime.fromisoformat(noted) if noted else eta
        if event == "arriving_soon":
            context["stops_away"] = int(extra.get("stops_away", 0))
            context["eta"] = context["eta"] or eta
    elif event == "delivered":
        proof = {**delivery.proof, **extra.get("proof", {})}
        stamp = proof.get("delivered_at") or proof.get("at")
        context["delivered_at"] = datetime.fromisoformat(stamp) if isinstance(stamp, str) else note.created_at
        context["proof_photo_url"] = str(proof.get("photo_url") or proof.get("photo") or "")
        context["proof_signer"] = str(
            proof.get("signer") or proof.get("signed_by") or proof.get("signature_name") or ""
        )
    elif event == "attempt_failed":
        context["reason"] = str(extra.get("reason") or delivery.failure_reason or "")
    elif event == "redirect_confirmed":
        context["pickup_name"] = point.name if point else ""
        context["pickup_address"] = point.address if point else ""
    elif event in ("white_glove_confirmed", "white_glove_reminder"):
        start, end = delivery.white_glove_start, delivery.white_glove_end
        context["slot"] = Window(start, end) if start and end else None
    return context


def named_variables(context: dict[str, Any]) -> dict[str, str]:
    """Every value a retailer's WhatsApp template may name, as text (formatted like the templates)."""
    locale, timezone = str(context.get("locale", "en")), str(context.get("timezone", "UTC"))
    names = ("brand", "recipient_name", "tracking", "address", "stops_away", "reason", "pickup_name")
    values = {name: str(context[name]) for name in names if context.get(name) not in (None, "")}
    for name in ("window", "slot"):
        span = context.get(name)
        if isinstance(span, Window):
            values[name] = format_window(span.start, span.end, locale, timezone)
    for name in ("eta", "delivered_at"):
        at = context.get(name)
        if isinstance(at, datetime):
            values[name] = str(format_time(at, "short", tzinfo=ZoneInfo(timezone), locale=locale))
    proof = context.get("proof_signer") or context.get("proof_photo_url")
    if proof:
        values["proof"] = str(proof)
    return values


def _approved_sid(retailer: Retailer, event: str, override: ActiveTemplate | None) -> str | None:
    if override is not None and override.content_sid:
        return override.content_sid
    entry = (retailer.settings.get("whatsapp_templates") or {}).get(event)
    if isinstance(entry, dict) and entry.get("content_sid"):
        return str(entry["content_sid"])
    return None


ChatReply = tuple[
    int | None, int | None, str | None, datetime
]  # recipient, delivery talked about, kind, when


async def _chat_confirmations(
    session: Any, notes: list[Notification], deliveries: dict[int | None, Delivery]
) -> list[ChatReply]:
    """The bot's replies that may have confirmed, in a conversation, the changes these notes confirm."""
    waiting = [n for n in notes if "unless_said" in n.context]
    if not waiting:
        return []
    delivery_ids = {n.delivery_id for n in waiting}
    recipient_ids = {d.recipient_id for i in delivery_ids if (d := deliveries.get(i)) and d.recipient_id}
    since = min(datetime.fromisoformat(n.context["since"]) for n in waiting)
    found = await session.exec(
        select(
            OutboxMessage.recipient_id,
            Conversation.delivery_id,
            OutboxMessage.template_key,
            OutboxMessage.created_at,
        )
        .join(Conversation, col(Conversation.id) == col(OutboxMessage.conversation_id))
        .where(
            col(OutboxMessage.template_key).in_({n.context["unless_said"] for n in waiting}),
            col(OutboxMessage.created_at) >= since,
            or_(
                col(OutboxMessage.recipient_id).in_(recipient_ids),
                col(Conversation.delivery_id).in_(delivery_ids),
            ),
        )
    )
    return list(found.all())


def said_in_chat(note: Notification, delivery: Delivery, replies: list[ChatReply]) -> bool:
    """Did the bot confirm this change in a conversation: a reply of that kind since the change, to
    the delivery's recipient or in a conversation about the delivery (someone who gave its tracking)?"""
    said = note.context.get("unless_said")
    if said is None:
        return False
    since = datetime.fromisoformat(note.context["since"])
    return any(
        kind == said and at >= since and (recipient == delivery.recipient_id or about == delivery.id)
        for recipient, about, kind, at in replies
    )


async def fire_notifications(
    ctx: AppContext, notification_ids: Sequence[int] | None = None, *, limit: int = 2000
) -> FireSummary:
    """Fire the given notifications (or every due one) that are still owed; one transaction."""
    now = ctx.clock()
    summary = FireSummary()
    async with ctx.uow() as uow:
        session = uow.session
        query = select(Notification).where(Notification.status == SCHEDULED, col(Notification.due_at) <= now)
        if notification_ids is not None:
            if not notification_ids:
                return summary
            query = query.where(col(Notification.id).in_(list(notification_ids)))
        notes = list((await session.exec(query.order_by(col(Notification.due_at)).limit(limit))).all())
        if not notes:
            return summary
        deliveries = {
            d.id: d
            for d in (
                await session.exec(
                    select(Delivery).where(col(Delivery.id).in_({n.delivery_id for n in notes}))
                )
            ).all()
        }
        recipient_ids = {d.recipient_id for d in deliveries.values() if d.recipient_id}
        recipients = {
            r.id: r
            for r in (await session.exec(select(Recipient).where(col(Recipient.id).in_(recipient_ids)))).all()
        }
        retailers = {
            r.id: r
            for r in (
                await session.exec(
                    select(Retailer).where(col(Retailer.id).in_({n.retailer_id for n in notes}))
                )
            ).all()
        }
        point_ids = {d.pickup_point_id for d in deliveries.values() if d.pickup_point_id}
        points = (
            {
                p.id: p
                for p in (
                    await session.exec(select(PickupPoint).where(col(PickupPoint.id).in_(point_ids)))
                ).all()
            }
            if point_ids
            else {}
        )
        eta_ids = [n.delivery_id for n in notes if n.event in ("out_for_delivery", "arriving_soon")]
        etas = (
            {
                s.delivery_id: s.eta
                for s in (await session.exec(select(Stop).where(col(Stop.delivery_id).in_(eta_ids)))).all()
            }
            if eta_ids
            else {}
        )
        replies = await _chat_confirmations(session, notes, deliveries)
        overrides = {rid: await active_templates(session, rid) for rid in retailers if rid is not None}
        # read-only from here: the notifications are written back in one executemany below, not
        # one UPDATE each (SQLite's driver cannot batch ORM updates that check row counts)
        session.expunge_all()

        outgoing: list[tuple[Notification, dict[str, Any]]] = []
        for note in notes:
            delivery = deliveries.get(note.delivery_id)
            retailer = retailers.get(note.retailer_id)
            if delivery is None or retailer is None or delivery.retailer_id != retailer.id:
                note.status = SKIPPED
                summary.skipped += 1
                continue
            if not still_relevant(note, delivery):
                note.status = SKIPPED
                note.context = {**note.context, "outcome": "no longer true"}
                summary.skipped += 1
                continue
            if said_in_chat(note, delivery, replies):
                note.status = SKIPPED
                note.context = {**note.context, "outcome": "confirmed in the conversation"}
                summary.skipped += 1
                continue
            try:
                later = quiet_until(
                    now, retailer.quiet_hours_start, retailer.quiet_hours_end, delivery.timezone
                )
            except BadTimeOfDay:
                later = None
            if later is not None:
                note.due_at = later
                summary.postponed += 1
                summary.postponed_to.append((note.id or 0, later))
                continue
            recipient = recipients.get(delivery.recipient_id) if delivery.recipient_id else None
            locale = recipient_locale(recipient, retailer)
            templates = overrides.get(retailer.id or 0, {})
            wa_override = templates.get((note.event, locale, Channel.whatsapp.value))
            sid = _approved_sid(retailer, note.event, wa_override)
            channel = (
                choose_channel(recipient, now=now, whatsapp_template=sid is not None) if recipient else None
            )
            if channel is None or recipient is None:
                note.status = SUPPRESSED
                note.context = {**note.context, "outcome": "opted out or no usable channel"}
                summary.suppressed += 1
                continue
            template = templates.get((note.event, locale, channel.value))
            body = template.body if template else default_body(note.event, locale, channel)
            context = render_context(
                ctx,
                note,
                retailer,
                delivery,
                recipient,
                locale,
                points.get(delivery.pickup_point_id) if delivery.pickup_point_id else None,
                etas.get(delivery.id or 0),
            )
            try:
                text = render_source(body, context, channel)
            except TemplateProblem as exc:
                if template is None:
                    raise
                # a stored override that no longer renders: the default still says it
                log.warning(
                    "notification_template_fallback",
                    retailer_id=retailer.id,
                    event=note.event,
                    error=exc.message,
                )
                text = render_source(default_body(note.event, locale, channel), context, channel)
            spec = EVENTS[note.event]
            window_open = (
                recipient.whatsapp_last_inbound_at is not None
                and now - recipient.whatsapp_last_inbound_at < WHATSAPP_WINDOW
            )
            # Outside WhatsApp's 24 hours: the template saved with this override goes with positional
            # variables; a retailer-wide one (settings.whatsapp_templates[event]) is filled by name by
            # channels/rendering.py from these named values and the message's kind (template_key).
            content_sid, content_variables = None, {}
            if channel == Channel.whatsapp and not window_open:
                if wa_override is not None and wa_override.content_sid:
                    content_sid, content_variables = (
                        wa_override.content_sid,
                        whatsapp_variables(spec, context),
                    )
                else:
                    content_variables = named_variables(context)
            row = {
                "channel": channel,
                "to_address": str(recipient.telegram_chat_id)
                if channel == Channel.telegram
                else recipient.phone or "",
                "body": text,
                "options": options_for(spec, locale),
                "idempotency_key": f"notif:{note.id}",
                "retailer_id": retailer.id,
                "recipient_id": recipient.id,
                "content_sid": content_sid,
                "content_variables": content_variables,
                "template_key": note.event,
                "locale": locale,
                "service_address": retailer.own_number(channel) or "",
            }
            note.channel = channel.value
            outgoing.append((note, row))

        if outgoing:
            ids = await _enqueue_many(session, outgoing, now)
            summary.outbox_ids.extend(ids)
            summary.sent += len(outgoing)
        await session.exec(
            update(Notification),
            params=[
                {
                    "id": n.id,
                    "status": n.status,
                    "due_at": n.due_at,
                    "channel": n.channel,
                    "outbox_id": n.outbox_id,
                    "context": n.context,
                }
                for n in notes
            ],
        )
        await uow.commit()
    postponed = {i for i, _ in summary.postponed_to}
    for note in notes:
        ctx.metrics.notifications.labels(
            note.event, "postponed" if note.id in postponed else note.status
        ).inc()
    lateness = [(now - n.due_at).total_seconds() for n in notes if n.status == SENT]
    if lateness:
        ctx.metrics.scheduler_lag.set(max(lateness))
    if summary.postponed_to:
        await scheduler_of(ctx).schedule(summary.postponed_to)
    log.info(
        "notifications_fired",
        sent=summary.sent,
        postponed=summary.postponed,
        suppressed=summary.suppressed,
        skipped=summary.skipped,
    )
    return summary


async def _enqueue_many(
    session: Any, outgoing: list[tuple[Notification, dict[str, Any]]], now: datetime
) -> list[int]:
    """Outbox rows for a batch, each once (idempotency key), each in its recipient's conversation.

    The same contract as core.outbox.enqueue, in bulk: one query for the keys already there, one
    for the conversations, and multi-row inserts (RETURNING ids in order) instead of one ORM
    object per row, which is what lets a 100,000-delivery day fire at thousands per second.
    """
    keys = [row["idempotency_key"] for _, row in outgoing]
    already: dict[str, int] = {}
    for chunk in range(0, len(keys), 500):
        for key, outbox_id in (
            await session.exec(
                select(OutboxMessage.idempotency_key, OutboxMessage.id).where(
                    col(OutboxMessage.idempotency_key).in_(keys[chunk : chunk + 500])
                )
            )
        ).all():
            already[key] = outbox_id
    fresh: list[tuple[Notification, dict[str, Any]]] = []
    for note, row in outgoing:
        if row["idempotency_key"] in already:
            note.outbox_id, note.status = already[row["idempotency_key"]], SENT
        else:
            fresh.append((note, row))
    if not fresh:
        return []
    conversations = await _conversations(session, fresh, now)
    values = [
        outbox_values(
            channel=row["channel"],
            to_address=row["to_address"],
            body=row["body"],
            options=row["options"],
            idempotency_key=row["idempotency_key"],
            retailer_id=row["retailer_id"],
            recipient_id=row["recipient_id"],
            conversation_id=conversations[(row["channel"], row["to_address"], row["service_address"])],
            content_sid=row["content_sid"],
            content_variables=row["content_variables"],
            template_key=row["template_key"],
            now=now,
        )
        for _, row in fresh
    ]
    # RETURNING without a guaranteed order (SQLite then batches the rows): ids are matched by key
    by_key = {
        key: outbox_id
        for outbox_id, key in (
            await session.exec(
                insert(OutboxMessage).returning(col(OutboxMessage.id), col(OutboxMessage.idempotency_key)),
                params=values,
            )
        ).all()
    }
    ids = [by_key[value["idempotency_key"]] for value in values]
    messages = []
    for (note, row), outbox_id, value in zip(fresh, ids, values, strict=True):
        note.outbox_id, note.status = outbox_id, SENT
        messages.append(
            {
                "conversation_id": value["conversation_id"],
                "channel": row["channel"],
                "direction": Direction.outbound,
                "author": Author.system,
                "text": row["body"],
                "options": row["options"],
                "internal_note": False,
                "outbox_id": outbox_id,
                "created_at": now,
            }
        )
    await session.exec(insert(Message), params=messages)
    return ids


async def _conversations(
    session: Any, fresh: list[tuple[Notification, dict[str, Any]]], now: datetime
) -> dict[tuple[Channel, str, str], int]:
    """Each recipient's conversation on that channel and number (created when new), which now
    concerns this delivery; on SMS "1", "2"... then mean this message's options."""
    wanted = {(row["channel"], row["to_address"], row["service_address"]): (note, row) for note, row in fresh}
    found: dict[tuple[Channel, str, str], int] = {}
    addresses = list({key[1] for key in wanted})
    for chunk in range(0, len(addresses), 500):
        for conversation in (
            await session.exec(
                select(Conversation).where(col(Conversation.address).in_(addresses[chunk : chunk + 500]))
            )
        ).all():
            key = (Channel(conversation.channel), conversation.address, conversation.service_address)
            if key in wanted:
                note, row = wanted[key]
                _offer(conversation, note, row["options"], now)
                session.add(conversation)
                found[key] = conversation.id
    missing = [key for key in wanted if key not in found]
    if missing:
        values = []
        for key in missing:
            note, row = wanted[key]
            values.append(
                {
                    "channel": key[0],
                    "address": key[1],
                    "service_address": key[2],
                    "retailer_id": row["retailer_id"],
                    "recipient_id": row["recipient_id"],
                    "delivery_id": note.delivery_id,
                    "locale": row["locale"],
                    "owner": Owner.bot,
                    "status": ConversationStatus.open,
                    "state": offered_state({}, row["options"]) if row["options"] else {},
                    "misunderstood": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        inserted = (
            await session.exec(
                insert(Conversation).returning(
                    col(Conversation.id),
                    col(Conversation.channel),
                    col(Conversation.address),
                    col(Conversation.service_address),
                ),
                params=values,
            )
        ).all()
        for conversation_id, channel, address, service_address in inserted:
            found[(Channel(channel), address, service_address)] = conversation_id
    return found


def _offer(
    conversation: Conversation, note: Notification, options: list[dict[str, str]], now: datetime
) -> None:
    """The conversation now concerns this delivery, and "1", "2"... mean this message's options."""
    conversation.delivery_id = note.delivery_id
    conversation.retailer_id = conversation.retailer_id or note.retailer_id
    if options:
        conversation.state = offered_state(conversation.state, options)
    conversation.updated_at = now


def offered_state(state: dict[str, Any], options: list[dict[str, str]]) -> dict[str, Any]:
    """A conversation row's state in which "1", "2"... mean a notification's options.

    In the layout of the engine's dialog state stores (bot/state.py): the database store reads the
    dialog beside the generation; the `saved_at` stamp makes the Redis store prefer this copy to its
    own older one, so the options hold whichever store the engine runs with.
    """
    dialog = dict(state.get("dialog") or {})
    dialog["options"] = options
    dialog["offers"] = {}
    return {**state, "dialog": dialog, "saved_at": time.time_ns()}
