"""Window offers and rescheduling: every offer feasible, every accepted change kept, the rest refused."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlmodel import select

from core.models import ChangeLog, Delivery, SlotCapacity
from scheduling import service
from scheduling.events import DeliveryRescheduled, EtaChanged
from scheduling.service import SYSTEM, Actor
from tests.conftest import make_tenant
from tests.plans import DAY, small_plan
from tests.scheduling_support import (
    NOW,
    TORONTO,
    delivery,
    import_plan,
    local,
    published_events,
    violations,
    window,
)

PLAN_DAY = date.fromisoformat(DAY)
NEXT_DAY = PLAN_DAY + timedelta(days=1)


@pytest.fixture(autouse=True)
def fixed_clock(ctx):
    published = published_events(ctx)
    ctx.published = published
    return published


class TestWindowOffers:
    async def test_offers_are_the_retailers_slots_same_day_first_each_with_route_and_eta(
        self, client, acme, ctx
    ):
        await import_plan(client, acme, small_plan())
        response = await client.get("/api/v1/deliveries/T001/windows?days=2", headers=acme.headers)
        assert response.status_code == 200, response.text
        offers = response.json()["windows"]
        assert offers, "a plan with room offers windows"
        days = [o["date"] for o in offers]
        assert days == sorted(days, key=lambda d: d != DAY)  # same day first
        for offer in offers:
            start = datetime.fromisoformat(offer["start"]).astimezone(TORONTO)
            end = datetime.fromisoformat(offer["end"]).astimezone(TORONTO)
            assert end - start == timedelta(hours=2) and start.minute == 0 and start.hour % 2 == 0
            if offer["date"] == DAY:
                assert offer["route"] is not None and start <= datetime.fromisoformat(offer["eta"]) <= end
        same_day = [o for o in offers if o["date"] == DAY]
        detours = [o["detour_seconds"] for o in same_day]
        assert detours == sorted(detours)
        current = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()["window"]
        assert all(o["start"] != current["start"] for o in same_day)  # not its own window

    async def test_every_offer_can_be_taken_and_leaves_the_plan_feasible(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        offers = (await client.get("/api/v1/deliveries/T002/windows", headers=acme.headers)).json()["windows"]
        for offer in [o for o in offers if o["date"] == DAY]:
            response = await client.post(
                "/api/v1/deliveries/T002/reschedule",
                json={"window": {"start": offer["start"], "end": offer["end"]}},
                headers=acme.headers,
            )
            assert response.status_code == 200, response.text
            assert await violations(ctx) == []

    async def test_offers_start_after_now_plus_the_cutoff(self, client, ctx):
        tenant = await make_tenant(ctx, "cutoff", settings={"cutoff_minutes": 180})
        await import_plan(client, tenant, small_plan())
        ctx.clock = lambda: local(PLAN_DAY, 10)
        offers = (await client.get("/api/v1/deliveries/T003/windows", headers=tenant.headers)).json()[
            "windows"
        ]
        assert offers and all(datetime.fromisoformat(o["start"]) >= local(PLAN_DAY, 13) for o in offers)

    async def test_a_day_without_a_plan_offers_the_pool_slots_with_room(self, client, ctx):
        tenant = await make_tenant(ctx, "pooling", settings={"slot_capacity": {"08:00": 0, "default": 3}})
        await import_plan(client, tenant, small_plan())
        offers = (await client.get("/api/v1/deliveries/T001/windows?days=2", headers=tenant.headers)).json()[
            "windows"
        ]
        pool = [o for o in offers if o["date"] == NEXT_DAY.isoformat()]
        hours = sorted(datetime.fromisoformat(o["start"]).astimezone(TORONTO).hour for o in pool)
        assert hours == [10, 12, 14, 16, 18]  # 08:00 has no place; the day runs 08:00-20:00
        assert all(o["route"] is None and o["planned"] is False for o in pool)
        assert offers.index(pool[0]) > max(offers.index(o) for o in offers if o["date"] == DAY)


class TestRescheduling:
    async def test_a_feasible_window_answers_200_with_route_and_eta_and_moves_the_stop(
        self, client, acme, ctx
    ):
        await import_plan(client, acme, small_plan())
        target = window(PLAN_DAY, 14)
        response = await client.post(
            "/api/v1/deliveries/T001/reschedule", json={"window": target}, headers=acme.headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert datetime.fromisoformat(body["window"]["start"]) == datetime.fromisoformat(target["start"])
        eta = datetime.fromisoformat(body["eta"])
        assert local(PLAN_DAY, 14) <= eta <= local(PLAN_DAY, 16)
        view = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        assert view["route"]["id"] == body["route"] and view["eta"] == body["eta"]
        assert await violations(ctx) == []
        rescheduled = [e for e in ctx.published if isinstance(e, DeliveryRescheduled)]
        assert len(rescheduled) == 1 and rescheduled[0].window_start == local(PLAN_DAY, 14)

    async def test_an_infeasible_window_answers_409_with_the_nearest_feasible_alternatives(
        self, client, acme, ctx
    ):
        plan = small_plan()
        for vehicle in plan["vehicles"]:
            vehicle["time_window"] = [28800, 50400]  # every shift ends at 14:00
        await import_plan(client, acme, plan)
        response = await client.post(
            "/api/v1/deliveries/T001/reschedule", json={"window": window(PLAN_DAY, 18)}, headers=acme.headers
        )
        assert response.status_code == 409
        alternatives = response.json()["alternatives"]
        assert alternatives and all(
            datetime.fromisoformat(a["end"]) <= local(PLAN_DAY, 14) or a["date"] != DAY for a in alternatives
        )
        unchanged = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        assert datetime.fromisoformat(unchanged["window"]["start"]) == local(PLAN_DAY, 9)

    async def test_moving_to_another_planned_day_uses_that_days_best_route(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        await import_plan(client, acme, small_plan(day=NEXT_DAY.isoformat(), prefix="N"))
        response = await client.post(
            "/api/v1/deliveries/T001/reschedule", json={"window": window(NEXT_DAY, 12)}, headers=acme.headers
        )
        assert response.status_code == 200, response.text
        view = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        assert view["date"] == NEXT_DAY.isoformat() and view["route"]["vehicle"] in (1, 2)
        assert await violations(ctx) == []

    async def test_a_delivery_moved_to_a_later_day_can_come_back_to_its_first_day(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        later = await client.post(
            "/api/v1/deliveries/T001/reschedule", json={"window": window(NEXT_DAY, 12)}, headers=acme.headers
        )
        assert later.status_code == 200, later.text
        offers = (await client.get("/api/v1/deliveries/T001/windows?days=3", headers=acme.headers)).json()
        assert DAY in {o["date"] for o in offers["windows"]}, "its first day stays on offer"
        back = await client.post(
            "/api/v1/deliveries/T001/reschedule", json={"window": window(PLAN_DAY, 14)}, headers=acme.headers
        )
        assert back.status_code == 200, back.text
        view = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        assert view["date"] == DAY and view["route"] is not None
        assert await violations(ctx) == []

    async def test_a_day_without_a_plan_pools_the_delivery_until_its_plan_is_imported(
        self, client, acme, ctx
    ):
        await import_plan(client, acme, small_plan())
        response = await client.post(
            "/api/v1/deliveries/T002/reschedule", json={"window": window(NEXT_DAY, 12)}, headers=acme.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "pooled" and response.json()["route"] is None
        async with ctx.uow() as uow:
            slot = (await uow.session.exec(select(SlotCapacity))).one()
            assert slot.taken == 1 and slot.capacity == 20
        await import_plan(client, acme, small_plan(day=NEXT_DAY.isoformat(), prefix="N"))
        view = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        assert view["status"] == "scheduled" and view["route"] is not None
        assert datetime.fromisoformat(view["window"]["start"]) == local(NEXT_DAY, 12)
        assert local(NEXT_DAY, 12) <= datetime.fromisoformat(view["eta"]) <= local(NEXT_DAY, 14)
        assert await violations(ctx) == []

    async def test_a_full_pool_slot_is_refused_with_alternatives(self, client, ctx):
        tenant = await make_tenant(ctx, "tiny", settings={"slot_capacity": 1})
        await import_plan(client, tenant, small_plan())
        ok = await client.post(
            "/api/v1/deliveries/T001/reschedule",
            json={"window": window(NEXT_DAY, 10)},
            headers=tenant.headers,
        )
        assert ok.status_code == 200
        full = await client.post(
            "/api/v1/deliveries/T002/reschedule",
            json={"window": window(NEXT_DAY, 10)},
            headers=tenant.headers,
        )
        assert full.status_code == 409 and full.json()["alternatives"]
        taken = local(NEXT_DAY, 10)
        assert all(datetime.fromisoformat(a["start"]) != taken for a in full.json()["alternatives"])

    async def test_moving_out_of_the_pool_gives_the_place_back(self, client, ctx):
        tenant = await make_tenant(ctx, "giveback", settings={"slot_capacity": 1})
        await import_plan(client, tenant, small_plan())
        await client.post(
            "/api/v1/deliveries/T001/reschedule",
            json={"window": window(NEXT_DAY, 10)},
            headers=tenant.headers,
        )
        back = await client.post(
            "/api/v1/deliveries/T001/reschedule",
            json={"window": window(PLAN_DAY, 14)},
            headers=tenant.headers,
        )
        assert back.status_code == 200, back.text
        again = await client.post(
            "/api/v1/deliveries/T002/reschedule",
            json={"window": window(NEXT_DAY, 10)},
            headers=tenant.headers,
        )
        assert again.status_code == 200, again.text

    async def test_other_stops_get_new_etas_and_eta_events_when_the_route_changes(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        before = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        response = await client.post(
            "/api/v1/deliveries/T003/reschedule", json={"window": window(PLAN_DAY, 10)}, headers=acme.headers
        )
        assert response.status_code == 200
        after = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        moved = before["eta"] != after["eta"]
        events = [e for e in ctx.published if isinstance(e, EtaChanged)]
        assert all(e.stops_away >= 0 for e in events)
        if moved and after["route"]["id"] == response.json()["route"]:
            assert (
                any(e.delivery_id for e in events)
                or abs(
                    (
                        datetime.fromisoformat(after["eta"]) - datetime.fromisoformat(before["eta"])
                    ).total_seconds()
                )
                < 300
            )

    async def test_the_change_is_logged_with_who_channel_before_and_after(self, ctx, acme, client):
        await import_plan(client, acme, small_plan())
        d = await delivery(ctx, acme.retailer_id, "T001")
        async with ctx.uow() as uow:
            actor = Actor(service.Author.recipient, id="conversation:7", channel="sms")
            await service.reschedule_delivery(
                uow, d, local(PLAN_DAY, 14), local(PLAN_DAY, 16), actor, now=NOW
            )
        async with ctx.uow() as uow:
            entry = (await uow.session.exec(select(ChangeLog).where(ChangeLog.kind == "rescheduled"))).one()
        assert entry.actor == "recipient" and entry.channel == "sms" and entry.actor_id == "conversation:7"
        assert datetime.fromisoformat(entry.before["window"]["start"]) == local(PLAN_DAY, 9)
        assert datetime.fromisoformat(entry.after["window"]["start"]) == local(PLAN_DAY, 14)


class TestWhatCannotBeChanged:
    async def test_a_finished_or_departed_delivery_is_not_changeable(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        for status in ("delivered", "cancelled", "ready_for_pickup", "out_for_delivery"):
            async with ctx.uow() as uow:
                d = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T001"))).one()
                d.status = status
                uow.session.add(d)
                await uow.commit()
            response = await client.post(
                "/api/v1/deliveries/T001/reschedule",
                json={"window": window(PLAN_DAY, 14)},
                headers=acme.headers,
            )
            assert response.status_code == 409 and response.json()["error"] == "DeliveryNotChangeable", status
            offers = await client.get("/api/v1/deliveries/T001/windows", headers=acme.headers)
            assert offers.status_code == 409

    async def test_a_stop_the_driver_reached_is_not_changeable(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        route = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()["route"]["id"]
        arrived = await client.post(
            f"/api/v1/routes/{route}/events",
            json={"type": "arrived", "tracking": "T001", "at": local(PLAN_DAY, 9, 30).isoformat()},
            headers=acme.headers,
        )
        assert arrived.status_code == 200, arrived.text
        async with ctx.uow() as uow:
            d = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T001"))).one()
            with pytest.raises(service.DeliveryNotChangeable):
                await service.reschedule_delivery(
                    uow, d, local(PLAN_DAY, 14), local(PLAN_DAY, 16), SYSTEM, now=NOW
                )


class TestTheApiBoundary:
    async def test_unknown_and_foreign_trackings_get_the_same_404(self, client, acme, globex):
        await import_plan(client, acme, small_plan())
        for tracking, tenant in (("NOPE", acme), ("T001", globex)):
            for method, path, body in (
                ("GET", "windows", None),
                ("POST", "reschedule", {"window": window(PLAN_DAY, 14)}),
                ("GET", "pickup-points", None),
                ("POST", "redirect", {"pickup_point": 1}),
                ("GET", "white-glove/slots", None),
                ("POST", "white-glove", {"slot": window(PLAN_DAY, 14)}),
            ):
                response = await client.request(
                    method, f"/api/v1/deliveries/{tracking}/{path}", json=body, headers=tenant.headers
                )
                assert response.status_code == 404 and response.json() == {"detail": "no such delivery"}

    async def test_a_malformed_window_gets_422_with_a_reason(self, client, acme):
        await import_plan(client, acme, small_plan())
        for body in (
            {},
            {"window": {"start": "tomorrow", "end": "later"}},
            {"window": {"start": "2026-12-03T14:00:00", "end": "2026-12-03T16:00:00"}},  # no offset
            {"window": {"start": "2026-12-03T16:00:00-05:00", "end": "2026-12-03T14:00:00-05:00"}},
        ):
            response = await client.post(
                "/api/v1/deliveries/T001/reschedule", json=body, headers=acme.headers
            )
            assert response.status_code == 422, body
            assert response.json()["detail"]

    async def test_a_window_over_two_days_gets_422(self, client, acme):
        await import_plan(client, acme, small_plan())
        body = {"window": {"start": local(PLAN_DAY, 22).isoformat(), "end": local(NEXT_DAY, 2).isoformat()}}
        response = await client.post("/api/v1/deliveries/T001/reschedule", json=body, headers=acme.headers)
        assert response.status_code == 422 and "one day" in response.json()["detail"]

    async def test_no_key_gets_401(self, client):
        assert (await client.get("/api/v1/deliveries/T001/windows")).status_code == 401
