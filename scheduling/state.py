"""A day's plan in memory: routes with their schedules and slack, and a vectorised insertion search.

Loading 100,000 stops takes far longer than a request may, so each process keeps the plans it has
read, keyed by plan id and checked against the plan row's `version` (bumped by every change, read
under the plan's lock) before use. A change builds new route states, and only after its commit
are they installed, so the cache never runs ahead of the database.

The search prices every position of every route at once with NumPy (forward slack makes each
position an O(1) check); the route it picks is then re-checked by the exact pure-Python schedule.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine
from sqlalchemy import select as sql_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Delivery, RoutePlan, Stop, StopStatus, Vehicle
from scheduling import clock
from scheduling.repository import vehicle_spec
from scheduling.routing import (
    EARTH_RADIUS_M,
    Insertion,
    Place,
    Schedule,
    StopSpec,
    TravelModel,
    VehicleSpec,
    best_insertion_in_route,
    can_serve,
    first_open_position,
    forward_slack,
    load,
    schedule,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
NO_WINDOW = (0, 86_400 * 2)
MAX_CACHED_PLANS = 32  # per database engine; the least recently used plan is dropped first


@dataclass
class RouteState:
    """One vehicle's route with its schedule, forward slack and load, computed once."""

    vehicle_id: int
    spec: VehicleSpec
    stop_ids: list[int]
    delivery_ids: list[int]
    specs: list[StopSpec]
    timing: Schedule = field(init=False)
    slack: list[int] = field(init=False)
    first_open: int = field(init=False)
    load: list[int] = field(init=False)

    def compute(self, travel: TravelModel) -> RouteState:
        self.timing = schedule(self.spec, self.specs, travel)
        self.slack = forward_slack(self.spec, self.specs, self.timing)
        self.first_open = first_open_position(self.specs)
        self.load = load(self.specs, len(self.spec.capacity))
        return self

    def without(self, delivery_id: int, travel: TravelModel) -> RouteState:
        i = self.delivery_ids.index(delivery_id)
        return RouteState(
            self.vehicle_id,
            self.spec,
            self.stop_ids[:i] + self.stop_ids[i + 1 :],
            self.delivery_ids[:i] + self.delivery_ids[i + 1 :],
            self.specs[:i] + self.specs[i + 1 :],
        ).compute(travel)

    def with_stop(self, position: int, stop_id: int, spec: StopSpec, travel: TravelModel) -> RouteState:
        return RouteState(
            self.vehicle_id,
            self.spec,
            [*self.stop_ids[:position], stop_id, *self.stop_ids[position:]],
            [*self.delivery_ids[:position], spec.key, *self.delivery_ids[position:]],
            [*self.specs[:position], spec, *self.specs[position:]],
        ).compute(travel)

    def with_spec(self, position: int, spec: StopSpec, travel: TravelModel) -> RouteState:
        """The same stops, the one at `position` with a new spec (a shorter service, other skills)."""
        return RouteState(
            self.vehicle_id,
            self.spec,
            list(self.stop_ids),
            list(self.delivery_ids),
            [*self.specs[:position], spec, *self.specs[position + 1 :]],
        ).compute(travel)

    def late_keys(self) -> set[int]:
        return {self.specs[i].key for i in self.timing.late_stops}

    def keeps(self, before: RouteState | None) -> bool:
        """No stop late that was not late before, no longer overrun, and the load fits."""
        if self.spec.capacity and any(u > c for u, c in zip(self.load, self.spec.capacity, strict=True)):
            return False
        was_late = before.late_keys() if before is not None else set()
        was_over = before.timing.shift_overrun if before is not None else 0
        return self.late_keys() <= was_late and self.timing.shift_overrun <= was_over

    def position_of(self, delivery_id: int) -> int:
        return self.delivery_ids.index(delivery_id)


@dataclass
class Choice:
    """Where a stop goes: a route of a plan, a position, the detour and its timing."""

    route: int  # index in PlanState.routes
    position: int
    detour: int
    arrival: int
    service_start: int


class RouteArrays:
    """Every insertion position of every route as (routes x positions) arrays, updated row by row."""

    def __init__(self, routes: list[RouteState], travel: TravelModel) -> None:
        self.travel = travel
        self.durations = (
            np.asarray(travel.durations, dtype=np.int64) if travel.durations is not None else None
        )
        self.dimensions = max((len(r.spec.capacity) for r in routes), default=0)
        self.width = max((len(r.specs) for r in routes), default=0) + 8
        self._allocate(len(routes))
        self.skills: list[frozenset[int]] = []
        self._skill_masks: dict[frozenset[int], BoolArray] = {}
        for i, route in enumerate(routes):
            self.skills.append(route.spec.skills)
            self.set_row(i, route)

    def _allocate(self, rows: int) -> None:
        shape = (rows, self.width)
        self.valid: BoolArray = np.zeros(shape, dtype=np.bool_)
        self.prev_lon: FloatArray = np.full(shape, np.nan)
        self.prev_lat: FloatArray = np.full(shape, np.nan)
        self.next_lon: FloatArray = np.full(shape, np.nan)
        self.next_lat: FloatArray = np.full(shape, np.nan)
        self.prev_cos: FloatArray = np.full(shape, np.nan)
        self.next_cos: FloatArray = np.full(shape, np.nan)
        self.prev_idx: IntArray = np.full(shape, -1, dtype=np.int64)
        self.next_idx: IntArray = np.full(shape, -1, dtype=np.int64)
        self.depart: IntArray = np.zeros(shape, dtype=np.int64)
        self.old_next: IntArray = np.zeros(shape, dtype=np.int64)
        self.slack: IntArray = np.zeros(shape, dtype=np.int64)
        self.reach: IntArray = np.zeros(
            shape, dtype=np.int64
        )  # old_next + slack: latest the next place may be reached
        self.base_leg: IntArray = np.zeros(shape, dtype=np.int64)
        self.cap_left: IntArray = np.full((rows, max(self.dimensions, 1)), 10**12, dtype=np.int64)

    def _grow(self, width: int) -> None:
        old = {name: getattr(self, name) for name in _ROW_ARRAYS}
        rows, old_width = self.valid.shape
        self.width = width
        cap_left = self.cap_left
        self._allocate(rows)
        self.cap_left = cap_left
        for name, array in old.items():
            getattr(self, name)[:, :old_width] = array

    def set_row(self, row: int, route: RouteState) -> None:
        n = len(route.specs)
        if n + 1 > self.width:
            self._grow(n + 1 + max(8, n // 4))
        places: list[Place | None] = [route.spec.start, *(s.place for s in route.specs), route.spec.end]
        lon = np.radians([np.nan if p is None else p.lon for p in places])
        lat = np.radians([np.nan if p is None else p.lat for p in places])
        cos = np.cos(lat)
        idx = [-1 if p is None or p.index is None else p.index for p in places]
        timing = route.timing
        self.valid[row, :] = False
        self.valid[row, route.first_open : n + 1] = True
        self.prev_lon[row, : n + 1], self.prev_lat[row, : n + 1] = lon[: n + 1], lat[: n + 1]
        self.next_lon[row, : n + 1], self.next_lat[row, : n + 1] = lon[1:], lat[1:]
        self.prev_cos[row, : n + 1], self.next_cos[row, : n + 1] = cos[: n + 1], cos[1:]
        self.prev_idx[row, : n + 1], self.next_idx[row, : n + 1] = idx[: n + 1], idx[1:]
        self.depart[row, : n + 1] = [route.spec.shift[0] + route.spec.delay, *timing.departures]
        self.old_next[row, : n + 1] = [*timing.arrivals, timing.end_time]
        self.slack[row, : n + 1] = route.slack
        self.reach[row, :] = 0
        self.reach[row, : n + 1] = self.old_next[row, : n + 1] + self.slack[row, : n + 1]
        self.base_leg[row, : n + 1] = [0] * route.first_open + [
            self.travel.seconds(places[p], places[p + 1]) for p in range(route.first_open, n + 1)
        ]
        if route.spec.capacity:
            self.cap_left[row, : len(route.spec.capacity)] = [
                c - u for c, u in zip(route.spec.capacity, route.load, strict=True)
            ]
        else:
            self.cap_left[row, :] = 10**12
        if row < len(self.skills):
            self.skills[row] = route.spec.skills

    def serves(self, needed: frozenset[int]) -> BoolArray:
        """Which routes have every skill in `needed` (cached per skill set)."""
        mask = self._skill_masks.get(needed)
        if mask is None:
            mask = np.fromiter(
                (needed <= skills for skills in self.skills), dtype=np.bool_, count=len(self.skills)
            )
            self._skill_masks[needed] = mask
        return mask.copy()

    def seconds_between(
        self,
        lon: FloatArray,
        lat: FloatArray,
        cos: FloatArray,
        idx: IntArray,
        place: Place,
        *,
        towards: bool,
    ) -> IntArray:
        """Travel seconds from each place (radians, with the cosine of its latitude) to `place`, or from
        `place` when not `towards`, as TravelModel.seconds computes them (great-circle distance is
        symmetric); 0 where the route has no such place."""
        lon2, lat2 = math.radians(place.lon), math.radians(place.lat)
        h = np.sin((lat2 - lat) / 2) ** 2 + cos * math.cos(lat2) * np.sin((lon2 - lon) / 2) ** 2
        metres = (2 * EARTH_RADIUS_M) * np.arcsin(np.sqrt(h))
        seconds = np.round(metres / self.travel.metres_per_second)
        seconds = np.where(np.isnan(seconds), 0, seconds).astype(np.int64)
        if self.durations is not None and place.index is not None:
            has = idx >= 0
            safe = np.where(has, idx, 0)
            matrix = self.durations[safe, place.index] if towards else self.durations[place.index, safe]
            seconds = np.where(has, matrix, seconds)
        return seconds


_ROW_ARRAYS = (
    "valid",
    "prev_lon",
    "prev_lat",
    "next_lon",
    "next_lat",
    "prev_cos",
    "next_cos",
    "prev_idx",
    "next_idx",
    "depart",
    "old_next",
    "slack",
    "reach",
    "base_leg",
)


@dataclass
class Candidates:
    """The positions where a stop could go whatever its window: filtered once, priced per window."""

    rows: IntArray
    positions: IntArray
    arrival: IntArray
    tail: IntArray  # service + travel on to the next place - the next place's current arrival
    slack: IntArray
    detour: IntArray

    def best(self, window: tuple[int, int]) -> tuple[int, int, int, int, int] | None:
        if self.rows.size == 0:
            return None
        begin = np.maximum(self.arrival, window[0])
        ok = (self.arrival <= window[1]) & (begin + self.tail <= self.slack)
        if not ok.any():
            return None
        i = int(np.argmin(np.where(ok, self.detour, np.iinfo(np.int64).max)))
        return (
            int(self.rows[i]),
            int(self.positions[i]),
            int(self.detour[i]),
            int(self.arrival[i]),
            int(begin[i]),
        )


class PlanState:
    """A plan's routes in memory, at one version of the plan row."""

    def __init__(
        self,
        plan_id: int,
        version: int,
        created_at: datetime,
        day: date,
        timezone: str,
        white_glove_skill: int,
        travel: TravelModel,
        routes: list[RouteState],
    ) -> None:
        self.plan_id, self.version, self.created_at = plan_id, version, created_at
        self.day, self.timezone, self.white_glove_skill = day, timezone, white_glove_skill
        self.travel = travel
        self.routes = routes
        self.where: dict[int, int] = {d: i for i, r in enumerate(routes) for d in r.delivery_ids}
        self.row_of: dict[int, int] = {r.vehicle_id: i for i, r in enumerate(routes)}
        self._arrays: RouteArrays | None = None

    @property
    def arrays(self) -> RouteArrays:
        if self._arrays is None:
            self._arrays = RouteArrays(self.routes, self.travel)
        return self._arrays

    def seconds(self, instant: datetime) -> int:
        return clock.seconds_since_midnight(self.day, self.timezone, instant)

    def at(self, seconds: int) -> datetime:
        return clock.at(self.day, self.timezone, seconds)

    def install(self, changed: dict[int, RouteState], version: int) -> None:
        """Take the routes a committed change rewrote; the plan row now has `version`."""
        for row, route in changed.items():
            for delivery_id in self.routes[row].delivery_ids:
                if self.where.get(delivery_id) == row:
                    del self.where[delivery_id]
            self.routes[row] = route
            for delivery_id in route.delivery_ids:
                self.where[delivery_id] = row
            if self._arrays is not None:
                self._arrays.set_row(row, route)
        self.version = version

    def candidates(
        self, new: StopSpec, exclude_row: int | None = None, bounds: tuple[int, int] | None = None
    ) -> Candidates:
        """Positions that could take `new` for a window within `bounds` (default: its own window).

        A cheap time filter runs first over every position (the vehicle must leave the previous
        place by the window's end; the next place must be able to absorb the service), so the
        travel times are computed only where the time of day fits.
        """
        arrays = self.arrays
        low, high = bounds or new.window
        route_ok = arrays.serves(new.skills)
        if new.amount and arrays.dimensions:
            amount = np.zeros(arrays.cap_left.shape[1], dtype=np.int64)
            amount[: len(new.amount)] = new.amount[: arrays.cap_left.shape[1]]
            route_ok &= (arrays.cap_left >= amount).all(axis=1)
        if exclude_row is not None and route_ok.size:
            route_ok[exclude_row] = False
        mask = arrays.valid & route_ok[:, None]
        mask &= arrays.depart <= high
        mask &= arrays.reach >= low + new.service
        flat = np.flatnonzero(mask)

        def take(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.take(array, flat)

        t_in = arrays.seconds_between(
            take(arrays.prev_lon),
            take(arrays.prev_lat),
            take(arrays.prev_cos),
            take(arrays.prev_idx),
            new.place,
            towards=True,
        )
        t_out = arrays.seconds_between(
            take(arrays.next_lon),
            take(arrays.next_lat),
            take(arrays.next_cos),
            take(arrays.next_idx),
            new.place,
            towards=False,
        )
        arrival = take(arrays.depart) + t_in
        tail = new.service + t_out - take(arrays.old_next)
        slack = take(arrays.slack)
        keep = (arrival <= high) & (np.maximum(arrival, low) + tail <= slack)
        detour = t_in + t_out - take(arrays.base_leg)
        rows, positions = np.divmod(flat, arrays.width)
        return Candidates(rows[keep], positions[keep], arrival[keep], tail[keep], slack[keep], detour[keep])

    def best_choice(
        self,
        new: StopSpec,
        window: tuple[int, int],
        *,
        found: Candidates | None = None,
        own: RouteState | None = None,
        own_row: int | None = None,
    ) -> Choice | None:
        """Cheapest feasible position over all routes for `new` with `window`.

        `own` is the delivery's current route without it (checked exactly), `found` the vectorised
        candidates of every other route. The winner is re-checked with the exact schedule.
        """
        spec = _with_window(new, window)
        if found is None:
            found = self.candidates(spec, exclude_row=own_row, bounds=window)
        best: Choice | None = None
        if own is not None and own_row is not None:
            exact = best_insertion_in_route(
                own.spec, own.specs, spec, self.travel, base=own.timing, slack=own.slack
            )
            if exact is not None:
                best = _choice(own_row, exact)
        vector = found.best(window)
        if vector is not None and (best is None or vector[2] < best.detour):
            row, position, detour, arrival, begin = vector
            route = self.routes[row]
            if route.with_stop(position, 0, spec, self.travel).keeps(route):
                best = Choice(row, position, detour, arrival, begin)
            else:  # float rounding disagreed with the exact model: fall back to the exact search
                best = self._exact_best(spec, own_row, best)
        return best

    def _exact_best(self, spec: StopSpec, skip_row: int | None, best: Choice | None) -> Choice | None:
        for row, route in enumerate(self.routes):
            if row == skip_row or not can_serve(route.spec, spec):
                continue
            exact = best_insertion_in_route(
                route.spec, route.specs, spec, self.travel, base=route.timing, slack=route.slack
            )
            if exact is not None and (best is None or exact.added_seconds < best.detour):
                best = _choice(row, exact)
        return best


def _choice(row: int, insertion: Insertion) -> Choice:
    return Choice(
        row, insertion.position, insertion.added_seconds, insertion.arrival, insertion.service_start
    )


def _with_window(spec: StopSpec, window: tuple[int, int]) -> StopSpec:
    return StopSpec(
        key=spec.key,
        place=spec.place,
        service=spec.service,
        window=window,
        amount=spec.amount,
        skills=spec.skills,
    )


# --- loading and the per-engine cache -------------------------------------------------------------


_CACHES: weakref.WeakKeyDictionary[Engine, dict[int, PlanState]] = weakref.WeakKeyDictionary()


def _cache_for(session: AsyncSession) -> dict[int, PlanState]:
    bind: Any = session.bind
    engine: Engine = bind.sync_engine if hasattr(bind, "sync_engine") else bind
    return _CACHES.setdefault(engine, {})


async def lock_plan(session: AsyncSession, plan_id: int) -> RoutePlan | None:
    """The plan row, locked until commit on PostgreSQL (SQLite's one writer serialises anyway)."""
    result = await session.exec(
        select(RoutePlan)
        .where(RoutePlan.id == plan_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.first()


async def plan_state(session: AsyncSession, plan: RoutePlan) -> PlanState:
    """The plan in memory at the version just read; loaded from storage when the cache is behind."""
    assert plan.id is not None
    cache = _cache_for(session)
    cached = cache.pop(plan.id, None)
    if cached is not None and cached.version == plan.version and cached.created_at == plan.created_at:
        cache[plan.id] = cached  # most recently used last
        return cached
    state = await load_state(session, plan)
    cache[plan.id] = state
    while len(cache) > MAX_CACHED_PLANS:
        cache.pop(next(iter(cache)))
    return state


def install(session: AsyncSession, state: PlanState, changed: dict[int, RouteState], version: int) -> None:
    """After a commit: the cached plan takes the rewritten routes, unless another took its place."""
    cache = _cache_for(session)
    if cache.get(state.plan_id) is state and state.version == version - 1:
        state.install(changed, version)
    else:
        cache.pop(state.plan_id, None)


def forget(session: AsyncSession, plan_id: int) -> None:
    _cache_for(session).pop(plan_id, None)


_LOAD_COLUMNS: list[Any] = [
    col(Stop.id),
    col(Stop.vehicle_id),
    col(Stop.status),
    col(Stop.arrived_at),
    col(Stop.completed_at),
    col(Delivery.id),
    col(Delivery.lon),
    col(Delivery.lat),
    col(Delivery.location_index),
    col(Delivery.service_seconds),
    col(Delivery.window_start),
    col(Delivery.window_end),
    col(Delivery.size),
    col(Delivery.skills),
    col(Delivery.white_glove),
]


async def load_state(session: AsyncSession, plan: RoutePlan) -> PlanState:
    assert plan.id is not None
    vehicles = list(
        (
            await session.exec(
                select(Vehicle).where(Vehicle.plan_id == plan.id).order_by(col(Vehicle.vroom_id))
            )
        ).all()
    )
    rows = (
        await (await session.connection()).execute(
            sql_select(*_LOAD_COLUMNS)
            .join(Delivery, col(Delivery.id) == col(Stop.delivery_id))
            .join(Vehicle, col(Vehicle.id) == col(Stop.vehicle_id))
            .where(col(Vehicle.plan_id) == plan.id)
            .order_by(col(Stop.vehicle_id), col(Stop.sequence))
        )
    ).all()
    midnight = clock.local_midnight(plan.day, plan.timezone)

    def seconds(instant: datetime | None) -> int | None:
        return None if instant is None else int((instant - midnight).total_seconds())

    by_vehicle: dict[int, tuple[list[int], list[int], list[StopSpec]]] = {}
    for row in rows:
        (stop_id, vehicle_id, status, arrived_at, completed_at, delivery_id, lon, lat, index, service) = row[
            :10
        ]
        window_start, window_end, size, skills, white_glove = row[10:]
        ws, we = seconds(window_start), seconds(window_end)
        needed = set(skills or [])
        if white_glove:
            needed.add(plan.white_glove_skill)
        spec = StopSpec(
            key=delivery_id,
            place=Place(lon, lat, index),
            service=service,
            window=(ws, we) if ws is not None and we is not None else NO_WINDOW,
            amount=tuple(size or ()),
            skills=frozenset(needed),
            done=status != StopStatus.planned,
            actual_arrival=seconds(arrived_at),
            actual_departure=seconds(completed_at),
        )
        ids, deliveries, specs = by_vehicle.setdefault(vehicle_id, ([], [], []))
        ids.append(stop_id)
        deliveries.append(delivery_id)
        specs.append(spec)
    travel = TravelModel(plan.durations, plan.speed_kmh)
    routes = []
    for vehicle in vehicles:
        assert vehicle.id is not None
        ids, deliveries, specs = by_vehicle.get(vehicle.id, ([], [], []))
        routes.append(RouteState(vehicle.id, vehicle_spec(vehicle), ids, deliveries, specs).compute(travel))
    return PlanState(
        plan.id,
        plan.version,
        plan.created_at,
        plan.day,
        plan.timezone,
        plan.white_glove_skill,
        travel,
        routes,
    )
