"""Driver progress: departures, arrivals, deliveries with proof, failed attempts and reported delays.

Each report updates the stop and the delivery, re-times the rest of the route from what actually
happened (a reported stop keeps its real times; a delay pushes every stop after it), writes the
change log and records the events the notification side listens to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlmodel import select

from core.db import UnitOfWork
from core.models import Delivery, DeliveryStatus, Retailer, Stop, StopStatus, Vehicle
from scheduling.apply import write_routes
from scheduling.changelog import log_change
from scheduling.events import Arrived, AttemptFailed, Delivered, EtaChanged, OutForDelivery
from scheduling.service import (
    DEFAULT_ETA_CHANGE_MINUTES,
    Actor,
    DeliveryNotChangeable,
    InvalidRequest,
    SchedulingError,
)
from scheduling.state import RouteState, install, lock_plan, plan_state

ProgressKind = Literal["departed", "arrived", "delivered", "failed", "delay"]


class RouteNotFound(SchedulingError):
    """No such route for this retailer (another retailer's route is unknown alike)."""


@dataclass(frozen=True)
class ProgressReport:
    kind: ProgressKind
    at: datetime
    tracking: str | None = None
    proof: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    minutes: int = 0


@dataclass(frozen=True)
class ProgressResult:
    route_id: int
    etas: dict[str, datetime | None]  # tracking -> ETA of every stop still to visit


async def record_progress(
    uow: UnitOfWork, retailer_id: int, route_id: int, report: ProgressReport, actor: Actor
) -> ProgressResult:
    session = uow.session
    vehicle = await session.get(Vehicle, route_id)
    plan = await lock_plan(session, vehicle.plan_id) if vehicle is not None else None
    if vehicle is None or plan is None or plan.retailer_id != retailer_id:
        raise RouteNotFound("no such route")
    retailer = await session.get(Retailer, retailer_id)
    assert retailer is not None and vehicle.id is not None
    vehicle = (
        await session.exec(
            select(Vehicle).where(Vehicle.id == route_id).execution_options(populate_existing=True)
        )
    ).one()
    state = await plan_state(session, plan)
    row = state.row_of[route_id]
    route = state.routes[row]
    rows = (
        await session.exec(
            select(Stop, Delivery)
            .join(Delivery, Delivery.id == Stop.delivery_id)  # type: ignore[arg-type]
            .where(Stop.vehicle_id == route_id)
            .execution_options(populate_existing=True)
        )
    ).all()
    by_delivery = {delivery.id: (stop, delivery) for stop, delivery in rows}
    specs = list(route.specs)
    order = list(range(len(specs)))
    kind_logged: str = report.kind
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    target: Delivery | None = None
    if report.kind in ("arrived", "delivered", "failed"):
        if not report.tracking:
            raise InvalidRequest("a stop report needs the delivery's tracking id")
        found = next((d for _, d in by_delivery.values() if d.tracking == report.tracking), None)
        if found is None or found.id not in state.where or state.where[found.id] != row:
            raise InvalidRequest(f"{report.tracking} is not a stop of this route")
        stop, target = by_delivery[found.id]
        position = route.position_of(found.id or 0)
        if stop.status in (StopStatus.done, StopStatus.failed):
            raise DeliveryNotChangeable(f"{report.tracking} was already reported {stop.status}")
        if report.kind == "arrived" and stop.status == StopStatus.arrived:
            raise DeliveryNotChangeable(f"{report.tracking} was already reported arrived")
        before = {"status": str(target.status), "stop_status": str(stop.status)}
        seconds = state.seconds(report.at)
        if stop.arrived_at is None:
            stop.arrived_at = report.at
        if report.kind == "arrived":
            stop.status, target.status = StopStatus.arrived, DeliveryStatus.arrived
            uow.record(Arrived(retailer_id, target.id or 0))
        elif report.kind == "delivered":
            stop.status, stop.completed_at = StopStatus.done, report.at
            target.status, target.proof = DeliveryStatus.delivered, dict(report.proof)
            uow.record(Delivered(retailer_id, target.id or 0, proof=dict(report.proof)))
        else:
            stop.status, stop.completed_at = StopStatus.failed, report.at
            target.status, target.failure_reason = DeliveryStatus.failed, report.reason[:200]
            uow.record(AttemptFailed(retailer_id, target.id or 0, reason=report.reason[:200]))
            kind_logged = "attempt_failed"
        arrival = state.seconds(stop.arrived_at)
        specs[position] = replace(
            specs[position],
            done=True,
            actual_arrival=arrival,
            actual_departure=seconds if stop.completed_at is not None else None,
        )
        vehicle.progress_delay = 0  # what happened replaces what was feared
        # Visited out of order: the stop moves right after those already visited.
        first_open = route.first_open
        if position > first_open:
            order.insert(first_open, order.pop(position))
        after = {"status": str(target.status), "stop_status": str(stop.status)}
        if report.kind == "delivered" and report.proof:
            after["proof"] = dict(report.proof)
        if report.kind == "failed":
            after["reason"] = report.reason[:200]
        target.updated_at = report.at
        session.add_all([stop, target])
    elif report.kind == "delay":
        if not -240 <= report.minutes <= 600 or report.minutes == 0:
            raise InvalidRequest("a delay is between -240 and 600 minutes, and not zero")
        before = {"delay_minutes": vehicle.progress_delay // 60}
        vehicle.progress_delay += report.minutes * 60
        after = {"delay_minutes": vehicle.progress_delay // 60}
        kind_logged = "delay_reported"
    else:  # departed
        for stop, delivery in by_delivery.values():
            if stop.status == StopStatus.planned and delivery.status == DeliveryStatus.scheduled:
                delivery.status, delivery.updated_at = DeliveryStatus.out_for_delivery, report.at
                session.add(delivery)
                uow.record(OutForDelivery(retailer_id, delivery.id or 0, stop.eta))
        after = {"departed_at": report.at.isoformat()}
    vehicle.last_event_at = report.at
    session.add(vehicle)
    spec = replace(route.spec, delay=vehicle.progress_delay)
    new_route = RouteState(
        route.vehicle_id,
        spec,
        [route.stop_ids[i] for i in order],
        [route.delivery_ids[i] for i in order],
        [specs[i] for i in order],
    ).compute(state.travel)
    moves = await write_routes(session, state, {row: new_route})
    threshold = 60 * int((retailer.settings or {}).get("eta_change_minutes", DEFAULT_ETA_CHANGE_MINUTES))
    for move in moves:
        if abs(move.shift_seconds) >= threshold:
            uow.record(EtaChanged(retailer_id, move.delivery_id, move.eta, move.stops_away))
    plan.version += 1
    session.add(plan)
    await log_change(
        session,
        retailer,
        kind_logged,
        actor=actor.kind,
        actor_id=actor.id,
        channel=actor.channel,
        delivery_id=target.id if target else None,
        plan_id=plan.id,
        before={"route": route_id, **before},
        after={"route": route_id, **after},
        now=report.at,
    )
    await uow.commit()
    install(session, state, {row: new_route}, plan.version)
    trackings = {d.id: d.tracking for _, d in by_delivery.values()}
    etas: dict[str, datetime | None] = {
        trackings[key]: state.at(new_route.timing.service_starts[i])
        for i, key in enumerate(new_route.delivery_ids)
        if not new_route.specs[i].done
    }
    return ProgressResult(route_id, etas)
