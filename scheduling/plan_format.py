"""The route plan format: VROOM's JSON problem (with planned `steps`) plus Doorstep's additions.

Structural checks come from pydantic; `check_plan` then gathers every semantic problem at once, so
a refused plan names all its faults in one answer.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from core.phones import InvalidPhone, to_e164

SUPPORTED_LOCALES = ("en", "fr_CA", "es")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = re.compile(r"^([01]\d|2[0-4]):[0-5]\d$")

Coordinates = Annotated[list[float], Field(min_length=2, max_length=2)]
Seconds = Annotated[int, Field(ge=0, le=7 * 86_400)]
TimeWindow = Annotated[list[Seconds], Field(min_length=2, max_length=2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Step(_Model):
    type: Literal["start", "job", "end", "break"]
    id: int | None = None


class VehicleIn(_Model):
    id: int
    description: str = ""
    start: Coordinates | None = None
    end: Coordinates | None = None
    start_index: int | None = Field(default=None, ge=0)
    end_index: int | None = Field(default=None, ge=0)
    time_window: TimeWindow | None = None
    capacity: list[Annotated[int, Field(ge=0)]] = []
    skills: list[Annotated[int, Field(ge=0)]] = []
    steps: list[Step] | None = None


class RecipientIn(_Model):
    name: str = Field(default="", max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    locale: str = "en"


class JobIn(_Model):
    id: int
    description: str = ""
    location: Coordinates | None = None
    location_index: int | None = Field(default=None, ge=0)
    service: Seconds = 0
    delivery: list[Annotated[int, Field(ge=0)]] = []
    skills: list[Annotated[int, Field(ge=0)]] = []
    time_windows: list[TimeWindow] = []
    tracking: str = Field(min_length=1, max_length=64)
    recipient: RecipientIn = RecipientIn()
    address: str = Field(default="", max_length=500)
    postal_code: str = Field(default="", max_length=16)
    white_glove: bool = False
    instructions: str = Field(default="", max_length=500)


class PickupPointIn(_Model):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=500)
    location: Coordinates
    opening_hours: dict[str, list[Annotated[list[str], Field(min_length=2, max_length=2)]]] = {}
    capacity: int = Field(default=50, ge=0)


class MatrixIn(_Model):
    durations: list[list[Annotated[int, Field(ge=0)]]]


class PlanIn(_Model):
    date: date
    timezone: str = "America/Toronto"
    white_glove_skill: int = Field(default=2, ge=0)
    vehicles: list[VehicleIn] = Field(min_length=1)
    jobs: list[JobIn] = []
    matrices: dict[str, MatrixIn] | None = None
    pickup_points: list[PickupPointIn] = []
    speed_kmh: float | None = Field(default=None, gt=0, le=200)

    @property
    def durations(self) -> list[list[int]] | None:
        if not self.matrices:
            return None
        profile = self.matrices.get("car") or next(iter(self.matrices.values()))
        return profile.durations


class Problem(BaseModel):
    loc: list[str | int]
    msg: str


def _coordinates_ok(point: list[float]) -> bool:
    return -180 <= point[0] <= 180 and -90 <= point[1] <= 90


def check_plan(plan: PlanIn) -> list[Problem]:
    """Every semantic problem of the plan (an empty list means it can be imported)."""
    problems: list[Problem] = []

    def add(loc: list[str | int], msg: str) -> None:
        problems.append(Problem(loc=loc, msg=msg))

    try:
        ZoneInfo(plan.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        add(["timezone"], f"unknown time zone {plan.timezone!r}")

    durations = plan.durations
    size = len(durations) if durations is not None else 0
    if durations is not None and any(len(row) != size for row in durations):
        add(["matrices", "car", "durations"], "the duration matrix must be square")

    def check_place(
        loc: list[str | int], coords: list[float] | None, index: int | None, required: bool
    ) -> None:
        if index is not None:
            if durations is None:
                add(loc, "a location index needs matrices.car.durations")
            elif index >= size:
                add(loc, f"location index {index} is outside the {size}x{size} matrix")
        elif coords is None:
            if required:
                add(loc, "a location (coordinates or location_index) is required")
        elif not _coordinates_ok(coords):
            add(loc, f"coordinates {coords} are not [lon, lat]")
        if durations is not None and index is None and (coords is not None or required):
            add(loc, "a plan with a duration matrix needs location indices everywhere")

    vehicle_ids: set[int] = set()
    dimensions = {len(v.capacity) for v in plan.vehicles if v.capacity}
    if len(dimensions) > 1:
        add(["vehicles"], "every vehicle's capacity must have the same number of dimensions")
    all_vehicle_skills: set[int] = set()
    for i, vehicle in enumerate(plan.vehicles):
        loc: list[str | int] = ["vehicles", i]
        if vehicle.id in vehicle_ids:
            add([*loc, "id"], f"duplicate vehicle id {vehicle.id}")
        vehicle_ids.add(vehicle.id)
        check_place([*loc, "start"], vehicle.start, vehicle.start_index, False)
        check_place([*loc, "end"], vehicle.end, vehicle.end_index, False)
        if vehicle.time_window and vehicle.time_window[0] > vehicle.time_window[1]:
            add([*loc, "time_window"], "the shift ends before it starts")
        all_vehicle_skills.update(vehicle.skills)

    jobs_by_id: dict[int, JobIn] = {}
    trackings: set[str] = set()
    for i, job in enumerate(plan.jobs):
        loc = ["jobs", i]
        if job.id in jobs_by_id:
            add([*loc, "id"], f"duplicate job id {job.id}")
        jobs_by_id[job.id] = job
        if job.tracking in trackings:
            add([*loc, "tracking"], f"duplicate tracking id {job.tracking!r}")
        trackings.add(job.tracking)
        check_place([*loc, "location"], job.location, job.location_index, True)
        for w, window in enumerate(job.time_windows):
            if window[0] > window[1]:
                add([*loc, "time_windows", w], "the time window ends before it starts")
        if job.recipient.phone:
            try:
                to_e164(job.recipient.phone)
            except InvalidPhone as exc:
                add([*loc, "recipient", "phone"], str(exc))
        if job.recipient.locale not in SUPPORTED_LOCALES:
            add([*loc, "recipient", "locale"], f"locale must be one of {', '.join(SUPPORTED_LOCALES)}")
        needed = set(job.skills) | ({plan.white_glove_skill} if job.white_glove else set())
        if not any(needed <= set(v.skills) for v in plan.vehicles):
            what = "a white-glove crew" if job.white_glove else f"skills {sorted(needed)}"
            add([*loc, "skills"], f"no vehicle has {what}")
        if dimensions and job.delivery and len(job.delivery) != next(iter(dimensions)):
            add([*loc, "delivery"], "the delivery amount must have as many dimensions as the capacities")

    assigned: dict[int, int] = {}
    for i, vehicle in enumerate(plan.vehicles):
        for s, step in enumerate(vehicle.steps or []):
            loc = ["vehicles", i, "steps", s]
            if step.type != "job":
                continue
            if step.id is None or step.id not in jobs_by_id:
                add(loc, f"unknown job {step.id} in a step")
                continue
            if step.id in assigned:
                add(loc, f"job {step.id} is already planned on vehicle {assigned[step.id]}")
                continue
            assigned[step.id] = vehicle.id
            job = jobs_by_id[step.id]
            needed = set(job.skills) | ({plan.white_glove_skill} if job.white_glove else set())
            if not needed <= set(vehicle.skills):
                add(loc, f"vehicle {vehicle.id} lacks the skills job {job.id} needs")
            if vehicle.time_window and job.time_windows:
                shift = vehicle.time_window
                if not any(w[1] >= shift[0] and w[0] <= shift[1] for w in job.time_windows):
                    add(loc, f"job {job.id}'s time window is outside vehicle {vehicle.id}'s shift")

    for i, point in enumerate(plan.pickup_points):
        loc = ["pickup_points", i]
        if not _coordinates_ok(point.location):
            add([*loc, "location"], f"coordinates {point.location} are not [lon, lat]")
        for day, ranges in point.opening_hours.items():
            if day not in DAYS:
                add([*loc, "opening_hours", day], f"day must be one of {', '.join(DAYS)}")
            for r in ranges:
                if not all(HHMM.match(t) for t in r) or r[0] >= r[1]:
                    add([*loc, "opening_hours", day], f'opening hours {r} are not ["HH:MM", "HH:MM"]')
    if len({p.id for p in plan.pickup_points}) != len(plan.pickup_points):
        add(["pickup_points"], "duplicate pickup point id")
    return problems


def problems_from_validation(errors: list[Any]) -> list[Problem]:
    return [
        Problem(loc=[str(x) if not isinstance(x, int) else x for x in e["loc"]], msg=e["msg"]) for e in errors
    ]
