"""Structured logs (structlog) with context bound per request/conversation and personal data redacted."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

# Digit runs that may be phone numbers, also URL-encoded ("%2B1416..." in a query string);
# `_phone_or_not` keeps dates, times and short ids.
_PHONE = re.compile(r"(?:%2[Bb]|(?<![\w.])\+?)\(?\d[\d\s().-]{6,}\d(?![\w:])")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _phone_or_not(match: re.Match[str]) -> str:
    raw = match.group(0)
    if raw[:3] in ("%2B", "%2b"):
        raw = "+" + raw[3:]
    if _ISO_DATE.match(raw.lstrip("+(")):
        return match.group(0)
    digits = sum(ch.isdigit() for ch in raw)
    if (raw.startswith("+") and 8 <= digits <= 15) or 10 <= digits <= 15:
        return "[phone]"
    return match.group(0)


_REDACTED_KEYS = {"text", "body", "phone", "to", "from_", "address", "password", "api_key", "token", "name"}


def _scrub(value: Any, depth: int = 0) -> Any:
    """Phone numbers out of strings, also inside lists and dicts (exception texts included)."""
    if isinstance(value, str):
        return _PHONE.sub(_phone_or_not, value)
    if depth < 4 and isinstance(value, dict):
        return {k: "[redacted]" if k in _REDACTED_KEYS else _scrub(v, depth + 1) for k, v in value.items()}
    if depth < 4 and isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop message text, phone numbers and secrets from every log event."""
    for key in list(event_dict):
        if key in _REDACTED_KEYS:
            event_dict[key] = "[redacted]"
        elif key != "event":
            event_dict[key] = _scrub(event_dict[key])
    if isinstance(event_dict.get("event"), str):
        event_dict["event"] = _PHONE.sub(_phone_or_not, event_dict["event"])
    return event_dict


# Libraries whose INFO lines are chatter (every job added, every migration context) or dumps (twilio's
# client logs each request's URL, query and headers, phone numbers included): warnings only.
QUIET_LIBRARIES = ("apscheduler", "alembic", "aiogram.event", "httpx", "uvicorn.access", "twilio")


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    _route_standard_logging(level, renderer)
    # Replaced in place: loggers cached before a reconfiguration (a second app in the same process,
    # structlog.testing.capture_logs) follow it instead of keeping the old chain.
    processors = structlog.get_config()["processors"]
    processors[:] = [*_enrich_and_redact(), renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


def _enrich_and_redact(*extra: Any) -> list[Any]:
    """What every log line goes through before it is rendered, ours and the standard library's alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        *extra,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # before redact, so tracebacks are scrubbed too
        redact,
    ]


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def _route_standard_logging(level: str, renderer: Any) -> None:
    """Send the standard library's records (uvicorn, APScheduler, SQLAlchemy...) through the same
    timestamping, redaction and rendering as our own events, on one handler of ours."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=_enrich_and_redact(structlog.stdlib.add_logger_name),
    )
    handler = next((h for h in root.handlers if getattr(h, "doorstep", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.doorstep = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(formatter)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
