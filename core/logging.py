"""Structured logs (structlog) with context bound per request/conversation and personal data redacted."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

_PHONE = re.compile(r"\+?\d[\d\s().-]{8,}\d")
_REDACTED_KEYS = {"text", "body", "phone", "to", "from_", "address", "password", "api_key", "token", "name"}


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop message text, phone numbers and secrets from every log event."""
    for key in list(event_dict):
        if key in _REDACTED_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(event_dict[key], str) and key != "event":
            event_dict[key] = _PHONE.sub("[phone]", event_dict[key])
    if isinstance(event_dict.get("event"), str):
        event_dict["event"] = _PHONE.sub("[phone]", event_dict["event"])
    return event_dict


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    logging.basicConfig(format="%(message)s", level=level.upper())
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
