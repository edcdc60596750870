"""SMS encoding: GSM-7 or UCS-2, and how many segments a text costs.

The GSM 03.38 basic table and its extension table (characters that cost two septets). A single
character outside both switches the whole message to UCS-2 (70 characters, 67 per segment).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = "^{}\\[~]|€\f"
_BASIC = frozenset(GSM7_BASIC) - {"\x1b"}
_EXTENDED = frozenset(GSM7_EXTENDED)

# Look-alikes that CLDR, keyboards and templates bring in and that would force UCS-2.
_PLAIN: dict[str, str] = {
    "\u2009": " ",
    "\u202f": " ",
    "\u00a0": " ",
    "\u2007": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u2212": "-",
}
_LOOK_ALIKE = re.compile("[" + "".join(_PLAIN) + "]")


@dataclass(frozen=True)
class SmsCost:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    @property
    def single_segment_limit(self) -> int:
        return 160 if self.encoding == "GSM-7" else 70


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC or ch in _EXTENDED for ch in text)


def language(locale: str) -> str:
    return locale.replace("-", "_").split("_", 1)[0].lower() or "en"


def plain(text: str) -> str:
    """Replace typographic spaces, quotes and dashes by their GSM-7 equivalents.

    A regular expression finds the few look-alikes a text holds: every notification and SMS reply
    goes through here, and `str.translate` with this table walked each character through a dict
    (14 µs for a 200-character notification against 2 µs).
    """
    return _LOOK_ALIKE.sub(_plain_match, text)


def _plain_match(match: re.Match[str]) -> str:
    return _PLAIN[match.group()]


def cost(text: str) -> SmsCost:
    if is_gsm7(text):
        units = sum(2 if ch in _EXTENDED else 1 for ch in text)
        segments = 1 if units <= 160 else -(-units // 153)
        return SmsCost("GSM-7", units, segments)
    units = len(text.encode("utf-16-le")) // 2
    segments = 1 if units <= 70 else -(-units // 67)
    return SmsCost("UCS-2", units, segments)


# --- smart encoding: the nearest GSM-7 letter where the language allows ---------------------------

# Letters and signs without a GSM-7 form whose plain form reads the same (Twilio's Smart Encoding does
# the same). é è à ù ì ò ñ ü ä ö Ç É are in GSM-7 and never reach this table. Letters it does not name
# lose their accent (NFD without combining marks) when the bare letter is GSM-7.
_NEAREST = {
    "ç": "c",
    "œ": "oe",
    "Œ": "OE",
    "ª": "a",
    "º": "o",
    "°": "o",
    "·": ".",
    "•": "-",
    "‐": "-",
    "‑": "-",
    "‒": "-",
    "―": "-",
    "‚": ",",
    "„": '"',
    "‟": '"',
    "′": "'",
    "″": '"',
    "‹": "<",
    "›": ">",
    "\u00ad": "",
    "\u200b": "",
    "\u2060": "",
    "\ufeff": "",
}


@lru_cache(maxsize=4096)
def _nearest(ch: str) -> str:
    if ch in _NEAREST:
        return _NEAREST[ch]
    bare = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    return bare if bare and bare != ch and is_gsm7(bare) else ch


def to_gsm7(text: str) -> str:
    """`plain(text)`, then every character outside GSM-7 replaced by its nearest GSM-7 form
    (á→a, ô→o, ç→c, Í→I) when that makes the whole message GSM-7.

    A message that would stay UCS-2 anyway (an emoji, another script) keeps its accents: they cost
    nothing more there, and a reader should not lose them for no saving.
    """
    text = plain(text)
    if is_gsm7(text):
        return text
    converted = "".join(ch if ch in _BASIC or ch in _EXTENDED else _nearest(ch) for ch in text)
    return converted if is_gsm7(converted) else text


def unencodable(text: str, *, smart: bool = True) -> str:
    """The characters that keep `text` in UCS-2: with smart encoding, only those without a GSM-7 form."""
    found = {ch for ch in plain(text) if not is_gsm7(ch) and (not smart or not is_gsm7(_nearest(ch)))}
    return "".join(sorted(found))


def smart_encoding(settings: Mapping[str, Any] | None, locale: str = "") -> bool:
    """Whether a retailer's SMS in this locale go through `to_gsm7` (on unless turned off).

    settings["sms_smart_encoding"]: false for every locale, or a mapping by locale or language
    ({"fr_CA": false} or {"fr": false}) for a brand that prefers exact accents at up to twice the
    segments in some languages.
    """
    value = (settings or {}).get("sms_smart_encoding", True)
    if isinstance(value, Mapping):
        for key in (locale, locale.replace("-", "_"), language(locale)):
            if key in value:
                return value[key] is not False
        return value.get("default", True) is not False
    return value is not False


# --- the message as the phone shows it -----------------------------------------------------------

TWILIO_MAX_CHARS = 1600  # Twilio refuses longer bodies, SMS or WhatsApp (21617)

_REPLY_LINE = {
    "en": "Reply {n} for {label}",
    "fr": "Répondez {n} pour {label}",
    "es": "Responda {n} para {label}",
}


class SmsTooLong(ValueError):
    """Even cut, the message cannot fit in the characters Twilio accepts."""


def numbered_lines(labels: Sequence[str], locale: str) -> list[str]:
    """SMS has no buttons: option i becomes "Reply i for ..." in the recipient's language."""
    line = _REPLY_LINE.get(language(locale), _REPLY_LINE["en"])
    return [line.format(n=i, label=label) for i, label in enumerate(labels, start=1)]


def with_numbered_options(text: str, labels: Sequence[str], locale: str) -> str:
    if not labels:
        return text
    lines = "\n".join(numbered_lines(labels, locale))
    return f"{text}\n{lines}" if text else lines


def fit(
    text: str,
    labels: Sequence[str],
    locale: str,
    transform: Callable[[str], str] = str,
    limit: int = TWILIO_MAX_CHARS,
) -> str:
    """Text and numbered options, transformed, within `limit`: the text is cut, never the options."""
    body = transform(with_numbered_options(text, labels, locale))
    if len(body) <= limit:
        return body
    tail = transform("\n" + "\n".join(numbered_lines(labels, locale))) if labels else ""
    keep = limit - len(tail) - 3
    if keep < 1:
        raise SmsTooLong("the options alone exceed the 1,600 characters Twilio accepts")
    return transform(text)[:keep].rstrip() + "..." + tail


@dataclass(frozen=True)
class SmsMessage:
    body: str
    encoding: str  # "GSM-7" or "UCS-2"
    units: int
    segments: int


def compose(text: str, labels: Sequence[str] = (), locale: str = "en", *, smart: bool = True) -> SmsMessage:
    """The final SMS and what it costs: the one function behind the outbox row's segments, the
    template editor's count and the sandbox preview."""
    body = fit(text, labels, locale, plain)
    if smart and not is_gsm7(body):
        converted = fit(text, labels, locale, to_gsm7)  # a cut text converts its parts one by one
        body = converted if is_gsm7(converted) else body
    price = cost(body)
    return SmsMessage(body=body, encoding=price.encoding, units=price.units, segments=price.segments)
