"""Helpers for the scheduling tests: a fixed clock, plan import, and an independent feasibility check."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from httpx import AsyncClient
from sqlmodel import select

from core.models import Delivery, DeliveryStatus, RoutePlan, Stop, StopStatus, Vehicle
from tests.conftest import TenantKeys

TORONTO = ZoneInfo("America/Toronto")
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # the afternoon before the plan's day (2026-12-03)


def published_events(ctx: Any) -> list[Any]:
    """Fix the context's clock at NOW and collect every domain event it publishes, in order."""
    ctx.clock = lambda: NOW
    published: list[Any] = []

    async def collect(batch: list[Any]) -> None:
        published.extend(batch)

    ctx.event_handlers.append(collect)
    return published


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TORONTO)


def window(day: date, hour: int, hours: int = 2) -> dict[str, str]:
    start = local(day, hour)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}


async def import_plan(client: AsyncClient, tenant: TenantKeys, plan: dict[str, Any]) -> int:
    response = await client.post("/api/v1/plans", json=plan, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def delivery(ctx: Any, retailer_id: int, tracking: str) -> Delivery:
    async with ctx.uow() as uow:
        return (
            await uow.session.exec(
                select(Delivery).where(Delivery.retailer_id == retailer_id, Delivery.tracking == tracking)
            )
        ).one()


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = (math.radians(x) for x in (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(h))


async def violations(ctx: Any) -> list[str]:
    """Every broken promise in the database, recomputed from scratch without the scheduling code:
    late stops, overrun shifts, overloaded vehicles, missing skills, stops of unplanned deliveries."""
    problems: list[str] = []
    async with ctx.uow() as uow:
        s = uow.session
        plans = {p.id: p for p in (await s.exec(select(RoutePlan))).all()}
        vehicles = (await s.exec(select(Vehicle))).all()
        for vehicle in vehicles:
            plan = plans[vehicle.plan_id]
            midnight = datetime.combine(plan.day, datetime.min.time(), tzinfo=ZoneInfo(plan.timezone))
            rows = (
                await s.exec(
                    select(Stop, Delivery)
                    .join(Delivery, Delivery.id == Stop.delivery_id)
                    .where(Stop.vehicle_id == vehicle.id)
                    .order_by(Stop.sequence)
                )
            ).all()
            sequences = [stop.sequence for stop, _ in rows]
            if sequences != list(range(len(rows))):
                problems.append(f"vehicle {vehicle.id}: sequences {sequences}")
            speed = plan.speed_kmh * 1000 / 3600
            time = vehicle.shift_start + vehicle.progress_delay
            here = (vehicle.start_lon, vehicle.start_lat) if vehicle.start_lon is not None else None
            load = [0] * len(vehicle.capacity)
            for stop, d in rows:
                place = (d.lon, d.lat)
                if plan.durations is not None:
                    raise AssertionError("the independent check covers great-circle plans only")
                leg = 0 if here is None else round(_metres(here, place) / speed)
                arrival = time + leg
                if stop.status != StopStatus.planned:
                    problems.append(f"{d.tracking}: visited stop in a property run")
                start = (d.window_start - midnight).total_seconds()
                end = (d.window_end - midnight).total_seconds()
                if arrival > end:
                    problems.append(f"{d.tracking}: arrives {arrival} after its window ends at {end}")
                if abs(stop.arrival - arrival) > 1:
                    problems.append(f"{d.tracking}: stored arrival {stop.arrival}, recomputed {arrival}")
                if d.status != DeliveryStatus.scheduled or d.plan_id != plan.id:
                    problems.append(f"{d.tracking}: on a route but {d.status}, plan {d.plan_id}")
                needed = set(d.skills) | ({plan.white_glove_skill} if d.white_glove else set())
                if not needed <= set(vehicle.skills):
                    problems.append(f"{d.tracking}: vehicle {vehicle.id} lacks skills {needed}")
                for i, amount in enumerate(d.size[: len(load)]):
                    load[i] += amount
                time = max(arrival, start) + d.service_seconds
                here = place
            back = (
                0
                if here is None or vehicle.end_lon is None
                else round(_metres(here, (vehicle.end_lon, vehicle.end_lat)) / speed)
            )
            if time + back > vehicle.shift_end:
                problems.append(f"vehicle {vehicle.id}: back at {time + back} after its shift ends")
            if any(used > cap for used, cap in zip(load, vehicle.capacity, strict=True)):
                problems.append(f"vehicle {vehicle.id}: load {load} over {vehicle.capacity}")
    return problems


@pytest.fixture
def slow_writes(monkeypatch):
    """Widen the gap between a change's check and its commit, so two racing requests really overlap:
    without the plan's lock both would pass the check before either wrote (checked by hand: they do)."""
    import scheduling.service as service

    real = service.write_routes

    async def slow(*args, **kwargs):
        await asyncio.sleep(0.2)
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "write_routes", slow)


async def deadlocked(ctx: Any, held: datetime, then: datetime, change: Awaitable[Any]) -> Any:
    """Run `change` into a real PostgreSQL deadlock and return what it returns.

    Another transaction holds the pool slot row starting at `held`; once the change waits for that
    row, the other transaction asks for the row at `then`, which the change holds. The change waited
    first, so PostgreSQL's deadlock check fails the change, and the other transaction commits.
    """
    other = await asyncpg.connect(
        ctx.engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
    )
    lock_row = "UPDATE slotcapacity SET taken = taken WHERE slot_start = $1"
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    try:
        hold = other.transaction()
        await hold.start()
        await other.execute(lock_row, held)
        running = asyncio.ensure_future(change)
        for _ in range(100):
            if await other.fetchval(waiting):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the change never waited for the row held")
        await other.execute(lock_row, then)
        await hold.commit()
        return await asyncio.wait_for(running, 30)
    finally:
        await other.close()
