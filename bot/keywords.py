"""Carrier keywords: matched exactly (a whole message), in every language, before anything else.

A message that *is* a keyword is a command the carriers require us to honour; a sentence that merely
contains one ("stop by after 3") is not, and goes to the understanding like any other text.
"""

from __future__ import annotations

import enum
import unicodedata


class Keyword(enum.StrEnum):
    stop = "stop"
    start = "start"
    help = "help"


_STOP = {"STOP", "STOPALL", "ARRET", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT-OUT"}
_START = {"START", "UNSTOP"}
_HELP = {"HELP", "INFO", "AIDE", "AYUDA"}
# Keywords that say which language the recipient writes; the others are shared by every language.
_LANGUAGE = {"ARRET": "fr_CA", "AIDE": "fr_CA", "AYUDA": "es"}


def _fold(text: str) -> str:
    """Upper case without accents or surrounding punctuation: "Arrêt." -> "ARRET"."""
    decomposed = unicodedata.normalize("NFKD", text.strip())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.strip(" \t\r\n.!?¡¿,;:\"'").upper()


def match(text: str) -> tuple[Keyword, str | None] | None:
    """The keyword a whole message is, with the language it implies (None: any language)."""
    word = _fold(text)
    if not word or len(word) > 12:
        return None
    language = _LANGUAGE.get(word)
    if word in _STOP:
        return Keyword.stop, language
    if word in _START:
        return Keyword.start, language
    if word in _HELP:
        return Keyword.help, language
    return None
