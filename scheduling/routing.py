"""Pure route arithmetic: travel times, schedules along a route, and feasible insertion.

Times are integer seconds since local midnight of the plan's day. A stop's service starts at
max(arrival, window start); a stop is late when its arrival is after its window's end (VROOM's
convention: the arrival must fall inside a time window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

EARTH_RADIUS_M = 6_371_000.0


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


@dataclass(frozen=True, slots=True)
class Place:
    """A location: coordinates, and an index into the plan's matrix when it has one."""

    lon: float
    lat: float
    index: int | None = None


class TravelModel:
    """Durations between places: the plan's matrix if it has one, else great-circle at an urban speed."""

    def __init__(self, durations: Sequence[Sequence[int]] | None = None, speed_kmh: float = 30.0) -> None:
        self.durations = durations
        self.metres_per_second = speed_kmh * 1000 / 3600

    def seconds(self, a: Place | None, b: Place | None) -> int:
        if a is None or b is None:
            return 0
        if self.durations is not None and a.index is not None and b.index is not None:
            return int(self.durations[a.index][b.index])
        return round(haversine_m((a.lon, a.lat), (b.lon, b.lat)) / self.metres_per_second)

    def leg(self, a: Place | None, b: Place | None) -> tuple[int, float]:
        """Seconds and metres together (one great-circle computation instead of two)."""
        if a is None or b is None:
            return 0, 0.0
        metres = haversine_m((a.lon, a.lat), (b.lon, b.lat))
        if self.durations is not None and a.index is not None and b.index is not None:
            return int(self.durations[a.index][b.index]), metres
        return round(metres / self.metres_per_second), metres

    def metres(self, a: Place | None, b: Place | None) -> float:
        if a is None or b is None:
            return 0.0
        return haversine_m((a.lon, a.lat), (b.lon, b.lat))


@dataclass(slots=True)
class StopSpec:
    key: int  # the delivery id (or the VROOM job id during import)
    place: Place
    service: int
    window: tuple[int, int]
    amount: tuple[int, ...] = ()
    skills: frozenset[int] = frozenset()
    done: bool = False  # already visited: fixed in place, never moved
    # what the driver reported: the actual arrival and departure (seconds), when known
    actual_arrival: int | None = None
    actual_departure: int | None = None


@dataclass(slots=True)
class VehicleSpec:
    key: int
    shift: tuple[int, int]
    start: Place | None
    end: Place | None
    capacity: tuple[int, ...] = ()
    skills: frozenset[int] = frozenset()
    delay: int = 0  # reported lateness, pushes every later arrival


@dataclass(slots=True)
class Schedule:
    arrivals: list[int]
    service_starts: list[int]
    departures: list[int]
    end_time: int
    travel_seconds: int
    distance_m: float
    late_stops: list[int] = field(default_factory=list)  # positions arriving after their window
    shift_overrun: int = 0

    @property
    def feasible(self) -> bool:
        return not self.late_stops and self.shift_overrun == 0


def schedule(vehicle: VehicleSpec, stops: Sequence[StopSpec], travel: TravelModel) -> Schedule:
    """Arrival and service start of every stop, leaving at shift start and waiting when early.

    Stops with reported times keep them; the vehicle's reported delay pushes everything after the
    last reported stop (or after the shift start when nothing was reported yet).
    """
    anchor = -1
    for position, stop in enumerate(stops):
        if stop.actual_arrival is not None or stop.actual_departure is not None:
            anchor = position
    time = vehicle.shift[0] + (vehicle.delay if anchor < 0 else 0)
    here = vehicle.start
    arrivals: list[int] = []
    starts: list[int] = []
    departures: list[int] = []
    late: list[int] = []
    travel_total = 0
    distance = 0.0
    for position, stop in enumerate(stops):
        leg, metres = travel.leg(here, stop.place)
        travel_total += leg
        distance += metres
        arrival = time + leg if stop.actual_arrival is None else stop.actual_arrival
        begin = max(arrival, stop.window[0]) if stop.actual_arrival is None else arrival
        arrivals.append(arrival)
        starts.append(begin)
        if arrival > stop.window[1] and not stop.done:
            late.append(position)
        time = begin + stop.service if stop.actual_departure is None else stop.actual_departure
        if position == anchor:
            time += vehicle.delay
        departures.append(time)
        here = stop.place
    leg, metres = travel.leg(here, vehicle.end)
    travel_total += leg
    distance += metres
    end_time = time + leg
    return Schedule(
        arrivals=arrivals,
        service_starts=starts,
        departures=departures,
        end_time=end_time,
        travel_seconds=travel_total,
        distance_m=distance,
        late_stops=late,
        shift_overrun=max(0, end_time - vehicle.shift[1]),
    )


def load(stops: Sequence[StopSpec], dimensions: int) -> list[int]:
    total = [0] * dimensions
    for stop in stops:
        for i, amount in enumerate(stop.amount[:dimensions]):
            total[i] += amount
    return total


def fits_capacity(vehicle: VehicleSpec, stops: Sequence[StopSpec]) -> bool:
    if not vehicle.capacity:
        return True
    return all(
        used <= cap for used, cap in zip(load(stops, len(vehicle.capacity)), vehicle.capacity, strict=True)
    )


def can_serve(vehicle: VehicleSpec, stop: StopSpec) -> bool:
    return stop.skills <= vehicle.skills


@dataclass(frozen=True, slots=True)
class Insertion:
    vehicle_key: int
    position: int
    added_seconds: int  # detour: extra travel time the insertion causes
    arrival: int
    service_start: int


def forward_slack(vehicle: VehicleSpec, stops: Sequence[StopSpec], base: Schedule) -> list[int]:
    """slack[i]: how much stop i's arrival may be pushed later without any stop from i on being late
    and without overrunning the shift (slack[n] is the end of the route)."""
    n = len(stops)
    slack = [0] * (n + 1)
    slack[n] = vehicle.shift[1] - base.end_time
    for i in range(n - 1, -1, -1):
        stop = stops[i]
        own = stop.window[1] - base.arrivals[i] if not stop.done else 10**9
        waiting = base.service_starts[i] - base.arrivals[i]
        slack[i] = min(own, slack[i + 1] + waiting)
    return slack


def first_open_position(stops: Sequence[StopSpec]) -> int:
    """The first position a new stop may take: after every stop already visited."""
    first_open = 0
    for i, stop in enumerate(stops):
        if stop.done:
            first_open = i + 1
    return first_open


def best_insertion_in_route(
    vehicle: VehicleSpec,
    stops: Sequence[StopSpec],
    new: StopSpec,
    travel: TravelModel,
    *,
    base: Schedule | None = None,
    slack: Sequence[int] | None = None,
) -> Insertion | None:
    """Cheapest position for `new` in this route that keeps every stop, the shift and the load feasible.

    Uses forward time slack so each position is checked in O(1) after an O(n) pass; positions
    before already visited stops are never offered. `base` and `slack`, when the caller has them
    for these stops already, save recomputing them.
    """
    if not can_serve(vehicle, new) or not fits_capacity(vehicle, [*stops, new]):
        return None
    base = base or schedule(vehicle, stops, travel)
    n = len(stops)
    slack = slack if slack is not None else forward_slack(vehicle, stops, base)
    first_open = first_open_position(stops)
    best: Insertion | None = None
    for position in range(first_open, n + 1):
        before = stops[position - 1].place if position > 0 else vehicle.start
        after = stops[position].place if position < n else vehicle.end
        depart = base.departures[position - 1] if position > 0 else vehicle.shift[0] + vehicle.delay
        arrival = depart + travel.seconds(before, new.place)
        if arrival > new.window[1]:
            continue
        begin = max(arrival, new.window[0])
        leave = begin + new.service
        next_arrival_new = leave + travel.seconds(new.place, after)
        old_next_arrival = base.arrivals[position] if position < n else base.end_time
        push = next_arrival_new - old_next_arrival
        if push > slack[position]:
            continue
        detour = (
            travel.seconds(before, new.place)
            + travel.seconds(new.place, after)
            - travel.seconds(before, after)
        )
        if best is None or detour < best.added_seconds:
            best = Insertion(vehicle.key, position, detour, arrival, begin)
    return best


def best_insertion(
    routes: Sequence[tuple[VehicleSpec, Sequence[StopSpec]]], new: StopSpec, travel: TravelModel
) -> Insertion | None:
    best: Insertion | None = None
    for vehicle, stops in routes:
        candidate = best_insertion_in_route(vehicle, stops, new, travel)
        if candidate is not None and (best is None or candidate.added_seconds < best.added_seconds):
            best = candidate
    return best
