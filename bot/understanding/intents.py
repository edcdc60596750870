"""Which intent a message expresses, and the details that go with it (option, language, codes)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.understanding.lexicon import (
    ANY_OPTION_ALONE,
    COURTESY_TIME_PHRASES,
    HELP_WORDS,
    HOME_DELIVERY,
    INTENT_CUES,
    LANGUAGE_NAMES,
    LANGUAGE_WORDS,
    LATER,
    LOOSE_WORDS,
    PARCEL_WORDS,
    SOONER,
    START_WORDS,
    STOP_WORDS,
    WORD_PATTERN,
)
from bot.understanding.model import Intent

COURTESY = re.compile(COURTESY_TIME_PHRASES)
CUES: list[tuple[Intent, float, re.Pattern[str]]] = [
    (Intent(name), weight, re.compile(WORD_PATTERN(pattern))) for name, weight, pattern in INTENT_CUES
]
# "change the time", "reporter", "cambiar": asking for another time outright, not only saying they're away
ASKS_ANOTHER_TIME = [
    pattern for intent, weight, pattern in CUES if intent is Intent.reschedule and weight >= 3
]
# "deliver it home instead": to the door rather than a pickup point
HOME = re.compile(WORD_PATTERN(HOME_DELIVERY))
# "earlier" / "later" than the time planned, when no time is named
SOONER_WORDS = re.compile(WORD_PATTERN(SOONER))
LATER_WORDS = re.compile(WORD_PATTERN(LATER))
# What a message is about, as opposed to social moves (yes, thanks, hello).
CONTENT_INTENTS = (
    Intent.stop,
    Intent.human,
    Intent.personal_data,
    Intent.change_language,
    Intent.cancel_white_glove,
    Intent.white_glove,
    Intent.redirect_pickup,
    Intent.instructions,
    Intent.notify_me,
    Intent.reschedule,
    Intent.where_is_parcel,
)
# Weak agreement ("ok", "perfect") gives way to thanks; a plain "yes" or "no" does not.
WEAK_YES = re.compile(
    WORD_PATTERN(
        r"ok|okay|cool|great|awesome|perfect|parfait|super|genial|perfecto|bueno|bon|good|fine|alright|va|sale|listo|excelente"
    )
)
NO_THANKS = re.compile(WORD_PATTERN(r"no thanks|no thank you|non merci|no gracias|nah thanks"))

# Words that belong to exactly one language.
_ALL_LANGUAGE_WORDS = [w for words in LANGUAGE_WORDS.values() for w in words]
UNIQUE_LANGUAGE_WORDS = {
    language: frozenset(w for w in words if _ALL_LANGUAGE_WORDS.count(w) == 1)
    for language, words in LANGUAGE_WORDS.items()
}

ORDINALS = {
    **dict.fromkeys(["first", "1st", "premier", "premiere", "1er", "1re", "primero", "primera", "primer"], 1),
    **dict.fromkeys(["second", "2nd", "deuxieme", "2e", "2eme", "seconde", "segundo", "segunda"], 2),
    **dict.fromkeys(["third", "3rd", "troisieme", "3e", "3eme", "tercero", "tercera", "tercer"], 3),
    **dict.fromkeys(["fourth", "4th", "quatrieme", "4e", "4eme", "cuarto", "cuarta"], 4),
    **dict.fromkeys(["fifth", "5th", "cinquieme", "5e", "5eme", "quinto", "quinta"], 5),
}
_ORDINAL_WORDS = "|".join(sorted(ORDINALS, key=len, reverse=True))
OPTION_NUMBER = re.compile(
    WORD_PATTERN(
        r"(?:option|opcion|choix|number|numero|num|no|#|opt) ?(?P<n>[1-9]\d?)"
        r"|(?:take|pick|choose|want|prends|prendre|choisis|je veux|quiero|elijo|escojo|prefiero|me quedo con)"
        r" (?:the |la |le |el |l |number |numero |option |opcion |choix )?"
        r"(?P<t>[1-9]\d?)(?! ?(?:h|am|pm|st|nd|rd|th|:|/))"
    )
)
NUMBER_WORDS = {
    **dict.fromkeys(["one", "un", "une", "uno", "una"], 1),
    **dict.fromkeys(["two", "deux", "dos"], 2),
    **dict.fromkeys(["three", "trois", "tres"], 3),
    **dict.fromkeys(["four", "quatre", "cuatro"], 4),
    **dict.fromkeys(["five", "cinq", "cinco"], 5),
}
OPTION_WORD = re.compile(
    WORD_PATTERN(r"(?:option|opcion|choix|number|numero) (?P<w>" + "|".join(NUMBER_WORDS) + r")")
)
OPTION_ORDINAL = re.compile(
    WORD_PATTERN(
        r"(?:the |le |la |el |l )?(?P<o>" + _ORDINAL_WORDS + r")"
        r"(?: (?:one|option|choice|slot|window|time|choix|creneau|plage|horaire|opcion|horario|uno|una"
        r"|proposition))?"
    )
)
FILLER = re.compile(
    WORD_PATTERN(
        r"please|pls|s il vous plait|s il te plait|por favor|ok|yes|oui|si|merci|thanks|gracias"
        r"|the|la|le|el|!|\.|,|\?"
    )
)
POSTAL_CODE = re.compile(
    r"\b([ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z])[ -]?(\d[ABCEGHJ-NPRSTV-Z]\d)\b", re.IGNORECASE
)
TRACKING = re.compile(
    r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9-]{6,}[A-Za-z0-9](?![\w-])"
)
TIME_LIKE = re.compile(
    r"^\d{1,2}(?:h\d{0,2}|:\d{2}|am|pm)(?:-\d{1,2}(?:h\d{0,2}|:\d{2}|am|pm)?)?$", re.IGNORECASE
)
NOT_SPEAKING = re.compile(
    WORD_PATTERN(
        r"(?:do not|can not|dont) (?:speak|understand|read)|(?:parle|comprends|lis) pas"
        r"|no (?:hablo|entiendo|leo)"
    )
)


def carrier_keyword(folded: str) -> Intent | None:
    """STOP, ARRÊT, START, HELP... when they are the whole message."""
    bare = " ".join(re.sub(r"[^a-z ]", " ", folded).split())
    if bare in STOP_WORDS:
        return Intent.stop
    if bare in START_WORDS:
        return Intent.start
    if bare in HELP_WORDS:
        return Intent.help
    return None


KEYWORD_LANGUAGE = {
    "arret": "fr_CA",
    "aide": "fr_CA",
    "ayuda": "es",
    "help": "en",
    "unsubscribe": "en",
    "quit": "en",
    "cancel": "en",
    "end": "en",
}


def detect_language(tokens: Iterable[str], accent_hints: dict[str, int]) -> str | None:
    """The language whose own words the message uses most; None on no clue or a tie."""
    scores = dict.fromkeys(UNIQUE_LANGUAGE_WORDS, 0.0)
    for token in tokens:
        for language, words in UNIQUE_LANGUAGE_WORDS.items():
            if token in words:
                scores[language] += 1
    for language, count in accent_hints.items():
        scores[language] += 1.5 * min(count, 2)
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    if ranked[0][1] == 0 or ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


POSTAL_CODE_WORDS = re.compile(WORD_PATTERN(r"postal code|post code|zip code|zip|code postal|codigo postal"))


def score(canonical: str) -> dict[Intent, float]:
    canonical = POSTAL_CODE_WORDS.sub(" ", canonical)
    # "Have a great day" is a goodbye, not a "great" that agrees.
    plain = COURTESY.sub(" ", canonical)
    scores: dict[Intent, float] = {}
    for intent, weight, pattern in CUES:
        if pattern.search(plain if intent in (Intent.yes, Intent.no) else canonical):
            scores[intent] = scores.get(intent, 0.0) + weight
    if NO_THANKS.search(canonical):
        scores[Intent.no] = scores.get(Intent.no, 0.0) + 3
    return scores


def loose_intent(canonical: str) -> Intent | None:
    """The intent single words lean to when no phrase matched; None when they do not lean."""
    counts = dict.fromkeys(LOOSE_WORDS, 0.0)
    for token in POSTAL_CODE_WORDS.sub(" ", canonical).split():
        for intent, words in LOOSE_WORDS.items():
            if token in words:
                counts[intent] += 1
        if token in PARCEL_WORDS:
            counts["where_is_parcel"] += 0.5
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    if ranked[0][1] == 0 or ranked[0][1] == ranked[1][1]:
        return None
    return Intent(ranked[0][0])


ANY = re.compile(WORD_PATTERN(ANY_OPTION_ALONE))


def find_option(canonical: str) -> int | None:
    if ANY.search(canonical):
        return 1
    if m := OPTION_WORD.search(canonical):
        return NUMBER_WORDS[m.group("w")]
    if m := OPTION_NUMBER.search(canonical):
        return int(m.group("n") or m.group("t"))
    bare = FILLER.sub(" ", canonical).split()
    if len(bare) == 1 and bare[0].isdigit() and 1 <= int(bare[0]) <= 10:
        return int(bare[0])
    if m := OPTION_ORDINAL.search(canonical):
        words = m.group(0).split()
        has_noun = len(words) > 1 and words[-1] not in ORDINALS
        # "the 2nd" alone is a date; "the second", "2nd one", "la segunda" are choices.
        if has_noun or not m.group("o")[0].isdigit():
            return ORDINALS[m.group("o")]
    return None


def find_target_language(canonical: str, tokens: Iterable[str], written_in: str | None) -> str | None:
    if NOT_SPEAKING.search(canonical) and written_in is not None:
        return written_in
    for token in tokens:
        if token in LANGUAGE_NAMES:
            return LANGUAGE_NAMES[token]
    return None


def find_postal_code(raw: str) -> str | None:
    m = POSTAL_CODE.search(raw)
    return (m.group(1) + m.group(2)).upper() if m else None


def without_codes(raw: str) -> str:
    """The message with postal codes and tracking numbers blanked out."""
    raw = POSTAL_CODE.sub(" ", raw)
    return TRACKING.sub(
        lambda m: " " if len(m.group(0)) >= 8 and not TIME_LIKE.match(m.group(0)) else m.group(0), raw
    )


def find_tracking(raw: str, postal_code: str | None) -> str | None:
    for m in TRACKING.finditer(raw):
        token = m.group(0)
        if len(token) < 8 or TIME_LIKE.match(token):
            continue
        if postal_code and token.replace("-", "").upper() == postal_code:
            continue
        return token.upper()
    return None


# The words of a request to leave a note, without the note itself ("add a note for the driver",
# "je veux laisser une note au livreur", "quiero dejar una nota al repartidor").
_NOTE_FRAME_TEXT = """
    i id d want would like to add a an the leave write send give note notes instruction instructions for
    driver courier delivery can could please pls my some message how do is possible just quick
    je j veux voudrais aimerais aimerai ajouter laisser ecrire donner une un note notes consigne consignes
    pour au le la livreur livreuse chauffeur est ce que peux puis svp stp s il vous plait de a aux
    quiero quisiera me gustaria dejar agregar anadir escribir dar una un nota notas instruccion
    instrucciones para al el repartidor conductor chofer puedo por favor
"""
NOTE_FRAME = frozenset(_NOTE_FRAME_TEXT.split())
NOTE_WORDS = frozenset(
    {"note", "notes", "instruction", "instructions", "consigne", "consignes", "nota", "notas"}
)
NOTE_WORDS |= frozenset({"instruccion", "instrucciones"})


def bare_note_request(canonical: str) -> bool:
    """True when the message only asks to leave a note and says nothing the driver should know."""
    words = re.findall(r"[a-z0-9]+", canonical)
    return bool(words) and any(w in NOTE_WORDS for w in words) and all(w in NOTE_FRAME for w in words)
