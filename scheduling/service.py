"""Use cases that change a delivery: one function each, each committing its own unit of work.

Every function takes the unit of work and the delivery, checks feasibility against the route plan,
reserves atomically (PostgreSQL: the plan row is locked FOR UPDATE; SQLite: one writer), writes the
change log, records events, and commits. Domain errors say why a change cannot be kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import UnitOfWork
from core.models import (
    Author,
    Delivery,
    DeliveryStatus,
    PickupPoint,
    PickupReservation,
    Retailer,
    RoutePlan,
    SlotCapacity,
    Stop,
    StopStatus,
    Vehicle,
)
from scheduling import clock
from scheduling.apply import write_routes
from scheduling.changelog import log_change
from scheduling.events import (
    DeliveryCancelled,
    DeliveryRescheduled,
    EtaChanged,
    RedirectedToPickup,
    WhiteGloveBooked,
    WhiteGloveCancelled,
)
from scheduling.repository import vehicle_spec
from scheduling.routing import Place, StopSpec, TravelModel, haversine_m
from scheduling.state import (
    NO_WINDOW,
    Choice,
    PlanState,
    RouteState,
    _with_window,
    install,
    lock_plan,
    plan_state,
)


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


class InvalidRequest(SchedulingError):
    """The request itself is malformed (a window that ends before it starts, text too long...)."""


class PickupPointUnknown(PickupPointUnavailable):
    """No such pickup point for this retailer (another retailer's point is unknown alike)."""


class NoSetupBooked(SchedulingError):
    """Calling off an in-home setup the delivery does not have."""


class SetupCameWithTheOrder(SchedulingError):
    """The setup was sold with the order: only the retailer can take it off, not the plan."""


CHANGEABLE = (DeliveryStatus.pooled, DeliveryStatus.scheduled, DeliveryStatus.failed)
# A parcel on its way to a pickup point can still come to the door or go to another point: the
# recipient changed their mind before it got there. Other changes (a note for the driver, a setup
# called off) are for parcels coming to the door.
MOVABLE = (*CHANGEABLE, DeliveryStatus.redirected)
DEFAULT_CUTOFF_MINUTES = 60
DEFAULT_SLOT_CAPACITY = 20
DEFAULT_DELIVERY_HOURS = ("08:00", "20:00")
DEFAULT_WHITE_GLOVE_MINUTES = 45
DEFAULT_ETA_CHANGE_MINUTES = 5
DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS = 14
MAX_INSTRUCTIONS = 500


# --- retailer settings ---------------------------------------------------------------------------


def _setting(retailer: Retailer, key: str, default: Any) -> Any:
    value = (retailer.settings or {}).get(key)
    return default if value is None else value


def cutoff(retailer: Retailer) -> timedelta:
    return timedelta(minutes=int(_setting(retailer, "cutoff_minutes", DEFAULT_CUTOFF_MINUTES)))


def slot_capacity(retailer: Retailer, start_local: datetime) -> int:
    """Places per slot on a day without a plan: an int, or {"HH:MM": n, "default": n}."""
    value = _setting(retailer, "slot_capacity", DEFAULT_SLOT_CAPACITY)
    if isinstance(value, dict):
        chosen: Any = value.get(start_local.strftime("%H:%M"), value.get("default", DEFAULT_SLOT_CAPACITY))
        return int(chosen)
    return int(value)


def white_glove_service_seconds(retailer: Retailer, delivery: Delivery) -> int:
    minutes = int(_setting(retailer, "white_glove_service_minutes", DEFAULT_WHITE_GLOVE_MINUTES))
    return max(delivery.service_seconds, minutes * 60)


def _hhmm(value: str) -> time | None:
    hours, minutes = (int(x) for x in value.split(":"))
    return None if hours == 24 else time(hours, minutes)


def _local(day: date, tz: ZoneInfo, hhmm: str) -> datetime:
    at = _hhmm(hhmm)
    if at is None:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return datetime.combine(day, at, tzinfo=tz)


def _slots(
    day: date, tz: ZoneInfo, minutes: int, first: datetime, last: datetime
) -> list[tuple[datetime, datetime]]:
    """The retailer's slots of a day, aligned to local midnight, inside [first, last]."""
    slots = []
    midnight = datetime.combine(day, time(0), tzinfo=tz)
    for k in range(0, 24 * 60, minutes):
        start = (midnight + timedelta(minutes=k)).astimezone(UTC)
        end = (midnight + timedelta(minutes=k + minutes)).astimezone(UTC)
        if start >= first and end <= last:
            slots.append((start, end))
    return slots


# --- reading under the lock ------------------------------------------------------------------------


async def _retailer(session: AsyncSession, retailer_id: int) -> Retailer:
    retailer = await session.get(Retailer, retailer_id)
    assert retailer is not None
    return retailer


async def _fresh(session: AsyncSession, delivery_id: int | None) -> Delivery:
    found = (
        await session.exec(
            select(Delivery).where(Delivery.id == delivery_id).execution_options(populate_existing=True)
        )
    ).first()
    if found is None:
        raise DeliveryNotChangeable("the delivery no longer exists")
    return found


async def _stop_of(session: AsyncSession, delivery_id: int | None) -> Stop | None:
    return (
        await session.exec(
            select(Stop).where(Stop.delivery_id == delivery_id).execution_options(populate_existing=True)
        )
    ).first()


def _check_changeable(
    delivery: Delivery, stop: Stop | None, allowed: tuple[DeliveryStatus, ...] = CHANGEABLE
) -> None:
    if delivery.status not in allowed:
        raise DeliveryNotChangeable(f"a delivery that is {delivery.status} cannot be changed")
    if stop is not None and stop.status in (StopStatus.arrived, StopStatus.done):
        raise DeliveryNotChangeable("the driver has already reached this stop")


async def _plans_on(session: AsyncSession, retailer_id: int, day: date) -> list[RoutePlan]:
    return list(
        (
            await session.exec(
                select(RoutePlan)
                .where(RoutePlan.retailer_id == retailer_id, RoutePlan.day == day)
                .order_by(col(RoutePlan.id))
            )
        ).all()
    )


async def _plans_between(session: AsyncSession, retailer_id: int, first: date, last: date) -> list[RoutePlan]:
    return list(
        (
            await session.exec(
                select(RoutePlan)
                .where(
                    RoutePlan.retailer_id == retailer_id,
                    col(RoutePlan.day) >= first,
                    col(RoutePlan.day) <= last,
                )
                .order_by(col(RoutePlan.id))
            )
        ).all()
    )


@dataclass
class _Locked:
    delivery: Delivery
    stop: Stop | None
    plans: dict[int, RoutePlan]
    states: dict[int, PlanState]


async def _lock(session: AsyncSession, delivery: Delivery, extra_plans: list[int]) -> _Locked:
    """Lock every plan the change touches (in id order, so two changes never deadlock), then re-read."""
    current = await _fresh(session, delivery.id)
    for _ in range(3):
        ids = sorted({*extra_plans, *([current.plan_id] if current.plan_id else [])})
        plans: dict[int, RoutePlan] = {}
        for plan_id in ids:
            plan = await lock_plan(session, plan_id)
            if plan is not None:
                plans[plan_id] = plan
        current = await _fresh(session, delivery.id)
        if current.plan_id is None or current.plan_id in plans:
            break
    stop = await _stop_of(session, current.id)
    states = {plan_id: await plan_state(session, plan) for plan_id, plan in plans.items()}
    return _Locked(current, stop, plans, states)


def _spec(delivery: Delivery, state: PlanState, *, white_glove: bool, service: int) -> StopSpec:
    assert delivery.id is not None
    skills = set(delivery.skills or [])
    if delivery.white_glove or white_glove:
        skills.add(state.white_glove_skill)
    return StopSpec(
        key=delivery.id,
        place=Place(delivery.lon, delivery.lat, delivery.location_index),
        service=service,
        window=NO_WINDOW,
        amount=tuple(delivery.size or ()),
        skills=frozenset(skills),
    )


def _reachable(delivery: Delivery, state: PlanState) -> bool:
    """A plan with a duration matrix can only place the deliveries that came with it."""
    return state.travel.durations is None or delivery.plan_id == state.plan_id


def _snapshot(delivery: Delivery, stop: Stop | None) -> dict[str, Any]:
    return {
        "status": str(delivery.status),
        "date": delivery.day.isoformat(),
        "window": {"start": _iso(delivery.window_start), "end": _iso(delivery.window_end)},
        "route": stop.vehicle_id if stop is not None else None,
        "sequence": stop.sequence if stop is not None else None,
        "eta": _iso(stop.eta) if stop is not None else None,
        "pickup_point": delivery.pickup_point_id,
        "white_glove": (
            {"start": _iso(delivery.white_glove_start), "end": _iso(delivery.white_glove_end)}
            if delivery.white_glove_start
            else None
        ),
        "instructions": delivery.instructions,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- offers ----------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """A delivery's view of one plan: its state, its spec there and its own route without it."""

    state: PlanState
    spec: StopSpec
    own_row: int | None
    own: RouteState | None

    def choose(self, window: tuple[int, int]) -> Choice | None:
        return self.state.best_choice(self.spec, window, own=self.own, own_row=self.own_row)


def _view(delivery: Delivery, state: PlanState, *, white_glove: bool, service: int) -> _Plan:
    assert delivery.id is not None
    own_row = state.where.get(delivery.id)
    own = state.routes[own_row].without(delivery.id, state.travel) if own_row is not None else None
    return _Plan(state, _spec(delivery, state, white_glove=white_glove, service=service), own_row, own)


def _plan_slots(state: PlanState, retailer: Retailer, minutes: int) -> list[tuple[datetime, datetime]]:
    tz = ZoneInfo(state.timezone)
    if not state.routes:
        return []
    first = state.at(min(r.spec.shift[0] for r in state.routes))
    last = state.at(max(r.spec.shift[1] for r in state.routes))
    return _slots(state.day, tz, minutes, first, last)


def _pool_slots(retailer: Retailer, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    hours = _setting(retailer, "delivery_hours", list(DEFAULT_DELIVERY_HOURS))
    return _slots(day, tz, retailer.slot_minutes, _local(day, tz, hours[0]), _local(day, tz, hours[1]))


async def _pool_taken(
    session: AsyncSession, retailer_id: int, starts: list[datetime]
) -> dict[datetime, tuple[int, int]]:
    if not starts:
        return {}
    rows = (
        await session.exec(
            select(SlotCapacity).where(
                SlotCapacity.retailer_id == retailer_id, col(SlotCapacity.slot_start).in_(starts)
            )
        )
    ).all()
    return {row.slot_start.astimezone(UTC): (row.taken, row.capacity) for row in rows}


def first_possible_day(retailer: Retailer, delivery: Delivery, now: datetime) -> date:
    """The first day a delivery can go to: not before the day its plan brought it (moving it later
    keeps that day open to come back to), nor within the retailer's cut-off."""
    earliest = (now + cutoff(retailer)).astimezone(ZoneInfo(delivery.timezone)).date()
    return max(delivery.earliest_day or delivery.day, earliest)


async def _offers(
    session: AsyncSession,
    retailer: Retailer,
    delivery: Delivery,
    *,
    days: int,
    now: datetime,
    white_glove: bool,
    states: dict[int, PlanState] | None = None,
) -> list[WindowOffer]:
    tz = ZoneInfo(delivery.timezone)
    earliest = now + cutoff(retailer)
    first_day = first_possible_day(retailer, delivery, now)
    service = white_glove_service_seconds(retailer, delivery) if white_glove else delivery.service_seconds
    minutes = (
        int(_setting(retailer, "white_glove_slot_minutes", retailer.slot_minutes))
        if white_glove
        else retailer.slot_minutes
    )
    current = (
        (delivery.white_glove_start, delivery.white_glove_end)
        if white_glove
        else (delivery.window_start, delivery.window_end)
    )
    offers: list[WindowOffer] = []
    day_count = max(1, min(days, MAX_DAYS))
    last_day = first_day + timedelta(days=day_count - 1)
    # one query for the plans of every day asked, one for the pool places of the days without a plan
    plans_by_day: dict[date, list[RoutePlan]] = {}
    for plan in await _plans_between(session, retailer.id or 0, first_day, last_day):
        plans_by_day.setdefault(plan.day, []).append(plan)
    pool_slots = {
        day: [s for s in _pool_slots(retailer, day, tz) if s[0] >= earliest and s != current]
        for offset in range(day_count)
        if (day := first_day + timedelta(days=offset)) not in plans_by_day and not white_glove
    }
    taken = await _pool_taken(
        session, retailer.id or 0, [s[0] for slots in pool_slots.values() for s in slots]
    )
    for offset in range(day_count):
        day = first_day + timedelta(days=offset)
        plans = plans_by_day.get(day, [])
        if plans:
            best: dict[datetime, WindowOffer] = {}
            for plan in plans:
                state = (states or {}).get(plan.id or 0) or await plan_state(session, plan)
                if not _reachable(delivery, state):
                    continue
                view = _view(delivery, state, white_glove=white_glove, service=service)
                for start, end in _plan_slots(state, retailer, minutes):
                    if start < earliest or (start, end) == current:
                        continue
                    choice = view.choose((state.seconds(start), state.seconds(end)))
                    if choice is None:
                        continue
                    offer = WindowOffer(
                        start,
                        end,
                        day,
                        detour_seconds=choice.detour,
                        vehicle_id=state.routes[choice.route].vehicle_id,
                        eta=state.at(choice.service_start),
                    )
                    if start not in best or offer.detour_seconds < best[start].detour_seconds:
                        best[start] = offer
            offers.extend(best.values())
        elif not white_glove:
            for start, end in pool_slots[day]:
                used, _ = taken.get(start, (0, 0))
                if used < slot_capacity(retailer, start.astimezone(tz)):
                    offers.append(WindowOffer(start, end, day))
    same_day = delivery.day
    offers.sort(key=lambda o: (o.day != same_day, o.vehicle_id is None, o.detour_seconds, o.start))
    return offers


def _nearest(offers: list[WindowOffer], start: datetime, count: int = 5) -> list[WindowOffer]:
    return sorted(offers, key=lambda o: (abs((o.start - start).total_seconds()), o.start))[:count]


async def offer_windows(
    uow: UnitOfWork, delivery: Delivery, *, days: int = 3, now: datetime
) -> list[WindowOffer]:
    """Windows the delivery can move to, each feasible now: same day first, then least detour."""
    session = uow.session
    fresh = await _fresh(session, delivery.id)
    _check_changeable(fresh, await _stop_of(session, fresh.id), MOVABLE)
    retailer = await _retailer(session, fresh.retailer_id)
    return await _offers(session, retailer, fresh, days=days, now=now, white_glove=False)


async def white_glove_slots(
    uow: UnitOfWork, delivery: Delivery, *, days: int = 3, now: datetime
) -> list[WindowOffer]:
    """In-home setup slots on a crew's route, each feasible now with the crew's longer service."""
    session = uow.session
    fresh = await _fresh(session, delivery.id)
    _check_changeable(fresh, await _stop_of(session, fresh.id), MOVABLE)
    retailer = await _retailer(session, fresh.retailer_id)
    return await _offers(session, retailer, fresh, days=days, now=now, white_glove=True)


# --- moving a delivery -----------------------------------------------------------------------------


def _check_window(delivery: Delivery, start: datetime, end: datetime) -> date:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("the window needs a time zone (ISO 8601 with an offset)")
    if end <= start:
        raise InvalidRequest("the window must end after it starts")
    tz = ZoneInfo(delivery.timezone)
    day = start.astimezone(tz).date()
    if (end - timedelta(seconds=1)).astimezone(tz).date() != day:
        raise InvalidRequest("the window must fall within one day")
    return day


def _held_pool_slot(delivery: Delivery) -> datetime | None:
    """The start of the pool slot a delivery holds a place in; None when it is not in a day's pool."""
    if delivery.status != DeliveryStatus.pooled or delivery.plan_id is not None:
        return None
    return delivery.window_start


async def _release_pool_place(session: AsyncSession, delivery: Delivery) -> None:
    """A delivery leaving a day's pool gives its slot place back."""
    held = _held_pool_slot(delivery)
    if held is None:
        return
    await session.exec(
        update(SlotCapacity)
        .where(
            col(SlotCapacity.retailer_id) == delivery.retailer_id,
            col(SlotCapacity.slot_start) == held.astimezone(UTC),
            col(SlotCapacity.taken) > 0,
        )
        .values(taken=col(SlotCapacity.taken) - 1)
    )


async def _reserve_pool_place(
    session: AsyncSession, retailer: Retailer, start: datetime, end: datetime, capacity: int
) -> bool:
    """Atomically take one place of a slot: the UPDATE re-checks `taken < capacity` under its row lock."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert_ = postgres_insert if dialect == "postgresql" else sqlite_insert
    await session.exec(
        insert_(SlotCapacity)
        .values(
            retailer_id=retailer.id,
            slot_start=start.astimezone(UTC),
            slot_end=end.astimezone(UTC),
            capacity=capacity,
            taken=0,
        )
        .on_conflict_do_nothing(index_elements=["retailer_id", "slot_start"])
    )
    result: Any = await session.exec(
        update(SlotCapacity)
        .where(
            col(SlotCapacity.retailer_id) == retailer.id,
            col(SlotCapacity.slot_start) == start.astimezone(UTC),
            col(SlotCapacity.taken) < capacity,
        )
        .values(taken=col(SlotCapacity.taken) + 1, capacity=capacity)
    )
    return bool(result.rowcount == 1)


async def _move_pool_place(
    session: AsyncSession,
    retailer: Retailer,
    delivery: Delivery,
    start: datetime,
    end: datetime,
    capacity: int,
) -> bool:
    """Take a place in the slot at `start` and give back the one the delivery holds, if any.

    The two slot rows are written in time order: two deliveries swapping slots (one from 10:00 to
    14:00, the other from 14:00 to 10:00) would otherwise each lock one row and wait for the other
    until PostgreSQL breaks the deadlock by failing one of them.
    """
    held = _held_pool_slot(delivery)
    if held is not None and held.astimezone(UTC) < start.astimezone(UTC):
        await _release_pool_place(session, delivery)
        return await _reserve_pool_place(session, retailer, start, end, capacity)
    if not await _reserve_pool_place(session, retailer, start, end, capacity):
        return False
    await _release_pool_place(session, delivery)
    return True


async def _release_pickup_place(session: AsyncSession, delivery: Delivery) -> None:
    """A parcel that was going to a pickup point gives its place there back."""
    if delivery.status != DeliveryStatus.redirected:
        return
    await session.exec(delete(PickupReservation).where(col(PickupReservation.delivery_id) == delivery.id))


@dataclass
class _Moved:
    delivery: Delivery
    vehicle_id: int | None
    eta: datetime | None
    before: dict[str, Any]
    after: dict[str, Any]


async def _take_off_route(
    uow: UnitOfWork, locked: _Locked, changed: dict[int, dict[int, RouteState]]
) -> None:
    """Remove the delivery's stop from its route (the route's recomputed state goes into `changed`)."""
    delivery, stop = locked.delivery, locked.stop
    if stop is None:
        return
    state = locked.states.get(delivery.plan_id or 0)
    if state is not None and delivery.id in state.where:
        row = state.where[delivery.id or 0]
        changed.setdefault(state.plan_id, {})[row] = state.routes[row].without(delivery.id or 0, state.travel)


async def _commit_routes(
    uow: UnitOfWork,
    locked: _Locked,
    changed: dict[int, dict[int, RouteState]],
    retailer: Retailer,
    *,
    skip_eta_for: int | None,
) -> list[tuple[PlanState, dict[int, RouteState], int]]:
    """Write the rewritten routes, bump each plan's version, record the ETA changes."""
    threshold = 60 * int(_setting(retailer, "eta_change_minutes", DEFAULT_ETA_CHANGE_MINUTES))
    installs = []
    for plan_id, routes in changed.items():
        state = locked.states[plan_id]
        moves = await write_routes(uow.session, state, routes)
        for move in moves:
            if move.delivery_id != skip_eta_for and abs(move.shift_seconds) >= threshold:
                uow.record(EtaChanged(retailer.id or 0, move.delivery_id, move.eta, move.stops_away))
        plan = locked.plans[plan_id]
        plan.version += 1
        uow.session.add(plan)
        installs.append((state, routes, plan.version))
    return installs


async def _commit(uow: UnitOfWork, installs: list[tuple[PlanState, dict[int, RouteState], int]]) -> None:
    await uow.commit()
    for state, routes, version in installs:
        install(uow.session, state, routes, version)


async def _move(
    uow: UnitOfWork,
    delivery: Delivery,
    start: datetime,
    end: datetime,
    actor: Actor,
    *,
    now: datetime,
    white_glove: bool,
) -> ChangeResult:
    session = uow.session
    day = _check_window(delivery, start, end)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    retailer = await _retailer(session, delivery.retailer_id)
    targets = await _plans_on(session, retailer.id or 0, day)
    locked = await _lock(session, delivery, [p.id or 0 for p in targets])
    fresh = locked.delivery
    _check_changeable(fresh, locked.stop, MOVABLE)
    unavailable = SlotUnavailable if white_glove else WindowUnavailable
    service = white_glove_service_seconds(retailer, fresh) if white_glove else fresh.service_seconds

    async def refuse(reason: str) -> SchedulingError:
        offers = await _offers(
            session, retailer, fresh, days=3, now=now, white_glove=white_glove, states=locked.states
        )
        return unavailable(reason, _nearest([o for o in offers if o.day >= day] or offers, start))

    if start < now + cutoff(retailer):
        raise await refuse("that window starts too soon to be planned")
    current = (fresh.window_start, fresh.window_end)
    if (
        not white_glove
        and (start, end) == current
        and fresh.status == DeliveryStatus.scheduled
        and locked.stop
    ):
        return ChangeResult(
            fresh, fresh.window_start, fresh.window_end, locked.stop.vehicle_id, locked.stop.eta
        )

    before = _snapshot(fresh, locked.stop)
    best: tuple[PlanState, Choice, StopSpec] | None = None
    for plan in targets:
        state = locked.states.get(plan.id or 0)
        if state is None or not _reachable(fresh, state):
            continue
        window = (state.seconds(start), state.seconds(end))
        choice = _view(fresh, state, white_glove=white_glove, service=service).choose(window)
        if choice is not None and (best is None or choice.detour < best[1].detour):
            best = (
                state,
                choice,
                _with_window(_spec(fresh, state, white_glove=white_glove, service=service), window),
            )
    if targets and best is None:
        raise await refuse("no route of that day can keep that window")
    if not targets:
        if white_glove:
            raise await refuse("in-home setup can only be booked on a day whose crews are planned")
        tz = ZoneInfo(fresh.timezone)
        if (start, end) not in _pool_slots(retailer, day, tz):
            raise await refuse("that day is not planned yet: choose one of the retailer's slots")
        if not await _move_pool_place(
            session, retailer, fresh, start, end, slot_capacity(retailer, start.astimezone(tz))
        ):
            raise await refuse("that slot is full")
    else:
        await _release_pool_place(session, fresh)
    await _release_pickup_place(session, fresh)
    fresh.pickup_point_id = None  # to the door

    changed: dict[int, dict[int, RouteState]] = {}
    await _take_off_route(uow, locked, changed)
    stop = locked.stop
    vehicle_id: int | None = None
    eta: datetime | None = None
    if best is not None:
        state, choice, spec = best
        base = changed.get(state.plan_id, {}).get(choice.route) or state.routes[choice.route]
        if stop is None:
            stop = Stop(vehicle_id=base.vehicle_id, delivery_id=fresh.id or 0, sequence=choice.position)
            session.add(stop)
            await session.flush()
        elif stop.status != StopStatus.planned:  # a failed attempt gets a new one
            stop.status, stop.arrived_at, stop.completed_at = StopStatus.planned, None, None
            session.add(stop)
        new_route = base.with_stop(choice.position, stop.id or 0, spec, state.travel)
        if not new_route.keeps(state.routes[choice.route]):
            raise unavailable("no route of that day can keep that window", [])
        changed.setdefault(state.plan_id, {})[choice.route] = new_route
        vehicle_id = base.vehicle_id
        eta = state.at(new_route.timing.service_starts[choice.position])
        fresh.plan_id, fresh.day, fresh.status = state.plan_id, day, DeliveryStatus.scheduled
    else:
        if stop is not None:
            await session.delete(stop)
            stop = None
        fresh.plan_id, fresh.day, fresh.status = None, day, DeliveryStatus.pooled
    fresh.window_start, fresh.window_end = start, end
    if white_glove and not fresh.white_glove:  # booked through Doorstep: calling it off restores this
        fresh.service_seconds_without_setup = fresh.service_seconds
    if white_glove or fresh.white_glove_start is not None:  # the setup slot follows the window
        fresh.white_glove, fresh.service_seconds = True, service
        fresh.white_glove_start, fresh.white_glove_end = start, end
    fresh.updated_at = now
    session.add(fresh)
    installs = await _commit_routes(uow, locked, changed, retailer, skip_eta_for=fresh.id)
    if stop is not None:
        await session.refresh(stop)
    after = _snapshot(fresh, stop)
    await _log_delivery_change(
        session,
        retailer,
        "white_glove_booked" if white_glove else "rescheduled",
        actor,
        fresh,
        before=before,
        after=after,
        now=now,
    )
    if white_glove:
        uow.record(WhiteGloveBooked(retailer.id or 0, fresh.id or 0, start, end, actor=actor.kind, at=now))
    else:
        uow.record(DeliveryRescheduled(retailer.id or 0, fresh.id or 0, start, end, actor=actor.kind, at=now))
    await _commit(uow, installs)
    return ChangeResult(fresh, start, end, vehicle_id, eta)


async def reschedule_delivery(
    uow: UnitOfWork, delivery: Delivery, start: datetime, end: datetime, actor: Actor, *, now: datetime
) -> ChangeResult:
    """Move the delivery to [start, end): the cheapest feasible insertion over every route of that
    day, or that day's pool when it has no plan yet; WindowUnavailable carries the nearest offers."""
    return await _move(uow, delivery, start, end, actor, now=now, white_glove=False)


async def book_white_glove(
    uow: UnitOfWork, delivery: Delivery, start: datetime, end: datetime, actor: Actor, *, now: datetime
) -> ChangeResult:
    """Book in-home setup in [start, end) on a crew's route (longer service), or SlotUnavailable."""
    return await _move(uow, delivery, start, end, actor, now=now, white_glove=True)


async def cancel_white_glove(
    uow: UnitOfWork, delivery: Delivery, actor: Actor, *, now: datetime
) -> ChangeResult:
    """Call off an in-home setup booked through Doorstep: the parcel keeps its window and its place on
    the route, with its drop-off time back; the shorter stop can only make the route easier to keep.

    A setup sold with the order is the retailer's to take off (SetupCameWithTheOrder)."""
    session = uow.session
    retailer = await _retailer(session, delivery.retailer_id)
    locked = await _lock(session, delivery, [])
    fresh = locked.delivery
    _check_changeable(fresh, locked.stop)
    if not fresh.white_glove:
        raise NoSetupBooked("this delivery has no in-home setup booked")
    if fresh.service_seconds_without_setup is None:  # not booked through Doorstep: sold with the order
        raise SetupCameWithTheOrder("the in-home setup came with the order: the retailer can take it off")
    before = _snapshot(fresh, locked.stop)
    slot_start, slot_end = fresh.white_glove_start, fresh.white_glove_end
    fresh.white_glove, fresh.service_seconds = False, fresh.service_seconds_without_setup
    fresh.white_glove_start = fresh.white_glove_end = fresh.service_seconds_without_setup = None
    fresh.updated_at = now
    session.add(fresh)
    changed: dict[int, dict[int, RouteState]] = {}
    state = locked.states.get(fresh.plan_id or 0)
    if state is not None and locked.stop is not None and fresh.id in state.where:
        row = state.where[fresh.id or 0]
        route = state.routes[row]
        position = route.position_of(fresh.id or 0)
        # the same stop as loaded (window, what the driver reported), with the drop-off time and skills
        spec = replace(
            route.specs[position], service=fresh.service_seconds, skills=frozenset(fresh.skills or [])
        )
        changed[state.plan_id] = {row: route.with_spec(position, spec, state.travel)}
    installs = await _commit_routes(uow, locked, changed, retailer, skip_eta_for=fresh.id)
    if locked.stop is not None:
        await session.refresh(locked.stop)
    await _log_delivery_change(
        session,
        retailer,
        "white_glove_cancelled",
        actor,
        fresh,
        before=before,
        after=_snapshot(fresh, locked.stop),
        now=now,
    )
    uow.record(
        WhiteGloveCancelled(
            retailer.id or 0, fresh.id or 0, slot_start or now, slot_end or now, actor=actor.kind, at=now
        )
    )
    await _commit(uow, installs)
    eta = locked.stop.eta if locked.stop is not None else None
    vehicle_id = locked.stop.vehicle_id if locked.stop is not None else None
    return ChangeResult(fresh, fresh.window_start, fresh.window_end, vehicle_id, eta)


# --- pickup points ---------------------------------------------------------------------------------


def _opening(point: PickupPoint, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    ranges = point.opening_hours.get(DAY_KEYS[day.weekday()], [])
    return [(_local(day, tz, r[0]), _local(day, tz, r[1])) for r in ranges]


def _available_from(point: PickupPoint, day: date, tz: ZoneInfo, ready: datetime) -> datetime | None:
    """When the parcel can be collected: the first opening on its day that ends after it arrives."""
    for opens, closes in sorted(_opening(point, day, tz)):
        if closes > ready:
            return max(opens, ready).astimezone(UTC)
    return None


async def _departure(
    session: AsyncSession, delivery: Delivery, retailer: Retailer, day: date
) -> tuple[datetime, Place | None, float]:
    """When and where the parcel leaves for its day: its vehicle's shift start and depot, if routed."""
    tz = ZoneInfo(delivery.timezone)
    stop = await _stop_of(session, delivery.id)
    if stop is not None:
        vehicle = await session.get(Vehicle, stop.vehicle_id)
        plan = await session.get(RoutePlan, vehicle.plan_id) if vehicle else None
        if vehicle is not None and plan is not None and plan.day == day:
            spec = vehicle_spec(vehicle)
            return clock.at(plan.day, plan.timezone, vehicle.shift_start), spec.start, plan.speed_kmh
    hours = _setting(retailer, "delivery_hours", list(DEFAULT_DELIVERY_HOURS))
    return _local(day, tz, hours[0]).astimezone(UTC), None, 30.0


async def _reserved(session: AsyncSession, point_ids: list[int], day: date) -> dict[int, int]:
    rows = (
        await session.exec(
            select(PickupReservation.pickup_point_id, func.count())
            .where(col(PickupReservation.pickup_point_id).in_(point_ids), PickupReservation.day == day)
            .group_by(col(PickupReservation.pickup_point_id))
        )
    ).all()
    return {point_id: int(count) for point_id, count in rows}


async def _pickup_options(
    session: AsyncSession, retailer: Retailer, delivery: Delivery, now: datetime, only: int | None = None
) -> list[PickupOption]:
    tz = ZoneInfo(delivery.timezone)
    earliest = now + cutoff(retailer)
    day = first_possible_day(retailer, delivery, now)
    query = select(PickupPoint).where(PickupPoint.retailer_id == delivery.retailer_id)
    if only is not None:
        query = query.where(PickupPoint.id == only)
    points = list((await session.exec(query)).all())
    leave, depot, speed = await _departure(session, delivery, retailer, day)
    travel = TravelModel(None, speed)
    counts = await _reserved(session, [p.id or 0 for p in points], day)
    here = (delivery.lon, delivery.lat)
    options = []
    for point in points:
        there = Place(point.lon, point.lat)
        ready = max(earliest, leave + timedelta(seconds=travel.seconds(depot, there)))
        if ready.astimezone(tz).date() != day:
            continue
        available = _available_from(point, day, tz, ready)
        if available is None or counts.get(point.id or 0, 0) >= point.capacity:
            continue
        options.append(
            PickupOption(
                point=point,
                distance_m=haversine_m(here, (point.lon, point.lat)),
                available_from=available,
                hours_today=[list(r) for r in point.opening_hours.get(DAY_KEYS[day.weekday()], [])],
            )
        )
    options.sort(key=lambda o: (o.distance_m, o.point.id or 0))
    return options


async def pickup_options(
    uow: UnitOfWork, delivery: Delivery, *, now: datetime, limit: int = 5
) -> list[PickupOption]:
    """The retailer's nearest pickup points open when the parcel could get there, with room that day
    (for a parcel already going to one, the others)."""
    session = uow.session
    fresh = await _fresh(session, delivery.id)
    _check_changeable(fresh, await _stop_of(session, fresh.id), MOVABLE)
    retailer = await _retailer(session, fresh.retailer_id)
    options = await _pickup_options(session, retailer, fresh, now)
    if fresh.status == DeliveryStatus.redirected:
        options = [o for o in options if o.point.id != fresh.pickup_point_id]
    return options[: max(0, limit)]


async def redirect_to_pickup(
    uow: UnitOfWork, delivery: Delivery, pickup_point_id: int, actor: Actor, *, now: datetime
) -> ChangeResult:
    """Reserve a place at the point (counted under its row lock), take the stop off its route."""
    session = uow.session
    retailer = await _retailer(session, delivery.retailer_id)
    locked = await _lock(session, delivery, [])
    fresh = locked.delivery
    _check_changeable(fresh, locked.stop, MOVABLE)
    if fresh.status == DeliveryStatus.redirected and fresh.pickup_point_id == pickup_point_id:
        return ChangeResult(fresh, fresh.window_start, fresh.window_end, None, None)
    point = (
        await session.exec(
            select(PickupPoint)
            .where(PickupPoint.id == pickup_point_id, PickupPoint.retailer_id == fresh.retailer_id)
            .with_for_update()
        )
    ).first()
    if point is None:
        raise PickupPointUnknown("no such pickup point")
    tz = ZoneInfo(fresh.timezone)
    day = first_possible_day(retailer, fresh, now)
    counts = await _reserved(session, [pickup_point_id], day)
    if counts.get(pickup_point_id, 0) >= point.capacity:
        raise PickupPointFull(f"{point.name} has no room left that day")
    options = await _pickup_options(session, retailer, fresh, now, only=pickup_point_id)
    if not options:
        raise PickupPointUnavailable(f"{point.name} is closed when the parcel could get there")
    option = options[0]
    before = _snapshot(fresh, locked.stop)
    await _release_pickup_place(session, fresh)
    session.add(
        PickupReservation(pickup_point_id=pickup_point_id, delivery_id=fresh.id or 0, day=day, created_at=now)
    )
    changed: dict[int, dict[int, RouteState]] = {}
    await _release_pool_place(session, fresh)
    await _take_off_route(uow, locked, changed)
    if locked.stop is not None:
        await session.delete(locked.stop)
    closes = next(
        (
            c
            for o, c in sorted(_opening(point, day, tz))
            if o <= option.available_from < c or option.available_from <= o
        ),
        None,
    )
    fresh.status, fresh.pickup_point_id, fresh.day = DeliveryStatus.redirected, pickup_point_id, day
    fresh.window_start, fresh.window_end = option.available_from, closes.astimezone(UTC) if closes else None
    fresh.updated_at = now
    session.add(fresh)
    installs = await _commit_routes(uow, locked, changed, retailer, skip_eta_for=fresh.id)
    await _log_delivery_change(
        session, retailer, "redirected", actor, fresh, before=before, after=_snapshot(fresh, None), now=now
    )
    uow.record(RedirectedToPickup(retailer.id or 0, fresh.id or 0, pickup_point_id, actor=actor.kind, at=now))
    await _commit(uow, installs)
    return ChangeResult(fresh, fresh.window_start, fresh.window_end, None, None)


async def _log_delivery_change(
    session: AsyncSession,
    retailer: Retailer,
    kind: str,
    actor: Actor,
    delivery: Delivery,
    *,
    before: dict[str, Any],
    after: dict[str, Any],
    now: datetime,
) -> None:
    """One change-log line for a change to `delivery`, with who asked for it and on which channel."""
    await log_change(
        session,
        retailer,
        kind,
        actor=actor.kind,
        actor_id=actor.id,
        channel=actor.channel,
        delivery_id=delivery.id,
        plan_id=delivery.plan_id,
        before=before,
        after=after,
        now=now,
    )


# --- instructions and cancellation -------------------------------------------------------------------


async def set_instructions(
    uow: UnitOfWork, delivery: Delivery, instructions: str, actor: Actor, *, now: datetime | None = None
) -> Delivery:
    """Replace the delivery's instructions for the driver (plain text, at most 500 characters)."""
    text = " ".join(instructions.replace("\r", " ").split("\n")).strip()
    if len(text) > MAX_INSTRUCTIONS:
        raise InvalidRequest(f"instructions are at most {MAX_INSTRUCTIONS} characters")
    if any(ord(c) < 32 for c in text):
        raise InvalidRequest("instructions must be plain text")
    session = uow.session
    fresh = await _fresh(session, delivery.id)
    if fresh.status in (DeliveryStatus.delivered, DeliveryStatus.cancelled, DeliveryStatus.picked_up):
        raise DeliveryNotChangeable(f"a delivery that is {fresh.status} cannot be changed")
    retailer = await _retailer(session, fresh.retailer_id)
    now = now or datetime.now(UTC)
    before = {"instructions": fresh.instructions}
    fresh.instructions, fresh.updated_at = text, now
    session.add(fresh)
    await _log_delivery_change(
        session,
        retailer,
        "instructions_changed",
        actor,
        fresh,
        before=before,
        after={"instructions": text},
        now=now,
    )
    await uow.commit()
    return fresh


async def cancel_delivery(
    uow: UnitOfWork, delivery: Delivery, actor: Actor, *, now: datetime
) -> ChangeResult:
    """Cancel a delivery not yet on its way: its stop leaves the route, its reservations are freed."""
    session = uow.session
    retailer = await _retailer(session, delivery.retailer_id)
    locked = await _lock(session, delivery, [])
    fresh = locked.delivery
    if fresh.status not in (*CHANGEABLE, DeliveryStatus.redirected):
        raise DeliveryNotChangeable(f"a delivery that is {fresh.status} cannot be cancelled")
    if locked.stop is not None and locked.stop.status in (StopStatus.arrived, StopStatus.done):
        raise DeliveryNotChangeable("the driver has already reached this stop")
    before = _snapshot(fresh, locked.stop)
    changed: dict[int, dict[int, RouteState]] = {}
    await _release_pool_place(session, fresh)
    await _take_off_route(uow, locked, changed)
    if locked.stop is not None:
        await session.delete(locked.stop)
    await _release_pickup_place(session, fresh)
    fresh.status, fresh.updated_at = DeliveryStatus.cancelled, now
    session.add(fresh)
    installs = await _commit_routes(uow, locked, changed, retailer, skip_eta_for=fresh.id)
    await _log_delivery_change(
        session, retailer, "cancelled", actor, fresh, before=before, after=_snapshot(fresh, None), now=now
    )
    uow.record(DeliveryCancelled(retailer.id or 0, fresh.id or 0))
    await _commit(uow, installs)
    return ChangeResult(fresh, fresh.window_start, fresh.window_end, None, None)
