"""Re-optimising a day with PyVRP, while the plan stays usable.

The plan is read (a snapshot at one version), solved in a worker thread, then applied under the
plan's lock only if its version has not moved meanwhile (otherwise the result is reported stale)
and only if the exact schedule keeps every stop inside its window, every shift and every load.

Only routes that have not started are re-solved (no stop visited, nobody out for delivery). Skills
are kept by solving each group of vehicles with the same skills on its own: a stop only moves
between vehicles that have exactly the skills of the one it is on. The objective is travel time,
the same integers our schedule uses, and the current routes are the solver's starting solution.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pyvrp import Activity, ActivityType, Model, Solution
from pyvrp import Route as PyvrpRoute
from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria
from sqlmodel import col, select

from core.context import AppContext
from core.models import Author, Delivery, DeliveryStatus, Retailer
from scheduling.apply import write_routes
from scheduling.changelog import log_change
from scheduling.events import EtaChanged
from scheduling.plans import get_plan
from scheduling.routing import Place, StopSpec, TravelModel, VehicleSpec
from scheduling.state import PlanState, RouteState, install, lock_plan, plan_state

MAX_CLIENTS = 3000
BIG = 10**9


@dataclass(frozen=True)
class Totals:
    travel_seconds: int
    distance_m: int


@dataclass
class OptimizeReport:
    plan_id: int
    applied: bool
    stale: bool
    reason: str
    routes: int
    stops: int
    before: Totals
    after: Totals
    iterations: int = 0
    moved_stops: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan_id,
            "applied": self.applied,
            "stale": self.stale,
            "reason": self.reason,
            "routes": self.routes,
            "stops": self.stops,
            "moved_stops": self.moved_stops,
            "before": {"duration": self.before.travel_seconds, "distance": self.before.distance_m},
            "after": {"duration": self.after.travel_seconds, "distance": self.after.distance_m},
            "saved": {
                "duration": self.before.travel_seconds - self.after.travel_seconds,
                "distance": self.before.distance_m - self.after.distance_m,
            },
        }


@dataclass
class Group:
    """Vehicles with the same skills and the stops they carry now."""

    rows: list[int]
    vehicles: list[VehicleSpec]
    routes: list[list[StopSpec]]
    stop_ids: dict[int, int] = field(default_factory=dict)  # delivery id -> stop id


def totals(routes: list[RouteState]) -> Totals:
    return Totals(
        sum(r.timing.travel_seconds for r in routes), round(sum(r.timing.distance_m for r in routes))
    )


def solve_group(
    group: Group, travel: TravelModel, *, max_iterations: int, seconds: float, seed: int
) -> list[list[StopSpec]] | None:
    """PyVRP on one group; the stops of each vehicle in their new order, or None if no feasible result."""
    clients = [stop for route in group.routes for stop in route]
    if not clients:
        return None
    dimensions = max((len(v.capacity) for v in group.vehicles), default=0)
    model = Model()
    places: list[Place | None] = []
    depots = []
    for vehicle in group.vehicles:
        for where in (vehicle.start, vehicle.end):
            location = model.add_location(x=where.lon if where else 0, y=where.lat if where else 0)
            depots.append(model.add_depot(location))
            places.append(where)
    client_of: list[Any] = []
    for stop in clients:
        location = model.add_location(x=stop.place.lon, y=stop.place.lat)
        amount = list(stop.amount[:dimensions]) + [0] * (dimensions - len(stop.amount[:dimensions]))
        client_of.append(
            model.add_client(
                location,
                delivery=amount,
                service_duration=stop.service,
                tw_early=stop.window[0],
                tw_late=stop.window[1],
            )
        )
        places.append(stop.place)
    for k, vehicle in enumerate(group.vehicles):
        capacity = list(vehicle.capacity) + [BIG] * (dimensions - len(vehicle.capacity))
        begin = vehicle.shift[0] + vehicle.delay
        model.add_vehicle_type(
            num_available=1,
            capacity=capacity,
            start_depot=depots[2 * k],
            end_depot=depots[2 * k + 1],
            tw_early=begin,
            tw_late=vehicle.shift[1],
            start_late=begin,
            unit_distance_cost=1,
        )
    locations = model.locations
    for i, a in enumerate(places):
        for j, b in enumerate(places):
            if i != j:
                seconds_ab = travel.seconds(a, b)
                model.add_edge(locations[i], locations[j], distance=seconds_ab, duration=seconds_ab)
    data = model.data()
    index = {id(stop): n for n, stop in enumerate(clients)}
    initial = Solution(
        data,
        [
            PyvrpRoute(data, [Activity(ActivityType.CLIENT, index[id(s)]) for s in route], k)
            for k, route in enumerate(group.routes)
            if route
        ],
    )
    criterion = MultipleCriteria([MaxIterations(max_iterations), MaxRuntime(seconds)])
    result = model.solve(stop=criterion, seed=seed, display=False, initial_solution=initial)
    best = result.best
    if not best.is_feasible() or not best.is_complete():
        return None
    ordered: list[list[StopSpec]] = [[] for _ in group.vehicles]
    for route in best.routes():
        ordered[route.vehicle_type()] = [clients[a.idx] for a in route if a.is_client()]
    return ordered


def solve_plan(
    state: PlanState, movable: list[int], *, max_iterations: int, seconds: float, seed: int
) -> dict[int, RouteState]:
    """New routes for the movable rows (only those that changed), each checked by the exact schedule."""
    groups: dict[frozenset[int], Group] = {}
    for row in movable:
        route = state.routes[row]
        group = groups.setdefault(route.spec.skills, Group([], [], []))
        group.rows.append(row)
        group.vehicles.append(route.spec)
        group.routes.append(list(route.specs))
        group.stop_ids.update(zip(route.delivery_ids, route.stop_ids, strict=True))
    changed: dict[int, RouteState] = {}
    for group in groups.values():
        ordered = solve_group(group, state.travel, max_iterations=max_iterations, seconds=seconds, seed=seed)
        if ordered is None:
            continue
        candidates = {}
        for row, stops in zip(group.rows, ordered, strict=True):
            old = state.routes[row]
            new = RouteState(
                old.vehicle_id,
                old.spec,
                [group.stop_ids[s.key] for s in stops],
                [s.key for s in stops],
                stops,
            ).compute(state.travel)
            candidates[row] = new
        if not all(new.keeps(None) for new in candidates.values()):
            continue  # the exact model disagrees: keep this group as it is
        before = totals([state.routes[r] for r in group.rows]).travel_seconds
        after = totals(list(candidates.values())).travel_seconds
        if after < before:
            changed.update(
                {
                    r: route
                    for r, route in candidates.items()
                    if route.delivery_ids != state.routes[r].delivery_ids
                }
            )
    return changed


async def optimize_plan(
    ctx: AppContext,
    retailer_id: int,
    plan_id: int,
    *,
    max_iterations: int = 2000,
    seconds: float = 10.0,
    seed: int = 0,
) -> OptimizeReport:
    async with ctx.uow() as uow:
        plan = await get_plan(uow, retailer_id, plan_id)
        state = await plan_state(uow.session, plan)
        version = plan.version
        started = set(
            (
                await uow.session.exec(
                    select(Delivery.id).where(
                        Delivery.plan_id == plan_id,
                        col(Delivery.status).in_([DeliveryStatus.out_for_delivery, DeliveryStatus.arrived]),
                    )
                )
            ).all()
        )
    movable = [
        row
        for row, route in enumerate(state.routes)
        if route.specs
        and route.first_open == 0
        and not any(key in started for key in route.delivery_ids)
        and route.keeps(None)
    ]
    routes_before = [state.routes[r] for r in movable]
    before = totals(routes_before)
    stops = sum(len(r.specs) for r in routes_before)
    report = OptimizeReport(plan_id, False, False, "", len(movable), stops, before, before)
    if not movable:
        report.reason = "no route that has not started"
        return report
    if stops > MAX_CLIENTS:
        report.reason = f"more than {MAX_CLIENTS} stops to re-solve at once"
        return report
    changed = await asyncio.to_thread(
        solve_plan, state, movable, max_iterations=max_iterations, seconds=seconds, seed=seed
    )
    after = totals([changed.get(r, state.routes[r]) for r in movable])
    report.after = after
    report.moved_stops = sum(
        sum(1 for a, b in zip(route.delivery_ids, state.routes[r].delivery_ids, strict=False) if a != b)
        + abs(len(route.delivery_ids) - len(state.routes[r].delivery_ids))
        for r, route in changed.items()
    )
    if not changed:
        report.after = before
        report.reason = "the solver found nothing shorter that keeps every window"
        return report
    async with ctx.uow() as uow:
        locked = await lock_plan(uow.session, plan_id)
        if locked is None or locked.version != version:
            report.stale = True
            report.reason = "the plan changed while it was being re-solved; nothing was applied"
            return report
        plan = locked
        current = await plan_state(uow.session, plan)
        retailer = await uow.session.get(Retailer, retailer_id)
        assert retailer is not None
        moves = await write_routes(uow.session, current, changed)
        threshold = 60 * int((retailer.settings or {}).get("eta_change_minutes", 5))
        for move in moves:
            if abs(move.shift_seconds) >= threshold:
                uow.record(EtaChanged(retailer_id, move.delivery_id, move.eta, move.stops_away))
        plan.version += 1
        uow.session.add(plan)
        report.applied = True
        report.reason = "applied"
        await log_change(
            uow.session,
            retailer,
            "plan_optimized",
            actor=Author.system,
            channel="api",
            plan_id=plan_id,
            before={"duration": before.travel_seconds, "distance": before.distance_m},
            after={"duration": after.travel_seconds, "distance": after.distance_m},
            now=ctx.clock(),
        )
        await uow.commit()
        install(uow.session, current, changed, plan.version)
    return report
