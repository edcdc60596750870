"""Re-optimisation with PyVRP: shorter routes that keep every window and skill, applied only if current."""

from __future__ import annotations

import asyncio
import threading
from datetime import date

import pytest

from scheduling import optimize
from tests.plans import DAY, DEPOT, job, small_plan
from tests.scheduling_support import NOW, import_plan, violations, window

PLAN_DAY = date.fromisoformat(DAY)


@pytest.fixture(autouse=True)
def fixed_clock(ctx):
    ctx.clock = lambda: NOW


def zigzag_plan() -> dict:
    """Two vans whose stops alternate between the west and east ends of town: plenty to save."""
    west = [(-79.45 + 0.004 * i, 43.65 + 0.003 * i) for i in range(6)]
    east = [(-79.33 - 0.004 * i, 43.67 - 0.003 * i) for i in range(6)]
    jobs = []
    for i, (lon, lat) in enumerate([p for pair in zip(west, east, strict=True) for p in pair]):
        jobs.append(job(i + 1, f"Z{i + 1:02d}", lon, lat, (28800, 64800), phone=f"+1416555{i:04d}"))
    return {
        "date": DAY,
        "timezone": "America/Toronto",
        "vehicles": [
            {
                "id": v,
                "start": DEPOT,
                "end": DEPOT,
                "time_window": [28800, 64800],
                "capacity": [10],
                "steps": [
                    {"type": "job", "id": i}
                    for i in ([1, 2, 5, 6, 9, 10] if v == 1 else [3, 4, 7, 8, 11, 12])
                ],
            }
            for v in (1, 2)
        ],
        "jobs": jobs,
    }


class TestReoptimising:
    async def test_it_saves_travel_and_keeps_every_window(self, client, acme, ctx):
        plan_id = await import_plan(client, acme, zigzag_plan())
        before = (await client.get(f"/api/v1/plans/{plan_id}", headers=acme.headers)).json()["summary"]
        response = await client.post(
            f"/api/v1/plans/{plan_id}/optimize", json={"max_iterations": 300}, headers=acme.headers
        )
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["applied"] is True and report["stale"] is False, report
        assert report["saved"]["duration"] > 0 and report["saved"]["distance"] > 0
        assert report["before"]["duration"] == before["duration"]
        after = (await client.get(f"/api/v1/plans/{plan_id}", headers=acme.headers)).json()["summary"]
        assert after["duration"] == report["after"]["duration"] and after["violations"] == []
        assert await violations(ctx) == []
        changes = (await client.get("/api/v1/changes", headers=acme.headers)).json()["changes"]
        assert changes[-1]["kind"] == "plan_optimized"

    async def test_skills_are_kept_white_glove_stays_on_the_crew(self, client, acme, ctx):
        plan_id = await import_plan(client, acme, small_plan())
        crew = (await client.get("/api/v1/deliveries/T005", headers=acme.headers)).json()["route"]["id"]
        response = await client.post(
            f"/api/v1/plans/{plan_id}/optimize", json={"max_iterations": 200}, headers=acme.headers
        )
        assert response.status_code == 200
        assert (await client.get("/api/v1/deliveries/T005", headers=acme.headers)).json()["route"][
            "id"
        ] == crew
        assert await violations(ctx) == []

    async def test_a_plan_changed_while_solving_is_reported_stale_and_left_alone(
        self, client, acme, ctx, monkeypatch
    ):
        plan_id = await import_plan(client, acme, zigzag_plan())
        release = threading.Event()
        real = optimize.solve_plan

        def slow_solve(*args, **kwargs):
            release.wait(timeout=10)
            return real(*args, **kwargs)

        monkeypatch.setattr(optimize, "solve_plan", slow_solve)
        running = asyncio.create_task(
            client.post(
                f"/api/v1/plans/{plan_id}/optimize", json={"max_iterations": 100}, headers=acme.headers
            )
        )
        await asyncio.sleep(0.2)
        # The plan stays usable while the solver runs.
        moved = await client.post(
            "/api/v1/deliveries/Z01/reschedule", json={"window": window(PLAN_DAY, 14)}, headers=acme.headers
        )
        assert moved.status_code == 200, moved.text
        release.set()
        report = (await running).json()
        assert report["stale"] is True and report["applied"] is False, report
        assert await violations(ctx) == []

    async def test_an_unknown_or_foreign_plan_gets_404(self, client, acme, globex):
        plan_id = await import_plan(client, acme, small_plan())
        assert (
            await client.post(f"/api/v1/plans/{plan_id}/optimize", headers=globex.headers)
        ).status_code == 404
        bad = await client.post(
            f"/api/v1/plans/{plan_id}/optimize", json={"max_iterations": 0}, headers=acme.headers
        )
        assert bad.status_code == 422
