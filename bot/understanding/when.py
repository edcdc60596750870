"""The time span a recipient asked for, read from free text in English, French and Spanish.

dateparser resolves calendar dates ("28 novembre", "Dec 3", "in 3 days") in the recipient's language
with future dates preferred. In front of it, our own reader handles what dateparser gets wrong or does
not do: hours ("15h30", "3pm", "a las 4"), ranges ("entre 14h et 16h", "de 2 a 4"), bounds ("after 3",
"pas avant midi"), parts of day ("vendredi matin", "el lunes por la tarde") and the days of the week.

Semantics (all relative to `now` in the recipient's time zone, future preferred):
- a bound gives one end: "tomorrow after 3" -> start 15:00, end null; "avant midi vendredi" -> end
  Friday 12:00, start null; "not before noon on Friday" -> start Friday 12:00, end null;
- a part of day gives its span: morning 08-12, afternoon 12-17, evening 17-21 (early/late halves too);
  with a bound the two intersect ("morning before 10" -> 08:00-10:00);
- a range gives both ends; a single time ("at 3", "vers 15h") gives the two hours around it;
- a bare day ("the 28th", "lundi") gives that day from 00:00 to the next day's 00:00;
- hours without am/pm are delivery hours: 1-7 mean the afternoon ("after 3" is 15:00);
- without a day, a time is today if it is still ahead, otherwise tomorrow; a weekday is the next one
  (never today: "Tuesday" said on a Tuesday is a week later; "next Friday" is the coming Friday);
  a day of the month is the next one on or after today;
- "this weekend" is Saturday 00:00 to Monday 00:00, "next week" Monday to Monday; dates more than a
  year ahead are taken as misreadings;
- in a clause that says the recipient is away ("at work until 5", "pas là avant 15h") bounds flip
  ("until 5" -> from 17:00) and bare days are exclusions, not requests; "not Friday" is ignored;
- time already spent ("since this morning", "toda la mañana") asks for nothing; when clauses disagree,
  the one naming both a day and a time is the request; contradictory bounds keep the start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dateparser

from bot.understanding.lexicon import MUST_BE_THERE

DATEPARSER_LANGUAGE = {"en": "en", "fr_CA": "fr", "es": "es"}

# Parts of day, minutes since midnight.
PARTS = {
    "morning": (8 * 60, 12 * 60),
    "early_morning": (8 * 60, 10 * 60),
    "late_morning": (10 * 60, 12 * 60),
    "afternoon": (12 * 60, 17 * 60),
    "early_afternoon": (12 * 60, 14 * 60),
    "late_afternoon": (15 * 60, 17 * 60),
    "evening": (17 * 60, 21 * 60),
    "early_evening": (17 * 60, 19 * 60),
    "late_evening": (19 * 60, 21 * 60),
}
EVENING_LIKE = {"afternoon", "evening", "early_afternoon", "late_afternoon", "early_evening", "late_evening"}

WEEKDAYS = {
    **dict.fromkeys(["monday", "lundi", "lunes"], 0),
    **dict.fromkeys(["tuesday", "mardi", "martes"], 1),
    **dict.fromkeys(["wednesday", "mercredi", "miercoles"], 2),
    **dict.fromkeys(["thursday", "jeudi", "jueves"], 3),
    **dict.fromkeys(["friday", "vendredi", "viernes"], 4),
    **dict.fromkeys(["saturday", "samedi", "sabado"], 5),
    **dict.fromkeys(["sunday", "dimanche", "domingo"], 6),
}
MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr"
    "|jun|jul|aug|sep|sept|oct|nov|dec|janvier|fevrier|mars|avril|mai|juin|juillet|aout|septembre|octobre"
    "|novembre|decembre|janv|fevr|juil|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre"
    "|setiembre|octubre|noviembre|diciembre|ene|abr|ago|dic"
)


def _w(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])(?:" + pattern + r")(?![a-z0-9])")


# One clock time. Groups: h, m (minutes), m2 ("15 h 30"), mer (meridiem word), word (noon).
CLOCK = (
    r"(?:(?:a |at |@ )?(?:las |la |les |l )?)?"
    r"(?:(?P<{p}h>(?:[01]?\d|2[0-3])(?!\d))(?:[:h.](?P<{p}m>[0-5]\d))?"
    r"(?: (?:h|hr|hrs|hour|hours|heures|heure|horas|hora|hs)(?: (?P<{p}m2>[0-5]\d)(?! ?(?:h|am|pm)))?)?"
    r"(?: ?(?P<{p}mer>am|pm|a m|p m|o clock|du matin|le matin|de l apresmidi|du soir|le soir|de la manana"
    r"|de la tarde|de la noche|in the morning|in the afternoon|in the evening|at night|this morning"
    r"|this afternoon|this evening|tonight|a m \.|p m \.))?"
    r"|(?P<{p}word>noon|midday|midi|mediodia|12 noon|el mediodia|le midi|lunch|lunchtime|l heure du diner"
    r"|heure du diner|la hora de la comida|la hora del almuerzo))"
    r"(?! ?(?:/|st|nd|rd|th|er|jours?|days?|dias?|minutes?|min|mins|minutos|" + MONTHS + r")(?![a-z]))"
)


def clock(prefix: str) -> str:
    return CLOCK.format(p=prefix)


RANGE = _w(
    r"(?:(?:between|entre|from|de|des|desde|del|d|any ?time between|anytime from) )?"
    + clock("a")
    + r" (?:and|et|y|to|a|au|-|till|until|til|hasta|jusqu a|or|ou|o|through|thru) "
    + clock("b")
)
NOT_BEFORE = _w(
    r"(?:not before|no earlier than|not earlier than|pas avant|pas plus tot que|no antes de(?: las| la)?|"
    r"no antes del"
    r"|nunca antes de(?: las| la)?) " + clock("a")
)
NOT_AFTER = _w(
    r"(?:not after|no later than|not later than|pas apres|pas plus tard que|no despues de(?: las| la)?"
    r"|no mas tarde de(?: las| la)?) " + clock("a")
)
AFTER = _w(
    r"(?:after|anytime after|any time after|later than|past|starting(?: at| from)?|from|apres|a partir de"
    r"|des|plus tard que|despues de(?: las| la)?|despues del|a partir de(?: las| la)?|desde(?: las| la)?"
    r"|mas tarde de(?: las| la)?|passe) " + clock("a")
)
AFTER_POSTFIX = _w(
    clock("a") + r" (?:or later|and later|onwards?|at the earliest|au plus tot|et plus|ou plus tard"
    r"|en adelante|o mas tarde|como minimo)"
)
BEFORE = _w(
    r"(?:before|by|until|till|til|up to|earlier than|at the latest|avant|en avant de|jusqu a|jusqu au|"
    r"au plus tard(?: a)?"
    r"|antes de(?: las| la)?|antes del|hasta(?: las| la)?|a mas tardar(?: a las)?|max) " + clock("a")
)
BEFORE_POSTFIX = _w(
    clock("a") + r" (?:at the latest|or earlier|au plus tard|max|maximum|a mas tardar|como maximo)"
)
AROUND = _w(
    r"(?:at|a|around|about|approximately|vers|autour de|aux alentours de|hacia|sobre|cerca de|a eso de"
    r"|alrededor de|tipo|genre|for|@|pour|para) " + clock("a")
)
MARKED_TIME = _w(
    r"(?P<ah>(?:[01]?\d|2[0-3])(?!\d))(?:[:h.](?P<am>[0-5]\d))?"
    r"(?: ?(?P<amer>am|pm|a m|p m|o clock)| (?:h|hr|hrs|heures|horas|hs)"
    r"(?: (?P<am2>[0-5]\d))?)(?P<aword>)"
)
NOON = _w(r"(?P<ah>)(?P<am>)(?P<amer>)(?P<am2>)(?P<aword>noon|midday|midi|mediodia|lunch|lunchtime)")
# "early saturday morning" -> "saturday early morning", so the day and the part are both read.
SPLIT_PART = re.compile(
    r"(?<![a-z])(early|late) (monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|today)"
    r" (morning|afternoon|evening)(?![a-z])"
)
HHMM = _w(r"(?P<ah>(?:[01]?\d|2[0-3]))[:h](?P<am>[0-5]\d)(?P<amer>)(?P<am2>)(?P<aword>)")

PART_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "early_morning",
        _w(
            r"early (?:in the )?morning|first thing in the morning|tot le matin|en debut de matinee|"
            r"debut de matinee|temprano por la manana|temprano en la manana|a primera hora|"
            r"manana temprano|temprano"
        ),
    ),
    (
        "late_morning",
        _w(r"late (?:in the )?morning|fin de matinee|en fin d avantmidi|a media manana|tarde en la manana"),
    ),
    (
        "early_afternoon",
        _w(
            r"early (?:in the )?afternoon|debut d apresmidi|en debut d apresmidi|temprano por la tarde|"
            r"temprano en la tarde|primera hora de la tarde"
        ),
    ),
    (
        "late_afternoon",
        _w(
            r"late (?:in the )?afternoon|end of the day|fin d apresmidi|en fin d apresmidi|fin de journee|"
            r"en fin de journee|ultima hora de la tarde|al final de la tarde|fin del dia|al final del dia"
        ),
    ),
    ("early_evening", _w(r"early (?:in the )?evening|debut de soiree|en debut de soiree")),
    ("late_evening", _w(r"late (?:in the )?evening")),
    (
        "morning",
        _w(
            r"(?:this |in the |the )?morning|mornings|(?<! i )am|matin|matinee|avantmidi|(?:por|"
            r"en|de|a|esta|la) la manana|esta manana|por la manana|la manana"
        ),
    ),
    (
        "afternoon",
        _w(
            r"(?:this |in the )?afternoon|after noon|afternoons|pm|apresmidi|(?:por|en|de|a|esta|"
            r"la) la tarde|esta tarde|(?<!mas )(?<!muy )tarde"
        ),
    ),
    (
        "evening",
        _w(
            r"(?:this |in the )?evening|evenings|tonight|at night|night|soir|soiree|(?:por|en|de|a|"
            r"esta) la noche|esta noche|noche"
        ),
    ),
]
TODAY_PART = _w(
    r"this (?:morning|afternoon|evening)|tonight|ce (?:matin|soir)|cet apresmidi|cet avantmidi|"
    r"en soiree aujourd hui|esta (?:manana|tarde|noche)"
)

DAY_AFTER_TOMORROW = _w(r"(?:the )?day after tomorrow|apres demain|apres - demain|pasado manana")
TODAY = _w(
    r"today|later today|aujourd hui|auj|hoy|this (?:morning|afternoon|evening)|tonight|ce (?:matin|soir)|"
    r"cet apresmidi|cet avantmidi|esta (?:manana|tarde|noche)"
)
TOMORROW = _w(r"tomorrow|tomorrows|demain|manana")
NEGATED_DAY = _w(
    r"(?:not|pas|no|sauf|except|excepto|menos|but not|mais pas|pero no|than|rather than|instead of|plutot que"
    r"|au lieu de|au lieu d|mieux que|mejor que|en vez de|en lugar de) (?:on |le |el |this |ce |este )?"
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|lundi|mardi|mercredi|jeudi|vendredi|samedi"
    r"|dimanche|lunes|martes|miercoles|jueves|viernes|sabado|domingo|tomorrow|demain|today|aujourd hui|hoy)"
)
NEGATED_DAY_AFTER = _w(
    r"(?:el |le |on )?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|lundi|mardi|mercredi|jeudi"
    r"|vendredi|samedi|dimanche|lunes|martes|miercoles|jueves|viernes|sabado|domingo) (?:no|pas|non)"
)
# "after work" is a bound at 17:00, as if the hour had been written.
AFTER_WORK = _w(
    r"after work|apres (?:le travail|le boulot|la job|l ouvrage|mon travail|ma job)|despues del trabajo"
    r"|saliendo del trabajo|al salir del trabajo"
)
# "away until Monday": the first day the recipient is back.
UNTIL_DAY = _w(
    r"(?:until|till|til|jusqu a|jusqu au|hasta el|hasta) (?:next |this |le |el )?(?P<day>monday|tuesday|"
    r"wednesday"
    r"|thursday|friday|saturday|sunday|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|lunes|martes"
    r"|miercoles|jueves|viernes|sabado|domingo|tomorrow|demain|manana)"
)
WEEKDAY = _w(
    r"(?P<next>next |this |coming |on |le |ce |el |este |proximo |prochain |the )?(?P<day>monday|tuesday|"
    r"wednesday|thursday|friday"
    r"|saturday|sunday|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|lunes|martes|miercoles|jueves"
    r"|viernes|sabado|domingo)s?(?P<after> prochain| qui vient| que viene| proximo| next week)?"
)
WEEKEND = _w(
    r"(?:this |the |next |ce |la |en |el |este |du )?(?:weekend|week end|fin de semaine|fin de semana|finde)"
)
NEXT_WEEK = _w(
    r"next week|la semaine prochaine|semaine prochaine|la semana que viene|la proxima semana|"
    r"la semana proxima|proxima semana"
)
MONTH_DATE = _w(
    r"(?:\d{1,2}(?:st|nd|rd|th|er|re|e)?(?: de)? (?:"
    + MONTHS
    + r")\.?|(?:"
    + MONTHS
    + r")\.? (?:the )?\d{1,2}(?:st|nd|rd|th)?)"
    r"(?: \d{4})?|\d{1,2} ?/ ?\d{1,2}(?: ?/ ?\d{2,4})?"
)
IN_DAYS = _w(r"(?:in|dans|en) (?:\d{1,2}|two|three|deux|trois|dos|tres) (?:days|jours|dias)")
ORDINAL_DAY = _w(
    r"(?:(?:on )?the |le |el |el dia |le jour du |on the )(?P<n>\d{1,2})(?:st|nd|rd|th|er|re|"
    r"e)?(?! ?(?:one|option|choix|opcion|h|am|pm|:))"
    r"|(?P<m>\d{1,2})(?:st|nd|rd|th)(?! ?(?:one|option))"
)
ABSENCE = _w(
    MUST_BE_THERE + r"|"
    r"not (?:be )?(?:home|there|around|in|available)|be not (?:home|there|around|available)|will not be|"
    r"am not (?:home|there)|at work|i am out|away|busy|working|i work|stuck at|at the office|can not make it"
    r"|not (?:going to|gonna) be (?:home|there|around|in|available)|going to be out|be out"
    r"|(?:nobody|no one|noone|no ones) (?:will be |is |s |going to be )?(?:home|there|in)"
    r"|if i miss (?:the |my )?(?:delivery|driver|it)"
    r"|personne (?:ne sera|ne va etre|n est|n y a|n y sera) ?(?:la|a la maison|chez (?:moi|nous))?"
    r"|(?:does|do|will|would) not work|not good for me|marche pas|fonctionne pas|no me sirve|no me funciona"
    r"|pas (?:la|chez (?:moi|nous)|a la maison|disponible|dispo)|absente?|au travail|au boulot|a la job|"
    r"je travaille|occupee?|je peux pas|je ne peux pas|au bureau|pas possible"
    r"|no (?:voy a estar|estare|estoy|estaremos|hay nadie)|estoy en el trabajo|trabajo|fuera de casa|"
    r"ocupad[oa]|no puedo|no podre|en la oficina|no me queda|no me conviene"
)
# Time already spent, not asked for: "since this morning", "toute la journée", "toda la mañana".
ELAPSED = _w(
    r"(?:since|depuis|desde hace) (?:this |ce |cet |esta |este )?\w+|all (?:morning|day|afternoon|week)"
    r"|toute la (?:matinee|journee|semaine)|tout l apresmidi|toda la (?:manana|tarde|semana)|todo el dia"
    r"|desde (?:esta|hoy|ayer)(?: \w+)?"
)
CLAUSE_BREAK = re.compile(
    r" (?:,|;|\.|!|\?|but|mais|pero|so|donc|alors|entonces|because|parce que|porque|car) "
)


@dataclass
class Reading:
    """What one clause said about time."""

    day: date | None = None
    day_end: date | None = None  # exclusive, for spans of days (a weekend, next week)
    explicit_today: bool = False
    part: str | None = None
    start: int | None = None  # minutes since midnight
    end: int | None = None
    context_day: date | None = None  # the day an exclusion spoke of

    @property
    def has_time(self) -> bool:
        return self.start is not None or self.end is not None or self.part is not None


def _hour(match: re.Match[str], prefix: str, part: str | None) -> tuple[int, bool]:
    """Minutes since midnight of one clock time, and whether its meridiem was explicit."""
    if match.group(prefix + "word"):
        return 12 * 60, True
    hour = int(match.group(prefix + "h"))
    minutes = int(match.group(prefix + "m") or match.group(prefix + "m2") or 0)
    marker = (match.group(prefix + "mer") or "").strip(" .")
    explicit = True
    if marker in ("am", "a m", "du matin", "le matin", "de la manana", "in the morning", "this morning"):
        hour = 0 if hour == 12 else hour
    elif marker in ("", "o clock"):
        if hour >= 13 or hour == 0:
            pass
        elif part in EVENING_LIKE and hour < 12:
            hour += 12
        elif part is not None and part.endswith("morning"):
            pass
        elif 1 <= hour <= 7:
            hour += 12
        explicit = hour >= 13 or bool(re.search(r"\d[h:.]\d|\d h\b", match.group(0)))
    elif hour < 12:  # pm, du soir, de la tarde...
        hour += 12
    return min(hour, 24) * 60 + min(minutes, 59), explicit


def _part_in(text: str) -> str | None:
    for name, pattern in PART_PATTERNS:
        if pattern.search(text):
            return name
    return None


def _consume(text: str, match: re.Match[str]) -> str:
    return text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]


def read_clause(text: str, *, today: date, language: str | None, now: datetime) -> Reading:
    reading = Reading()
    text = ELAPSED.sub(" ", AFTER_WORK.sub(" after 17 h ", SPLIT_PART.sub(r"\2 \1 \3", text)))
    absent = bool(ABSENCE.search(text))
    if absent and (m := UNTIL_DAY.search(text)):
        _read_day(m.group(0), reading, today=today, language=language, now=now)
        reading.start = 0
        return reading
    part_hint = _part_in(text)

    def bound(pattern: re.Pattern[str], kind: str) -> None:
        nonlocal text
        while m := pattern.search(text):
            minutes, _ = _hour(m, "a", part_hint)
            if kind == "after":
                reading.start = minutes if reading.start is None else reading.start
            else:
                reading.end = minutes if reading.end is None else reading.end
            text = _consume(text, m)

    if m := RANGE.search(text):
        start, start_explicit = _hour(m, "a", part_hint)
        end, _ = _hour(m, "b", part_hint)
        end_is_pm = (m.group("bmer") or "").strip(" .") in ("pm", "p m")
        # "between 2 and 4pm": the pm of the end carries to the start.
        if end_is_pm and not m.group("amer") and start < 12 * 60 and start + 12 * 60 <= end:
            start += 12 * 60
        if start >= end:
            if start >= 13 * 60 and start - 12 * 60 < end and not start_explicit:
                start -= 12 * 60
            elif end < 12 * 60 and end + 12 * 60 > start:
                end += 12 * 60
        if start < end:
            reading.start, reading.end = start, end
            text = _consume(text, m)
    bound(NOT_BEFORE, "after")
    bound(NOT_AFTER, "before")
    bound(AFTER_POSTFIX, "after")
    bound(BEFORE_POSTFIX, "before")
    bound(AFTER, "after")
    bound(BEFORE, "before")
    if reading.start is None and reading.end is None:
        for pattern in (AROUND, MARKED_TIME, HHMM, NOON):
            if m := pattern.search(text):
                minutes, _ = _hour(m, "a", part_hint)
                reading.start, reading.end = max(minutes - 60, 0), min(minutes + 60, 24 * 60)
                text = _consume(text, m)
                break
    if absent:
        # "at work until 5" means from 5; "away after 6" means until 6.
        reading.start, reading.end = reading.end, reading.start
        if reading.start is not None and reading.end is not None and reading.start >= reading.end:
            reading.start, reading.end = None, None

    if m := TODAY_PART.search(text):
        reading.day, reading.explicit_today = today, True
    for name, pattern in PART_PATTERNS:
        if m := pattern.search(text):
            reading.part = name
            text = _consume(text, m)
            break

    for pattern in (NEGATED_DAY, NEGATED_DAY_AFTER):
        for m in pattern.finditer(text):
            text = _consume(text, m)
    if reading.day is None:
        _read_day(text, reading, today=today, language=language, now=now)
    if absent and reading.start is None and reading.end is None:
        # "not home tomorrow morning": an exclusion, not a request; its day may frame the next clause
        # ("out tomorrow morning, afternoon would be better").
        return Reading(context_day=reading.day)
    return reading


def _read_day(text: str, reading: Reading, *, today: date, language: str | None, now: datetime) -> None:
    if DAY_AFTER_TOMORROW.search(text):
        reading.day = today + timedelta(days=2)
    elif TODAY.search(text):
        reading.day, reading.explicit_today = today, True
    elif TOMORROW.search(text):
        reading.day = today + timedelta(days=1)
    elif m := WEEKDAY.search(text):
        ahead = (WEEKDAYS[m.group("day")] - today.weekday()) % 7 or 7
        if m.group("after") and m.group("after").strip() == "next week" and ahead < 7:
            ahead += 7
        reading.day = today + timedelta(days=ahead)
    elif NEXT_WEEK.search(text):
        monday = today + timedelta(days=7 - today.weekday())
        reading.day, reading.day_end = monday, monday + timedelta(days=7)
    elif WEEKEND.search(text):
        saturday = today + timedelta(days=(5 - today.weekday()) % 7)
        if today.weekday() == 6:
            saturday = today - timedelta(days=1)
        reading.day, reading.day_end = max(saturday, today), saturday + timedelta(days=2)
    elif (m := MONTH_DATE.search(text)) or (m := IN_DAYS.search(text)):
        reading.day = _dateparser_day(m.group(0), language, now)
    elif m := ORDINAL_DAY.search(text):
        day_of_month = int(m.group("n") or m.group("m"))
        reading.day = _next_day_of_month(today, day_of_month)


def _next_day_of_month(today: date, day_of_month: int) -> date | None:
    year, month = today.year, today.month
    for _ in range(13):
        try:
            candidate = date(year, month, day_of_month)
        except ValueError:
            candidate = None
        if candidate is not None and candidate >= today:
            return candidate
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return None


def _dateparser_day(phrase: str, language: str | None, now: datetime) -> date | None:
    phrase = re.sub(r"\s*/\s*", "/", phrase.replace(" de ", " "))
    settings = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "TIMEZONE": str(now.tzinfo),
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DAY_OF_MONTH": "first",
    }
    first = DATEPARSER_LANGUAGE.get(language or "en", "en")
    # The recipient's language first; a month name in another language still gets read.
    for code in (first, *(c for c in ("en", "fr", "es") if c != first)):
        parsed = dateparser.parse(phrase, languages=[code], settings=settings)
        if parsed is not None:
            day = parsed.date()
            # Future preferred, and no delivery is booked a year ahead: anything else is a misreading.
            return day if now.date() <= day <= now.date() + timedelta(days=366) else None
    return None


def _at(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    minutes_of_day = minutes % (24 * 60)
    return datetime.combine(
        day + timedelta(days=minutes // (24 * 60)),
        time(minutes_of_day // 60, minutes_of_day % 60),
        tzinfo=zone,
    )


HOUR_WORDS = {
    **dict.fromkeys(["one", "un", "une", "uno", "una"], 1),
    **dict.fromkeys(["two", "deux", "dos"], 2),
    **dict.fromkeys(["three", "trois", "tres"], 3),
    **dict.fromkeys(["four", "quatre", "cuatro"], 4),
    **dict.fromkeys(["five", "cinq", "cinco"], 5),
    **dict.fromkeys(["six", "seis"], 6),
    **dict.fromkeys(["seven", "sept", "siete"], 7),
    **dict.fromkeys(["eight", "huit", "ocho"], 8),
    **dict.fromkeys(["nine", "neuf", "nueve"], 9),
    **dict.fromkeys(["ten", "dix", "diez"], 10),
    **dict.fromkeys(["eleven", "onze", "once"], 11),
    **dict.fromkeys(["twelve", "douze", "doce"], 12),
}
_HOUR_WORD = "|".join(HOUR_WORDS)
_SPOKEN_HOUR = "|".join(w for w in HOUR_WORDS if w not in ("un", "une", "uno", "una"))
_BEFORE_HOUR = (
    r"at|after|before|between|and|to|from|around|by|until|till|apres|avant|entre|et|vers|de|des|a|las|la"
    r"|hasta|y|or|ou|o|jusqu a|desde"
)
# Hours in words and in halves and quarters, rewritten as the digits the reader knows.
CLOCK_WORDS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # "a un autre jour" and "de una vez" are not hours: one as a word is read only as "one" or "la una".
    (_w(rf"({_BEFORE_HOUR}) ({_SPOKEN_HOUR})"), lambda m: f"{m.group(1)} {HOUR_WORDS[m.group(2)]}"),
    (_w(r"(a |de |hasta |desde )?la una"), lambda m: f"{m.group(1) or ''}las 1"),
    (
        _w(rf"({_HOUR_WORD}) (o clock|pm|am|p m|a m|heures?|horas?|h)"),
        lambda m: f"{HOUR_WORDS[m.group(1)]} {m.group(2)}",
    ),
    (_w(r"half past (\d{1,2})"), r"\1:30"),
    (_w(r"quarter past (\d{1,2})"), r"\1:15"),
    (_w(r"quarter to (\d{1,2})"), lambda m: f"{(int(m.group(1)) - 1) % 24}:45"),
    (_w(r"(\d{1,2}) and a half"), r"\1:30"),
    (_w(r"(\d{1,2})(?: h| heures?)? et demie?"), r"\1h30"),
    (_w(r"(\d{1,2})(?: h| heures?)? et quart"), r"\1h15"),
    (_w(r"(\d{1,2})(?: h| heures?)? moins (?:le )?quart"), lambda m: f"{(int(m.group(1)) - 1) % 24}h45"),
    (_w(r"midi et demie?"), "12h30"),
    (_w(r"midi et quart"), "12h15"),
    (_w(r"(\d{1,2}) y media"), r"\1:30"),
    (_w(r"(\d{1,2}) y cuarto"), r"\1:15"),
    (_w(r"(\d{1,2}) menos cuarto"), lambda m: f"{(int(m.group(1)) - 1) % 24}:45"),
    (_w(r"(\d{1,2}) ?ish"), r"around \1"),
]


def spell_clock(canonical: str) -> str:
    for pattern, replacement in CLOCK_WORDS:
        canonical = pattern.sub(replacement, canonical)
    return canonical


def read_window(
    canonical: str, *, now: datetime, timezone: str, language: str | None, default_day: date | None = None
) -> tuple[datetime | None, datetime | None]:
    """The (start, end) a message asks for, aware in `timezone`; (None, None) without time words.

    A time without a day ("at 3pm") is on `default_day` (the day of the delivery talked about) when
    that is today or later, else today, or tomorrow once the time has passed.
    """
    canonical = spell_clock(canonical)
    zone = ZoneInfo(timezone)
    local_now = now.astimezone(zone)
    today = local_now.date()
    readings = [
        read_clause(f" {clause} ", today=today, language=language, now=local_now)
        for clause in CLAUSE_BREAK.split(canonical)
    ]
    # The clause that names both a day and a time is the request; a day alone elsewhere is context
    # ("stuck at the office today, could you try tomorrow afternoon?").
    readings.sort(key=lambda r: not (r.day is not None and r.has_time))
    merged = Reading()
    for reading in readings:
        merged.context_day = merged.context_day or reading.context_day
        if merged.day is None and reading.day is not None:
            merged.day, merged.day_end, merged.explicit_today = (
                reading.day,
                reading.day_end,
                reading.explicit_today,
            )
        merged.part = merged.part or reading.part
        if merged.start is None and merged.end is None:
            merged.start, merged.end = reading.start, reading.end
        elif (
            merged.start is None
            and reading.start is not None
            and (merged.end is None or reading.start < merged.end)
        ):
            merged.start = reading.start
        elif (
            merged.end is None
            and reading.end is not None
            and (merged.start is None or reading.end > merged.start)
        ):
            merged.end = reading.end
    if merged.day is None and merged.has_time and merged.context_day is not None:
        merged.day = merged.context_day
    return _resolve(merged, local_now, zone, default_day)


def _resolve(
    reading: Reading, now: datetime, zone: ZoneInfo, default_day: date | None = None
) -> tuple[datetime | None, datetime | None]:
    if reading.day is None and not reading.has_time:
        return None, None
    start, end = reading.start, reading.end
    if reading.part is not None:
        part_start, part_end = PARTS[reading.part]
        if start is None and end is None:
            start, end = part_start, part_end
        elif start is not None and end is None:
            end = part_end if start < part_end else None
        elif end is not None and start is None:
            start = part_start if part_start < end else None
    day = reading.day
    if day is None and default_day is not None and default_day >= now.date():
        day = default_day
    if day is None:
        day = now.date()
        first = start if start is not None else end
        if first is not None and _at(day, first, zone) <= now:
            day += timedelta(days=1)
    if start is None and end is None:
        return _at(day, 0, zone), _at(reading.day_end or day + timedelta(days=1), 0, zone)
    if start is not None and end is not None and start >= end:
        end = None  # contradictory bounds ("after 5 ... before 3"): the start is kept
    return (
        _at(day, start, zone) if start is not None else None,
        _at(day, end, zone) if end is not None else None,
    )


def warm(language: str) -> None:
    """Load dateparser's data for one language (the first parse of a language costs ~100 ms)."""
    now = datetime.now(ZoneInfo("America/Toronto"))
    for phrase in ("28 november", "in 3 days", "3/12"):
        _dateparser_day(phrase, language, now)


def absent_clauses(canonical: str) -> list[str]:
    """The clauses (padded) that say the recipient won't be there ("what if I'm not home", "personne
    ne sera là demain", "no hay nadie")."""
    padded = (f" {clause} " for clause in CLAUSE_BREAK.split(spell_clock(canonical)))
    return [clause for clause in padded if ABSENCE.search(clause)]


def excluded_day(absent: list[str], *, now: datetime, timezone: str, language: str | None) -> date | None:
    """The day a recipient says they will be away ("I won't be home tomorrow", "pas là vendredi", "no
    estaré el lunes"), read in the `absent_clauses` of a message that asks no time of its own; None
    when no absence names a day."""
    local_now = now.astimezone(ZoneInfo(timezone))
    for padded in absent:
        reading = Reading()
        _read_day(padded, reading, today=local_now.date(), language=language, now=local_now)
        if reading.day is not None and reading.day_end is None:
            return reading.day
    return None
