"""The console's Jinja2 environment: autoescaped HTML templates, date filters, the signed-in user."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request

from channels.media import AUDIO_TYPES, PICTURE_TYPES, VIDEO_TYPES

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
DEFAULT_TZ = "America/Toronto"


def local(value: datetime | None, timezone: str = DEFAULT_TZ, fmt: str = "%H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).strftime(fmt)


def local_day(value: datetime | None, timezone: str = DEFAULT_TZ) -> str:
    return local(value, timezone, "%a %b %d, %H:%M")


def window(start: datetime | None, end: datetime | None, timezone: str = DEFAULT_TZ) -> str:
    if start is None or end is None:
        return "no window"
    return f"{local(start, timezone, '%a %b %d')}, {local(start, timezone)}–{local(end, timezone)}"


def _user_context(request: Request) -> dict[str, Any]:
    return {"user": getattr(request.state, "console_user", None)}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg", "xml"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = local
    env.filters["local_day"] = local_day
    env.globals["window"] = window
    # pictures shown and voice messages or videos played in the thread; other files are links
    env.globals["media_types"] = {"picture": PICTURE_TYPES, "audio": AUDIO_TYPES, "video": VIDEO_TYPES}
    return env


templates = Jinja2Templates(env=_environment(), context_processors=[_user_context])
