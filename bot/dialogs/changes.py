"""The dialogs that change a delivery: each offers, confirms, then asks the scheduling service.

Nothing is promised that the scheduling service has not checked: windows, pickup points and crew
slots come from its offers, and the "Done" reply repeats what it committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from bot.dialogs.turn import Parsed, Turn
from core.logging import get_logger
from core.models import Delivery, DeliveryStatus, PickupPoint, Stop
from core.resilience import is_transient_conflict
from notifications.timing import ARRIVING_MINUTES, arriving_stops
from scheduling import service
from scheduling.service import (
    CHANGEABLE,
    DAY_KEYS,
    MOVABLE,
    DeliveryNotChangeable,
    PickupOption,
    PickupPointFull,
    PickupPointUnavailable,
    SchedulingError,
    SlotUnavailable,
    WindowOffer,
    WindowUnavailable,
)

log = get_logger("doorstep.bot.changes")
T = TypeVar("T")

OFFERS_SHOWN = 3
CONFLICT_RETRIES = 2  # a change failed by PostgreSQL to break a deadlock is run again this many times
OFFER_DAYS = 3  # days of offers when no day is asked for
PICKUP_POINTS_SHOWN = 3
PENDING_TTL = timedelta(hours=1)
INSTRUCTIONS_LIMIT = 300


# --- changes --------------------------------------------------------------------------------------


async def retried(turn: Turn, delivery: Delivery, change: Callable[[], Awaitable[T]]) -> T:
    """Run a change of the scheduling service, again (up to twice) when it met another at the same
    moment and PostgreSQL failed it to break a deadlock or a serialization conflict.

    The turn's checkpoint has stored the message by then, so a retried webhook would be a duplicate:
    without this the recipient's YES would go unanswered and the change unmade.
    """
    for attempt in range(1, CONFLICT_RETRIES + 2):
        try:
            return await change()
        except DBAPIError as error:
            if attempt > CONFLICT_RETRIES or not is_transient_conflict(error):
                raise
            log.warning("change_retried_after_conflict", delivery_id=delivery.id, attempt=attempt)
            await turn.recover([delivery])
    raise AssertionError("the loop returns or raises")


# --- menus and small replies ---------------------------------------------------------------------


def menu(turn: Turn, delivery: Delivery | None) -> list[tuple[Any, Any]]:
    """What the bot can do for this delivery, as options."""
    options = []
    if delivery is None or delivery.status in CHANGEABLE:
        options.append(turn.option(turn._("Change the time"), "menu:reschedule"))
        options.append(turn.option(turn._("Pickup point"), "menu:pickup"))
        if delivery is not None and delivery.white_glove and delivery.white_glove_start is None:
            options.append(turn.option(turn._("In-home setup"), "menu:whiteglove"))
        if delivery is not None and delivery.white_glove_start and delivery.setup_booked_through_doorstep:
            options.append(turn.option(turn._("Call off the setup"), "menu:whiteglove_cancel"))
        options.append(turn.option(turn._("Note for the driver"), "menu:instructions"))
    elif delivery.status == DeliveryStatus.redirected:
        options.append(turn.option(turn._("Deliver to my door"), "menu:reschedule"))
        options.append(turn.option(turn._("Another pickup point"), "menu:pickup"))
        options.append(turn.option(turn._("Where is my parcel?"), "menu:status"))
    else:
        options.append(turn.option(turn._("Where is my parcel?"), "menu:status"))
    options.append(turn.option(turn._("Talk to a person"), "menu:person"))
    return options


def yes_no(turn: Turn) -> list[tuple[Any, Any]]:
    return [turn.option(turn._("Yes"), "yes"), turn.option(turn._("No"), "no")]


def window_text(turn: Turn, delivery: Delivery, start: datetime, end: datetime) -> str:
    return turn.speaker.window(start, end, delivery.timezone)


def payload_time(prefix: str, delivery: Delivery, start: datetime) -> str:
    local = start.astimezone(ZoneInfo(delivery.timezone))
    return f"{prefix}:{local.strftime('%Y-%m-%dT%H:%M')}"


def offer_options(
    turn: Turn, delivery: Delivery, offers: list[WindowOffer], prefix: str
) -> list[tuple[Any, Any]]:
    return [
        turn.option(
            window_text(turn, delivery, offer.start, offer.end),
            payload_time(prefix, delivery, offer.start),
            {"start": offer.start.isoformat(), "end": offer.end.isoformat()},
        )
        for offer in offers
    ]


def set_pending(turn: Turn, kind: str, delivery: Delivery, **data: Any) -> None:
    turn.state["pending"] = {"kind": kind, "delivery_id": delivery.id, "at": turn.now.isoformat(), **data}


def not_changeable(turn: Turn) -> None:
    turn.say(
        turn._("Sorry, this delivery can no longer be changed here. A person from our team can help."),
        [turn.option(turn._("Talk to a person"), "menu:person")],
        kind="change.refused",
    )


async def scheduling_failed(turn: Turn, error: SchedulingError) -> None:
    """Errors without alternatives: say so plainly and leave a way to a person."""
    if isinstance(error, DeliveryNotChangeable):
        not_changeable(turn)
        return
    turn.say(
        turn._("Sorry, I couldn't make that change. A person from our team can help."),
        [turn.option(turn._("Talk to a person"), "menu:person")],
        kind="change.failed",
    )


# --- where is my parcel --------------------------------------------------------------------------


async def status(turn: Turn, delivery: Delivery) -> None:
    session = turn.uow.session
    tracking = delivery.tracking
    window = (
        window_text(turn, delivery, delivery.window_start, delivery.window_end)
        if delivery.window_start and delivery.window_end
        else None
    )
    if delivery.status in (DeliveryStatus.redirected, DeliveryStatus.ready_for_pickup):
        point = await session.get(PickupPoint, delivery.pickup_point_id) if delivery.pickup_point_id else None
        name = place(point.name, point.address) if point else "?"
        text = (
            turn._(
                "Your parcel %(tracking)s is ready for pickup at %(point)s.", tracking=tracking, point=name
            )
            if delivery.status == DeliveryStatus.ready_for_pickup
            else turn._("Your parcel %(tracking)s is on its way to %(point)s.", tracking=tracking, point=name)
        )
        if point is not None:
            text += " " + pickup_hours(turn, delivery, point)
    elif delivery.status == DeliveryStatus.out_for_delivery:
        stop = (await session.exec(select(Stop).where(Stop.delivery_id == delivery.id))).first()
        if stop is not None and stop.eta is not None:
            text = turn._(
                "Your parcel %(tracking)s is out for delivery. The driver expects to arrive around %(time)s.",
                tracking=tracking,
                time=turn.speaker.clock_time(stop.eta, delivery.timezone),
            )
        else:
            text = turn._("Your parcel %(tracking)s is out for delivery today.", tracking=tracking)
    elif delivery.status == DeliveryStatus.arrived:
        text = turn._("The driver is at your door with parcel %(tracking)s.", tracking=tracking)
    elif delivery.status == DeliveryStatus.delivered:
        text = turn._("Your parcel %(tracking)s has been delivered.", tracking=tracking)
    elif delivery.status == DeliveryStatus.picked_up:
        text = turn._("Your parcel %(tracking)s has been picked up.", tracking=tracking)
    elif delivery.status == DeliveryStatus.failed:
        text = turn._(
            "We couldn't deliver your parcel %(tracking)s. Choose a new time or a pickup point.",
            tracking=tracking,
        )
    elif window is not None:
        text = turn._("Your parcel %(tracking)s is planned for %(window)s.", tracking=tracking, window=window)
    else:
        text = turn._("Your parcel %(tracking)s is waiting for a delivery time.", tracking=tracking)
    if delivery.instructions.strip():
        text += " " + turn._('Your note for the driver: "%(note)s".', note=delivery.instructions.strip())
    if delivery.white_glove_start and delivery.white_glove_end:
        text += " " + turn._(
            "In-home setup: %(window)s.",
            window=window_text(turn, delivery, delivery.white_glove_start, delivery.white_glove_end),
        )
    turn.say(text, menu(turn, delivery), kind="status")


def place(name: str, address: str | None) -> str:
    """A pickup point as the recipient reads it: "Queen St Lockers, 500 Queen St W"."""
    return f"{name}, {address}" if address else name


async def point_of(turn: Turn, delivery: Delivery) -> str:
    """The pickup point the parcel is going to or waits at, as the recipient knows it."""
    point = (
        await turn.uow.session.get(PickupPoint, delivery.pickup_point_id)
        if delivery.pickup_point_id
        else None
    )
    return place(point.name, point.address) if point is not None else "?"


def pickup_hours(turn: Turn, delivery: Delivery, point: PickupPoint) -> str:
    """The point's hours on the day the parcel is there: the day it is ready, or today once it is."""
    zone = ZoneInfo(delivery.timezone)
    today = turn.now.astimezone(zone).date()
    day = max(delivery.day, today)
    spans = point.opening_hours.get(DAY_KEYS[day.weekday()], [])
    if not spans:
        return turn._("Closed %(day)s.", day=turn.speaker.day(day, delivery.timezone))
    return turn._(
        "Open %(day)s: %(hours)s.",
        day=turn.speaker.day(day, delivery.timezone),
        hours=turn.speaker.opening_hours(spans, day, delivery.timezone),
    )


# --- reschedule ----------------------------------------------------------------------------------


def _overlap(offer: WindowOffer, start: datetime, end: datetime) -> timedelta:
    return max(timedelta(0), min(offer.end, end) - max(offer.start, start))


def matching_offers(
    offers: list[WindowOffer], start: datetime | None, end: datetime | None, timezone: str
) -> list[WindowOffer]:
    """Offers that fit the wish: the one containing it, else those inside or overlapping it, leaving
    out an offer of which the wish covers less than half when others it covers more ("at 2:30", read as
    1:30-3:30, is the 2-4 slot, not 12-2 as well).

    An open wish keeps to its day: "after 3" (no end) takes the offers starting at 3 or later,
    "before 9" (no start) those over by 9.
    """
    if start is None or end is None or end <= start:
        zone = ZoneInfo(timezone)
        day = _anchor(start, end).astimezone(zone).date()
        that_day = [o for o in offers if o.start.astimezone(zone).date() == day]
        if start is None:
            return [o for o in that_day if end is not None and o.end <= end]
        return [o for o in that_day if o.start >= start]
    containing = [o for o in offers if o.start <= start and end <= o.end]
    if containing:
        return containing[:1]
    overlapping = [(o, _overlap(o, start, end)) for o in offers]
    overlapping = [(o, shared) for o, shared in overlapping if shared > timedelta(0)]
    mostly = [o for o, shared in overlapping if shared * 2 >= o.end - o.start]
    return sorted(mostly or [o for o, _ in overlapping], key=lambda o: o.start)


def _anchor(start: datetime | None, end: datetime | None) -> datetime:
    """The instant a wish is measured from: its start, or the end of a "before" wish."""
    anchor = start or end
    assert anchor is not None, "a wish has a start or an end"
    return anchor


def already_planned(delivery: Delivery, start: datetime | None, end: datetime | None) -> bool:
    """The current window already is what they ask for (inside it, or within an open wish's bound)."""
    current_start, current_end = delivery.window_start, delivery.window_end
    if current_start is None or current_end is None:
        return False
    if start is not None and end is not None and start < end:
        return current_start <= start and end <= current_end and end - start < timedelta(hours=20)
    zone = ZoneInfo(delivery.timezone)
    if current_start.astimezone(zone).date() != _anchor(start, end).astimezone(zone).date():
        return False
    return current_end <= end if start is None and end is not None else current_start >= _anchor(start, end)


def nearest_offers(
    offers: list[WindowOffer], start: datetime, count: int = OFFERS_SHOWN
) -> list[WindowOffer]:
    chosen = sorted(offers, key=lambda o: (abs((o.start - start).total_seconds()), o.start))[:count]
    return sorted(chosen, key=lambda o: o.start)


def wish_text(turn: Turn, delivery: Delivery, start: datetime | None, end: datetime | None) -> str:
    speaker, zone = turn.speaker, delivery.timezone
    if start is None and end is not None:
        return turn._(
            "%(day)s, before %(time)s", day=speaker.day(end, zone), time=speaker.clock_time(end, zone)
        )
    start = _anchor(start, end)
    if end is not None and end > start and end - start <= timedelta(hours=12):
        return window_text(turn, delivery, start, end)
    if end is not None and end - start >= timedelta(hours=20):
        return speaker.day(start, zone)
    return turn._(
        "%(day)s, after %(time)s", day=speaker.day(start, zone), time=speaker.clock_time(start, zone)
    )


def days_to_offer(turn: Turn, delivery: Delivery, parsed: Parsed) -> int:
    """The next few days, or as far as the day they asked for ("next Tuesday"); the scheduling
    service stops at two weeks."""
    if not parsed.has_time:
        return OFFER_DAYS
    zone = ZoneInfo(delivery.timezone)
    wished = _anchor(parsed.window_start, parsed.window_end).astimezone(zone).date()
    return max(OFFER_DAYS, (wished - turn.now.astimezone(zone).date()).days + 1)


def is_current(delivery: Delivery, offer: WindowOffer) -> bool:
    return delivery.window_start == offer.start and delivery.window_end == offer.end


async def reschedule(turn: Turn, delivery: Delivery, parsed: Parsed) -> None:
    at_point = delivery.status == DeliveryStatus.redirected
    if parsed.home and delivery.status == DeliveryStatus.ready_for_pickup:
        await waiting_at_the_point(turn, delivery)
        return
    if delivery.status not in MOVABLE:
        not_changeable(turn)
        return
    if at_point and parsed.away and not parsed.home:  # going to a pickup point: nobody needs to be home
        await status(turn, delivery)
        return
    coming = delivery.status in (DeliveryStatus.scheduled, DeliveryStatus.pooled)
    if parsed.home and coming and not parsed.has_time and delivery.window_start and delivery.window_end:
        already_coming_to_the_door(turn, delivery, delivery.window_start, delivery.window_end)
        return
    try:
        offers = await service.offer_windows(
            turn.uow, delivery, days=days_to_offer(turn, delivery, parsed), now=turn.now
        )
    except SchedulingError as error:
        await scheduling_failed(turn, error)
        return
    offers = [o for o in offers if not is_current(delivery, o)]
    if parsed.not_on is not None:  # "I won't be home tomorrow": nothing on that day
        zone = ZoneInfo(delivery.timezone)
        offers = [o for o in offers if o.start.astimezone(zone).date() != parsed.not_on]
    if not parsed.has_time:
        if at_point and offers:
            turn.say(
                turn._(
                    "Your parcel %(tracking)s is on its way to %(point)s. I can bring it to your door "
                    "instead. When would suit you?",
                    tracking=delivery.tracking,
                    point=await point_of(turn, delivery),
                ),
                offer_options(turn, delivery, offers[:OFFERS_SHOWN], "win"),
                kind="reschedule.offer",
            )
            return
        if parsed.direction and not at_point and delivery.window_start and delivery.window_end:
            earlier_or_later(turn, delivery, offers, parsed.direction)
            return
        if parsed.away:  # "what if I'm not home?": a pickup point or a safe place may suit better
            turn.say(
                turn._(
                    "No problem. I can bring it at another time, send it to a pickup point, or the driver "
                    "can leave it somewhere safe if you add a note. What would suit you?"
                ),
                [
                    *offer_options(turn, delivery, offers[:OFFERS_SHOWN], "win"),
                    turn.option(turn._("Pickup point"), "menu:pickup"),
                    turn.option(turn._("Note for the driver"), "menu:instructions"),
                ],
                kind="reschedule.offer",
            )
            return
        if not offers:
            no_windows(turn)
            return
        turn.say(
            turn._("When would suit you? These times are available:"),
            offer_options(turn, delivery, offers[:OFFERS_SHOWN], "win"),
            kind="reschedule.offer",
        )
        return
    start, end = parsed.window_start, parsed.window_end
    if already_planned(delivery, start, end):
        assert delivery.window_start is not None and delivery.window_end is not None
        turn.say(
            turn._(
                "Good news: your delivery is already planned for %(window)s.",
                window=window_text(turn, delivery, delivery.window_start, delivery.window_end),
            ),
            menu(turn, delivery),
            kind="reschedule.same",
        )
        return
    fits = matching_offers(offers, start, end, delivery.timezone)
    if len(fits) == 1:
        await confirm_window(turn, delivery, fits[0].start, fits[0].end)
        return
    if fits:
        turn.say(
            turn._("Which of these times suits you?"),
            offer_options(turn, delivery, fits[:OFFERS_SHOWN], "win"),
            kind="reschedule.offer",
        )
        return
    if not offers:
        no_windows(turn)
        return
    turn.say(
        turn._(
            "Sorry, %(wish)s isn't available. The nearest times I can offer:",
            wish=wish_text(turn, delivery, start, end),
        ),
        offer_options(turn, delivery, nearest_offers(offers, _anchor(start, end)), "win"),
        kind="reschedule.alternatives",
    )


async def waiting_at_the_point(turn: Turn, delivery: Delivery) -> None:
    """ "Deliver it home" once the parcel is at the point: a second trip is a person's call."""
    turn.say(
        turn._(
            "Your parcel %(tracking)s is waiting for you at %(point)s. A person from our team can help "
            "if you'd like it brought to your door.",
            tracking=delivery.tracking,
            point=await point_of(turn, delivery),
        ),
        [turn.option(turn._("Talk to a person"), "menu:person")],
        kind="change.refused",
    )


def already_coming_to_the_door(turn: Turn, delivery: Delivery, start: datetime, end: datetime) -> None:
    turn.say(
        turn._(
            "Your parcel %(tracking)s is already coming to your door, planned for %(window)s.",
            tracking=delivery.tracking,
            window=window_text(turn, delivery, start, end),
        ),
        menu(turn, delivery),
        kind="reschedule.same",
    )


def earlier_or_later(turn: Turn, delivery: Delivery, offers: list[WindowOffer], direction: str) -> None:
    """ "Can you come earlier?": the times before the planned one, soonest first; none, then say so."""
    assert delivery.window_start is not None and delivery.window_end is not None
    planned = delivery.window_start
    earlier = direction == "earlier"
    wanted = sorted(
        (o for o in offers if (o.start < planned if earlier else o.start > planned)), key=lambda o: o.start
    )
    if wanted:
        turn.say(
            turn._("These earlier times are available:")
            if earlier
            else turn._("These later times are available:"),
            offer_options(turn, delivery, wanted[:OFFERS_SHOWN], "win"),
            kind="reschedule.offer",
        )
        return
    if not offers:
        no_windows(turn)
        return
    window = window_text(turn, delivery, delivery.window_start, delivery.window_end)
    turn.say(
        turn._("Sorry, I can't find an earlier time than %(window)s. Other times available:", window=window)
        if earlier
        else turn._(
            "Sorry, I can't find a later time than %(window)s. Other times available:", window=window
        ),
        offer_options(turn, delivery, offers[:OFFERS_SHOWN], "win"),
        kind="reschedule.alternatives",
    )


def no_windows(turn: Turn) -> None:
    turn.say(
        turn._("Sorry, I can't find another time in the next few days. A person from our team can help."),
        [
            turn.option(turn._("Pickup point"), "menu:pickup"),
            turn.option(turn._("Talk to a person"), "menu:person"),
        ],
        kind="reschedule.none",
    )


async def confirm_window(turn: Turn, delivery: Delivery, start: datetime, end: datetime) -> None:
    set_pending(turn, "reschedule", delivery, start=start.isoformat(), end=end.isoformat())
    if delivery.status == DeliveryStatus.redirected:
        question = turn._(
            "Bring your parcel to your door on %(window)s instead of %(point)s? Reply YES or NO",
            window=window_text(turn, delivery, start, end),
            point=await point_of(turn, delivery),
        )
    else:
        question = turn._(
            "Move your delivery to %(window)s? Reply YES or NO",
            window=window_text(turn, delivery, start, end),
        )
    turn.say(question, yes_no(turn), kind="reschedule.confirm")


async def commit_reschedule(turn: Turn, delivery: Delivery, start: datetime, end: datetime) -> None:
    to_door = delivery.status == DeliveryStatus.redirected
    await turn.checkpoint()
    try:
        result = await retried(
            turn,
            delivery,
            lambda: service.reschedule_delivery(turn.uow, delivery, start, end, turn.actor, now=turn.now),
        )
    except WindowUnavailable as error:
        await turn.recover([delivery])
        alternatives = [o for o in error.alternatives if not is_current(delivery, o)]
        if not alternatives:
            no_windows(turn)
            return
        turn.say(
            turn._("Sorry, that time is no longer available. The nearest times I can offer:"),
            offer_options(turn, delivery, nearest_offers(alternatives, start), "win"),
            kind="reschedule.alternatives",
        )
        return
    except SchedulingError as error:
        await turn.recover([delivery])
        await scheduling_failed(turn, error)
        return
    window = window_text(turn, delivery, result.window_start or start, result.window_end or end)
    turn.say(
        turn._(
            "Done! Your parcel %(tracking)s will come to your door on %(window)s.",
            tracking=delivery.tracking,
            window=window,
        )
        if to_door
        else turn._(
            "Done! Your delivery %(tracking)s is now planned for %(window)s.",
            tracking=delivery.tracking,
            window=window,
        ),
        kind="reschedule.done",
    )


# --- pickup points -------------------------------------------------------------------------------


def pickup_line(turn: Turn, delivery: Delivery, option: PickupOption) -> str:
    point = option.point
    parts = [place(point.name, point.address)]
    parts.append(turn.speaker.distance(option.distance_m))
    available = option.available_from.astimezone(ZoneInfo(delivery.timezone))
    if option.hours_today:
        parts.append(
            turn._(
                "open %(hours)s",
                hours=turn.speaker.opening_hours(option.hours_today, available.date(), delivery.timezone),
            )
        )
    parts.append(turn._("ready %(day)s", day=turn.speaker.day(option.available_from, delivery.timezone)))
    return "- " + turn.speaker.separator.join(parts)


async def redirect(
    turn: Turn, delivery: Delivery, *, exclude: int | None = None, intro: str | None = None
) -> None:
    if delivery.status not in MOVABLE:
        not_changeable(turn)
        return
    if delivery.status == DeliveryStatus.redirected:  # the service lists the other points
        intro = intro or turn._(
            "Your parcel is going to %(point)s. Other pickup points near you:",
            point=await point_of(turn, delivery),
        )
    try:
        options = await service.pickup_options(
            turn.uow, delivery, now=turn.now, limit=PICKUP_POINTS_SHOWN + 1
        )
    except SchedulingError as error:
        await scheduling_failed(turn, error)
        return
    options = [o for o in options if o.point.id != exclude][:PICKUP_POINTS_SHOWN]
    if not options:
        at_point = delivery.status == DeliveryStatus.redirected
        turn.say(
            turn._("Sorry, no pickup point near you can take your parcel right now."),
            [
                turn.option(
                    turn._("Deliver to my door") if at_point else turn._("Change the time"), "menu:reschedule"
                ),
                turn.option(turn._("Talk to a person"), "menu:person"),
            ],
            kind="pickup.none",
        )
        return
    lines = [intro or turn._("The nearest pickup points:")]
    lines += [pickup_line(turn, delivery, option) for option in options]
    lines.append(turn._("Which one would you like?"))
    turn.say(
        "\n".join(lines),
        [
            turn.option(
                option.point.name,
                f"pp:{option.point.id}",
                {
                    "point_id": option.point.id,
                    "name": option.point.name,
                    "address": option.point.address,
                    "available_from": option.available_from.isoformat(),
                },
            )
            for option in options
        ],
        kind="pickup.offer",
    )


async def confirm_pickup(turn: Turn, delivery: Delivery, offer: dict[str, Any]) -> None:
    set_pending(turn, "pickup", delivery, **offer)
    chosen = place(str(offer["name"]), offer.get("address"))
    question = (
        turn._(
            "Send your parcel to %(point)s instead of %(current)s? Reply YES or NO",
            point=chosen,
            current=await point_of(turn, delivery),
        )
        if delivery.status == DeliveryStatus.redirected
        else turn._("Send your parcel to %(point)s instead of your door? Reply YES or NO", point=chosen)
    )
    turn.say(question, yes_no(turn), kind="pickup.confirm")


async def commit_pickup(turn: Turn, delivery: Delivery, pending: dict[str, Any]) -> None:
    await turn.checkpoint()
    point_id = int(pending["point_id"])
    try:
        await retried(
            turn,
            delivery,
            lambda: service.redirect_to_pickup(turn.uow, delivery, point_id, turn.actor, now=turn.now),
        )
    except (PickupPointFull, PickupPointUnavailable):
        await turn.recover([delivery])
        await redirect(
            turn,
            delivery,
            exclude=point_id,
            intro=turn._(
                "Sorry, %(point)s can't take your parcel any more. Other pickup points:",
                point=pending["name"],
            ),
        )
        return
    except SchedulingError as error:
        await turn.recover([delivery])
        await scheduling_failed(turn, error)
        return
    chosen = place(str(pending["name"]), pending.get("address"))
    ready = datetime.fromisoformat(pending["available_from"])
    turn.say(
        turn._(
            "Done! Your parcel %(tracking)s is going to %(point)s, ready %(day)s.",
            tracking=delivery.tracking,
            point=chosen,
            day=turn.speaker.day(ready, delivery.timezone),
        ),
        kind="pickup.done",
    )


# --- white-glove ---------------------------------------------------------------------------------


async def white_glove(turn: Turn, delivery: Delivery, parsed: Parsed) -> None:
    if delivery.status not in MOVABLE:  # booking a setup brings a parcel going to a point home
        not_changeable(turn)
        return
    try:
        slots = await service.white_glove_slots(
            turn.uow, delivery, days=days_to_offer(turn, delivery, parsed), now=turn.now
        )
    except SchedulingError as error:
        await scheduling_failed(turn, error)
        return
    if not slots:
        turn.say(
            turn._(
                "Sorry, our setup crews have no free time in the next few days. "
                "A person from our team can help."
            ),
            [turn.option(turn._("Talk to a person"), "menu:person")],
            kind="whiteglove.none",
        )
        return
    if parsed.has_time:
        fits = matching_offers(slots, parsed.window_start, parsed.window_end, delivery.timezone)
        if len(fits) == 1:
            await confirm_white_glove(turn, delivery, fits[0].start, fits[0].end)
            return
        if not fits:
            turn.say(
                turn._(
                    "Sorry, our crew isn't free on %(wish)s. The nearest times I can offer:",
                    wish=wish_text(turn, delivery, parsed.window_start, parsed.window_end),
                ),
                offer_options(
                    turn,
                    delivery,
                    nearest_offers(slots, _anchor(parsed.window_start, parsed.window_end)),
                    "wg",
                ),
                kind="whiteglove.alternatives",
            )
            return
        slots = fits
    turn.say(
        turn._("Our setup crew can come at these times:"),
        offer_options(turn, delivery, slots[:OFFERS_SHOWN], "wg"),
        kind="whiteglove.offer",
    )


async def confirm_white_glove(turn: Turn, delivery: Delivery, start: datetime, end: datetime) -> None:
    set_pending(turn, "white_glove", delivery, start=start.isoformat(), end=end.isoformat())
    turn.say(
        turn._(
            "Book in-home setup for %(window)s? Reply YES or NO",
            window=window_text(turn, delivery, start, end),
        ),
        yes_no(turn),
        kind="whiteglove.confirm",
    )


async def commit_white_glove(turn: Turn, delivery: Delivery, start: datetime, end: datetime) -> None:
    await turn.checkpoint()
    try:
        result = await retried(
            turn,
            delivery,
            lambda: service.book_white_glove(turn.uow, delivery, start, end, turn.actor, now=turn.now),
        )
    except SlotUnavailable as error:
        await turn.recover([delivery])
        if not error.alternatives:
            turn.say(
                turn._("Sorry, that time was just taken and no other crew time is free. A person can help."),
                [turn.option(turn._("Talk to a person"), "menu:person")],
                kind="whiteglove.none",
            )
            return
        turn.say(
            turn._("Sorry, that time is no longer available. The nearest times I can offer:"),
            offer_options(turn, delivery, nearest_offers(error.alternatives, start), "wg"),
            kind="whiteglove.alternatives",
        )
        return
    except SchedulingError as error:
        await turn.recover([delivery])
        await scheduling_failed(turn, error)
        return
    booked_start = result.delivery.white_glove_start or start
    booked_end = result.delivery.white_glove_end or end
    turn.say(
        turn._(
            "Done! Our setup crew will come on %(window)s.",
            window=window_text(turn, delivery, booked_start, booked_end),
        ),
        kind="whiteglove.done",
    )


async def call_off_white_glove(turn: Turn, delivery: Delivery) -> None:
    """Ask before calling off a setup booked through Doorstep (one sold with the order goes to a person)."""
    if delivery.status not in CHANGEABLE:
        not_changeable(turn)
        return
    if not delivery.white_glove_start or not delivery.white_glove_end:
        turn.say(
            turn._(
                "There's no in-home setup booked for %(tracking)s. Anything else?", tracking=delivery.tracking
            ),
            menu(turn, delivery),
            kind="whiteglove.none_booked",
        )
        return
    set_pending(turn, "white_glove_cancel", delivery)
    turn.say(
        turn._(
            "Call off the in-home setup on %(window)s? Your parcel still comes then. Reply YES or NO",
            window=window_text(turn, delivery, delivery.white_glove_start, delivery.white_glove_end),
        ),
        yes_no(turn),
        kind="whiteglove.cancel_confirm",
    )


async def commit_white_glove_cancel(turn: Turn, delivery: Delivery) -> None:
    await turn.checkpoint()
    try:
        result = await retried(
            turn, delivery, lambda: service.cancel_white_glove(turn.uow, delivery, turn.actor, now=turn.now)
        )
    except SchedulingError as error:
        await turn.recover([delivery])
        await scheduling_failed(turn, error)
        return
    kept = result.delivery
    turn.say(
        turn._(
            "Done! The in-home setup is called off. Your parcel %(tracking)s still comes on %(window)s.",
            tracking=kept.tracking,
            window=window_text(turn, kept, kept.window_start, kept.window_end),
        )
        if kept.window_start and kept.window_end
        else turn._("Done! The in-home setup is called off."),
        kind="whiteglove.cancelled",
    )


# --- "let me know when it's close" ---------------------------------------------------------------


async def when_we_write(turn: Turn, delivery: Delivery) -> None:
    """Say when the arriving message goes (notifications/outreach.py: a few stops or 30 minutes away)."""
    if delivery.status not in (DeliveryStatus.scheduled, DeliveryStatus.out_for_delivery):
        await status(turn, delivery)
        return
    retailer = turn.retailers.get(delivery.retailer_id)
    stops = arriving_stops(retailer.settings if retailer else None)
    text = turn._(
        "Yes: we'll send you a message when the driver is %(stops)s stops or %(minutes)s minutes away, "
        "with the time they expect to arrive.",
        stops=stops,
        minutes=ARRIVING_MINUTES,
    )
    local_today = turn.now.astimezone(ZoneInfo(delivery.timezone)).date()
    if delivery.status == DeliveryStatus.scheduled and delivery.day > local_today:  # the morning is to come
        text += " " + turn._("You'll also hear from us the morning of the delivery.")
    turn.say(text, menu(turn, delivery), kind="notify.when")


# --- instructions for the driver -----------------------------------------------------------------


async def instructions(turn: Turn, delivery: Delivery, note: str | None) -> None:
    if delivery.status in (DeliveryStatus.delivered, DeliveryStatus.picked_up, DeliveryStatus.cancelled):
        not_changeable(turn)
        return
    note = (note or "").strip()
    if not note:
        turn.state["awaiting"] = "instructions"
        turn.say(
            turn._('What should the driver know? For example: "leave it with the concierge".'),
            kind="instructions.ask",
        )
        return
    if len(note) > INSTRUCTIONS_LIMIT:
        turn.state["awaiting"] = "instructions"
        turn.say(
            turn._(
                "That note is too long: please keep it under %(limit)s characters.", limit=INSTRUCTIONS_LIMIT
            ),
            kind="instructions.ask",
        )
        return
    set_pending(turn, "instructions", delivery, note=note)
    current = delivery.instructions.strip()
    turn.say(
        turn._(
            'Replace your note for the driver "%(old)s" with "%(note)s"? Reply YES or NO',
            old=current,
            note=note,
        )
        if current and current != note  # the driver sees one note: say what this one replaces
        else turn._('Add this note for the driver: "%(note)s"? Reply YES or NO', note=note),
        yes_no(turn),
        kind="instructions.confirm",
    )


async def commit_instructions(turn: Turn, delivery: Delivery, note: str) -> None:
    await turn.checkpoint()
    try:
        await retried(turn, delivery, lambda: service.set_instructions(turn.uow, delivery, note, turn.actor))
    except SchedulingError as error:
        await turn.recover([delivery])
        await scheduling_failed(turn, error)
        return
    turn.say(turn._("Done! The driver will see your note."), kind="instructions.done")


# --- confirmations -------------------------------------------------------------------------------


def pending_expired(turn: Turn, pending: dict[str, Any]) -> bool:
    at = datetime.fromisoformat(str(pending.get("at")))
    return turn.now - at > PENDING_TTL


async def confirm(turn: Turn, delivery: Delivery, pending: dict[str, Any]) -> None:
    """The recipient said YES to what is pending: ask the scheduling service to do it."""
    kind = pending.get("kind")
    if kind == "reschedule":
        await commit_reschedule(
            turn, delivery, datetime.fromisoformat(pending["start"]), datetime.fromisoformat(pending["end"])
        )
    elif kind == "white_glove":
        await commit_white_glove(
            turn, delivery, datetime.fromisoformat(pending["start"]), datetime.fromisoformat(pending["end"])
        )
    elif kind == "white_glove_cancel":
        await commit_white_glove_cancel(turn, delivery)
    elif kind == "pickup":
        await commit_pickup(turn, delivery, pending)
    elif kind == "instructions":
        await commit_instructions(turn, delivery, str(pending["note"]))
