"""Counting SMS segments with the real GSM-7 table, and keeping SMS in GSM-7 where the language allows."""

import pytest
from babel.messages.pofile import read_po

from core.config import ROOT
from core.models import Channel, Retailer
from core.sms import (
    SmsTooLong,
    compose,
    cost,
    is_gsm7,
    numbered_lines,
    plain,
    smart_encoding,
    to_gsm7,
    unencodable,
)
from notifications.templates import all_keys, default_body, validate


class TestSmsCost:
    def test_160_plain_characters_fit_one_gsm7_segment_and_161_take_two(self):
        assert cost("a" * 160).segments == 1 and cost("a" * 160).encoding == "GSM-7"
        assert cost("a" * 161).segments == 2
        assert cost("a" * 306).segments == 2 and cost("a" * 307).segments == 3

    def test_extension_characters_cost_two_septets(self):
        assert cost("€" * 80).units == 160 and cost("€" * 80).segments == 1
        assert cost("[" * 81).segments == 2

    def test_french_accents_in_gsm7_stay_gsm7_but_a_circumflex_forces_ucs2(self):
        assert cost("Livraison prévue à 14h, réponse à ce message").encoding == "GSM-7"
        assert cost("Votre colis arrive bientôt").encoding == "UCS-2"
        assert cost("¿Cuándo llega?").encoding == "UCS-2"  # á is not in GSM-7
        assert cost("¿Mañana?").encoding == "GSM-7"

    def test_ucs2_segments_are_70_then_67(self):
        assert cost("ô" * 70).segments == 1 and cost("ô" * 71).segments == 2
        assert cost("🙂" * 35).units == 70

    def test_plain_turns_cldr_spaces_and_curly_quotes_into_gsm7(self):
        text = "9:00\u2009–\u202f11:00 l’après-midi"
        assert cost(text).encoding == "UCS-2"
        assert cost(plain(text)).encoding == "GSM-7"


class TestSmartEncoding:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("¿Cuándo llega? Responda SÍ o NO", "¿Cuando llega? Responda SI o NO"),
            ("Llegó el repartidor, número de guía", "Llego el repartidor, numero de guia"),
            ("Votre colis arrive bientôt, reçu à la boîte", "Votre colis arrive bientot, recu à la boite"),
            ("Fenêtre prête: âge, île, sûr, Noël, naïve", "Fenetre prete: age, ile, sur, Noel, naive"),
            ("ÁÍÓÚ ÂÊÎÔÛ Ç Œuvre", "AIOU AEIOU Ç OEuvre"),
        ],
    )
    def test_letters_outside_gsm7_become_their_nearest_gsm7_letter(self, text, expected):
        assert cost(text).encoding == "UCS-2"
        assert to_gsm7(text) == expected and cost(expected).encoding == "GSM-7"

    def test_the_accents_gsm7_has_are_kept(self):
        text = "é è à ù ì ò ñ ü ä ö Ç É Ñ Ü Ä Ö ¿ ¡"
        assert to_gsm7(text) == text

    def test_typographic_characters_are_made_plain_too(self):
        assert to_gsm7("Jeudi 14\u202fh\u2009–\u200916\u202fh, l’équipe «arrive»") == (
            'Jeudi 14 h - 16 h, l\'équipe "arrive"'
        )

    def test_an_emoji_or_another_script_keeps_the_message_ucs2_with_its_accents(self):
        assert to_gsm7("Llegó 🚚") == "Llegó 🚚"
        assert to_gsm7("Доставка завтра, reçu") == "Доставка завтра, reçu"
        assert cost(to_gsm7("Llegó 🚚")).encoding == "UCS-2"

    def test_only_the_characters_without_a_gsm7_form_are_named_as_the_cause_of_ucs2(self):
        assert unencodable("Llegó 🚚") == "🚚"
        assert unencodable("Llegó 🚚", smart=False) == "ó🚚"

    def test_segments_are_counted_on_the_converted_text(self):
        text = "Vous êtes prêt? " * 9  # 144 characters: 3 UCS-2 segments, 1 GSM-7 segment
        assert cost(plain(text)).segments == 3
        assert compose(text).segments == 1 and compose(text).encoding == "GSM-7"
        assert compose(text, smart=False).segments == 3


class TestTheRetailersChoice:
    def test_smart_encoding_is_on_unless_the_retailer_turns_it_off(self):
        assert smart_encoding(None, "es") and smart_encoding({}, "fr_CA")
        assert not smart_encoding({"sms_smart_encoding": False}, "es")

    def test_it_can_be_turned_off_for_one_locale_or_language(self):
        by_language = {"sms_smart_encoding": {"fr": False}}
        assert not smart_encoding(by_language, "fr_CA") and smart_encoding(by_language, "es")
        by_locale = {"sms_smart_encoding": {"es": True, "fr_CA": False, "default": False}}
        assert not smart_encoding(by_locale, "fr_CA") and smart_encoding(by_locale, "es")
        assert not smart_encoding(by_locale, "en")

    def test_only_false_turns_it_off(self):
        assert smart_encoding({"sms_smart_encoding": "no"}, "es")
        assert smart_encoding({"sms_smart_encoding": None}, "es")


class TestNumberedOptions:
    @pytest.mark.parametrize(
        ("locale", "first"),
        [("en", "Reply 1 for Yes"), ("fr_CA", "Répondez 1 pour Yes"), ("es", "Responda 1 para Yes")],
    )
    def test_options_become_numbered_lines_in_the_recipients_language(self, locale, first):
        assert numbered_lines(["Yes", "No"], locale)[0] == first
        assert compose("?", ["Yes", "No"], locale).body.split("\n")[1] == first

    def test_an_unknown_language_gets_english_lines(self):
        assert numbered_lines(["Yes"], "de") == ["Reply 1 for Yes"]

    def test_a_text_too_long_for_twilio_is_cut_but_keeps_its_options(self):
        message = compose("Llegó " * 400, ["Sí", "No"], "es")
        assert len(message.body) == 1600 and message.body.endswith("Responda 2 para No")
        assert message.encoding == "GSM-7" and message.segments == 11

    def test_options_too_long_for_twilio_are_refused(self):
        with pytest.raises(SmsTooLong):
            compose("?", ["x" * 1700], "en")

    def test_a_cut_text_with_an_emoji_in_its_options_keeps_its_accents(self):
        message = compose("Llegó " * 400, ["Sí 👍", "No"], "es")
        assert message.encoding == "UCS-2" and "Llegó" in message.body and "Sí 👍" in message.body


def _catalogue(locale: str) -> list[str]:
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return [m.string for m in read_po(handle) if m.id and isinstance(m.string, str) and m.string]


class TestWhatTheBotAndTheNotificationsSay:
    @pytest.mark.parametrize("locale", ["es", "fr_CA"])
    def test_every_translated_bot_reply_is_gsm7_once_smart_encoded(self, locale):
        strings = _catalogue(locale)
        assert len(strings) > 50
        assert [s for s in strings if not is_gsm7(to_gsm7(s))] == []

    def test_the_bots_spanish_replies_would_mostly_be_ucs2_without_it(self):
        strings = _catalogue("es")
        assert sum(not is_gsm7(plain(s)) for s in strings) > len(strings) // 2

    @pytest.mark.parametrize(
        ("event", "locale"),
        [(e, loc) for e, loc, ch in all_keys() if ch == Channel.sms],
    )
    def test_every_default_sms_notification_renders_to_gsm7_with_sample_data(self, event, locale):
        retailer = Retailer(name="Acme", brand_name="Acme", timezone="America/Toronto", settings={})
        report = validate(retailer, event, locale, Channel.sms, default_body(event, locale, Channel.sms))
        assert not report.errors and report.encoding == "GSM-7" and is_gsm7(report.sms_body)
        assert report.segments == cost(report.sms_body).segments
        assert report.sms_body.startswith(report.text)

    def test_with_smart_encoding_off_the_spanish_defaults_keep_their_accents_in_ucs2(self):
        retailer = Retailer(
            name="Acme", brand_name="Acme", timezone="America/Toronto", settings={"sms_smart_encoding": False}
        )
        body = default_body("attempt_failed", "es", Channel.sms)
        report = validate(retailer, "attempt_failed", "es", Channel.sms, body)
        assert report.encoding == "UCS-2" and "ó" in report.sms_body
        assert any("smart encoding is off" in w for w in report.warnings)
