"""`python app.py understand`: JSON lines in, one JSON line out per message.

Input: {"text": ..., "locale": "fr_CA", "now": "2026-11-24T10:30:00", "timezone": "America/Toronto"}.
`locale` defaults to "en", `timezone` to America/Toronto and `now` to the current time; a naive `now`
is local time in `timezone`. A bad line gets {"error": ..., "line": n} and the tool goes on.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.understanding.reader import understand, warm_up

DEFAULT_TIMEZONE = "America/Toronto"
LOCALES = ("en", "fr_CA", "es")


class BadLine(ValueError):
    pass


def parse_request(line: str) -> tuple[str, str, datetime, str]:
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not JSON: {exc.msg}") from exc
    if not isinstance(request, dict):
        raise BadLine("expected a JSON object")
    text = request.get("text")
    if not isinstance(text, str):
        raise BadLine('"text" must be a string')
    locale = request.get("locale") or "en"
    if locale not in LOCALES and locale.split("_")[0] not in ("en", "fr", "es"):
        raise BadLine(f'"locale" must be one of {", ".join(LOCALES)}')
    timezone = request.get("timezone") or DEFAULT_TIMEZONE
    try:
        zone = ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadLine(f'unknown "timezone": {timezone!r}') from exc
    raw_now = request.get("now")
    if raw_now is None:
        now = datetime.now(zone)
    else:
        try:
            now = datetime.fromisoformat(str(raw_now))
        except ValueError as exc:
            raise BadLine('"now" must be an ISO 8601 date-time') from exc
        now = now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)
    return text, str(locale), now, str(timezone)


def run(stdin: TextIO, stdout: TextIO, *, timings: bool = False) -> int:
    """Answer every line of `stdin`; returns the number of bad lines."""
    warm_up()
    bad = 0
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        answer: dict[str, Any]
        try:
            text, locale, now, timezone = parse_request(line)
        except BadLine as exc:
            bad += 1
            answer = {"error": str(exc), "line": number}
        else:
            started, cpu_started = time.perf_counter(), time.thread_time()
            understanding = understand(text, locale=locale, now=now, timezone=timezone)
            elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
            answer = understanding.as_json()
            if timings:
                # Wall time includes waiting for a core on a busy machine; CPU time is the work itself.
                answer["elapsed_ms"] = round(elapsed * 1000, 3)
                answer["cpu_ms"] = round(cpu * 1000, 3)
        stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
        stdout.flush()
    return bad
