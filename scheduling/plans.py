"""Use cases on whole plans: import a VROOM plan, show it in VROOM's solution shape."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlmodel import col, select

from core.db import UnitOfWork
from core.models import (
    Author,
    ChangeLog,
    Delivery,
    DeliveryStatus,
    PickupPoint,
    Recipient,
    Retailer,
    RoutePlan,
    Stop,
    Vehicle,
)
from core.phones import to_e164
from scheduling import clock
from scheduling.changelog import log_change
from scheduling.events import WindowAssigned
from scheduling.plan_format import PlanIn, Problem, check_plan, problems_from_validation
from scheduling.repository import load_plan, recompute, stop_spec
from scheduling.routing import best_insertion_in_route


class PlanRejected(Exception):
    """The plan cannot be imported; `problems` names every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the plan")
        self.problems = problems


class PlanNotFound(Exception):
    pass


def parse_plan(payload: Any) -> PlanIn:
    try:
        plan = PlanIn.model_validate(payload)
    except ValidationError as exc:
        raise PlanRejected(problems_from_validation(exc.errors())) from exc
    problems = check_plan(plan)
    if problems:
        raise PlanRejected(problems)
    return plan


def _window_for(job_windows: list[list[int]], service_start: int | None, slot: int) -> tuple[int, int] | None:
    """The job's time window the planned service falls in; without any, the retailer's slot around it."""
    if job_windows:
        if service_start is not None:
            for window in job_windows:
                if window[0] <= service_start <= window[1]:
                    return window[0], window[1]
        return job_windows[0][0], job_windows[0][1]
    if service_start is None:
        return None
    start = service_start - service_start % slot
    return start, start + slot


async def import_plan(
    uow: UnitOfWork, retailer: Retailer, payload: Any, *, speed_kmh: float = 30.0
) -> RoutePlan:
    """Import a whole plan or nothing: every delivery gets its route, stop, ETA and window."""
    plan_in = parse_plan(payload)
    session = uow.session
    assert retailer.id is not None
    trackings = [job.tracking for job in plan_in.jobs]
    existing = {
        d.tracking: d
        for d in (
            await session.exec(
                select(Delivery).where(
                    Delivery.retailer_id == retailer.id, col(Delivery.tracking).in_(trackings)
                )
            )
        ).all()
    }
    taken = [
        Problem(
            loc=["jobs", i, "tracking"],
            msg=f"tracking id {job.tracking!r} already belongs to a planned delivery",
        )
        for i, job in enumerate(plan_in.jobs)
        if job.tracking in existing and existing[job.tracking].status != DeliveryStatus.pooled
    ]
    if taken:
        raise PlanRejected(taken)

    plan = RoutePlan(
        retailer_id=retailer.id,
        day=plan_in.date,
        timezone=plan_in.timezone,
        white_glove_skill=plan_in.white_glove_skill,
        durations=plan_in.durations,
        speed_kmh=plan_in.speed_kmh or speed_kmh,
        source=plan_in.model_dump(mode="json", exclude={"matrices"}),
    )
    session.add(plan)
    await session.flush()

    for point_in in plan_in.pickup_points:
        point = (
            await session.exec(
                select(PickupPoint).where(
                    PickupPoint.retailer_id == retailer.id, PickupPoint.external_id == point_in.id
                )
            )
        ).first() or PickupPoint(
            retailer_id=retailer.id, external_id=point_in.id, name=point_in.name, lon=0, lat=0
        )
        point.name, point.address = point_in.name, point_in.address
        point.lon, point.lat = point_in.location
        point.opening_hours, point.capacity = point_in.opening_hours, point_in.capacity
        session.add(point)

    recipients: dict[str, Recipient] = {}
    deliveries: dict[int, Delivery] = {}
    for job in plan_in.jobs:
        recipient = None
        if job.recipient.phone:
            phone = to_e164(job.recipient.phone)
            recipient = (
                recipients.get(phone)
                or (
                    await session.exec(
                        select(Recipient).where(
                            Recipient.retailer_id == retailer.id, Recipient.phone == phone
                        )
                    )
                ).first()
            )
            if recipient is None:
                recipient = Recipient(retailer_id=retailer.id, phone=phone)
            recipient.name = job.recipient.name or recipient.name
            recipient.locale = job.recipient.locale
            session.add(recipient)
            recipients[phone] = recipient
        await session.flush()
        delivery = existing.get(job.tracking) or Delivery(
            retailer_id=retailer.id, tracking=job.tracking, day=plan.day
        )
        lon, lat = job.location if job.location else (0.0, 0.0)
        delivery.recipient_id = recipient.id if recipient else None
        delivery.plan_id, delivery.day, delivery.timezone = plan.id, plan.day, plan.timezone
        delivery.earliest_day = plan.day
        delivery.address, delivery.postal_code = job.address, job.postal_code.replace(" ", "").upper()
        delivery.lon, delivery.lat, delivery.location_index = lon, lat, job.location_index
        delivery.service_seconds, delivery.size, delivery.skills = (
            job.service,
            list(job.delivery),
            list(job.skills),
        )
        delivery.white_glove, delivery.job_id = job.white_glove, job.id
        # the retailer's plan now says what the stop is: a setup it carries is the retailer's to take off
        delivery.service_seconds_without_setup = None
        delivery.instructions = job.instructions or delivery.instructions
        delivery.telegram_link_token = delivery.telegram_link_token or secrets.token_urlsafe(24)
        session.add(delivery)
        deliveries[job.id] = delivery
    await session.flush()

    jobs_by_id = {job.id: job for job in plan_in.jobs}
    planned: set[int] = set()
    for vehicle_in in plan_in.vehicles:
        shift = vehicle_in.time_window or [0, 86_400]
        start: list[float | None] = list(vehicle_in.start) if vehicle_in.start else [None, None]
        end: list[float | None] = list(vehicle_in.end) if vehicle_in.end else [None, None]
        assert plan.id is not None
        vehicle = Vehicle(
            plan_id=plan.id,
            vroom_id=vehicle_in.id,
            description=vehicle_in.description,
            start_lon=start[0],
            start_lat=start[1],
            end_lon=end[0],
            end_lat=end[1],
            start_index=vehicle_in.start_index,
            end_index=vehicle_in.end_index,
            shift_start=shift[0],
            shift_end=shift[1],
            capacity=list(vehicle_in.capacity),
            skills=list(vehicle_in.skills),
            white_glove=plan_in.white_glove_skill in vehicle_in.skills,
        )
        session.add(vehicle)
        await session.flush()
        for sequence, step in enumerate(s for s in (vehicle_in.steps or []) if s.type == "job"):
            assert step.id is not None
            delivery = deliveries[step.id]
            assert delivery.id is not None
            session.add(Stop(vehicle_id=vehicle.id or 0, delivery_id=delivery.id, sequence=sequence))
            planned.add(step.id)
    await session.flush()

    # Windows for planned jobs come from their time windows (or the slot their ETA falls in).
    loaded = await load_plan(session, plan)
    slot = retailer.slot_minutes * 60
    for route in loaded.routes:
        timing = recompute(loaded, route)
        for position, delivery in enumerate(route.deliveries):
            job = jobs_by_id[delivery.job_id or 0]
            window = _window_for(job.time_windows, timing.service_starts[position], slot)
            _set_window(delivery, plan, window)
            delivery.status = DeliveryStatus.scheduled
            route.specs[position] = stop_spec(delivery, plan, route.stops[position])

    # Jobs without a planned step go to the cheapest feasible position; those that fit nowhere stay pooled.
    for job_id, delivery in deliveries.items():
        if job_id in planned:
            continue
        job = jobs_by_id[job_id]
        _set_window(delivery, plan, _window_for(job.time_windows, None, slot))
        spec = stop_spec(delivery, plan)
        best = None
        for route in loaded.routes:
            candidate = best_insertion_in_route(route.spec, route.specs, spec, loaded.travel)
            if candidate is not None and (best is None or candidate.added_seconds < best[1].added_seconds):
                best = (route, candidate)
        if best is None:
            delivery.status = DeliveryStatus.pooled
            continue
        route, insertion = best
        stop = Stop(
            vehicle_id=route.vehicle.id or 0, delivery_id=delivery.id or 0, sequence=insertion.position
        )
        session.add(stop)
        route.stops.insert(insertion.position, stop)
        route.deliveries.insert(insertion.position, delivery)
        route.specs.insert(insertion.position, spec)
        timing = recompute(loaded, route)
        if delivery.window_start is None:
            _set_window(delivery, plan, _window_for([], timing.service_starts[insertion.position], slot))
            route.specs[insertion.position] = stop_spec(delivery, plan)
        delivery.status = DeliveryStatus.scheduled

    # Deliveries that waited in this day's pool (moved here before the plan existed) join it now, in
    # their slot, where they fit best; a plan with a duration matrix cannot place them (no index).
    pooled = (
        await session.exec(
            select(Delivery).where(
                Delivery.retailer_id == retailer.id,
                Delivery.day == plan.day,
                Delivery.status == DeliveryStatus.pooled,
                col(Delivery.plan_id).is_(None),
                col(Delivery.tracking).not_in(trackings),
            )
        )
    ).all()
    for delivery in pooled if plan.durations is None else []:
        spec = stop_spec(delivery, plan)
        best = None
        for route in loaded.routes:
            candidate = best_insertion_in_route(route.spec, route.specs, spec, loaded.travel)
            if candidate is not None and (best is None or candidate.added_seconds < best[1].added_seconds):
                best = (route, candidate)
        if best is None:
            continue
        route, insertion = best
        stop = Stop(
            vehicle_id=route.vehicle.id or 0, delivery_id=delivery.id or 0, sequence=insertion.position
        )
        session.add(stop)
        route.stops.insert(insertion.position, stop)
        route.deliveries.insert(insertion.position, delivery)
        route.specs.insert(insertion.position, spec)
        recompute(loaded, route)
        delivery.status, delivery.plan_id, delivery.timezone = (
            DeliveryStatus.scheduled,
            plan.id,
            plan.timezone,
        )
        session.add(delivery)
        await log_change(
            session,
            retailer,
            "planned_from_pool",
            actor=Author.system,
            delivery_id=delivery.id,
            plan_id=plan.id,
            before={"status": "pooled"},
            after={"status": "scheduled", "route": route.vehicle.id},
            now=plan.created_at,
        )

    for delivery in deliveries.values():
        session.add(delivery)
        if delivery.window_start is not None and delivery.window_end is not None:
            uow.record(
                WindowAssigned(retailer.id, delivery.id or 0, delivery.window_start, delivery.window_end)
            )
    session.add(
        ChangeLog(
            retailer_id=retailer.id,
            plan_id=plan.id,
            kind="plan_imported",
            actor=Author.system,
            after={"plan": plan.id, "date": plan.day.isoformat(), "deliveries": len(deliveries)},
        )
    )
    await uow.commit()
    return plan


def _set_window(delivery: Delivery, plan: RoutePlan, window: tuple[int, int] | None) -> None:
    if window is None:
        return
    delivery.window_start = clock.at(plan.day, plan.timezone, window[0])
    delivery.window_end = clock.at(plan.day, plan.timezone, window[1])


async def get_plan(uow: UnitOfWork, retailer_id: int, plan_id: int) -> RoutePlan:
    plan = await uow.session.get(RoutePlan, plan_id)
    if plan is None or plan.retailer_id != retailer_id:
        raise PlanNotFound(plan_id)
    return plan


async def plan_solution(uow: UnitOfWork, plan: RoutePlan) -> dict[str, Any]:
    """The plan as VROOM returns a solution: routes of steps with arrivals and violations."""
    loaded = await load_plan(uow.session, plan)
    routes = []
    totals = {"cost": 0, "service": 0, "duration": 0, "waiting_time": 0, "distance": 0, "delivery": 0}
    violations_total: list[dict[str, Any]] = []
    for route in loaded.routes:
        if not route.stops:
            continue
        timing = recompute(loaded, route)
        steps: list[dict[str, Any]] = []
        spec = route.spec
        if spec.start is not None:
            steps.append(
                {"type": "start", "location": [spec.start.lon, spec.start.lat], "arrival": spec.shift[0]}
            )
        service = waiting = 0
        route_violations: list[dict[str, Any]] = []
        for position, (delivery, stop_) in enumerate(zip(route.deliveries, route.specs, strict=True)):
            wait = timing.service_starts[position] - timing.arrivals[position]
            late = max(0, timing.arrivals[position] - stop_.window[1])
            step_violations = [{"cause": "delay", "duration": late}] if late and not stop_.done else []
            route_violations.extend(step_violations)
            service += stop_.service
            waiting += wait
            steps.append(
                {
                    "type": "job",
                    "id": delivery.job_id,
                    "tracking": delivery.tracking,
                    "location": [delivery.lon, delivery.lat],
                    "arrival": timing.arrivals[position],
                    "service": stop_.service,
                    "waiting_time": wait,
                    "status": route.stops[position].status,
                    "violations": step_violations,
                }
            )
        if timing.shift_overrun:
            route_violations.append({"cause": "lead_time", "duration": timing.shift_overrun})
        if spec.end is not None:
            steps.append(
                {"type": "end", "location": [spec.end.lon, spec.end.lat], "arrival": timing.end_time}
            )
        duration = timing.travel_seconds
        routes.append(
            {
                "vehicle": route.vehicle.vroom_id,
                "route_id": route.vehicle.id,
                "description": route.vehicle.description,
                "cost": duration,
                "service": service,
                "duration": duration,
                "waiting_time": waiting,
                "distance": round(timing.distance_m),
                "steps": steps,
                "violations": route_violations,
            }
        )
        for key, value in (
            ("cost", duration),
            ("service", service),
            ("duration", duration),
            ("waiting_time", waiting),
            ("distance", round(timing.distance_m)),
        ):
            totals[key] += value
        violations_total.extend(route_violations)
    unassigned = (
        await uow.session.exec(
            select(Delivery).where(Delivery.plan_id == plan.id, Delivery.status == DeliveryStatus.pooled)
        )
    ).all()
    return {
        "id": plan.id,
        "date": plan.day.isoformat(),
        "timezone": plan.timezone,
        "code": 0,
        "summary": {
            **totals,
            "routes": len(routes),
            "unassigned": len(unassigned),
            "violations": violations_total,
        },
        "unassigned": [{"id": d.job_id, "tracking": d.tracking, "type": "job"} for d in unassigned],
        "routes": routes,
    }


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
