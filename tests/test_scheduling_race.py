"""Check-and-reserve is atomic: two requests for the last place never both win (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlmodel import func, select

from core.models import PickupReservation, SlotCapacity, Stop
from tests.conftest import make_tenant
from tests.plans import DAY, DEPOT, job, small_plan
from tests.scheduling_support import (  # noqa: F401
    NOW,
    deadlocked,
    import_plan,
    local,
    slow_writes,
    violations,
    window,
)

PLAN_DAY = date.fromisoformat(DAY)
# Every race here runs with check and commit far apart (see scheduling_support.slow_writes).
pytestmark = pytest.mark.usefixtures("slow_writes")
NEXT_DAY = PLAN_DAY + timedelta(days=1)


@pytest.fixture(autouse=True)
def fixed_clock(ctx):
    ctx.clock = lambda: NOW


def one_van_day(day: str, prefix: str, jobs: int, capacity: int) -> dict:
    return {
        "date": day,
        "timezone": "America/Toronto",
        "vehicles": [
            {
                "id": 1,
                "start": DEPOT,
                "end": DEPOT,
                "time_window": [28800, 64800],
                "capacity": [capacity],
                "steps": [{"type": "job", "id": i + 1} for i in range(jobs)],
            }
        ],
        "jobs": [
            job(i + 1, f"{prefix}{i + 1}", -79.40 + 0.01 * i, 43.66, (28800, 64800), phone=f"+1416555{i:04d}")
            for i in range(jobs)
        ],
    }


async def race(client, tenant, requests):
    responses = await asyncio.gather(
        *(client.post(path, json=body, headers=tenant.headers) for path, body in requests)
    )
    return sorted(r.status_code for r in responses), responses


async def pooled_at_10_and_14(client, tenant) -> None:
    """T001 and T002 moved to the next day, which has no plan: they wait in its pool, at 10:00 and 14:00."""
    await import_plan(client, tenant, small_plan())
    for tracking, hour in (("T001", 10), ("T002", 14)):
        moved = await client.post(
            f"/api/v1/deliveries/{tracking}/reschedule",
            json={"window": window(NEXT_DAY, hour)},
            headers=tenant.headers,
        )
        assert moved.status_code == 200 and moved.json()["status"] == "pooled", moved.text


class TestTheLastPlace:
    async def test_the_last_place_on_a_route_goes_to_exactly_one_of_two_recipients(self, client, acme, ctx):
        await import_plan(client, acme, one_van_day(DAY, "A", jobs=1, capacity=2))
        await import_plan(client, acme, one_van_day(NEXT_DAY.isoformat(), "B", jobs=2, capacity=5))
        codes, responses = await race(
            client,
            acme,
            [
                ("/api/v1/deliveries/B1/reschedule", {"window": window(PLAN_DAY, 14)}),
                ("/api/v1/deliveries/B2/reschedule", {"window": window(PLAN_DAY, 14)}),
            ],
        )
        assert codes == [200, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        assert "alternatives" in loser.json()
        async with ctx.uow() as uow:
            on_day = (await uow.session.exec(select(func.count()).select_from(Stop))).one()
        assert on_day == 3  # 1 + the winner on the first day, the loser still on the second
        assert await violations(ctx) == []

    async def test_the_last_place_of_a_pool_slot_goes_to_exactly_one(self, client, ctx):
        tenant = await make_tenant(ctx, "racer", settings={"slot_capacity": 1})
        await import_plan(client, tenant, small_plan())
        codes, responses = await race(
            client,
            tenant,
            [
                ("/api/v1/deliveries/T001/reschedule", {"window": window(NEXT_DAY, 10)}),
                ("/api/v1/deliveries/T002/reschedule", {"window": window(NEXT_DAY, 10)}),
            ],
        )
        assert codes == [200, 409], [r.text for r in responses]
        async with ctx.uow() as uow:
            slot = (await uow.session.exec(select(SlotCapacity))).one()
        assert slot.taken == 1

    async def test_two_deliveries_swapping_pool_slots_both_move(self, client, acme, ctx):
        """Each takes its new slot and frees its old one: in time order, so they never deadlock."""
        await pooled_at_10_and_14(client, acme)
        for _ in range(3):  # swap, then swap back, then again: every ordering of the two chances
            codes, responses = await race(
                client,
                acme,
                [
                    ("/api/v1/deliveries/T001/reschedule", {"window": window(NEXT_DAY, 14)}),
                    ("/api/v1/deliveries/T002/reschedule", {"window": window(NEXT_DAY, 10)}),
                ],
            )
            assert codes == [200, 200], [r.text for r in responses]
            codes, responses = await race(
                client,
                acme,
                [
                    ("/api/v1/deliveries/T001/reschedule", {"window": window(NEXT_DAY, 10)}),
                    ("/api/v1/deliveries/T002/reschedule", {"window": window(NEXT_DAY, 14)}),
                ],
            )
            assert codes == [200, 200], [r.text for r in responses]
        async with ctx.uow() as uow:
            slots = (await uow.session.exec(select(SlotCapacity))).all()
        assert sorted(s.taken for s in slots) == [1, 1]

    async def test_a_change_postgresql_fails_to_break_a_deadlock_gets_503_and_retry_after(
        self, client, acme, ctx
    ):
        """Another transaction holds the 14:00 slot's row, then asks for the 10:00 row this change holds:
        PostgreSQL fails the change (it waited first); the client is told to try again, and can."""
        if ctx.engine.dialect.name != "postgresql":
            pytest.skip("SQLite has one writer: no two transactions can deadlock")
        await pooled_at_10_and_14(client, acme)
        refused = await deadlocked(
            ctx,
            local(NEXT_DAY, 14),
            local(NEXT_DAY, 10),
            client.post(
                "/api/v1/deliveries/T001/reschedule",
                json={"window": window(NEXT_DAY, 14)},
                headers=acme.headers,
            ),
        )
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "1" and "try again" in refused.json()["detail"]
        again = await client.post(
            "/api/v1/deliveries/T001/reschedule", json={"window": window(NEXT_DAY, 14)}, headers=acme.headers
        )
        assert again.status_code == 200, again.text

    async def test_the_last_place_at_a_pickup_point_goes_to_exactly_one(self, client, acme, ctx):
        plan = small_plan()
        plan["pickup_points"][0]["capacity"] = 1
        await import_plan(client, acme, plan)
        point = (await client.get("/api/v1/deliveries/T001/pickup-points", headers=acme.headers)).json()
        point_id = next(p["id"] for p in point["pickup_points"] if p["external_id"] == "PP1")
        codes, responses = await race(
            client,
            acme,
            [
                ("/api/v1/deliveries/T001/redirect", {"pickup_point": point_id}),
                ("/api/v1/deliveries/T002/redirect", {"pickup_point": point_id}),
            ],
        )
        assert codes == [200, 409], [r.text for r in responses]
        async with ctx.uow() as uow:
            taken = (await uow.session.exec(select(func.count()).select_from(PickupReservation))).one()
        assert taken == 1
        assert await violations(ctx) == []
