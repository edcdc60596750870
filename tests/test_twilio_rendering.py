"""Rendering neutral replies for SMS (numbered options, GSM-7, segments) and WhatsApp (the 24-hour window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.messages import Option
from channels.rendering import (
    OUTSIDE_WINDOW,
    OutsideWindow,
    RenderError,
    preview,
    render_sms,
    render_whatsapp,
    whatsapp_window_open,
)
from core.models import Channel

OPTIONS = (Option("Thu 2–4 PM", "w:1"), Option("Fri 9–11 AM", "w:2"), Option("A person", "agent"))
NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


class TestSms:
    def test_options_become_numbered_lines(self):
        rendered = render_sms("Pick a new window:", OPTIONS)
        assert rendered.body == (
            "Pick a new window:\nReply 1 for Thu 2-4 PM\nReply 2 for Fri 9-11 AM\nReply 3 for A person"
        )

    @pytest.mark.parametrize(
        ("locale", "line"), [("fr_CA", "Répondez 1 pour Thu 2-4 PM"), ("es", "Responda 1 para Thu 2-4 PM")]
    )
    def test_the_numbered_lines_speak_the_recipients_language(self, locale, line):
        assert line in render_sms("?", OPTIONS, locale).body

    def test_typographic_characters_from_cldr_are_replaced_so_the_text_stays_gsm7(self):
        rendered = render_sms("Jeudi 3 déc., 14\u202fh\u2009–\u200916\u202fh. L’équipe")
        assert rendered.body == "Jeudi 3 déc., 14 h - 16 h. L'équipe"
        assert (rendered.encoding, rendered.segments) == ("GSM-7", 1)

    def test_an_accent_outside_gsm7_becomes_its_plain_letter_so_the_text_stays_gsm7(self):
        rendered = render_sms("Votre colis arrive à la boîte aux lettres, reçu?")
        assert rendered.body == "Votre colis arrive à la boite aux lettres, recu?"
        assert (rendered.encoding, rendered.segments) == ("GSM-7", 1)

    def test_a_retailer_that_turned_smart_encoding_off_keeps_its_accents_and_pays_ucs2(self):
        settings = {"sms_smart_encoding": False}
        rendered = render_sms("Votre colis arrive à la boîte aux lettres", (), "fr_CA", settings)
        assert "boîte" in rendered.body and rendered.encoding == "UCS-2"

    def test_smart_encoding_can_be_turned_off_for_one_language_only(self):
        settings = {"sms_smart_encoding": {"fr": False}}
        assert render_sms("boîte", (), "fr_CA", settings).body == "boîte"
        assert render_sms("¿Cuándo?", (), "es", settings).body == "¿Cuando?"

    def test_an_emoji_keeps_the_message_ucs2_and_its_accents(self):
        rendered = render_sms("Votre colis arrive bientôt 🚚", OPTIONS, "fr_CA")
        assert "bientôt 🚚" in rendered.body and rendered.encoding == "UCS-2"

    def test_segments_are_counted_for_long_texts(self):
        assert render_sms("a" * 160).segments == 1
        assert render_sms("a" * 161).segments == 2
        assert render_sms("ç" * 71).segments == 1  # 71 "c" in GSM-7
        assert render_sms("ç" * 71, (), "fr_CA", {"sms_smart_encoding": False}).segments == 2
        assert render_sms("🙂" * 36).segments == 2  # 72 UTF-16 units

    def test_a_text_longer_than_twilio_accepts_is_cut_but_keeps_its_options(self):
        rendered = render_sms("x" * 2000, OPTIONS)
        assert len(rendered.body) == 1600
        assert rendered.body.endswith("Reply 3 for A person")
        assert "x..." in rendered.body

    def test_options_stored_on_an_outbox_row_render_the_same(self):
        stored = [{"label": o.label, "payload": o.payload} for o in OPTIONS]
        assert render_sms("?", stored) == render_sms("?", OPTIONS)


SETTINGS = {
    "whatsapp_templates": {
        "eta": {"content_sid": "HX" + "1" * 32, "variables": ["name", "body"]},
        "broken": {"variables": ["name"]},
    },
    "whatsapp_quick_reply": {"3": "HX" + "3" * 32},
}


class TestWhatsApp:
    def test_the_window_is_24_hours_from_the_recipients_last_message(self):
        assert whatsapp_window_open(NOW - timedelta(hours=23, minutes=59), NOW)
        assert not whatsapp_window_open(NOW - timedelta(hours=24), NOW)
        assert not whatsapp_window_open(None, NOW)

    def test_inside_the_window_without_quick_reply_content_options_are_numbered(self):
        rendered = render_whatsapp("Pick:", OPTIONS[:2], window_open=True)
        assert rendered.kind == "text"
        assert rendered.body == "Pick:\nReply 1 for Thu 2–4 PM\nReply 2 for Fri 9–11 AM"

    def test_inside_the_window_up_to_three_options_are_quick_replies(self):
        rendered = render_whatsapp("Pick:", OPTIONS, window_open=True, retailer_settings=SETTINGS)
        assert (rendered.kind, rendered.content_sid) == ("quick_reply", "HX" + "3" * 32)
        assert rendered.content_variables["1"] == "Pick:"
        assert (rendered.content_variables["6"], rendered.content_variables["7"]) == ("A person", "agent")

    def test_more_than_three_options_fall_back_to_numbered_lines(self):
        four = (*OPTIONS, Option("Pickup", "pickup"))
        rendered = render_whatsapp("Pick:", four, window_open=True, retailer_settings=SETTINGS)
        assert rendered.kind == "text" and "Reply 4 for Pickup" in rendered.body

    def test_outside_the_window_free_text_is_refused_with_the_reason(self):
        with pytest.raises(OutsideWindow) as refused:
            render_whatsapp("Hello", window_open=False, retailer_settings=SETTINGS, template_key="unknown")
        assert str(refused.value) == OUTSIDE_WINDOW

    def test_outside_the_window_the_template_for_the_messages_kind_is_used(self):
        rendered = render_whatsapp(
            "Arrives at 2",
            window_open=False,
            retailer_settings=SETTINGS,
            template_key="eta",
            content_variables={"name": "Ada"},
        )
        assert (rendered.kind, rendered.content_sid) == ("template", "HX" + "1" * 32)
        assert rendered.content_variables == {"1": "Ada", "2": "Arrives at 2"}

    def test_a_template_without_content_sid_is_no_template(self):
        with pytest.raises(OutsideWindow):
            render_whatsapp("x", window_open=False, retailer_settings=SETTINGS, template_key="broken")

    def test_a_missing_variable_is_a_render_error(self):
        with pytest.raises(RenderError, match="name"):
            render_whatsapp("x", window_open=False, retailer_settings=SETTINGS, template_key="eta")

    def test_a_message_that_names_its_content_sid_goes_as_is_at_any_time(self):
        rendered = render_whatsapp(
            "x", window_open=False, content_sid="HX" + "9" * 32, content_variables={"1": "a"}
        )
        assert (rendered.content_sid, rendered.content_variables_json) == ("HX" + "9" * 32, '{"1":"a"}')


class TestPreview:
    def test_the_sandbox_preview_of_an_sms_shows_body_encoding_and_segments(self):
        shown = preview(Channel.sms, "Pick:", OPTIONS)
        assert shown["encoding"] == "GSM-7" and shown["segments"] == 1 and "Reply 1" in shown["body"]

    def test_the_sandbox_preview_of_whatsapp_outside_the_window_says_it_would_be_refused(self):
        shown = preview(Channel.whatsapp, "Hi", window_open=False)
        assert shown == {"channel": "whatsapp", "kind": "refused", "error": OUTSIDE_WINDOW}

    def test_there_is_no_sms_preview_for_telegram(self):
        with pytest.raises(ValueError):
            preview(Channel.telegram, "Hi")


class TestLength:
    def test_a_long_whatsapp_text_is_cut_to_twilios_limit_but_keeps_its_options(self):
        rendered = render_whatsapp("y" * 3000, OPTIONS, window_open=True)
        assert len(rendered.body) == 1600 and rendered.body.endswith("Reply 3 for A person")

    def test_an_sms_whose_ellipses_grow_when_made_plain_still_fits(self):
        rendered = render_sms("…" * 1000)
        assert len(rendered.body) <= 1600 and rendered.encoding == "GSM-7"
