"""Solomon VRPTW instances turned into route plans for the scheduling benchmarks.

Two uses:
- `read_instance` + `solve_vrptw`: the instance as it is (integer times = 10 x Euclidean distance, the
  DIMACS convention), solved with PyVRP, for the acceptance and soundness runs;
- `city_routes`: the instances' customers as delivery addresses in a 10 km x 10 km city (one unit =
  100 m), 100 per route in nearest-neighbour order over a 12-hour shift, each promised the 2-hour slot
  its planned arrival falls in (as a carrier promises at import), for the 1,000 x 100 latency plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pyvrp import Model
from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "solomon"
SCALE = 10  # times and distances x10, truncated (DIMACS)


@dataclass(frozen=True)
class Customer:
    x: float
    y: float
    demand: int
    ready: int
    due: int
    service: int


@dataclass(frozen=True)
class Instance:
    name: str
    vehicles: int
    capacity: int
    depot: Customer
    customers: list[Customer]

    def durations(self) -> list[list[int]]:
        points = [self.depot, *self.customers]
        return [[int(SCALE * math.hypot(a.x - b.x, a.y - b.y)) for b in points] for a in points]


def instance_names() -> list[str]:
    return sorted(p.stem for p in DATA.glob("*.txt"))


def read_instance(name: str) -> Instance:
    lines = (DATA / f"{name}.txt").read_text().splitlines()
    vehicles, capacity = (int(x) for x in lines[4].split())
    rows = [line.split() for line in lines[9:] if line.strip()]
    people = [
        Customer(float(r[1]), float(r[2]), int(r[3]), int(r[4]) * SCALE, int(r[5]) * SCALE, int(r[6]) * SCALE)
        for r in rows
    ]
    return Instance(name, vehicles, capacity, people[0], people[1:])


def solve_vrptw(
    instance: Instance,
    windows: list[tuple[int, int]],
    vehicles: int,
    *,
    durations: list[list[int]],
    iterations: int,
    seconds: float,
    seed: int = 1,
) -> list[list[int]] | None:
    """PyVRP on the instance with these customer windows and this fleet; routes of customer indices."""
    model = Model()
    locations = [model.add_location(x=c.x, y=c.y) for c in [instance.depot, *instance.customers]]
    depot = model.add_depot(locations[0], tw_early=instance.depot.ready, tw_late=instance.depot.due)
    for i, customer in enumerate(instance.customers):
        model.add_client(
            locations[i + 1],
            delivery=customer.demand,
            service_duration=customer.service,
            tw_early=windows[i][0],
            tw_late=windows[i][1],
        )
    model.add_vehicle_type(
        num_available=vehicles,
        capacity=instance.capacity,
        start_depot=depot,
        end_depot=depot,
        tw_early=instance.depot.ready,
        tw_late=instance.depot.due,
    )
    for i, a in enumerate(locations):
        for j, b in enumerate(locations):
            if i != j:
                model.add_edge(a, b, distance=durations[i][j], duration=durations[i][j])
    result = model.solve(
        stop=MultipleCriteria([MaxIterations(iterations), MaxRuntime(seconds)]), seed=seed, display=False
    )
    if not result.best.is_feasible() or not result.best.is_complete():
        return None
    return [[a.idx for a in route if a.is_client()] for route in result.best.routes()]


@dataclass(frozen=True)
class CityStop:
    lon: float
    lat: float
    service: int
    demand: int


def city_routes(
    routes: int, stops: int, origin: tuple[float, float]
) -> list[tuple[tuple[float, float], list[CityStop]]]:
    """`routes` routes of `stops` customers each, cycling through the instances (nearest-neighbour order)."""
    names = instance_names()
    metres_lon = 111_320 * math.cos(math.radians(origin[1]))
    metres_lat = 110_540
    orders: dict[str, tuple[Customer, list[Customer]]] = {}
    out = []
    for r in range(routes):
        name = names[r % len(names)]
        if name not in orders:
            instance = read_instance(name)
            left = list(instance.customers[:stops])
            here = (instance.depot.x, instance.depot.y)
            ordered = []
            while left:
                nearest = min(left, key=lambda c, here=here: math.hypot(c.x - here[0], c.y - here[1]))
                left.remove(nearest)
                ordered.append(nearest)
                here = (nearest.x, nearest.y)
            orders[name] = (instance.depot, ordered)
        depot_customer, ordered = orders[name]
        shift = (r // len(names)) * 0.37  # routes drawn from the same instance sit a little apart

        def where(c: Customer, shift: float = shift) -> tuple[float, float]:
            return (
                origin[0] + (c.x + shift) * 100 / metres_lon,
                origin[1] + (c.y + shift) * 100 / metres_lat,
            )

        out.append(
            (
                where(depot_customer),
                [
                    CityStop(*where(c), service=120 + c.service // SCALE, demand=max(1, c.demand // 10))
                    for c in ordered
                ],
            )
        )
    return out
