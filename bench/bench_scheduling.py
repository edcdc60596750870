"""Scheduling benchmark: latency on a 1,000-route x 100-stop day, acceptance against a re-solve, soundness.

1. Latency (SQLite, one process, the real app through httpx's ASGI transport): a plan of 1,000 routes
   of 100 stops built from the Solomon customers (bench/solomon.py: city_routes). Prints p50/p99 of
   - the feasibility check alone (the cheapest feasible insertion over all 1,000 routes for one window),
   - GET /deliveries/{t}/windows?days=1 (every slot of the day checked) and
   - POST /deliveries/{t}/reschedule to a random slot of the day (200 or 409 with alternatives),
   and the cold load of the plan into memory (once per process and plan version it has not seen).
2. Acceptance: on Solomon instances with their own time windows (solved by PyVRP into a plan), random
   requests to move one customer to a random window of the same width. The cheapest-insertion answer
   is compared with a full re-solve by PyVRP with the same fleet (the oracle).
3. Soundness: every accepted change, in both runs, is checked by an independent recomputation of
   every route from scratch (here, not with the scheduling code): no stop may arrive after its window.

    .venv/bin/python bench/bench_scheduling.py [--routes 1000 --stops 100 --requests 300]

Exits 1 if a target is missed: feasibility p99 < 5 ms, whole API call p99 < 50 ms, zero late stops.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from httpx import ASGITransport, AsyncClient
from sqlalchemy import insert, text

from app import build_context, create_app
from bench.solomon import Instance, city_routes, read_instance, solve_vrptw
from core.config import Settings
from core.db import make_sync_engine, migrate
from core.logging import configure_logging
from core.models import Delivery, DeliveryStatus, RoutePlan, Stop, StopStatus, Vehicle
from core.tenants import create_retailer
from scheduling import clock
from scheduling.routing import Place, StopSpec, TravelModel, VehicleSpec, schedule
from scheduling.state import PlanState, RouteState, plan_state

DAY = date(2030, 6, 4)
TZ = "America/Toronto"
ORIGIN = (-79.50, 43.60)
SHIFT = (8 * 3600, 20 * 3600)
SLOT = 2 * 3600
FEASIBILITY_P99_MS = 5.0
API_P99_MS = 50.0


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.99) - 1)]


class Timer:
    """Wall-clock and process CPU time of each sample: on a shared, loaded machine the CPU time is the
    figure that does not depend on what else runs (the process is single-threaded but for SQLite's
    driver thread, which process CPU time includes)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall.append((time.perf_counter() - self._wall) * 1000)
        self.cpu.append((time.process_time() - self._cpu) * 1000)


def line(name: str, timer: Timer) -> tuple[float, float]:
    w50, w99 = percentiles(timer.wall)
    c50, c99 = percentiles(timer.cpu)
    print(
        f"  {name:<30} n={len(timer.wall):<4} wall p50 {w50:6.2f} p99 {w99:6.2f} ms"
        f" | cpu p50 {c50:6.2f} p99 {c99:6.2f} ms"
    )
    return w99, c99


# --- 1. the 1,000 x 100 day ------------------------------------------------------------------------


def build_big_plan(url: str, retailer_id: int, routes: int, stops: int) -> dict[str, Any]:
    """Write the plan with executemany (the ORM would take minutes for 200,000 rows)."""
    travel = TravelModel(None, 30.0)
    now = datetime.now(UTC)
    vehicles, deliveries, stop_rows = [], [], []
    delivery_id = 0
    for r, (depot, customers) in enumerate(city_routes(routes, stops, ORIGIN)):
        start = Place(*depot)
        spec = VehicleSpec(key=r + 1, shift=SHIFT, start=start, end=start, capacity=(10_000,))
        specs = [
            StopSpec(key=i, place=Place(c.lon, c.lat), service=c.service, window=(0, 10**6))
            for i, c in enumerate(customers)
        ]
        timing = schedule(spec, specs, travel)
        assert timing.end_time <= SHIFT[1], "a benchmark route must fit its shift"
        vehicles.append(
            {
                "id": r + 1,
                "plan_id": 1,
                "vroom_id": r + 1,
                "description": f"route {r + 1}",
                "start_lon": depot[0],
                "start_lat": depot[1],
                "end_lon": depot[0],
                "end_lat": depot[1],
                "shift_start": SHIFT[0],
                "shift_end": SHIFT[1],
                "capacity": [10_000],
                "skills": [],
                "white_glove": False,
                "progress_delay": 0,
            }
        )
        for position, customer in enumerate(customers):
            delivery_id += 1
            arrival = timing.arrivals[position]
            slot = arrival - arrival % SLOT
            deliveries.append(
                {
                    "id": delivery_id,
                    "retailer_id": retailer_id,
                    "tracking": f"B{delivery_id:06d}",
                    "plan_id": 1,
                    "day": DAY,
                    "timezone": TZ,
                    "status": DeliveryStatus.scheduled,
                    "window_start": clock.at(DAY, TZ, slot),
                    "window_end": clock.at(DAY, TZ, slot + SLOT),
                    "address": "",
                    "postal_code": "",
                    "lon": customer.lon,
                    "lat": customer.lat,
                    "instructions": "",
                    "service_seconds": customer.service,
                    "size": [customer.demand],
                    "skills": [],
                    "white_glove": False,
                    "proof": {},
                    "failure_reason": "",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            stop_rows.append(
                {
                    "id": delivery_id,
                    "vehicle_id": r + 1,
                    "delivery_id": delivery_id,
                    "sequence": position,
                    "arrival": arrival,
                    "eta": clock.at(DAY, TZ, arrival),
                    "status": StopStatus.planned,
                }
            )
    engine = make_sync_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(RoutePlan.__table__),  # type: ignore[attr-defined]
            [
                {
                    "id": 1,
                    "retailer_id": retailer_id,
                    "day": DAY,
                    "timezone": TZ,
                    "white_glove_skill": 2,
                    "durations": None,
                    "speed_kmh": 30.0,
                    "version": 1,
                    "source": {},
                    "created_at": now,
                }
            ],
        )
        conn.execute(insert(Vehicle.__table__), vehicles)  # type: ignore[attr-defined]
        conn.execute(insert(Delivery.__table__), deliveries)  # type: ignore[attr-defined]
        conn.execute(insert(Stop.__table__), stop_rows)  # type: ignore[attr-defined]
    engine.dispose()
    return {"deliveries": delivery_id}


def independent_check(url: str) -> int:
    """Late stops and overrun shifts in the database, recomputed with nothing but SQL rows and math."""
    engine = make_sync_engine(url)
    with engine.connect() as conn:
        vehicles = {
            row.id: row
            for row in conn.execute(
                text("SELECT id, start_lon, start_lat, end_lon, end_lat, shift_start, shift_end FROM vehicle")
            )
        }
        rows = conn.execute(
            text(
                "SELECT s.vehicle_id, d.lon, d.lat, d.service_seconds, d.window_start, d.window_end"
                " FROM stop s JOIN delivery d ON d.id = s.delivery_id ORDER BY s.vehicle_id, s.sequence"
            )
        ).all()
    engine.dispose()
    midnight = datetime.combine(DAY, datetime.min.time(), tzinfo=ZoneInfo(TZ))

    def seconds(value: Any) -> float:
        instant = datetime.fromisoformat(value) if isinstance(value, str) else value
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return (instant - midnight).total_seconds()

    def leg(a: tuple[float, float], b: tuple[float, float]) -> int:
        lon1, lat1, lon2, lat2 = (math.radians(x) for x in (*a, *b))
        h = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        )
        return round(2 * 6_371_000.0 * math.asin(math.sqrt(h)) / (30_000 / 3600))

    late = 0
    by_vehicle: dict[int, list[Any]] = {}
    for row in rows:
        by_vehicle.setdefault(row[0], []).append(row)
    for vehicle_id, vehicle in vehicles.items():
        here = (vehicle.start_lon, vehicle.start_lat)
        now = vehicle.shift_start
        for _, lon, lat, service, start, end in by_vehicle.get(vehicle_id, []):
            now += leg(here, (lon, lat))
            if now > seconds(end):
                late += 1
            now = max(now, seconds(start)) + service
            here = (lon, lat)
        if now + leg(here, (vehicle.end_lon, vehicle.end_lat)) > vehicle.shift_end:
            late += 1
    return late


async def latency(routes: int, stops: int, requests: int, seed: int) -> bool:
    directory = tempfile.mkdtemp(prefix="doorstep-bench-scheduling-")
    url = f"sqlite:///{directory}/bench.db"
    migrate(url)
    settings = Settings(
        database_url=url,
        scheduler_enabled=False,
        outbox_enabled=False,
        log_level="WARNING",
        _env_file=None,  # type: ignore[call-arg]
    )
    ctx = build_context(settings)
    async with ctx.uow() as uow:
        retailer, key = await create_retailer(uow.session, "bench", "Bench")
        await uow.commit()
    started = time.perf_counter()
    built = build_big_plan(url, retailer.id or 0, routes, stops)
    print(
        f"plan of {routes} routes x {stops} stops ({built['deliveries']} deliveries)"
        f" written in {time.perf_counter() - started:.1f} s"
    )
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app(settings, ctx=ctx)
    ctx.clock = lambda: clock.at(DAY, TZ, 6 * 3600)  # 06:00 on the day: every slot is still ahead
    slots = [(s, s + SLOT) for s in range(SHIFT[0], SHIFT[1], SLOT)]

    def slot_body(start: int, end: int) -> dict[str, Any]:
        return {
            "window": {
                "start": clock.at(DAY, TZ, start).isoformat(),
                "end": clock.at(DAY, TZ, end).isoformat(),
            }
        }

    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as http,
    ):
        started = time.perf_counter()
        first = await http.get("/api/v1/deliveries/B000001/windows?days=1", headers=headers)
        assert first.status_code == 200, first.text
        print(
            "cold: first window offer, plan loaded into memory:"
            f" {(time.perf_counter() - started) * 1000:.0f} ms"
        )

        from scheduling.service import _spec, _view  # the very functions the API calls

        feasibility = Timer()
        async with ctx.uow() as uow:
            plan = await uow.session.get(RoutePlan, 1)
            assert plan is not None
            state = await plan_state(uow.session, plan)
            for _ in range(requests):
                delivery_id = rng.randint(1, built["deliveries"])
                row = state.where[delivery_id]
                route = state.routes[row]
                own_spec = route.specs[route.position_of(delivery_id)]
                fake = Delivery(
                    id=delivery_id,
                    retailer_id=retailer.id or 0,
                    tracking="",
                    day=DAY,
                    lon=own_spec.place.lon,
                    lat=own_spec.place.lat,
                    service_seconds=own_spec.service,
                    size=list(own_spec.amount),
                )
                start, end = rng.choice(slots)
                with feasibility:
                    view = _view(fake, state, white_glove=False, service=own_spec.service)
                    view.choose((start, end))
            assert _spec is not None

        offers = Timer()
        for _ in range(requests):
            tracking = f"B{rng.randint(1, built['deliveries']):06d}"
            with offers:
                response = await http.get(f"/api/v1/deliveries/{tracking}/windows?days=1", headers=headers)
            assert response.status_code == 200, response.text

        changes = Timer()
        outcomes = {200: 0, 409: 0}
        for _ in range(requests):
            tracking = f"B{rng.randint(1, built['deliveries']):06d}"
            start, end = rng.choice(slots)
            with changes:
                response = await http.post(
                    f"/api/v1/deliveries/{tracking}/reschedule", json=slot_body(start, end), headers=headers
                )
            assert response.status_code in outcomes, response.text
            outcomes[response.status_code] += 1
    await ctx.engine.dispose()

    load = os.getloadavg()[0]
    print(
        f"latency (SQLite, one process, in-process HTTP; load average {load:.1f} on {os.cpu_count()} cores):"
    )
    check = line("feasibility check, 1 window", feasibility)
    offer = line("GET windows?days=1 (6 slots)", offers)
    change = line("POST reschedule", changes)
    # On a loaded shared machine wall-clock includes waiting for a core: judge on CPU time there.
    busy = load > (os.cpu_count() or 1)
    pick = 1 if busy else 0
    print(f"  reschedules: {outcomes[200]} accepted, {outcomes[409]} refused with alternatives")
    late = independent_check(url)
    print(
        f"  soundness, independent recomputation of all {routes} routes: {late} late stops or overrun shifts"
    )
    ok = (
        check[pick] < FEASIBILITY_P99_MS
        and offer[pick] < API_P99_MS
        and change[pick] < API_P99_MS
        and late == 0
    )
    print(
        f"  targets ({'cpu' if busy else 'wall'} time): feasibility p99 < {FEASIBILITY_P99_MS:.0f} ms,"
        f" API p99 < {API_P99_MS:.0f} ms, 0 late: {'met' if ok else 'MISSED'}"
    )
    return ok


# --- 2 and 3. acceptance against a re-solve, and soundness ----------------------------------------------


def instance_state(instance: Instance, routes: list[list[int]], windows: list[tuple[int, int]]) -> PlanState:
    durations = instance.durations()
    travel = TravelModel(durations)
    depot = Place(0.0, 0.0, 0)
    states = []
    for k, route in enumerate(routes):
        spec = VehicleSpec(
            key=k + 1,
            shift=(instance.depot.ready, instance.depot.due),
            start=depot,
            end=depot,
            capacity=(instance.capacity,),
        )
        specs = [
            StopSpec(
                key=c + 1,
                place=Place(0.0, 0.0, c + 1),
                service=instance.customers[c].service,
                window=windows[c],
                amount=(instance.customers[c].demand,),
            )
            for c in route
        ]
        states.append(
            RouteState(k + 1, spec, [c + 1 for c in route], [c + 1 for c in route], specs).compute(travel)
        )
    return PlanState(1, 1, datetime.now(UTC), DAY, "UTC", 2, travel, states)


def late_stops(instance: Instance, state: PlanState) -> int:
    """Independent: walk each route with the raw matrix; count arrivals after window end and overruns."""
    durations = instance.durations()
    late = 0
    for route in state.routes:
        here, now, load = 0, instance.depot.ready, 0
        for spec in route.specs:
            index = spec.key
            now += durations[here][index]
            if now > spec.window[1]:
                late += 1
            now = max(now, spec.window[0]) + instance.customers[index - 1].service
            load += instance.customers[index - 1].demand
            here = index
        if now + durations[here][0] > instance.depot.due or load > instance.capacity:
            late += 1
    return late


def acceptance(
    names: list[str], requests: int, solve_seconds: float, oracle_seconds: float, seed: int
) -> bool:
    rng = random.Random(seed)
    totals = {"requests": 0, "accepted": 0, "oracle": 0, "oracle_only": 0, "ours_only": 0, "late": 0}
    print("acceptance of random reschedules, cheapest feasible insertion vs a PyVRP re-solve (same fleet):")
    for name in names:
        instance = read_instance(name)
        durations = instance.durations()
        windows = [(c.ready, c.due) for c in instance.customers]
        routes = solve_vrptw(
            instance,
            windows,
            instance.vehicles,
            durations=durations,
            iterations=20_000,
            seconds=solve_seconds,
        )
        assert routes is not None, f"{name}: no feasible starting plan"
        fleet = len(routes)
        state = instance_state(instance, routes, windows)
        assert late_stops(instance, state) == 0
        counts = {"accepted": 0, "oracle": 0}
        for _ in range(requests):
            customer = rng.randrange(len(instance.customers))
            # A recipient asks for a window of the same width, earlier or later the same day.
            width = max(windows[customer][1] - windows[customer][0], 300)
            shifted = windows[customer][0] + rng.randint(-3 * width, 3 * width)
            start = min(
                max(instance.depot.ready, shifted), max(instance.depot.ready, instance.depot.due - width)
            )
            wanted = (start, start + width)
            key = customer + 1
            row = state.where[key]
            own = state.routes[row].without(key, state.travel)
            spec = StopSpec(
                key=key,
                place=Place(0.0, 0.0, key),
                service=instance.customers[customer].service,
                window=wanted,
                amount=(instance.customers[customer].demand,),
            )
            choice = state.best_choice(spec, wanted, own=own, own_row=row)
            trial = list(windows)
            trial[customer] = wanted
            oracle = (
                solve_vrptw(
                    instance,
                    trial,
                    fleet,
                    durations=durations,
                    iterations=10_000,
                    seconds=oracle_seconds,
                    seed=rng.randint(1, 10**6),
                )
                is not None
            )
            totals["requests"] += 1
            if choice is not None:
                base = own if choice.route == row else state.routes[choice.route]
                changed = {choice.route: base.with_stop(choice.position, key, spec, state.travel)}
                if choice.route != row:
                    changed[row] = own
                state.install(changed, state.version + 1)
                windows = trial
                totals["late"] += late_stops(instance, state)
                counts["accepted"] += 1
                totals["ours_only"] += not oracle
            counts["oracle"] += oracle or choice is not None
            totals["oracle_only"] += oracle and choice is None
        totals["accepted"] += counts["accepted"]
        totals["oracle"] += counts["oracle"]
        print(
            f"  {name:<6} fleet {fleet:>2}: accepted {counts['accepted']:>3}/{requests},"
            f" feasible per re-solve {counts['oracle']:>3}/{requests}"
        )
    rate = totals["accepted"] / totals["oracle"] if totals["oracle"] else 1.0
    print(
        f"  total: {totals['accepted']} accepted of {totals['oracle']} feasible ({rate:.0%});"
        f" {totals['oracle_only']} only the re-solve kept, {totals['ours_only']} only insertion found"
    )
    print(f"  soundness, independent recomputation after every accepted change: {totals['late']} late stops")
    return totals["late"] == 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--stops", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--instances", default="C101,R101,RC101")
    parser.add_argument("--acceptance-requests", type=int, default=10)
    parser.add_argument("--solve-seconds", type=float, default=2.0)
    parser.add_argument("--oracle-seconds", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    configure_logging("WARNING", json=True)
    ok = asyncio.run(latency(args.routes, args.stops, args.requests, args.seed))
    ok = (
        acceptance(
            args.instances.split(","),
            args.acceptance_requests,
            args.solve_seconds,
            args.oracle_seconds,
            args.seed,
        )
        and ok
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
