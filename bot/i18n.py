"""Replies in the recipient's language: gettext catalogues and locale-aware dates, times and distances.

Catalogues live in `locales/<locale>/LC_MESSAGES/messages.po`. `make locales` compiles them to `.mo`;
when a `.mo` is missing or older than its `.po` (a fresh checkout, a test run), the `.po` is compiled
in memory instead, so the bot never answers in the wrong language for want of a build step.
"""

from __future__ import annotations

import io
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.messages import mofile, pofile
from babel.support import NullTranslations, Translations
from babel.units import format_unit

from core import wording
from core.config import ROOT
from core.models import Channel
from core.sms import plain

LOCALES_DIR = ROOT / "locales"
SUPPORTED = ("en", "fr_CA", "es")
DEFAULT_LOCALE = "en"
DOMAIN = "messages"


def normalize_locale(value: str | None, default: str = DEFAULT_LOCALE) -> str:
    """One of the supported locales for a language tag such as "fr", "fr-CA", "es_MX" or "EN"."""
    if not value:
        return default
    language = value.replace("-", "_").split("_")[0].lower()
    return {"en": "en", "fr": "fr_CA", "es": "es"}.get(language, default)


def _load_catalogue(locale: str, directory: Path) -> NullTranslations:
    messages = directory / locale / "LC_MESSAGES"
    po_path, mo_path = messages / f"{DOMAIN}.po", messages / f"{DOMAIN}.mo"
    if mo_path.exists() and (not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime):
        with mo_path.open("rb") as fp:
            return Translations(fp, domain=DOMAIN)
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as fp:
        catalog = pofile.read_po(fp, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    mofile.write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@lru_cache(maxsize=16)
def catalogue(locale: str, directory: Path = LOCALES_DIR) -> NullTranslations:
    return _load_catalogue(locale, directory)


class Speaker:
    """Words and formats of one locale, for one channel (SMS gets GSM-7-friendly spacing)."""

    def __init__(self, locale: str, channel: Channel | None = None) -> None:
        self.locale = normalize_locale(locale)
        self.channel = channel
        self._translations = catalogue(self.locale)

    def _(self, message: str, **params: Any) -> str:
        """Translate `message`, then fill its %(name)s placeholders."""
        text = self._translations.gettext(message)
        if not params:
            return text
        # a value that ends a sentence with its own period ("ven. 4 déc.") does not need a second one
        return (text % params).replace("..", ".")

    @property
    def separator(self) -> str:
        """Between the parts of a listed item; the middle dot is not in GSM-7, so SMS gets a semicolon."""
        return "; " if self.channel == Channel.sms else " · "

    def finish(self, text: str) -> str:
        """What leaves the bot: SMS gets plain spaces, quotes and dashes (one GSM-7 segment goes further)."""
        return plain(text) if self.channel == Channel.sms else text

    # --- dates, times and distances --------------------------------------------------------------

    def day(self, value: datetime | date, timezone: str) -> str:
        return wording.day(value, self.locale, timezone)

    def clock_time(self, value: datetime, timezone: str) -> str:
        return wording.clock_time(value, self.locale, timezone)

    def hours(self, start: datetime, end: datetime, timezone: str) -> str:
        return wording.hours(start, end, self.locale, timezone)

    def window(self, start: datetime, end: datetime, timezone: str) -> str:
        """A delivery window in the recipient's words, as the notifications write it too."""
        return wording.window(start, end, self.locale, timezone)

    def opening_hours(self, spans: list[list[str]], day: date, timezone: str) -> str:
        """Opening hours such as [["08:00", "21:00"]] in the recipient's words, several spans joined."""
        zone = ZoneInfo(timezone)
        parts = []
        for opens, closes in spans:
            start = datetime.combine(day, time.fromisoformat(opens), tzinfo=zone)
            end = datetime.combine(day, time.fromisoformat(closes), tzinfo=zone)
            parts.append(self.hours(start, end, timezone))
        return ", ".join(parts)

    def distance(self, meters: float) -> str:
        if meters < 1000:
            rounded = max(50, round(meters / 50.0) * 50)
            return format_unit(rounded, "length-meter", length="short", locale=self.locale)
        kilometers = round(meters / 1000.0, 1)
        return format_unit(kilometers, "length-kilometer", length="short", locale=self.locale)
