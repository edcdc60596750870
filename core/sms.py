"""SMS encoding: GSM-7 or UCS-2, and how many segments a text costs.

The GSM 03.38 basic table and its extension table (characters that cost two septets). A single
character outside both switches the whole message to UCS-2 (70 characters, 67 per segment).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = "^{}\\[~]|€\f"
_BASIC = frozenset(GSM7_BASIC) - {"\x1b"}
_EXTENDED = frozenset(GSM7_EXTENDED)

# Look-alikes that CLDR, keyboards and templates bring in and that would force UCS-2.
_PLAIN = str.maketrans(
    {
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
)


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


def plain(text: str) -> str:
    """Replace typographic spaces, quotes and dashes by their GSM-7 equivalents."""
    return text.translate(_PLAIN)


def cost(text: str) -> SmsCost:
    if is_gsm7(text):
        units = sum(2 if ch in _EXTENDED else 1 for ch in text)
        segments = 1 if units <= 160 else -(-units // 153)
        return SmsCost("GSM-7", units, segments)
    units = len(text.encode("utf-16-le")) // 2
    segments = 1 if units <= 70 else -(-units // 67)
    return SmsCost("UCS-2", units, segments)
