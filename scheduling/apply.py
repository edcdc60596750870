"""Writing recomputed routes back: stop sequences, arrivals and ETAs, and the ETA events they cause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Stop
from scheduling.state import PlanState, RouteState


@dataclass(frozen=True)
class EtaMove:
    delivery_id: int
    eta: datetime
    shift_seconds: int
    stops_away: int


async def write_routes(
    session: AsyncSession, state: PlanState, changed: dict[int, RouteState]
) -> list[EtaMove]:
    """Update only the stop rows whose route, sequence or timing changed; report the ETAs that moved."""
    old_rows: dict[int, tuple[int, int, int]] = {}  # stop id -> (vehicle, sequence, arrival)
    old_starts: dict[int, int] = {}  # delivery id -> service start
    for row in changed:
        route = state.routes[row]
        for position, (stop_id, delivery_id) in enumerate(
            zip(route.stop_ids, route.delivery_ids, strict=True)
        ):
            old_rows[stop_id] = (route.vehicle_id, position, route.timing.arrivals[position])
            old_starts[delivery_id] = route.timing.service_starts[position]
    params: list[dict[str, Any]] = []
    moves: list[EtaMove] = []
    for route in changed.values():
        away = 0
        for position, stop_id in enumerate(route.stop_ids):
            spec = route.specs[position]
            arrival = route.timing.arrivals[position]
            start = route.timing.service_starts[position]
            if old_rows.get(stop_id) != (route.vehicle_id, position, arrival):
                values: dict[str, Any] = {"id": stop_id, "vehicle_id": route.vehicle_id, "sequence": position}
                if not spec.done:
                    values.update(arrival=arrival, eta=state.at(start))
                params.append(values)
            if spec.done:
                continue
            before = old_starts.get(spec.key)
            if before is not None and before != start:
                moves.append(EtaMove(spec.key, state.at(start), start - before, away))
            away += 1
    if params:
        await session.exec(update(Stop), params=params)
    return moves
