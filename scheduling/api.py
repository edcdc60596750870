"""REST routes of the scheduling service (retailer API, Bearer key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, status
from fastapi.responses import JSONResponse

from core.web import Ctx, CurrentRetailer, Uow
from scheduling.deliveries import DeliveryNotFound, delivery_view, find_delivery
from scheduling.plans import PlanNotFound, PlanRejected, get_plan, import_plan, plan_solution

PLAN_EXAMPLE: dict[str, Any] = {
    "date": "2026-11-25",
    "timezone": "America/Toronto",
    "vehicles": [
        {
            "id": 1,
            "start": [-79.38, 43.65],
            "end": [-79.38, 43.65],
            "time_window": [28800, 64800],
            "capacity": [50],
            "steps": [{"type": "start"}, {"type": "job", "id": 1}, {"type": "end"}],
        }
    ],
    "jobs": [
        {
            "id": 1,
            "tracking": "TOR-0001",
            "location": [-79.40, 43.66],
            "service": 300,
            "delivery": [1],
            "time_windows": [[36000, 43200]],
            "address": "1 Spadina Ave, Toronto",
            "postal_code": "M5T 2C2",
            "recipient": {"name": "Ada", "phone": "+14165550123", "locale": "en"},
        }
    ],
}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["plans"])

    @router.post("/plans", status_code=status.HTTP_201_CREATED)
    async def post_plan(
        retailer: CurrentRetailer,
        uow: Uow,
        ctx: Ctx,
        payload: dict[str, Any] = Body(..., examples=[PLAN_EXAMPLE]),
    ) -> Any:
        """Import a day's route plan in VROOM's format; all or nothing."""
        try:
            plan = await import_plan(uow, retailer, payload, speed_kmh=ctx.settings.urban_speed_kmh)
        except PlanRejected as exc:
            return JSONResponse(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                content={
                    "detail": "the plan was refused",
                    "problems": [p.model_dump() for p in exc.problems],
                },
            )
        return {"id": plan.id, "date": plan.day.isoformat(), "timezone": plan.timezone}

    @router.get("/plans/{plan_id}")
    async def read_plan(plan_id: int, retailer: CurrentRetailer, uow: Uow) -> dict[str, Any]:
        """The plan in VROOM's solution shape: routes with steps, arrivals and violations."""
        try:
            plan = await get_plan(uow, retailer.id or 0, plan_id)
        except PlanNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such plan") from None
        return await plan_solution(uow, plan)

    @router.get("/deliveries/{tracking}")
    async def read_delivery(tracking: str, retailer: CurrentRetailer, uow: Uow) -> dict[str, Any]:
        try:
            delivery = await find_delivery(uow, retailer.id or 0, tracking)
        except DeliveryNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such delivery") from None
        return await delivery_view(uow, delivery)

    return router
