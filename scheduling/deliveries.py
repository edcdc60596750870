"""Reading one delivery: status, window, ETA, route, pickup point and white-glove booking."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from core.db import UnitOfWork
from core.models import Delivery, PickupPoint, Stop, Vehicle


class DeliveryNotFound(Exception):
    """No such delivery for this retailer. Raised alike for a foreign one, so nothing leaks."""


async def find_delivery(uow: UnitOfWork, retailer_id: int, tracking: str) -> Delivery:
    delivery = (
        await uow.session.exec(
            select(Delivery).where(Delivery.retailer_id == retailer_id, Delivery.tracking == tracking)
        )
    ).first()
    if delivery is None:
        raise DeliveryNotFound(tracking)
    return delivery


async def delivery_view(uow: UnitOfWork, delivery: Delivery) -> dict[str, Any]:
    stop = (await uow.session.exec(select(Stop).where(Stop.delivery_id == delivery.id))).first()
    vehicle = await uow.session.get(Vehicle, stop.vehicle_id) if stop else None
    point = await uow.session.get(PickupPoint, delivery.pickup_point_id) if delivery.pickup_point_id else None
    return {
        "tracking": delivery.tracking,
        "status": delivery.status,
        "date": delivery.day.isoformat(),
        "timezone": delivery.timezone,
        "window": {"start": _iso(delivery.window_start), "end": _iso(delivery.window_end)},
        "eta": _iso(stop.eta) if stop else None,
        "route": (
            {
                "id": vehicle.id,
                "vehicle": vehicle.vroom_id,
                "description": vehicle.description,
                "sequence": stop.sequence,
                "stop_status": stop.status,
            }
            if vehicle and stop
            else None
        ),
        "address": delivery.address,
        "postal_code": delivery.postal_code,
        "instructions": delivery.instructions,
        "pickup_point": (
            {
                "id": point.id,
                "external_id": point.external_id,
                "name": point.name,
                "address": point.address,
                "opening_hours": point.opening_hours,
            }
            if point
            else None
        ),
        "white_glove": {
            "required": delivery.white_glove,
            "slot": (
                {"start": _iso(delivery.white_glove_start), "end": _iso(delivery.white_glove_end)}
                if delivery.white_glove_start
                else None
            ),
            "cancellable": delivery.setup_booked_through_doorstep,
        },
        "proof": delivery.proof or None,
        "failure_reason": delivery.failure_reason or None,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
