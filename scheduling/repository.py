"""Loading a day's plan from storage into the pure route model, and writing timings back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Delivery, RoutePlan, Stop, StopStatus, Vehicle
from scheduling import clock
from scheduling.routing import Place, Schedule, StopSpec, TravelModel, VehicleSpec, schedule


def place(lon: float | None, lat: float | None, index: int | None) -> Place | None:
    if lon is None or lat is None:
        return None if index is None else Place(0.0, 0.0, index)
    return Place(lon, lat, index)


def vehicle_spec(vehicle: Vehicle) -> VehicleSpec:
    assert vehicle.id is not None
    return VehicleSpec(
        key=vehicle.id,
        shift=(vehicle.shift_start, vehicle.shift_end),
        start=place(vehicle.start_lon, vehicle.start_lat, vehicle.start_index),
        end=place(vehicle.end_lon, vehicle.end_lat, vehicle.end_index),
        capacity=tuple(vehicle.capacity),
        skills=frozenset(vehicle.skills),
        delay=vehicle.progress_delay,
    )


def stop_spec(delivery: Delivery, plan: RoutePlan, stop: Stop | None = None) -> StopSpec:
    assert delivery.id is not None
    window = (0, 86_400 * 2)
    if delivery.window_start is not None and delivery.window_end is not None:
        window = (
            clock.seconds_since_midnight(plan.day, plan.timezone, delivery.window_start),
            clock.seconds_since_midnight(plan.day, plan.timezone, delivery.window_end),
        )
    skills = set(delivery.skills)
    if delivery.white_glove:
        skills.add(plan.white_glove_skill)
    return StopSpec(
        key=delivery.id,
        place=Place(delivery.lon, delivery.lat, delivery.location_index),
        service=delivery.service_seconds,
        window=window,
        amount=tuple(delivery.size),
        skills=frozenset(skills),
        done=stop is not None and stop.status != StopStatus.planned,
        actual_arrival=_seconds(plan, stop.arrived_at) if stop is not None else None,
        actual_departure=_seconds(plan, stop.completed_at) if stop is not None else None,
    )


def _seconds(plan: RoutePlan, instant: datetime | None) -> int | None:
    return None if instant is None else clock.seconds_since_midnight(plan.day, plan.timezone, instant)


@dataclass
class LoadedRoute:
    vehicle: Vehicle
    spec: VehicleSpec
    stops: list[Stop]
    deliveries: list[Delivery]
    specs: list[StopSpec]


@dataclass
class LoadedPlan:
    plan: RoutePlan
    travel: TravelModel
    routes: list[LoadedRoute]

    def route_of(self, delivery_id: int) -> LoadedRoute | None:
        for route in self.routes:
            if any(d.id == delivery_id for d in route.deliveries):
                return route
        return None


async def load_plan(session: AsyncSession, plan: RoutePlan) -> LoadedPlan:
    """The whole plan in two queries: vehicles, then stops joined with their deliveries."""
    vehicles = list(
        (
            await session.exec(
                select(Vehicle).where(Vehicle.plan_id == plan.id).order_by(col(Vehicle.vroom_id))
            )
        ).all()
    )
    rows = (
        await session.exec(
            select(Stop, Delivery)
            .join(Delivery, col(Delivery.id) == col(Stop.delivery_id))
            .where(col(Stop.vehicle_id).in_([v.id for v in vehicles]))
            .order_by(col(Stop.vehicle_id), col(Stop.sequence))
        )
    ).all()
    by_vehicle: dict[int, list[tuple[Stop, Delivery]]] = {}
    for stop, delivery in rows:
        by_vehicle.setdefault(stop.vehicle_id, []).append((stop, delivery))
    routes = []
    for vehicle in vehicles:
        assert vehicle.id is not None
        pairs = by_vehicle.get(vehicle.id, [])
        routes.append(
            LoadedRoute(
                vehicle=vehicle,
                spec=vehicle_spec(vehicle),
                stops=[s for s, _ in pairs],
                deliveries=[d for _, d in pairs],
                specs=[stop_spec(d, plan, s) for s, d in pairs],
            )
        )
    return LoadedPlan(plan=plan, travel=TravelModel(plan.durations, plan.speed_kmh), routes=routes)


def apply_schedule(plan: RoutePlan, route: LoadedRoute, timing: Schedule) -> None:
    """Write arrivals and ETAs (service start) of a recomputed schedule onto the route's stops."""
    for position, stop in enumerate(route.stops):
        stop.sequence = position
        if stop.status == StopStatus.planned:
            stop.arrival = timing.arrivals[position]
            stop.eta = clock.at(plan.day, plan.timezone, timing.service_starts[position])


def recompute(loaded: LoadedPlan, route: LoadedRoute) -> Schedule:
    timing = schedule(route.spec, route.specs, loaded.travel)
    apply_schedule(loaded.plan, route, timing)
    return timing
