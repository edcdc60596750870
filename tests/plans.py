"""Small route plans for tests, in the import format (VROOM JSON plus Doorstep's additions)."""

from __future__ import annotations

import copy
from typing import Any

DAY = "2026-12-03"  # a Thursday
TZ = "America/Toronto"
DEPOT = [-79.3832, 43.6532]


def job(
    job_id: int,
    tracking: str,
    lon: float,
    lat: float,
    window: tuple[int, int] | None = (36000, 43200),
    phone: str = "+14165550100",
    locale: str = "en",
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job_id,
        "tracking": tracking,
        "location": [lon, lat],
        "service": 300,
        "delivery": [1],
        "address": f"{job_id} Queen St W, Toronto",
        "postal_code": "M5V 2A1",
        "recipient": {"name": f"Recipient {job_id}", "phone": phone, "locale": locale},
    }
    if window is not None:
        data["time_windows"] = [list(window)]
    data.update(extra)
    return data


def small_plan(day: str = DAY, prefix: str = "T") -> dict[str, Any]:
    """Two vans and one white-glove crew in Toronto, five deliveries, two pickup points."""
    jobs = [
        job(1, f"{prefix}001", -79.40, 43.66, (32400, 39600), phone="+14165550101"),
        job(2, f"{prefix}002", -79.41, 43.65, (36000, 43200), phone="+14165550102", locale="fr_CA"),
        job(3, f"{prefix}003", -79.37, 43.67, (39600, 46800), phone="+14165550103", locale="es"),
        job(4, f"{prefix}004", -79.39, 43.64, None, phone="+14165550104"),
        job(5, f"{prefix}005", -79.38, 43.66, (46800, 54000), phone="+14165550105", white_glove=True),
    ]
    jobs[4]["service"] = 1800
    return copy.deepcopy(
        {
            "date": day,
            "timezone": TZ,
            "white_glove_skill": 2,
            "vehicles": [
                {
                    "id": 1,
                    "start": DEPOT,
                    "end": DEPOT,
                    "time_window": [28800, 64800],
                    "capacity": [10],
                    "skills": [1],
                    "steps": [
                        {"type": "start"},
                        {"type": "job", "id": 1},
                        {"type": "job", "id": 2},
                        {"type": "end"},
                    ],
                },
                {
                    "id": 2,
                    "start": DEPOT,
                    "end": DEPOT,
                    "time_window": [28800, 64800],
                    "capacity": [10],
                    "skills": [1],
                    "steps": [{"type": "start"}, {"type": "job", "id": 3}, {"type": "end"}],
                },
                {
                    "id": 3,
                    "description": "White-glove crew",
                    "start": DEPOT,
                    "end": DEPOT,
                    "time_window": [28800, 64800],
                    "capacity": [4],
                    "skills": [1, 2],
                    "steps": [{"type": "start"}, {"type": "job", "id": 5}, {"type": "end"}],
                },
            ],
            "jobs": jobs,
            "pickup_points": [
                {
                    "id": "PP1",
                    "name": "Queen St Lockers",
                    "address": "500 Queen St W",
                    "location": [-79.40, 43.648],
                    "opening_hours": {d: [["08:00", "21:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
                    "capacity": 2,
                },
                {
                    "id": "PP2",
                    "name": "Annex Books",
                    "address": "300 Bloor St W",
                    "location": [-79.405, 43.667],
                    "opening_hours": {"thu": [["10:00", "18:00"]], "sat": [["10:00", "16:00"]]},
                    "capacity": 5,
                },
            ],
        }
    )
