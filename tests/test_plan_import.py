"""Importing route plans: all or nothing, every problem named, each retailer sees only its own."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlmodel import func, select

from app import build_context
from core.models import KeptEvent, Notification
from tests.conftest import TenantKeys
from tests.plans import small_plan


async def import_ok(client: AsyncClient, tenant: TenantKeys, plan: dict) -> int:
    response = await client.post("/api/v1/plans", json=plan, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


class TestImportingAValidPlan:
    async def test_it_answers_201_and_returns_the_plan_in_vroom_solution_shape(self, client, acme):
        plan_id = await import_ok(client, acme, small_plan())
        solution = (await client.get(f"/api/v1/plans/{plan_id}", headers=acme.headers)).json()
        assert solution["summary"]["unassigned"] == 0
        assert solution["summary"]["violations"] == []
        planned = {s["tracking"]: s for r in solution["routes"] for s in r["steps"] if s["type"] == "job"}
        assert set(planned) == {"T001", "T002", "T003", "T004", "T005"}
        route_1 = next(r for r in solution["routes"] if r["vehicle"] == 1)
        arrivals = [s["arrival"] for s in route_1["steps"]]
        assert arrivals == sorted(arrivals)
        assert route_1["steps"][0]["type"] == "start" and route_1["steps"][-1]["type"] == "end"

    async def test_each_delivery_gets_its_window_eta_and_route(self, client, acme):
        await import_ok(client, acme, small_plan())
        body = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        toronto = ZoneInfo("America/Toronto")
        start = datetime.fromisoformat(body["window"]["start"]).astimezone(toronto)
        end = datetime.fromisoformat(body["window"]["end"]).astimezone(toronto)
        assert (start.hour, end.hour) == (9, 11)
        eta = datetime.fromisoformat(body["eta"])
        assert start <= eta <= end
        assert body["route"]["vehicle"] == 1 and body["status"] == "scheduled"

    async def test_a_job_without_a_planned_step_is_inserted_where_it_fits_best(self, client, acme):
        await import_ok(client, acme, small_plan())
        body = (await client.get("/api/v1/deliveries/T004", headers=acme.headers)).json()
        assert body["route"] is not None and body["window"]["start"] is not None
        assert body["route"]["vehicle"] in (1, 2)  # never the crew's precious time... unless cheapest

    async def test_a_white_glove_job_is_planned_on_the_crew(self, client, acme):
        await import_ok(client, acme, small_plan())
        body = (await client.get("/api/v1/deliveries/T005", headers=acme.headers)).json()
        assert body["route"]["vehicle"] == 3 and body["white_glove"]["required"] is True

    async def test_a_day_that_uses_a_duration_matrix_takes_its_travel_times_from_it(self, client, acme):
        plan = {
            "date": "2026-12-03",
            "timezone": "America/Toronto",
            "vehicles": [
                {
                    "id": 1,
                    "start_index": 0,
                    "end_index": 0,
                    "time_window": [28800, 64800],
                    "steps": [{"type": "job", "id": 1}, {"type": "job", "id": 2}],
                }
            ],
            "jobs": [
                {"id": 1, "tracking": "M1", "location_index": 1, "service": 60},
                {"id": 2, "tracking": "M2", "location_index": 2, "service": 60},
            ],
            "matrices": {"car": {"durations": [[0, 600, 900], [600, 0, 1200], [900, 1200, 0]]}},
        }
        plan_id = await import_ok(client, acme, plan)
        solution = (await client.get(f"/api/v1/plans/{plan_id}", headers=acme.headers)).json()
        steps = [s for s in solution["routes"][0]["steps"] if s["type"] == "job"]
        assert [s["arrival"] for s in steps] == [28800 + 600, 28800 + 600 + 60 + 1200]


class TestRefusingAnInvalidPlan:
    async def test_every_problem_is_named_in_one_422(self, client, acme):
        plan = small_plan()
        plan["vehicles"][0]["steps"].append({"type": "job", "id": 99})  # unknown job
        plan["vehicles"][1]["steps"].append({"type": "job", "id": 1})  # job planned twice
        plan["jobs"][1]["tracking"] = "T001"  # duplicate tracking
        plan["jobs"][2]["time_windows"] = [[70000, 80000]]  # outside the shift of vehicle 2
        plan["jobs"][3]["recipient"]["phone"] = "not-a-phone"
        plan["jobs"][3]["recipient"]["locale"] = "de"
        plan["jobs"][0]["location"] = [200, 95]
        plan["timezone"] = "Mars/Olympus"
        plan["pickup_points"][0]["opening_hours"] = {"mon": [["25:00", "08:00"]]}
        response = await client.post("/api/v1/plans", json=plan, headers=acme.headers)
        assert response.status_code == 422
        messages = " | ".join(p["msg"] for p in response.json()["problems"])
        for expected in (
            "unknown job 99",
            "already planned",
            "duplicate tracking id 'T001'",
            "outside vehicle 2's shift",
            "not a phone number",
            "locale must be one of",
            "are not [lon, lat]",
            "unknown time zone",
            "opening hours",
        ):
            assert expected in messages, expected

    async def test_nothing_is_half_imported(self, client, acme):
        plan = small_plan()
        plan["vehicles"][0]["steps"].append({"type": "job", "id": 99})
        assert (await client.post("/api/v1/plans", json=plan, headers=acme.headers)).status_code == 422
        assert (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).status_code == 404

    async def test_a_structurally_wrong_body_names_the_fields(self, client, acme):
        response = await client.post(
            "/api/v1/plans", json={"date": "tomorrow", "vehicles": []}, headers=acme.headers
        )
        assert response.status_code == 422
        locs = [p["loc"] for p in response.json()["problems"]]
        assert ["date"] in locs and ["vehicles"] in locs

    async def test_a_white_glove_job_without_any_crew_is_refused(self, client, acme):
        plan = small_plan()
        plan["vehicles"] = plan["vehicles"][:2]
        response = await client.post("/api/v1/plans", json=plan, headers=acme.headers)
        assert response.status_code == 422
        assert any("white-glove crew" in p["msg"] for p in response.json()["problems"])

    async def test_a_tracking_id_already_planned_is_refused(self, client, acme):
        await import_ok(client, acme, small_plan())
        response = await client.post("/api/v1/plans", json=small_plan(day="2026-12-04"), headers=acme.headers)
        assert response.status_code == 422
        assert "already belongs" in response.json()["problems"][0]["msg"]


class TestTheApiKeyBoundary:
    async def test_no_key_or_a_wrong_key_gets_401(self, client):
        assert (await client.post("/api/v1/plans", json=small_plan())).status_code == 401
        bad = {"Authorization": "Bearer dsk_nope"}
        assert (await client.get("/api/v1/plans/1", headers=bad)).status_code == 401

    async def test_one_retailers_key_never_reads_anothers_plans_or_deliveries(self, client, acme, globex):
        plan_id = await import_ok(client, acme, small_plan())
        assert (await client.get(f"/api/v1/plans/{plan_id}", headers=globex.headers)).status_code == 404
        assert (await client.get("/api/v1/deliveries/T001", headers=globex.headers)).status_code == 404

    async def test_two_retailers_may_use_the_same_tracking_ids(self, client, acme, globex):
        await import_ok(client, acme, small_plan())
        await import_ok(client, globex, small_plan())
        a = (await client.get("/api/v1/deliveries/T001", headers=acme.headers)).json()
        b = (await client.get("/api/v1/deliveries/T001", headers=globex.headers)).json()
        assert a["route"]["id"] != b["route"]["id"]


async def count_rows(settings, *models):
    ctx = build_context(settings)
    try:
        async with ctx.uow() as uow:
            return [
                (await uow.session.exec(select(func.count()).select_from(model))).one() for model in models
            ]
    finally:
        await ctx.engine.dispose()


class TestTheCommandLine:
    def test_retailer_create_prints_its_key_as_json_on_the_last_line(self, settings, capsys, monkeypatch):
        import app

        monkeypatch.setenv("DATABASE_URL", settings.database_url)
        assert app.main(["retailer", "create", "initech", "--name", "Initech"]) == 0
        last = capsys.readouterr().out.strip().splitlines()[-1]
        assert json.loads(last)["retailer"] == "initech"
        assert json.loads(last)["api_key"].startswith("dsk_")
        assert app.main(["retailer", "create", "initech", "--name", "Initech"]) == 1

    def test_import_plan_reads_a_file(self, settings, capsys, monkeypatch, tmp_path):
        import app

        monkeypatch.setenv("DATABASE_URL", settings.database_url)
        app.main(["retailer", "create", "initech", "--name", "Initech"])
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(small_plan()))
        assert app.main(["import-plan", str(path), "--retailer", "initech"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["plan"] >= 1
        # the import's notifications are planned by the command itself, nothing left for the sweeper:
        # each of the five recipients is owed its window (the plan's day has passed: no reminders)
        planned, kept = asyncio.run(count_rows(settings, Notification, KeptEvent))
        assert planned == 5 and kept == 0
        bad = small_plan()
        bad["timezone"] = "Nowhere/Town"
        path.write_text(json.dumps(bad))
        assert app.main(["import-plan", str(path), "--retailer", "initech"]) == 2


class TestTheDemoDataset:
    async def test_it_has_two_cities_routes_crews_pickup_points_and_three_languages(self, ctx):
        from sqlmodel import func, select

        from core.models import Delivery, PickupPoint, Recipient, Vehicle
        from scheduling.demo import load_demo

        await load_demo(ctx)
        await load_demo(ctx)  # idempotent
        async with ctx.uow() as uow:
            s = uow.session
            deliveries = (await s.exec(select(func.count()).select_from(Delivery))).one()
            vehicles = (await s.exec(select(Vehicle))).all()
            points = (await s.exec(select(func.count()).select_from(PickupPoint))).one()
            locales = set((await s.exec(select(Recipient.locale))).all())
            pooled = (
                await s.exec(select(func.count()).select_from(Delivery).where(Delivery.status == "pooled"))
            ).one()
        assert deliveries >= 200 and points == 10 and pooled == 0
        assert len([v for v in vehicles if not v.white_glove]) >= 8
        assert len([v for v in vehicles if v.white_glove]) == 2
        assert locales == {"en", "fr_CA", "es"}
