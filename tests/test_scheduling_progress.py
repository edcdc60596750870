"""Driver progress: statuses, proof, reasons and delays update the route's ETAs and emit events."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from scheduling.events import Arrived, AttemptFailed, Delivered, EtaChanged, OutForDelivery
from tests.plans import DAY, small_plan
from tests.scheduling_support import import_plan, local, published_events, window

PLAN_DAY = date.fromisoformat(DAY)


@pytest.fixture(autouse=True)
def events(ctx):
    return published_events(ctx)


async def view(client, tenant, tracking):
    return (await client.get(f"/api/v1/deliveries/{tracking}", headers=tenant.headers)).json()


async def report(client, tenant, route, **body):
    return await client.post(f"/api/v1/routes/{route}/events", json=body, headers=tenant.headers)


class TestDriverProgress:
    async def test_departure_puts_the_routes_deliveries_out_for_delivery(self, client, acme, events):
        await import_plan(client, acme, small_plan())
        route = (await view(client, acme, "T001"))["route"]["id"]
        response = await report(client, acme, route, type="departed", at=local(PLAN_DAY, 8).isoformat())
        assert response.status_code == 200, response.text
        assert (await view(client, acme, "T001"))["status"] == "out_for_delivery"
        assert (await view(client, acme, "T003"))["status"] == "scheduled"  # another route
        plan = (await client.get("/api/v1/plans/1", headers=acme.headers)).json()
        on_route = next(r for r in plan["routes"] if r["route_id"] == route)
        trackings = [s["tracking"] for s in on_route["steps"] if s["type"] == "job"]
        statuses = [(await view(client, acme, t))["status"] for t in trackings]
        assert statuses == ["out_for_delivery"] * len(trackings)
        assert len([e for e in events if isinstance(e, OutForDelivery)]) == len(trackings)
        offers = await client.get("/api/v1/deliveries/T001/windows", headers=acme.headers)
        assert offers.status_code == 409  # on the truck: no more changes

    async def test_arrival_and_delivery_with_proof_re_time_the_rest_of_the_route(self, client, acme, events):
        await import_plan(client, acme, small_plan())
        first = await view(client, acme, "T001")
        route = first["route"]["id"]
        second_before = datetime.fromisoformat((await view(client, acme, "T002"))["eta"])
        late = local(PLAN_DAY, 10, 40)  # the driver reaches T001 well after its planned ETA
        assert (
            await report(client, acme, route, type="arrived", tracking="T001", at=late.isoformat())
        ).status_code == 200
        assert (await view(client, acme, "T001"))["status"] == "arrived"
        done = await report(
            client,
            acme,
            route,
            type="delivered",
            tracking="T001",
            at=(late + timedelta(minutes=5)).isoformat(),
            proof={"signature": "A. Lovelace", "photo": "https://example.test/p/1.jpg"},
        )
        assert done.status_code == 200, done.text
        delivered = await view(client, acme, "T001")
        assert delivered["status"] == "delivered" and delivered["proof"]["signature"] == "A. Lovelace"
        second_after = datetime.fromisoformat((await view(client, acme, "T002"))["eta"])
        assert second_after > second_before and second_after >= late + timedelta(minutes=5)
        assert [type(e) for e in events if isinstance(e, Arrived | Delivered)] == [Arrived, Delivered]
        delivered_event = next(e for e in events if isinstance(e, Delivered))
        assert delivered_event.proof["signature"] == "A. Lovelace"
        eta_events = [e for e in events if isinstance(e, EtaChanged)]
        assert any(e.stops_away == 0 and e.eta == second_after for e in eta_events)
        assert all(e.stops_away >= 0 for e in eta_events)
        again = await report(client, acme, route, type="delivered", tracking="T001", at=late.isoformat())
        assert again.status_code == 409

    async def test_a_failed_attempt_keeps_its_reason_and_can_be_rescheduled(self, client, acme, events):
        await import_plan(client, acme, small_plan())
        route = (await view(client, acme, "T001"))["route"]["id"]
        failed = await report(
            client,
            acme,
            route,
            type="failed",
            tracking="T001",
            reason="nobody home",
            at=local(PLAN_DAY, 9, 20).isoformat(),
        )
        assert failed.status_code == 200
        body = await view(client, acme, "T001")
        assert body["status"] == "failed" and body["failure_reason"] == "nobody home"
        assert [e.reason for e in events if isinstance(e, AttemptFailed)] == ["nobody home"]
        again = await client.post(
            "/api/v1/deliveries/T001/reschedule",
            json={"window": window(PLAN_DAY + timedelta(days=1), 12)},
            headers=acme.headers,
        )
        assert again.status_code == 200, again.text

    async def test_a_reported_delay_pushes_every_later_eta(self, client, acme, events):
        await import_plan(client, acme, small_plan())
        route = (await view(client, acme, "T001"))["route"]["id"]
        before = [datetime.fromisoformat((await view(client, acme, t))["eta"]) for t in ("T001", "T002")]
        response = await report(client, acme, route, type="delay", minutes=120)
        assert response.status_code == 200
        after = [datetime.fromisoformat((await view(client, acme, t))["eta"]) for t in ("T001", "T002")]
        assert all(a >= b for a, b in zip(after, before, strict=True)) and after != before
        moved = [e for e in events if isinstance(e, EtaChanged)]
        assert sorted(e.stops_away for e in moved) == list(range(len(moved)))  # 0 = next stop
        etas = response.json()["etas"]
        assert set(etas) >= {"T001", "T002"}


class TestBadReports:
    async def test_unknown_and_foreign_routes_get_404(self, client, acme, globex):
        await import_plan(client, acme, small_plan())
        route = (await view(client, acme, "T001"))["route"]["id"]
        assert (await report(client, globex, route, type="delay", minutes=5)).status_code == 404
        assert (await report(client, acme, 99999, type="delay", minutes=5)).status_code == 404

    async def test_a_stop_of_another_route_or_a_bad_body_gets_422(self, client, acme):
        await import_plan(client, acme, small_plan())
        route = (await view(client, acme, "T001"))["route"]["id"]
        assert (await report(client, acme, route, type="arrived", tracking="T003")).status_code == 422
        assert (await report(client, acme, route, type="arrived")).status_code == 422
        assert (await report(client, acme, route, type="teleported")).status_code == 422
        assert (await report(client, acme, route, type="delay", minutes=0)).status_code == 422
        naive = await report(client, acme, route, type="arrived", tracking="T001", at="2026-12-03T10:00:00")
        assert naive.status_code == 422
