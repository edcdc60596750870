"""Redirecting to a pickup point: nearest open points with room, a reserved place, the route re-timed."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlmodel import select

from core.models import Delivery, PickupReservation, Stop
from scheduling.events import DeliveryRescheduled, RedirectedToPickup
from tests.conftest import make_tenant
from tests.plans import DAY, small_plan
from tests.scheduling_support import import_plan, local, published_events, violations, window

PLAN_DAY = date.fromisoformat(DAY)
NEXT_DAY = PLAN_DAY + timedelta(days=1)


@pytest.fixture(autouse=True)
def fixed_clock(ctx):
    return published_events(ctx)


async def points(client, tenant, tracking="T001"):
    response = await client.get(f"/api/v1/deliveries/{tracking}/pickup-points", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["pickup_points"]


class TestListingPickupPoints:
    async def test_the_nearest_open_points_come_first_with_when_the_parcel_is_ready(self, client, acme):
        await import_plan(client, acme, small_plan())
        listed = await points(client, acme, "T002")
        assert [p["external_id"] for p in listed] == ["PP1", "PP2"]  # T002 is nearer the lockers
        assert [p["external_id"] for p in await points(client, acme, "T001")] == ["PP2", "PP1"]
        distances = [p["distance_m"] for p in listed]
        assert distances == sorted(distances)
        for point in listed:
            ready = datetime.fromisoformat(point["available_from"])
            assert ready.date() == PLAN_DAY and point["hours"]
        annex = next(p for p in listed if p["external_id"] == "PP2")
        assert datetime.fromisoformat(annex["available_from"]) >= local(PLAN_DAY, 10)  # opens at 10:00

    async def test_a_point_closed_when_the_parcel_could_get_there_is_not_listed(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        ctx.clock = lambda: local(PLAN_DAY, 17, 30)  # ready at 18:30, the bookshop closes at 18:00
        assert [p["external_id"] for p in await points(client, acme)] == ["PP1"]

    async def test_a_full_point_is_not_listed(self, client, acme):
        plan = small_plan()
        plan["pickup_points"][0]["capacity"] = 0
        await import_plan(client, acme, plan)
        assert [p["external_id"] for p in await points(client, acme)] == ["PP2"]

    async def test_only_the_deliverys_retailers_points_are_listed(self, client, acme, globex):
        await import_plan(client, acme, small_plan())
        other = small_plan(prefix="G")
        for point in other["pickup_points"]:
            point["location"] = [-79.4001, 43.6601]  # right at acme's T001
        await import_plan(client, globex, other)
        listed = await points(client, acme)
        assert all(p["distance_m"] > 50 for p in listed)


class TestRedirecting:
    async def test_it_reserves_a_place_takes_the_stop_off_and_re_times_the_route(
        self, client, acme, ctx, fixed_clock
    ):
        await import_plan(client, acme, small_plan())
        before = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        point = next(p for p in await points(client, acme) if p["external_id"] == "PP1")
        response = await client.post(
            "/api/v1/deliveries/T001/redirect", json={"pickup_point": point["id"]}, headers=acme.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "redirected" and response.json()["route"] is None
        view = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        assert view["pickup_point"]["external_id"] == "PP1" and view["route"] is None
        after = (await client.get("/api/v1/deliveries/T002", headers=acme.headers)).json()
        assert after["route"]["sequence"] == before["route"]["sequence"] - 1  # T001 left the route
        assert datetime.fromisoformat(after["eta"]) <= datetime.fromisoformat(before["eta"])
        async with ctx.uow() as uow:
            reservation = (await uow.session.exec(select(PickupReservation))).one()
            assert reservation.day == PLAN_DAY
            stops = (await uow.session.exec(select(Stop))).all()
        assert len(stops) == 4
        assert [e.pickup_point_id for e in fixed_clock if isinstance(e, RedirectedToPickup)] == [point["id"]]
        assert await violations(ctx) == []
        again = await client.post(
            "/api/v1/deliveries/T001/redirect", json={"pickup_point": point["id"]}, headers=acme.headers
        )
        assert again.status_code == 200 and again.json()["status"] == "redirected"  # already going there
        async with ctx.uow() as uow:
            assert len((await uow.session.exec(select(PickupReservation))).all()) == 1
        assert len([e for e in fixed_clock if isinstance(e, RedirectedToPickup)]) == 1

    async def test_a_full_point_answers_409(self, client, acme):
        plan = small_plan()
        plan["pickup_points"][0]["capacity"] = 1
        await import_plan(client, acme, plan)
        point = next(p for p in await points(client, acme) if p["external_id"] == "PP1")
        ok = await client.post(
            "/api/v1/deliveries/T001/redirect", json={"pickup_point": point["id"]}, headers=acme.headers
        )
        assert ok.status_code == 200
        full = await client.post(
            "/api/v1/deliveries/T002/redirect", json={"pickup_point": point["id"]}, headers=acme.headers
        )
        assert full.status_code == 409 and full.json()["error"] == "PickupPointFull"

    async def test_a_closed_point_answers_409(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        annex = next(p for p in await points(client, acme) if p["external_id"] == "PP2")
        ctx.clock = lambda: local(PLAN_DAY, 17, 30)
        closed = await client.post(
            "/api/v1/deliveries/T001/redirect", json={"pickup_point": annex["id"]}, headers=acme.headers
        )
        assert closed.status_code == 409 and closed.json()["error"] == "PickupPointUnavailable"

    async def test_another_retailers_point_is_unknown(self, client, acme, globex):
        await import_plan(client, acme, small_plan())
        await import_plan(client, globex, small_plan())
        foreign = (await points(client, globex))[0]["id"]
        response = await client.post(
            "/api/v1/deliveries/T001/redirect", json={"pickup_point": foreign}, headers=acme.headers
        )
        assert response.status_code == 404 and response.json() == {"detail": "no such pickup point"}

    async def test_a_malformed_body_gets_422(self, client, acme):
        await import_plan(client, acme, small_plan())
        for body in ({}, {"pickup_point": "PP1"}, {"pickup_point": 0}):
            response = await client.post("/api/v1/deliveries/T001/redirect", json=body, headers=acme.headers)
            assert response.status_code == 422


async def redirect(client, tenant, external_id, tracking="T001"):
    point = next(p for p in await points(client, tenant, tracking) if p["external_id"] == external_id)
    response = await client.post(
        f"/api/v1/deliveries/{tracking}/redirect", json={"pickup_point": point["id"]}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return point


async def reservations(ctx):
    async with ctx.uow() as uow:
        return [
            (r.delivery_id, r.pickup_point_id) for r in (await uow.session.exec(select(PickupReservation)))
        ]


class TestChangingTheirMind:
    """A parcel on its way to a pickup point can still come to the door, or go to another point."""

    async def test_it_comes_back_to_the_door_on_a_route_and_the_point_gets_its_place_back(
        self, client, acme, ctx, fixed_clock
    ):
        plan = small_plan()
        plan["pickup_points"][0]["capacity"] = 1
        await import_plan(client, acme, plan)
        await redirect(client, acme, "PP1")
        windows = await client.get("/api/v1/deliveries/T001/windows", headers=acme.headers)
        assert windows.status_code == 200 and windows.json()["windows"]
        home = await client.post(
            "/api/v1/deliveries/T001/reschedule", json={"window": window(PLAN_DAY, 14)}, headers=acme.headers
        )
        assert home.status_code == 200, home.text
        assert home.json()["status"] == "scheduled" and home.json()["route"] is not None
        view = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        assert view["pickup_point"] is None and view["route"]["id"] == home.json()["route"]
        assert await reservations(ctx) == []
        assert await violations(ctx) == []
        assert [type(e) for e in fixed_clock if isinstance(e, RedirectedToPickup | DeliveryRescheduled)] == [
            RedirectedToPickup,
            DeliveryRescheduled,
        ]
        brought_home = (await client.get("/api/v1/changes", headers=acme.headers)).json()["changes"][-1]
        assert brought_home["kind"] == "rescheduled"
        assert brought_home["before"]["status"] == "redirected" and brought_home["before"]["pickup_point"]
        assert (
            brought_home["after"]["status"] == "scheduled" and brought_home["after"]["pickup_point"] is None
        )
        await redirect(client, acme, "PP1", "T002")  # the place T001 gave back

    async def test_it_can_come_to_the_door_on_a_day_without_a_plan(self, client, ctx):
        tenant = await make_tenant(ctx, "pooling", settings={"slot_capacity": {"default": 3}})
        await import_plan(client, tenant, small_plan())
        await redirect(client, tenant, "PP1")
        pooled = await client.post(
            "/api/v1/deliveries/T001/reschedule",
            json={"window": window(NEXT_DAY, 10)},
            headers=tenant.headers,
        )
        assert pooled.status_code == 200, pooled.text
        assert pooled.json()["status"] == "pooled"
        assert await reservations(ctx) == []
        async with ctx.uow() as uow:
            t001 = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T001"))).one()
            assert t001.pickup_point_id is None and t001.day == NEXT_DAY

    async def test_it_can_go_to_another_point_and_frees_the_first(self, client, acme, ctx, fixed_clock):
        plan = small_plan()
        plan["pickup_points"][0]["capacity"] = 1
        await import_plan(client, acme, plan)
        first = await redirect(client, acme, "PP1")
        assert [p["external_id"] for p in await points(client, acme)] == ["PP2"]  # not the one it goes to
        second = await redirect(client, acme, "PP2")
        view = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        assert view["status"] == "redirected" and view["pickup_point"]["external_id"] == "PP2"
        assert [point for _, point in await reservations(ctx)] == [second["id"]]
        assert [e.pickup_point_id for e in fixed_clock if isinstance(e, RedirectedToPickup)] == [
            first["id"],
            second["id"],
        ]
        await redirect(client, acme, "PP1", "T002")  # PP1's one place is free again

    async def test_a_full_second_point_keeps_the_first(self, client, acme, ctx):
        plan = small_plan()
        plan["pickup_points"][1]["capacity"] = 1
        await import_plan(client, acme, plan)
        annex = await redirect(client, acme, "PP2", "T002")  # the annex's one place
        first = await redirect(client, acme, "PP1")
        refused = await client.post(
            "/api/v1/deliveries/T001/redirect", json={"pickup_point": annex["id"]}, headers=acme.headers
        )
        assert refused.status_code == 409 and refused.json()["error"] == "PickupPointFull"
        assert sorted(point for _, point in await reservations(ctx)) == sorted([annex["id"], first["id"]])
        view = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        assert view["status"] == "redirected" and view["pickup_point"]["external_id"] == "PP1"

    async def test_a_parcel_waiting_at_the_point_is_no_longer_changed_here(self, client, acme, ctx):
        await import_plan(client, acme, small_plan())
        await redirect(client, acme, "PP1")
        async with ctx.uow() as uow:
            t001 = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T001"))).one()
            t001.status = "ready_for_pickup"
            uow.session.add(t001)
            await uow.commit()
        home = await client.post(
            "/api/v1/deliveries/T001/reschedule", json={"window": window(PLAN_DAY, 14)}, headers=acme.headers
        )
        assert home.status_code == 409 and home.json()["error"] == "DeliveryNotChangeable"
        other = await client.get("/api/v1/deliveries/T001/pickup-points", headers=acme.headers)
        assert other.status_code == 409
        assert len(await reservations(ctx)) == 1
