"""Property: no sequence of requests, accepted or refused, ever leaves the plans infeasible.

Random reschedules (planned days and a pooled day), pickup redirects (a parcel going to a point
may come back to the door or go to another), white-glove bookings and cancellations run through the
service on SQLite; after each one the database is checked by an
independent recomputation (tests/scheduling_support.violations) and the pool's counters by a count.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from app import build_context
from core.config import Settings
from core.models import Delivery, DeliveryStatus, PickupPoint, PickupReservation, Retailer, SlotCapacity
from core.tenants import create_retailer
from scheduling import service
from scheduling.plans import import_plan
from scheduling.service import SYSTEM, SchedulingError
from tests.plans import DAY, small_plan
from tests.scheduling_support import NOW, local, violations

PLAN_DAY = date.fromisoformat(DAY)
TRACKINGS = [f"{p}00{i}" for p in ("T", "N") for i in range(1, 6)]

reschedule = st.tuples(
    st.just("reschedule"),
    st.sampled_from(TRACKINGS),
    st.integers(0, 2),  # the plan's day, the next (planned) day, the day after (no plan: pooled)
    st.one_of(st.sampled_from([8, 10, 12, 14, 16, 18]), st.integers(7, 20)),  # mostly the slots
    st.sampled_from([1, 2, 3]),
)
redirect = st.tuples(
    st.just("redirect"), st.sampled_from(TRACKINGS), st.integers(0, 1), st.just(0), st.just(0)
)
white_glove = st.tuples(
    st.just("white_glove"), st.sampled_from(TRACKINGS), st.integers(0, 1), st.integers(8, 18), st.just(2)
)
# sent to a point, then back to the door at a random window (the point's place must come back)
change_of_mind = st.tuples(
    st.just("change_of_mind"),
    st.sampled_from(TRACKINGS),
    st.integers(0, 2),
    st.sampled_from([8, 10, 12, 14, 16, 18]),
    st.just(2),
)
cancel = st.tuples(st.just("cancel"), st.sampled_from(TRACKINGS), st.just(0), st.just(0), st.just(0))
call_off_setup = st.tuples(
    st.just("call_off_setup"), st.sampled_from(TRACKINGS), st.just(0), st.just(0), st.just(0)
)
operations = st.lists(
    st.one_of(reschedule, reschedule, redirect, change_of_mind, white_glove, call_off_setup, cancel),
    min_size=1,
    max_size=8,
)


async def scenario(database_url: str, ops: list[tuple]) -> None:
    ctx = build_context(
        Settings(environment="test", database_url=database_url, scheduler_enabled=False, _env_file=None)  # type: ignore[call-arg]
    )
    try:
        async with ctx.uow() as uow:
            retailer, _ = await create_retailer(uow.session, "prop", "Prop", settings={"slot_capacity": 2})
            await uow.commit()
        for day, prefix in ((PLAN_DAY, "T"), (PLAN_DAY + timedelta(days=1), "N")):
            plan = small_plan(day=day.isoformat(), prefix=prefix)
            plan["pickup_points"][0]["capacity"] = 1
            async with ctx.uow() as uow:
                retailer = await uow.session.get(Retailer, retailer.id)
                await import_plan(uow, retailer, plan)
        assert await violations(ctx) == []
        for kind, tracking, day_offset, hour, hours in ops:
            async with ctx.uow() as uow:
                delivery = (
                    await uow.session.exec(select(Delivery).where(Delivery.tracking == tracking))
                ).one()
                points = (await uow.session.exec(select(PickupPoint).order_by(PickupPoint.id))).all()
                day = PLAN_DAY + timedelta(days=day_offset)
                start = local(day, hour)
                end = min(start + timedelta(hours=hours), local(day, 23, 59))
                try:
                    if kind == "reschedule":
                        await service.reschedule_delivery(uow, delivery, start, end, SYSTEM, now=NOW)
                    elif kind == "white_glove":
                        await service.book_white_glove(uow, delivery, start, end, SYSTEM, now=NOW)
                    elif kind == "call_off_setup":
                        await service.cancel_white_glove(uow, delivery, SYSTEM, now=NOW)
                    elif kind == "change_of_mind":
                        await service.redirect_to_pickup(uow, delivery, points[0].id, SYSTEM, now=NOW)
                        await service.reschedule_delivery(uow, delivery, start, end, SYSTEM, now=NOW)
                    elif kind == "redirect":
                        await service.redirect_to_pickup(
                            uow, delivery, points[day_offset].id, SYSTEM, now=NOW
                        )
                    else:
                        await service.cancel_delivery(uow, delivery, SYSTEM, now=NOW)
                except SchedulingError:
                    pass  # refused: nothing may have changed
            assert await violations(ctx) == [], (kind, tracking, day_offset, hour, hours)
            async with ctx.uow() as uow:
                for slot in (await uow.session.exec(select(SlotCapacity))).all():
                    pooled = (
                        await uow.session.exec(
                            select(func.count())
                            .select_from(Delivery)
                            .where(
                                Delivery.status == DeliveryStatus.pooled,
                                Delivery.window_start == slot.slot_start,
                            )
                        )
                    ).one()
                    assert slot.taken == pooled <= slot.capacity
                # a parcel going to a point holds one place there; one that came back to the door holds none
                going = {
                    d.id: d.pickup_point_id
                    for d in (await uow.session.exec(select(Delivery))).all()
                    if d.status == DeliveryStatus.redirected
                }
                reservations = (await uow.session.exec(select(PickupReservation))).all()
                assert {r.delivery_id: r.pickup_point_id for r in reservations} == going
                for point in points:
                    for on in {r.day for r in reservations}:
                        taken = [r for r in reservations if r.pickup_point_id == point.id and r.day == on]
                        assert len(taken) <= point.capacity
    finally:
        await ctx.engine.dispose()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_no_sequence_of_accepted_changes_ever_yields_an_infeasible_plan(
    sqlite_template: Path, ops: list[tuple]
):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prop.db"
        shutil.copy(sqlite_template, path)
        asyncio.run(scenario(f"sqlite:///{path}", ops))
