"""`understand()`: one recipient message in, an `Understanding` out, without any hosted model."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.understanding import intents, when
from bot.understanding.model import Intent, Understanding
from bot.understanding.text import fold, normalise, real_words

COURTESY = intents.COURTESY
# Intents whose message may carry the time span the recipient wants.
TIMED_INTENTS = {Intent.reschedule, Intent.white_glove, Intent.redirect_pickup}
SOCIAL_ORDER = (Intent.no, Intent.yes, Intent.thanks, Intent.goodbye, Intent.greeting)
LEADING_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|bonjour|allo|allô|salut|hola|buenas|buenos d[ií]as)\b[\s,!.:-]*", re.IGNORECASE
)
TRAILING_THANKS = re.compile(
    r"[\s,.!:-]*(?:thanks?(?: you)?(?: so much)?|thx|ty|merci(?: beaucoup)?|gracias|muchas gracias)"
    r"[\s!.🙏]*$",
    re.IGNORECASE,
)
# How a note is asked for, not what the driver should read: "can the driver leave it at the back door"
# is kept as "Leave it at the back door", "add a note: buzz 402" as "Buzz 402".
NOTE_FRAMES = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"^(?:please|pls|svp|s'il vous pla[iî]t|por favor)[\s,]+",
        r"^(?:(?:can|could|would|will)\s+(?:the\s+(?:driver|courier|delivery\s+(?:guy|person))|you|he|she|they)"
        r"|(?:tell|ask)\s+the\s+(?:driver|courier)(?:\s+to)?"
        r"|i(?:'d|\s+would)\s+like\s+(?:the\s+driver|you)\s+to|i\s+want\s+(?:the\s+driver|you)\s+to)\s+"
        r"(?:please\s+)?",
        r"^(?:est[- ]ce\s+que\s+)?(?:le\s+livreur|vous|il)\s+(?:peut|pourrait|pouvez|pourriez)\s+",
        r"^(?:pouvez|pourriez)[- ]vous\s+|^(?:le\s+livreur\s+)?(?:peut|pourrait)[- ]il\s+",
        r"^¿?\s*(?:(?:el\s+repartidor|usted|ustedes)\s+)?(?:puede|podr[ií]a|pueden|podr[ií]an)\s+",
        r"^(?:add|leave|write|put|ajoute[rz]?|laisse[rz]?|[ée]cri(?:re|vez)|agrega[rn]?|agregue|deja[rn]?"
        r"|escrib[ae])\s+(?:a|this|the|une|cette|la|una|esta)\s+(?:note|nota)"
        r"(?:\s+(?:for|to|pour|au|para|al)\s+(?:the\s+|le\s+|el\s+)?(?:driver|courier|livreur|repartidor))?"
        r"\s*[:,-]\s*",
    )
)
LOCALE_LANGUAGE = {"en": "en", "fr": "fr_CA", "fr_CA": "fr_CA", "es": "es"}
MAX_INSTRUCTIONS = 500
# Requests are short; reading at most this much keeps the worst case near a few milliseconds.
MAX_READ = 320


def understand(
    text: str, *, locale: str, now: datetime, timezone: str, default_day: date | None = None
) -> Understanding:
    """What a recipient's message asks for, relative to `now` in `timezone`.

    `locale` is the recipient's profile language: it decides how dates are read when the message
    itself gives no clue of its language. `now` may be naive (then it is local time in `timezone`).
    `default_day`, the day of the delivery talked about, is the day of a time said without one.
    """
    zone = ZoneInfo(timezone)
    local_now = now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)
    raw = text.strip()[:MAX_READ]
    folded = fold(raw)
    keyword = intents.carrier_keyword(folded)
    if keyword is not None:
        bare = " ".join(re.sub(r"[^a-z ]", " ", folded).split())
        return _result(keyword, language=intents.KEYWORD_LANGUAGE.get(bare), confidence=1.0)

    postal_code = intents.find_postal_code(raw)
    tracking = intents.find_tracking(raw, postal_code)
    # Codes are read from the raw text; the rest of the reading must not see "H2X 1Y4" as "2 a 1".
    message = normalise(intents.without_codes(raw))
    language = intents.detect_language(message.tokens, message.accent_hints)
    option = intents.find_option(message.canonical)
    timed_text = COURTESY.sub(" ", message.canonical)
    reading_language = language or LOCALE_LANGUAGE.get(locale, LOCALE_LANGUAGE.get(locale.split("_")[0]))
    start, end = when.read_window(
        timed_text, now=local_now, timezone=timezone, language=reading_language, default_day=default_day
    )
    has_window = start is not None or end is not None
    scores = intents.score(message.canonical)

    intent, confidence = _decide(
        scores,
        has_window=has_window,
        option=option,
        tracking=tracking,
        canonical=message.canonical,
    )
    if intent not in TIMED_INTENTS:
        start = end = None
    asks_no_time = intent is Intent.reschedule and start is None and end is None
    absent = when.absent_clauses(timed_text) if asks_no_time else []
    not_on = (
        when.excluded_day(absent, now=local_now, timezone=timezone, language=reading_language)
        if absent
        else None
    )
    away = bool(absent) and not any(p.search(message.canonical) for p in intents.ASKS_ANOTHER_TIME)
    home = intent is Intent.reschedule and bool(intents.HOME.search(message.canonical))
    direction = None
    if asks_no_time:
        sooner = bool(intents.SOONER_WORDS.search(message.canonical))
        later = bool(intents.LATER_WORDS.search(message.canonical))
        direction = "earlier" if sooner and not later else "later" if later and not sooner else None
    return Understanding(
        intent=intent,
        language=language,
        window_start=start,
        window_end=end,
        option=option if intent is Intent.choose_option else None,
        instructions=(
            _instruction_text(raw)
            if intent is Intent.instructions and not intents.bare_note_request(message.canonical)
            else None
        ),
        target_language=(
            intents.find_target_language(message.canonical, message.tokens, language)
            if intent is Intent.change_language
            else None
        ),
        postal_code=postal_code,
        tracking=tracking,
        confidence=confidence,
        not_on=not_on,
        away=away,
        home=home,
        direction=direction,
    )


def _decide(
    scores: dict[Intent, float],
    *,
    has_window: bool,
    option: int | None,
    tracking: str | None,
    canonical: str,
) -> tuple[Intent, float]:
    content = [(scores[i], i) for i in intents.CONTENT_INTENTS if scores.get(i)]
    if content:
        best_score = max(s for s, _ in content)
        best = next(i for s, i in content if s == best_score)  # ties go to the earlier content intent
        if best is Intent.where_is_parcel and has_window and scores.get(Intent.reschedule, 0) >= best_score:
            best = Intent.reschedule
        return best, min(0.95, 0.45 + 0.15 * best_score)
    if has_window:
        return Intent.reschedule, 0.7
    if option is not None:
        return Intent.choose_option, 0.9
    social = {i: scores[i] for i in SOCIAL_ORDER if scores.get(i)}
    if social:
        polite = Intent.thanks in social or Intent.goodbye in social
        if polite and Intent.yes in social and intents.WEAK_YES.search(canonical):
            strong_yes = intents.WEAK_YES.sub(" ", canonical)
            if not any(p.search(strong_yes) for i, _, p in intents.CUES if i is Intent.yes):
                del social[Intent.yes]
        for intent in SOCIAL_ORDER:
            if intent in social:
                return intent, 0.85
    if tracking is not None:
        return Intent.where_is_parcel, 0.7
    leaning = intents.loose_intent(canonical)
    if leaning is not None:
        return leaning, 0.4
    return Intent.unknown, 0.0


def _instruction_text(raw: str) -> str:
    text = " ".join(TRAILING_THANKS.sub("", LEADING_GREETING.sub("", raw)).split())
    framed = text
    for frame in NOTE_FRAMES:
        text = frame.sub("", text, count=1)
    if text != framed:  # a request turned into what the driver reads: "Leave it at the back door"
        text = text.rstrip("?").rstrip()
        text = text[:1].upper() + text[1:]
    return (text or framed or " ".join(raw.split()))[:MAX_INSTRUCTIONS]


def _result(intent: Intent, *, language: str | None, confidence: float) -> Understanding:
    return Understanding(
        intent=intent,
        language=language,
        window_start=None,
        window_end=None,
        option=None,
        instructions=None,
        target_language=None,
        postal_code=None,
        tracking=None,
        confidence=confidence,
    )


def warm_up(languages: Iterable[str] = ("en", "fr_CA", "es")) -> None:
    """Load dateparser's data for each language and fill the caches, so the first message is fast."""
    now = datetime.now(ZoneInfo("America/Toronto"))
    real_words()
    for language in languages:
        when.warm(LOCALE_LANGUAGE.get(language, language))
    for sample in (
        "where is my parcel tomorow after 3",
        "vendredi matin entre 14h et 16h",
        "el lunes por la tarde",
    ):
        understand(sample, locale="en", now=now, timezone="America/Toronto")
