"""White-glove setup: slots on a crew's route with the crew's longer service, booked atomically."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlmodel import select

from core.models import ChangeLog
from scheduling.events import WhiteGloveBooked, WhiteGloveCancelled
from tests.plans import DAY, small_plan
from tests.scheduling_support import (  # noqa: F401
    TORONTO,
    import_plan,
    local,
    published_events,
    slow_writes,
    violations,
    window,
)

PLAN_DAY = date.fromisoformat(DAY)


@pytest.fixture(autouse=True)
def fixed_clock(ctx):
    return published_events(ctx)


async def crew_id(client, tenant) -> int:
    return (await client.get("/api/v1/deliveries/T005", headers=tenant.headers)).json()["route"]["id"]


class TestSetupSlots:
    async def test_slots_are_on_a_crews_route_only(self, client, acme):
        await import_plan(client, acme, small_plan())
        crew = await crew_id(client, acme)
        response = await client.get("/api/v1/deliveries/T002/white-glove/slots?days=1", headers=acme.headers)
        assert response.status_code == 200, response.text
        slots = response.json()["slots"]
        assert slots and {s["route"] for s in slots} == {crew}
        for slot in slots:
            start = datetime.fromisoformat(slot["start"]).astimezone(TORONTO)
            assert datetime.fromisoformat(slot["end"]) - datetime.fromisoformat(slot["start"]) == timedelta(
                hours=2
            )
            assert start <= datetime.fromisoformat(slot["eta"])

    async def test_a_day_without_a_plan_has_no_setup_slots(self, client, acme):
        await import_plan(client, acme, small_plan())
        response = await client.get("/api/v1/deliveries/T002/white-glove/slots?days=3", headers=acme.headers)
        assert {s["date"] for s in response.json()["slots"]} == {DAY}


class TestBookingSetup:
    async def test_booking_moves_the_delivery_onto_the_crew_with_the_longer_service(
        self, client, acme, ctx, fixed_clock
    ):
        await import_plan(client, acme, small_plan())
        crew = await crew_id(client, acme)
        response = await client.post(
            "/api/v1/deliveries/T002/white-glove", json={"slot": window(PLAN_DAY, 16)}, headers=acme.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["route"] == crew
        view = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        assert view["white_glove"]["required"] is True
        assert datetime.fromisoformat(view["white_glove"]["slot"]["start"]) == local(PLAN_DAY, 16)
        assert local(PLAN_DAY, 16) <= datetime.fromisoformat(view["eta"]) <= local(PLAN_DAY, 18)
        from core.models import Delivery

        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T002"))).one()
            logged = (
                await uow.session.exec(select(ChangeLog).where(ChangeLog.kind == "white_glove_booked"))
            ).one()
        assert delivery.service_seconds == 45 * 60
        assert logged.after["white_glove"]["start"]
        assert [e.slot_start for e in fixed_clock if isinstance(e, WhiteGloveBooked)] == [local(PLAN_DAY, 16)]
        assert await violations(ctx) == []

    async def test_a_slot_the_crew_cannot_keep_answers_409_with_other_slots(self, client, acme):
        plan = small_plan()
        plan["vehicles"][2]["time_window"] = [28800, 57600]  # the crew stops at 16:00
        await import_plan(client, acme, plan)
        response = await client.post(
            "/api/v1/deliveries/T002/white-glove", json={"slot": window(PLAN_DAY, 16)}, headers=acme.headers
        )
        assert response.status_code == 409 and response.json()["error"] == "SlotUnavailable"
        alternatives = response.json()["alternatives"]
        assert alternatives and all(
            datetime.fromisoformat(a["end"]) <= local(PLAN_DAY, 16) for a in alternatives
        )

    @pytest.mark.usefixtures("slow_writes")
    async def test_the_crews_last_slot_goes_to_one_of_two_recipients(self, client, acme, ctx):
        import asyncio

        plan = small_plan()
        plan["vehicles"][2]["capacity"] = [2]  # room for one more setup
        await import_plan(client, acme, plan)
        responses = await asyncio.gather(
            *(
                client.post(
                    f"/api/v1/deliveries/{t}/white-glove",
                    json={"slot": window(PLAN_DAY, 10)},
                    headers=acme.headers,
                )
                for t in ("T001", "T002")
            )
        )
        assert sorted(r.status_code for r in responses) == [200, 409]
        assert await violations(ctx) == []

    async def test_rescheduling_a_booked_setup_moves_its_slot_and_keeps_it_on_a_crew(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        crew = await crew_id(client, acme)
        booked = await client.post(
            "/api/v1/deliveries/T002/white-glove", json={"slot": window(PLAN_DAY, 10)}, headers=acme.headers
        )
        assert booked.status_code == 200, booked.text
        moved = await client.post(
            "/api/v1/deliveries/T002/reschedule", json={"window": window(PLAN_DAY, 16)}, headers=acme.headers
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["route"] == crew
        view = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        assert datetime.fromisoformat(view["white_glove"]["slot"]["start"]) == local(PLAN_DAY, 16)
        assert await violations(ctx) == []


class TestCallingOffSetup:
    async def test_a_booked_setup_is_called_off_keeping_the_window_and_the_route_place(
        self, client, acme, ctx, fixed_clock
    ):
        await import_plan(client, acme, small_plan())
        from core.models import Delivery

        async with ctx.uow() as uow:
            drop_off = (
                (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T002")))
                .one()
                .service_seconds
            )
        booked = await client.post(
            "/api/v1/deliveries/T002/white-glove", json={"slot": window(PLAN_DAY, 16)}, headers=acme.headers
        )
        assert booked.status_code == 200, booked.text
        booked_view = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        assert booked_view["white_glove"]["cancellable"] is True
        called_off = await client.delete("/api/v1/deliveries/T002/white-glove", headers=acme.headers)
        assert called_off.status_code == 200, called_off.text
        assert called_off.json()["route"] == booked.json()["route"]
        assert called_off.json()["window"] == booked.json()["window"]
        view = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        assert view["white_glove"] == {"required": False, "slot": None, "cancellable": False}
        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T002"))).one()
            logged = (
                await uow.session.exec(select(ChangeLog).where(ChangeLog.kind == "white_glove_cancelled"))
            ).one()
        assert delivery.service_seconds == drop_off and delivery.service_seconds_without_setup is None
        assert logged.before["white_glove"]["start"] and logged.after["white_glove"] is None
        assert [e.slot_start for e in fixed_clock if isinstance(e, WhiteGloveCancelled)] == [
            local(PLAN_DAY, 16)
        ]
        assert await violations(ctx) == []
        again = await client.delete("/api/v1/deliveries/T002/white-glove", headers=acme.headers)
        assert again.status_code == 409 and again.json()["error"] == "NoSetupBooked"
        rebooked = await client.post(
            "/api/v1/deliveries/T002/white-glove", json={"slot": window(PLAN_DAY, 10)}, headers=acme.headers
        )
        assert rebooked.status_code == 200, rebooked.text
        assert (
            await client.delete("/api/v1/deliveries/T002/white-glove", headers=acme.headers)
        ).status_code == 200

    async def test_a_setup_sold_with_the_order_is_the_retailers_to_take_off(self, client, acme):
        await import_plan(client, acme, small_plan())
        response = await client.delete("/api/v1/deliveries/T005/white-glove", headers=acme.headers)
        assert response.status_code == 409 and response.json()["error"] == "SetupCameWithTheOrder"
        view = (await client.get("/api/v1/deliveries/T005", headers=acme.headers)).json()
        assert view["white_glove"]["required"] is True and view["white_glove"]["cancellable"] is False

    async def test_another_retailers_setup_cannot_be_called_off(self, client, acme, globex):
        await import_plan(client, acme, small_plan())
        booked = await client.post(
            "/api/v1/deliveries/T002/white-glove", json={"slot": window(PLAN_DAY, 16)}, headers=acme.headers
        )
        assert booked.status_code == 200, booked.text
        response = await client.delete("/api/v1/deliveries/T002/white-glove", headers=globex.headers)
        assert response.status_code == 404
        view = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        assert view["white_glove"]["slot"] is not None

    async def test_after_a_failed_attempt_the_stop_stays_as_the_driver_reported_it(self, client, acme, ctx):
        """The plan kept in memory after the call-off is the plan the database holds (the stop stays
        visited, with the driver's times), not a fresh stop with the drop-off time."""
        from core.models import RoutePlan
        from scheduling.state import load_state, plan_state

        await import_plan(client, acme, small_plan())
        booked = await client.post(
            "/api/v1/deliveries/T002/white-glove", json={"slot": window(PLAN_DAY, 16)}, headers=acme.headers
        )
        assert booked.status_code == 200, booked.text
        failed = await client.post(
            f"/api/v1/routes/{booked.json()['route']}/events",
            json={
                "type": "failed",
                "tracking": "T002",
                "reason": "nobody home",
                "at": local(PLAN_DAY, 16, 30).isoformat(),
            },
            headers=acme.headers,
        )
        assert failed.status_code == 200, failed.text
        called_off = await client.delete("/api/v1/deliveries/T002/white-glove", headers=acme.headers)
        assert called_off.status_code == 200, called_off.text
        async with ctx.uow() as uow:
            plan = (await uow.session.exec(select(RoutePlan))).one()
            kept = await plan_state(uow.session, plan)
            stored = await load_state(uow.session, plan)
        assert [r.specs for r in kept.routes] == [r.specs for r in stored.routes]
        assert any(spec.done for r in kept.routes for spec in r.specs)

    async def test_a_setup_the_plan_of_its_new_day_carries_is_the_retailers_to_take_off(self, client, acme):
        """Booked, then moved to a day without a plan: that day's plan, when it comes, says what the stop
        is. A setup it carries is the retailer's; the drop-off time Doorstep kept is forgotten."""
        await import_plan(client, acme, small_plan())
        booked = await client.post(
            "/api/v1/deliveries/T002/white-glove", json={"slot": window(PLAN_DAY, 16)}, headers=acme.headers
        )
        assert booked.status_code == 200, booked.text
        next_day = PLAN_DAY + timedelta(days=1)
        moved = await client.post(
            "/api/v1/deliveries/T002/reschedule", json={"window": window(next_day, 10)}, headers=acme.headers
        )
        assert moved.status_code == 200, moved.text
        plan = small_plan(day=next_day.isoformat(), prefix="N")
        plan["jobs"][1]["tracking"] = "T002"
        plan["jobs"][1]["white_glove"], plan["jobs"][1]["service"] = True, 2700  # sold with a setup now
        for vehicle in plan["vehicles"]:
            vehicle["steps"] = [s for s in vehicle["steps"] if s.get("id") != 2 or s["type"] != "job"]
        plan["vehicles"][2]["steps"].insert(1, {"type": "job", "id": 2})
        await import_plan(client, acme, plan)
        view = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        assert view["date"] == next_day.isoformat() and view["white_glove"]["required"] is True
        assert view["white_glove"]["cancellable"] is False
        response = await client.delete("/api/v1/deliveries/T002/white-glove", headers=acme.headers)
        assert response.status_code == 409 and response.json()["error"] == "SetupCameWithTheOrder"
