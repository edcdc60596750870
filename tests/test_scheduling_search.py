"""The vectorised insertion search agrees with the exact pure-Python search, and both keep every window."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import event, given, settings
from hypothesis import strategies as st

from scheduling.routing import Place, StopSpec, TravelModel, VehicleSpec, best_insertion, schedule
from scheduling.state import PlanState, RouteState

TRAVEL = TravelModel(None, 30.0)
DEPOT = Place(-79.3832, 43.6532)

stop_points = st.tuples(st.floats(-79.45, -79.32), st.floats(43.62, 43.70), st.integers(60, 900))


@st.composite
def plans(draw):
    routes = []
    key = 0
    for r in range(draw(st.integers(1, 5))):
        points = draw(st.lists(stop_points, max_size=8))
        specs = []
        for lon, lat, service in points:
            key += 1
            specs.append(
                StopSpec(key=key, place=Place(lon, lat), service=service, window=(0, 10**6), amount=(1,))
            )
        shift = (28800, draw(st.integers(50400, 72000)))
        vehicle = VehicleSpec(
            key=r + 1,
            shift=shift,
            start=DEPOT,
            end=DEPOT,
            capacity=(draw(st.integers(len(specs), 10)),),
            skills=frozenset(draw(st.sets(st.integers(1, 2)))),
        )
        timing = schedule(vehicle, specs, TRAVEL)
        slack = draw(st.integers(0, 3600))
        specs = [
            StopSpec(
                key=s.key, place=s.place, service=s.service, window=(a - slack, a + slack), amount=s.amount
            )
            for s, a in zip(specs, timing.arrivals, strict=True)
        ]
        if schedule(vehicle, specs, TRAVEL).feasible:
            routes.append(
                RouteState(r + 1, vehicle, [s.key for s in specs], [s.key for s in specs], specs).compute(
                    TRAVEL
                )
            )
    return routes


@settings(max_examples=60, deadline=None)
@given(
    routes=plans(),
    new=stop_points,
    start=st.integers(28800, 68400),
    width=st.sampled_from([1800, 3600, 7200]),
    skills=st.sets(st.integers(1, 2), max_size=1),
)
def test_the_numpy_search_finds_the_exact_searchs_cheapest_detour(routes, new, start, width, skills):
    if not routes:
        return
    state = PlanState(1, 1, datetime.now(UTC), date(2026, 12, 3), "UTC", 2, TRAVEL, routes)
    spec = StopSpec(
        key=10**6,
        place=Place(new[0], new[1]),
        service=new[2],
        window=(start, start + width),
        amount=(1,),
        skills=frozenset(skills),
    )
    exact = best_insertion([(r.spec, r.specs) for r in routes], spec, TRAVEL)
    found = state.best_choice(spec, (start, start + width))
    assert (found is None) == (exact is None)
    event("inserted" if found is not None else "refused")
    if found is not None and exact is not None:
        assert found.detour == exact.added_seconds
        route = state.routes[found.route]
        after = route.with_stop(found.position, 0, spec, TRAVEL)
        assert after.timing.feasible and after.keeps(route)
