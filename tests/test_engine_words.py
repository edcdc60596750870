"""The bot's words: windows, hours and distances per locale, catalogues, and the carriers' keywords."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.i18n import Speaker, normalize_locale
from bot.keywords import Keyword, match
from core.models import Channel
from core.sms import is_gsm7

TZ = "America/Toronto"
START = datetime(2026, 12, 4, 14, tzinfo=ZoneInfo(TZ))
END = datetime(2026, 12, 4, 16, tzinfo=ZoneInfo(TZ))


class TestWindows:
    @pytest.mark.parametrize(
        ("locale", "expected"),
        [
            ("en", "Fri Dec 4, 2:00–4:00\u202fPM"),
            ("fr_CA", "ven. 4 déc., 14 h à 16 h"),
            ("es", "vie 4 dic, 14:00–16:00"),
        ],
    )
    def test_a_window_reads_as_people_write_it(self, locale, expected):
        assert Speaker(locale).window(START, END, TZ) == expected

    def test_a_window_given_in_utc_is_shown_in_the_deliverys_time_zone(self):
        start, end = START.astimezone(ZoneInfo("UTC")), END.astimezone(ZoneInfo("UTC"))
        assert Speaker("fr_CA").window(start, end, TZ) == "ven. 4 déc., 14 h à 16 h"

    def test_french_minutes_and_a_morning_to_afternoon_span(self):
        start = datetime(2026, 12, 4, 11, 30, tzinfo=ZoneInfo(TZ))
        assert Speaker("fr_CA").hours(start, END, TZ) == "11 h 30 à 16 h"
        assert Speaker("en").hours(start, END, TZ) == "11:30\u202fAM–4:00\u202fPM"

    def test_sms_gets_plain_spaces_and_dashes(self):
        speaker = Speaker("en", Channel.sms)
        text = speaker.finish(speaker.window(START, END, TZ))
        assert text == "Fri Dec 4, 2:00-4:00 PM" and is_gsm7(text)


class TestDistancesAndHours:
    def test_short_distances_are_rounded_meters_and_long_ones_kilometers(self):
        assert Speaker("en").distance(873) == "850 m"
        assert Speaker("en").distance(1334) == "1.3 km"
        # CLDR's French unit pattern has a no-break space since babel 2.19; SMS gets a plain one
        assert Speaker("fr_CA").distance(1334) in ("1,3 km", "1,3\u00a0km")
        assert Speaker("fr_CA", Channel.sms).finish(Speaker("fr_CA").distance(1334)) == "1,3 km"

    def test_opening_hours_in_each_locale(self):
        day = START.date()
        assert Speaker("en").opening_hours([["08:00", "21:00"]], day, TZ) == "8:00\u202fAM–9:00\u202fPM"
        assert Speaker("fr_CA").opening_hours([["08:00", "12:00"], ["13:00", "21:00"]], day, TZ) == (
            "8 h à 12 h, 13 h à 21 h"
        )


class TestCatalogues:
    def test_each_language_has_its_words(self):
        assert Speaker("fr_CA")._("Talk to a person") == "Parler à une personne"
        assert Speaker("es")._("Talk to a person") == "Hablar con una persona"
        assert Speaker("en")._("Talk to a person") == "Talk to a person"

    def test_placeholders_are_filled_after_translation(self):
        text = Speaker("es")._("Hi %(name)s!", name="Ana")
        assert text == "¡Hola, Ana!"

    @pytest.mark.parametrize(
        ("tag", "locale"), [("fr", "fr_CA"), ("fr-FR", "fr_CA"), ("es_MX", "es"), ("EN", "en"), ("de", "en")]
    )
    def test_language_tags_map_to_the_supported_locales(self, tag, locale):
        assert normalize_locale(tag) == locale


class TestKeywords:
    @pytest.mark.parametrize(
        ("text", "keyword", "language"),
        [
            ("STOP", Keyword.stop, None),
            (" stop. ", Keyword.stop, None),
            ("Arrêt", Keyword.stop, "fr_CA"),
            ("ARRET", Keyword.stop, "fr_CA"),
            ("unsubscribe", Keyword.stop, None),
            ("Cancel", Keyword.stop, None),
            ("END", Keyword.stop, None),
            ("quit!", Keyword.stop, None),
            ("start", Keyword.start, None),
            ("UNSTOP", Keyword.start, None),
            ("help?", Keyword.help, None),
            ("Aide", Keyword.help, "fr_CA"),
            ("¿AYUDA?", Keyword.help, "es"),
        ],
    )
    def test_whole_message_keywords_in_every_language(self, text, keyword, language):
        assert match(text) == (keyword, language)

    @pytest.mark.parametrize(
        "text", ["please stop by after 3", "can you cancel the delivery on friday", "", "helpful"]
    )
    def test_sentences_that_contain_a_keyword_are_not_keywords(self, text):
        assert match(text) is None


class TestCatalogueCompleteness:
    def test_every_string_the_bot_says_is_translated_in_french_and_spanish(self):
        from babel.messages.extract import extract_from_dir
        from babel.messages.pofile import read_po

        from core.config import ROOT

        said = {
            message
            for _, _, message, _, _ in extract_from_dir(
                str(ROOT / "bot"), method_map=[("**.py", "python")], keywords={"_": None}
            )
            if isinstance(message, str)
        }
        assert len(said) > 50
        for locale in ("fr_CA", "es"):
            with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as fp:
                catalogue = read_po(fp)
            translated = {m.id for m in catalogue if m.id and m.string and not m.fuzzy}
            assert said <= translated, f"{locale} lacks {sorted(said - translated)}"
