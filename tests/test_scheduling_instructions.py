"""Instructions for the driver and cancellation: logged, checked, and the route re-timed."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import select

from core.models import ChangeLog, PickupReservation, SlotCapacity
from scheduling.events import DeliveryCancelled
from tests.conftest import make_tenant
from tests.plans import DAY, small_plan
from tests.scheduling_support import NOW, import_plan, published_events, violations, window

PLAN_DAY = date.fromisoformat(DAY)


@pytest.fixture(autouse=True)
def events(ctx):
    return published_events(ctx)


class TestInstructions:
    async def test_instructions_are_replaced_and_logged_and_bad_ones_refused(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        ok = await client.put(
            "/api/v1/deliveries/T001/instructions",
            json={"instructions": "  Leave it with the concierge\n(door code 1234) "},
            headers=acme.headers,
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["instructions"] == "Leave it with the concierge (door code 1234)"  # one line
        async with ctx.uow() as uow:
            entry = (
                await uow.session.exec(select(ChangeLog).where(ChangeLog.kind == "instructions_changed"))
            ).one()
        assert entry.before == {"instructions": ""} and entry.created_at == NOW
        too_long = await client.put(
            "/api/v1/deliveries/T001/instructions", json={"instructions": "x" * 501}, headers=acme.headers
        )
        assert too_long.status_code == 422
        control = await client.put(
            "/api/v1/deliveries/T001/instructions",
            json={"instructions": "ring\u0007twice"},
            headers=acme.headers,
        )
        assert control.status_code == 422 and "plain text" in control.json()["detail"]


class TestCancelling:
    async def test_a_cancelled_delivery_leaves_its_route_and_frees_its_places(self, client, ctx, events):
        tenant = await make_tenant(ctx, "cancels", settings={"slot_capacity": 1})
        await import_plan(client, tenant, small_plan())
        pooled = await client.post(
            "/api/v1/deliveries/T001/reschedule",
            json={"window": window(PLAN_DAY.replace(day=4), 10)},
            headers=tenant.headers,
        )
        assert pooled.status_code == 200
        points = (await client.get("/api/v1/deliveries/T002/pickup-points", headers=tenant.headers)).json()
        await client.post(
            "/api/v1/deliveries/T002/redirect",
            json={"pickup_point": points["pickup_points"][0]["id"]},
            headers=tenant.headers,
        )
        for tracking in ("T001", "T002", "T003"):
            response = await client.post(f"/api/v1/deliveries/{tracking}/cancel", headers=tenant.headers)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "cancelled"
        assert (await client.get("/api/v1/deliveries/T003", headers=tenant.headers)).json()["route"] is None
        async with ctx.uow() as uow:
            assert (await uow.session.exec(select(SlotCapacity))).one().taken == 0
            assert (await uow.session.exec(select(PickupReservation))).all() == []
        assert len([e for e in events if isinstance(e, DeliveryCancelled)]) == 3
        again = await client.post("/api/v1/deliveries/T003/cancel", headers=tenant.headers)
        assert again.status_code == 409
        assert await violations(ctx) == []
