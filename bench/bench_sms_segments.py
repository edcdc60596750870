"""SMS segments with and without smart encoding: every default SMS notification (sample data, numbered
options) and every translated bot reply, per language, plus a few typical messages.

Counts come from `core.sms.compose`, the function behind the outbox row's segments and the template
editor's count. Exits 1 if a default SMS notification or a translated bot reply is still UCS-2 with
smart encoding on.

    .venv/bin/python bench/bench_sms_segments.py
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from babel.messages.pofile import read_po

from core.config import ROOT
from core.models import Channel, Retailer
from core.sms import compose
from notifications.templates import all_keys, default_body, validate

TYPICAL = [
    ("en", "Your parcel TOR-000123 arrives Thu Dec 3, 2:00-4:00 PM.", ["Change the time", "Pickup point"]),
    (
        "fr_CA",
        "Votre colis TOR-000123 arrive jeu. 3 déc., 14 h à 16 h. Vous serez là? Fenêtre modifiable.",
        ["Changer l'heure", "Point de retrait"],
    ),
    (
        "es",
        "¿Confirmamos la entrega de TOR-000123 el jue. 3 dic., de 14:00 a 16:00, en la dirección indicada?",
        ["Sí", "Otra ventana"],
    ),
]


def notifications() -> tuple[dict[str, list[tuple[int, int, bool, bool]]], list[str]]:
    """Per locale: (segments off, segments on, UCS-2 off, UCS-2 on) of every default SMS notification."""
    figures: dict[str, list[tuple[int, int, bool, bool]]] = defaultdict(list)
    still_ucs2 = []
    for event, locale, channel in all_keys():
        if channel != Channel.sms:
            continue
        counts = []
        for smart in (False, True):
            retailer = Retailer(
                slug="acme",
                name="Acme",
                brand_name="Acme",
                timezone="America/Toronto",
                settings={"sms_smart_encoding": smart},
            )
            report = validate(retailer, event, locale, channel, default_body(event, locale, channel))
            counts.append((report.segments or 0, report.encoding))
        (off, off_encoding), (on, on_encoding) = counts
        figures[locale].append((off, on, off_encoding == "UCS-2", on_encoding == "UCS-2"))
        if on_encoding != "GSM-7":
            still_ucs2.append(f"{event}/{locale}")
    return figures, still_ucs2


def bot_replies(locale: str) -> tuple[int, int, int, int, int]:
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        strings = [m.string for m in read_po(handle) if m.id and isinstance(m.string, str) and m.string]
    off = [compose(s, smart=False) for s in strings]
    on = [compose(s) for s in strings]
    return (
        len(strings),
        sum(m.encoding == "UCS-2" for m in off),
        sum(m.encoding == "UCS-2" for m in on),
        sum(m.segments for m in off),
        sum(m.segments for m in on),
    )


def main() -> int:
    print("typical messages with their numbered options (smart encoding off -> on):")
    for locale, text, options in TYPICAL:
        off, on = compose(text, options, locale, smart=False), compose(text, options, locale)
        print(
            f"  {locale:6} {len(on.body):4} chars  {off.encoding} {off.segments} segment(s)"
            f" -> {on.encoding} {on.segments} segment(s)"
        )
    figures, still_ucs2 = notifications()
    print("default SMS notifications (10 events, sample data, numbered options):")
    for locale, rows in figures.items():
        print(
            f"  {locale:6} UCS-2 {sum(r[2] for r in rows):2}/{len(rows)} -> {sum(r[3] for r in rows)}"
            f"  segments {sum(r[0] for r in rows):3} -> {sum(r[1] for r in rows):3}"
        )
    print("translated bot replies (as SMS, placeholders unfilled, without options):")
    failed = bool(still_ucs2)
    for locale in ("fr_CA", "es"):
        count, ucs2_off, ucs2_on, segments_off, segments_on = bot_replies(locale)
        failed = failed or ucs2_on > 0
        print(
            f"  {locale:6} {count} strings  UCS-2 {ucs2_off:2} -> {ucs2_on}"
            f"  segments {segments_off:3} -> {segments_on:3}"
        )
    if still_ucs2:
        print("still UCS-2 with smart encoding:", ", ".join(still_ucs2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
