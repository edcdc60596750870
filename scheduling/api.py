"""REST routes of the scheduling service (retailer API, Bearer key)."""

from __future__ import annotations

from datetime import UTC
from typing import Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from core.db import UnitOfWork
from core.models import Author, Delivery, Retailer
from core.web import Ctx, CurrentRetailer, Uow
from scheduling.changelog import changes_since
from scheduling.deliveries import DeliveryNotFound, delivery_view, find_delivery
from scheduling.optimize import optimize_plan
from scheduling.plans import PlanNotFound, PlanRejected, get_plan, import_plan, plan_solution
from scheduling.progress import ProgressReport, RouteNotFound, record_progress
from scheduling.service import (
    Actor,
    ChangeResult,
    InvalidRequest,
    PickupPointUnknown,
    SchedulingError,
    SlotUnavailable,
    WindowOffer,
    WindowUnavailable,
    book_white_glove,
    cancel_delivery,
    cancel_white_glove,
    offer_windows,
    pickup_options,
    redirect_to_pickup,
    reschedule_delivery,
    set_instructions,
    white_glove_slots,
)

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

    router.include_router(build_change_router())
    return router


# --- request bodies ----------------------------------------------------------------------------------


class WindowIn(BaseModel):
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ends_after_start(self) -> WindowIn:
        if self.end <= self.start:
            raise ValueError("the window must end after it starts")
        return self


class RescheduleIn(BaseModel):
    window: WindowIn


class WhiteGloveIn(BaseModel):
    slot: WindowIn


class RedirectIn(BaseModel):
    pickup_point: int = Field(ge=1)


class InstructionsIn(BaseModel):
    instructions: str = Field(max_length=500)


class ProgressIn(BaseModel):
    type: Literal["departed", "arrived", "delivered", "failed", "delay"]
    tracking: str | None = Field(default=None, max_length=64)
    at: AwareDatetime | None = None
    proof: dict[str, Any] = {}
    reason: str = Field(default="", max_length=200)
    minutes: int = 0


class OptimizeIn(BaseModel):
    max_iterations: int = Field(default=2000, ge=1, le=200_000)
    seconds: float = Field(default=10.0, gt=0, le=120)
    seed: int = 0


# --- answers -----------------------------------------------------------------------------------------


def offer_json(offer: WindowOffer) -> dict[str, Any]:
    return {
        "start": offer.start.isoformat(),
        "end": offer.end.isoformat(),
        "date": offer.day.isoformat(),
        "route": offer.vehicle_id,
        "eta": offer.eta.isoformat() if offer.eta else None,
        "detour_seconds": offer.detour_seconds,
        "planned": offer.vehicle_id is not None,
    }


def change_json(result: ChangeResult) -> dict[str, Any]:
    return {
        "tracking": result.delivery.tracking,
        "status": result.delivery.status,
        "window": {
            "start": result.window_start.isoformat() if result.window_start else None,
            "end": result.window_end.isoformat() if result.window_end else None,
        },
        "route": result.vehicle_id,
        "eta": result.eta.isoformat() if result.eta else None,
    }


def refused(error: SchedulingError) -> JSONResponse:
    """Domain errors at the edge: 409 with alternatives when a change cannot be kept."""
    if isinstance(error, InvalidRequest):
        return JSONResponse(status_code=422, content={"detail": str(error)})
    if isinstance(error, PickupPointUnknown | RouteNotFound):
        return JSONResponse(status_code=404, content={"detail": str(error)})
    content: dict[str, Any] = {"detail": str(error), "error": type(error).__name__}
    if isinstance(error, WindowUnavailable | SlotUnavailable):
        content["alternatives"] = [offer_json(o) for o in error.alternatives]
    return JSONResponse(status_code=409, content=content)


def api_actor(retailer: Retailer) -> Actor:
    return Actor(Author.agent, id=f"api:{retailer.slug}", channel="api")


async def delivery_or_404(uow: UnitOfWork, retailer: Retailer, tracking: str) -> Delivery:
    try:
        return await find_delivery(uow, retailer.id or 0, tracking)
    except DeliveryNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such delivery") from None


def build_change_router() -> APIRouter:
    """Recipient and agent changes, driver progress, the change log and re-optimisation."""
    router = APIRouter(tags=["changes"])

    @router.get("/deliveries/{tracking}/windows")
    async def windows(
        tracking: str, retailer: CurrentRetailer, uow: Uow, ctx: Ctx, days: int = Query(3, ge=1, le=14)
    ) -> Any:
        """Windows the delivery can move to, each feasible now (same day first, then least detour)."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            offers = await offer_windows(uow, delivery, days=days, now=ctx.clock())
        except SchedulingError as error:
            return refused(error)
        return {"tracking": tracking, "windows": [offer_json(o) for o in offers]}

    @router.post("/deliveries/{tracking}/reschedule")
    async def reschedule(
        tracking: str, body: RescheduleIn, retailer: CurrentRetailer, uow: Uow, ctx: Ctx
    ) -> Any:
        """Move the delivery to a window: 200 with its route and ETA, or 409 with the nearest offers."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            result = await reschedule_delivery(
                uow, delivery, body.window.start, body.window.end, api_actor(retailer), now=ctx.clock()
            )
        except SchedulingError as error:
            return refused(error)
        return change_json(result)

    @router.get("/deliveries/{tracking}/pickup-points")
    async def pickup_points(
        tracking: str, retailer: CurrentRetailer, uow: Uow, ctx: Ctx, limit: int = Query(5, ge=1, le=50)
    ) -> Any:
        """The nearest pickup points open when the parcel could get there and with room that day."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            options = await pickup_options(uow, delivery, now=ctx.clock(), limit=limit)
        except SchedulingError as error:
            return refused(error)
        return {
            "tracking": tracking,
            "pickup_points": [
                {
                    "id": o.point.id,
                    "external_id": o.point.external_id,
                    "name": o.point.name,
                    "address": o.point.address,
                    "distance_m": round(o.distance_m),
                    "available_from": o.available_from.isoformat(),
                    "hours": o.hours_today,
                }
                for o in options
            ],
        }

    @router.post("/deliveries/{tracking}/redirect")
    async def redirect(tracking: str, body: RedirectIn, retailer: CurrentRetailer, uow: Uow, ctx: Ctx) -> Any:
        """Reserve a place at a pickup point and take the stop off its route."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            result = await redirect_to_pickup(
                uow, delivery, body.pickup_point, api_actor(retailer), now=ctx.clock()
            )
        except SchedulingError as error:
            return refused(error)
        return {**change_json(result), "pickup_point": body.pickup_point}

    @router.get("/deliveries/{tracking}/white-glove/slots")
    async def setup_slots(
        tracking: str, retailer: CurrentRetailer, uow: Uow, ctx: Ctx, days: int = Query(3, ge=1, le=14)
    ) -> Any:
        """In-home setup slots on a white-glove crew's route."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            offers = await white_glove_slots(uow, delivery, days=days, now=ctx.clock())
        except SchedulingError as error:
            return refused(error)
        return {"tracking": tracking, "slots": [offer_json(o) for o in offers]}

    @router.post("/deliveries/{tracking}/white-glove")
    async def book_setup(
        tracking: str, body: WhiteGloveIn, retailer: CurrentRetailer, uow: Uow, ctx: Ctx
    ) -> Any:
        """Book in-home setup into a crew's route: 200, or 409 with the nearest slots."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            result = await book_white_glove(
                uow, delivery, body.slot.start, body.slot.end, api_actor(retailer), now=ctx.clock()
            )
        except SchedulingError as error:
            return refused(error)
        return change_json(result)

    @router.delete("/deliveries/{tracking}/white-glove")
    async def call_off_setup(tracking: str, retailer: CurrentRetailer, uow: Uow, ctx: Ctx) -> Any:
        """Call off an in-home setup booked through Doorstep: the parcel keeps its window and route
        place. 409 when none is booked, or when the setup came with the order (the retailer's call)."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            result = await cancel_white_glove(uow, delivery, api_actor(retailer), now=ctx.clock())
        except SchedulingError as error:
            return refused(error)
        return change_json(result)

    @router.put("/deliveries/{tracking}/instructions")
    async def instructions(
        tracking: str, body: InstructionsIn, retailer: CurrentRetailer, uow: Uow, ctx: Ctx
    ) -> Any:
        """Replace the instructions for the driver (plain text, at most 500 characters)."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            changed = await set_instructions(
                uow, delivery, body.instructions, api_actor(retailer), now=ctx.clock()
            )
        except SchedulingError as error:
            return refused(error)
        return {"tracking": tracking, "instructions": changed.instructions}

    @router.post("/deliveries/{tracking}/cancel")
    async def cancel(tracking: str, retailer: CurrentRetailer, uow: Uow, ctx: Ctx) -> Any:
        """Cancel a delivery that is not on its way: its stop leaves the route, reservations are freed."""
        delivery = await delivery_or_404(uow, retailer, tracking)
        try:
            result = await cancel_delivery(uow, delivery, api_actor(retailer), now=ctx.clock())
        except SchedulingError as error:
            return refused(error)
        return change_json(result)

    @router.post("/routes/{route_id}/events")
    async def route_event(
        route_id: int, body: ProgressIn, retailer: CurrentRetailer, uow: Uow, ctx: Ctx
    ) -> Any:
        """Driver progress: departed, arrived, delivered (with proof), failed (with reason), delay."""
        report = ProgressReport(
            kind=body.type,
            at=(body.at or ctx.clock()).astimezone(UTC),
            tracking=body.tracking,
            proof=body.proof,
            reason=body.reason,
            minutes=body.minutes,
        )
        actor = Actor(Author.system, id=f"route:{route_id}", channel="driver")
        try:
            result = await record_progress(uow, retailer.id or 0, route_id, report, actor)
        except SchedulingError as error:
            return refused(error)
        return {
            "route": result.route_id,
            "etas": {k: v.isoformat() if v else None for k, v in result.etas.items()},
        }

    @router.get("/changes")
    async def changes(
        retailer: CurrentRetailer,
        uow: Uow,
        since: int = Query(0, ge=0, description="the cursor of the last change you have"),
        limit: int = Query(100, ge=1, le=500),
    ) -> dict[str, Any]:
        """Every change after the cursor, oldest first; `next` is the cursor to ask with next time."""
        items = await changes_since(uow.session, retailer.id or 0, since, limit)
        return {"changes": items, "next": str(items[-1]["id"]) if items else str(since)}

    @router.post("/plans/{plan_id}/optimize")
    async def optimize(
        plan_id: int, retailer: CurrentRetailer, ctx: Ctx, body: OptimizeIn | None = None
    ) -> Any:
        """Re-solve the day with PyVRP in a worker thread; applied only if still current and feasible."""
        options = body or OptimizeIn()
        try:
            report = await optimize_plan(
                ctx,
                retailer.id or 0,
                plan_id,
                max_iterations=options.max_iterations,
                seconds=options.seconds,
                seed=options.seed,
            )
        except PlanNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such plan") from None
        return report.as_json()

    return router
