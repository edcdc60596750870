"""Text normalisation: accents folded, emojis and SMS shorthand spelled out, typos corrected.

Everything downstream (language, intent, time) reads the canonical token string this module builds,
so it is written once per message and every later step is a handful of compiled regular expressions.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files

from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.understanding.lexicon import KNOWN_WORDS as LEXICON_WORDS
from bot.understanding.lexicon import SHORTHAND, words_of

# Emojis people answer with, as words of no language. Keycap digits ("2️⃣") become "option 2".
EMOJI_WORDS: dict[str, str] = {
    "👍": " emojiyes ",
    "👌": " emojiyes ",
    "✅": " emojiyes ",
    "✔": " emojiyes ",
    "☑": " emojiyes ",
    "🆗": " emojiyes ",
    "👎": " emojino ",
    "❌": " emojino ",
    "✖": " emojino ",
    "🚫": " emojino ",
    "🙅": " emojino ",
    "🙏": " emojithanks ",
    "💐": " emojithanks ",
    "🤝": " emojithanks ",
    "👋": " emojihi ",
    "📦": " emojiparcel ",
    "🚚": " emojitruck ",
    "🚛": " emojitruck ",
    "❓": " ? ",
    "❔": " ? ",
    "🇫🇷": " francais ",
    "🇪🇸": " espanol ",
    "🇲🇽": " espanol ",
    "🇬🇧": " english ",
    "🇺🇸": " english ",
}
FLAG_CA = "🇨🇦"
KEYCAP = re.compile(r"([0-9])\ufe0f?\u20e3")
KEYCAP_TEN = "🔟"

ALPHANUMERIC_SHORTHAND = "|".join(
    sorted((k for k in SHORTHAND if re.search(r"\d", k) and re.search(r"[a-z]", k)), key=len, reverse=True)
)
TOKEN = re.compile(
    r"\b(?:" + ALPHANUMERIC_SHORTHAND + r")\b"  # b4, 2moro, dem1
    r"|"
    r"\d{1,2}[:h.]\d{2}(?!\d)"  # 15h30, 15:30, 3.30
    r"|\d+(?:st|nd|rd|th|er|re|eme|ieme|e)\b"  # ordinals: 28th, 1er, 2e, 3eme
    r"|\d+"
    r"|[a-z]+"
    r"|[?!#@&+/\-,;]|\.(?=\s|$)"
)
# Québec's "avant-midi" is the morning; "avant midi" alone is a bound ("before noon").
PRE_TOKEN = (
    (re.compile(r"avant-midi"), " avantmidi "),
    (re.compile(r"\b(l'|en|ce|cet|d'|le|un|ton|mon|votre)\s*avant midi\b"), r"\1 avantmidi "),
    (re.compile(r"apres-midi|(?<!pas )(?<!jamais )\bapres midi\b"), " apresmidi "),
)
# English contractions lose their apostrophe ("won't" -> "wont"); French elisions become a space.
CONTRACTION = re.compile(r"([a-z])'(t|s|m|re|ve|ll|d)\b")
HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")
REPEATS = re.compile(r"([a-z])\1{2,}")


@dataclass(frozen=True)
class Normalised:
    raw: str
    folded: str  # lower case, accents folded, emojis spelled out
    tokens: tuple[str, ...]  # shorthand expanded and typos corrected
    canonical: str  # " " + " ".join(tokens) + " ": what the patterns match
    accent_hints: dict[str, int]  # language -> count of letters or marks only that language uses


def fold(text: str) -> str:
    """Lower case without accents: "Après-midi" -> "apres-midi", "mañana" -> "manana"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.replace("œ", "oe").replace("æ", "ae").replace("’", "'").replace("–", "-")


def accent_hints(text: str) -> dict[str, int]:
    lowered = text.lower()
    hints = {
        "es": sum(lowered.count(c) for c in "ñ¿¡áíóú"),
        "fr_CA": sum(lowered.count(c) for c in "çèêàâîôûëïœ"),
    }
    return {k: v for k, v in hints.items() if v}


def spell_emojis(text: str) -> str:
    text = KEYCAP.sub(lambda m: f" option {m.group(1)} ", text).replace(KEYCAP_TEN, " option 10 ")
    text = text.replace(FLAG_CA, " ")
    for emoji, words in EMOJI_WORDS.items():
        if emoji in text:
            text = text.replace(emoji, words)
    # Any other pictograph (smileys, hearts...) is noise for understanding.
    return "".join(" " if unicodedata.category(c) in ("So", "Sk", "Cs", "Co") else c for c in text)


# A word seen at least this often in pyspellchecker's frequency lists is a real word, not a typo.
REAL_WORD_MIN_COUNT = 100


class HashedWords:
    """Whether a word is in a large list, from each word's hash alone: sorted 64-bit hashes in one
    array, 0.7 MB for the ~92,000 real words, where a frozenset of the strings keeps ~20 MB resident
    in a process. A token taken for a real word by a hash collision is one in 10^14."""

    def __init__(self, words: Iterable[str]) -> None:
        self._hashes = array("q", sorted({hash(word) for word in words}))

    def __contains__(self, word: object) -> bool:
        key = hash(word)
        at = bisect_left(self._hashes, key)
        return at < len(self._hashes) and self._hashes[at] == key

    def __len__(self) -> int:
        return len(self._hashes)


@cache
def real_words() -> HashedWords:
    """Real English, French and Spanish words (accents folded), from pyspellchecker's word lists.

    Typo correction leaves them alone: "like" is not a typo of "live", nor "souper" of "super". Loading
    takes under a second; `warm_up()` does it at start.
    """
    words: set[str] = set()
    for language in ("en", "fr", "es"):
        resource = files("spellchecker") / "resources" / f"{language}.json.gz"
        counts: dict[str, int] = json.loads(gzip.decompress(resource.read_bytes()))
        words.update(fold(word) for word, count in counts.items() if count >= REAL_WORD_MIN_COUNT)
    return HashedWords(words)


@lru_cache(maxsize=50_000)
def correct(token: str) -> str:
    """The known word a typo most likely meant, or the token itself.

    Only letters are corrected, only from four letters up, never a real word of the three languages,
    at most one edit below eight letters and two from there, and the first letter must be kept (or
    swapped with the second): recipients' typos are mostly inside words, and a wider net turns
    ordinary words into cue words.
    """
    if token in KNOWN_WORDS or not token.isalpha():
        return token
    if len(token) >= 3 and token[-1] == token[-2] and token[:-1] in KNOWN_WORDS:
        return token[:-1]  # a held last letter: "mercii", "sii", "noo"
    if len(token) < 4:
        return token
    squeezed = REPEATS.sub(r"\1", token)
    if squeezed in KNOWN_WORDS:
        return squeezed
    doubled = REPEATS.sub(r"\1\1", token)
    if doubled in KNOWN_WORDS:
        return doubled
    if token in real_words():
        return token
    token = doubled
    limit = 1 if len(token) < 8 else 2
    candidates = KNOWN_WORDS_BY_INITIAL.get(token[0], ()) + KNOWN_WORDS_BY_INITIAL.get(token[1], ())
    matches = process.extract(token, candidates, scorer=OSA.distance, score_cutoff=limit, limit=8)
    if not matches:
        return token
    # Among equally close words, the one sharing the longest beginning ("wher" -> "where", not "when").
    word: str = min(matches, key=lambda m: (m[1], -_common_prefix(token, m[0]), abs(len(m[0]) - len(token))))[
        0
    ]
    if len(word) < 4 or (word[0] != token[0] and not (word[0] == token[1] and word[1] == token[0])):
        return token
    return word


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _vocabulary() -> frozenset[str]:
    """Every word the lexicon, the intent reader and the window reader name."""
    from bot.understanding import intents, when

    def patterns(value: object) -> list[re.Pattern[str]]:
        if isinstance(value, re.Pattern):
            return [value]
        if isinstance(value, list | tuple):
            return [p for item in value for p in patterns(item)]
        return []

    words = set(LEXICON_WORDS) | set(when.HOUR_WORDS)
    for module in (intents, when):
        for value in vars(module).values():
            words |= {w for p in patterns(value) for w in words_of(p.pattern)}
    return frozenset(w for w in words if w.isalpha())


KNOWN_WORDS = _vocabulary()


def _by_initial() -> dict[str, tuple[str, ...]]:
    groups: dict[str, list[str]] = {}
    for word in sorted(KNOWN_WORDS):
        if len(word) >= 4:
            groups.setdefault(word[0], []).append(word)
    return {k: tuple(v) for k, v in groups.items()}


KNOWN_WORDS_BY_INITIAL = _by_initial()


def normalise(text: str) -> Normalised:
    folded = fold(spell_emojis(text))
    for pattern, replacement in PRE_TOKEN:
        folded = pattern.sub(replacement, folded)
    folded = HYPHEN.sub(" ", CONTRACTION.sub(r"\1\2", folded))
    tokens: list[str] = []
    for token in TOKEN.findall(folded):
        expansion = SHORTHAND.get(token)
        if expansion is not None:
            tokens.extend(expansion.split())
        else:
            fixed = correct(token)
            expansion = SHORTHAND.get(fixed)
            tokens.extend(expansion.split() if expansion is not None else [fixed])
    canonical = " " + " ".join(tokens) + " "
    return Normalised(text, folded, tuple(tokens), canonical, accent_hints(text))
