"""The demo dataset: one day in Montréal and Toronto, generated deterministically from a seed.

Two retailers (Maple Home in Montréal, North Outfitters in Toronto), 10 routes and 2 white-glove
crews, 250 deliveries with 2-hour windows, 10 pickup points, recipients in English, Canadian French
and Spanish. Routes are built by nearest neighbour and each window is the 2-hour slot the planned
arrival falls in, so the imported plan is feasible by construction.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import select

from core.context import AppContext
from core.models import ApiKey, Delivery, Retailer
from core.security import hash_api_key
from core.tenants import create_retailer
from scheduling.plans import import_plan
from scheduling.routing import Place, StopSpec, TravelModel, VehicleSpec, schedule

SEED = 20261124
SHIFT = (8 * 3600, 20 * 3600)
SLOT = 2 * 3600

CITIES: list[dict[str, Any]] = [
    {
        "slug": "maple-home",
        "name": "Maple Home",
        "timezone": "America/Toronto",
        "default_locale": "fr_CA",
        "depot": (-73.5673, 45.5017),
        "area": "514",
        "streets": [
            "rue Saint-Denis",
            "boulevard Saint-Laurent",
            "rue Sherbrooke",
            "avenue du Mont-Royal",
            "rue Ontario",
            "rue Wellington",
            "avenue Papineau",
            "rue Beaubien",
        ],
        "postal": ["H2J", "H2T", "H2X", "H3H", "H2L", "H4C", "H1W", "H2G"],
        "points": [
            "Dépanneur Saint-Denis",
            "Pharmacie Mont-Royal",
            "Marché Jean-Talon",
            "Librairie Plateau",
            "Casier Berri-UQAM",
        ],
        "locales": ["fr_CA"] * 6 + ["en"] * 3 + ["es"],
        "demo_key": "dsk_demo_maple_home_0000000000000000000000000",
    },
    {
        "slug": "north-outfitters",
        "name": "North Outfitters",
        "timezone": "America/Toronto",
        "default_locale": "en",
        "depot": (-79.3832, 43.6532),
        "area": "416",
        "streets": [
            "Queen St W",
            "King St E",
            "Spadina Ave",
            "Bloor St W",
            "Dundas St W",
            "Yonge St",
            "College St",
            "Danforth Ave",
        ],
        "postal": ["M5V", "M5A", "M5T", "M6G", "M6J", "M4Y", "M6H", "M4K"],
        "points": [
            "Kensington Corner Store",
            "Union Station Lockers",
            "Leslieville Pharmacy",
            "Annex Books",
            "Danforth Hardware",
        ],
        "locales": ["en"] * 6 + ["fr_CA"] * 2 + ["es"] * 2,
        "demo_key": "dsk_demo_north_outfitters_000000000000000000",
    },
]

FIRST = {
    "en": ["Alex", "Jordan", "Taylor", "Morgan", "Sam", "Riley", "Casey", "Jamie"],
    "fr_CA": ["Camille", "Mathieu", "Émilie", "Olivier", "Chloé", "Gabriel", "Léa", "Félix"],
    "es": ["Sofía", "Mateo", "Valentina", "Diego", "Lucía", "Javier", "Camila", "Andrés"],
}
LAST = {
    "en": ["Smith", "Brown", "Wilson", "Taylor", "Clark", "Walker"],
    "fr_CA": ["Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier"],
    "es": ["García", "Martínez", "López", "Hernández", "Rodríguez", "Pérez"],
}

ROUTES_PER_CITY = 5
STOPS_PER_ROUTE = 25
WHITE_GLOVE_JOBS = 4
WHITE_GLOVE_SKILL = 2
# A phone with deliveries from both retailers, for the "which retailer?" dialog.
SHARED_PHONE = "+15145550142"


def demo_day(today: date | None = None) -> date:
    today = today or datetime.now(ZoneInfo("America/Toronto")).date()
    return today + timedelta(days=1)


def build_plan(city: dict[str, Any], day: date, rng: random.Random) -> dict[str, Any]:
    depot = city["depot"]
    travel = TravelModel(speed_kmh=30.0)
    jobs: list[dict[str, Any]] = []
    vehicles: list[dict[str, Any]] = []
    job_id = 1
    prefix = "MH" if city["slug"] == "maple-home" else "NO"

    def new_job(lon: float, lat: float, white_glove: bool) -> dict[str, Any]:
        nonlocal job_id
        locale = rng.choice(city["locales"])
        name = f"{rng.choice(FIRST[locale])} {rng.choice(LAST[locale])}"
        phone = f"+1{city['area']}555{1000 + job_id:04d}"
        if job_id == 7:
            phone = SHARED_PHONE
        street = rng.choice(city["streets"])
        letter = rng.choice("ABCEGHJKLMNPRSTVXY")
        postal = f"{rng.choice(city['postal'])} {rng.randint(1, 9)}{letter}{rng.randint(1, 9)}"
        job = {
            "id": job_id,
            "tracking": f"{prefix}{day:%y%m%d}{job_id:04d}",
            "location": [round(lon, 6), round(lat, 6)],
            "service": 1800 if white_glove else 180,
            "delivery": [rng.randint(1, 3)],
            "address": f"{rng.randint(10, 4999)} {street}",
            "postal_code": postal,
            "recipient": {"name": name, "phone": phone, "locale": locale},
            "white_glove": white_glove,
        }
        job_id += 1
        return job

    for v in range(ROUTES_PER_CITY + 1):
        white_glove = v == ROUTES_PER_CITY
        count = WHITE_GLOVE_JOBS if white_glove else STOPS_PER_ROUTE
        centre = (
            (depot[0] + 0.06 * rng.uniform(-1, 1), depot[1] + 0.04 * rng.uniform(-1, 1))
            if not white_glove
            else depot
        )
        cluster = [
            new_job(centre[0] + rng.gauss(0, 0.018), centre[1] + rng.gauss(0, 0.012), white_glove)
            for _ in range(count)
        ]
        # nearest-neighbour order from the depot
        ordered: list[dict[str, Any]] = []
        here = Place(*depot)
        remaining = cluster[:]
        while remaining:
            nxt = min(remaining, key=lambda j: travel.seconds(here, Place(*j["location"])))
            remaining.remove(nxt)
            ordered.append(nxt)
            here = Place(*nxt["location"])
        spec = VehicleSpec(key=v, shift=SHIFT, start=Place(*depot), end=Place(*depot))
        stops = [
            StopSpec(key=j["id"], place=Place(*j["location"]), service=j["service"], window=(0, 86_400))
            for j in ordered
        ]
        if white_glove:
            # spread the crew's visits over the day: one every two hours from 09:00
            for i, job in enumerate(ordered):
                start = 9 * 3600 + i * SLOT
                job["time_windows"] = [[start, start + SLOT]]
        else:
            timing = schedule(spec, stops, travel)
            for job, arrival in zip(ordered, timing.arrivals, strict=True):
                start = arrival - arrival % SLOT
                job["time_windows"] = [[start, start + SLOT]]
        jobs.extend(ordered)
        vehicles.append(
            {
                "id": v + 1,
                "description": f"{'Crew' if white_glove else 'Van'} {v + 1}",
                "start": list(depot),
                "end": list(depot),
                "time_window": list(SHIFT),
                "capacity": [20 if white_glove else 90],
                "skills": [1, WHITE_GLOVE_SKILL] if white_glove else [1],
                "steps": [
                    {"type": "start"},
                    *({"type": "job", "id": j["id"]} for j in ordered),
                    {"type": "end"},
                ],
            }
        )

    all_day = [["08:00", "21:00"]]
    points = []
    for i, name in enumerate(city["points"]):
        lon = depot[0] + 0.05 * rng.uniform(-1, 1)
        lat = depot[1] + 0.035 * rng.uniform(-1, 1)
        hours = {d: all_day for d in ("mon", "tue", "wed", "thu", "fri")}
        hours |= (
            {"sat": [["09:00", "18:00"]]}
            if i % 2 == 0
            else {"sat": [["10:00", "17:00"]], "sun": [["11:00", "16:00"]]}
        )
        points.append(
            {
                "id": f"{city['slug'][:2].upper()}-PP{i + 1}",
                "name": name,
                "address": f"{rng.randint(10, 999)} {rng.choice(city['streets'])}",
                "location": [round(lon, 6), round(lat, 6)],
                "opening_hours": hours,
                "capacity": 30,
            }
        )
    return {
        "date": day.isoformat(),
        "timezone": city["timezone"],
        "white_glove_skill": WHITE_GLOVE_SKILL,
        "vehicles": vehicles,
        "jobs": jobs,
        "pickup_points": points,
    }


async def load_demo(ctx: AppContext, *, day: date | None = None, reset: bool = False) -> dict[str, Any]:
    """Create the demo retailers and import their plans for `day` (tomorrow by default). Idempotent."""
    day = day or demo_day()
    rng = random.Random(SEED)  # noqa: S311 - demo data, not security
    summary: dict[str, Any] = {"date": day.isoformat(), "retailers": []}
    for city in CITIES:
        plan = build_plan(city, day, rng)
        async with ctx.uow() as uow:
            retailer = (await uow.session.exec(select(Retailer).where(Retailer.slug == city["slug"]))).first()
            if retailer is None:
                retailer, _ = await create_retailer(
                    uow.session,
                    city["slug"],
                    city["name"],
                    timezone=city["timezone"],
                    default_locale=city["default_locale"],
                )
                uow.session.add(
                    ApiKey(
                        retailer_id=retailer.id or 0,
                        key_hash=hash_api_key(city["demo_key"]),
                        prefix=city["demo_key"][:8],
                    )
                )
                await uow.commit()
        async with ctx.uow() as uow:
            exists = (
                await uow.session.exec(
                    select(Delivery).where(Delivery.retailer_id == retailer.id, Delivery.day == day).limit(1)
                )
            ).first()
            if exists is None or reset:
                await import_plan(uow, retailer, plan)
        summary["retailers"].append(
            {"retailer": city["slug"], "api_key": city["demo_key"], "deliveries": len(plan["jobs"])}
        )
    return summary
