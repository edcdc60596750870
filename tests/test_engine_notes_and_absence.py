"""A note asked for without its content, and "I won't be home <day>", read by the real understanding
and answered by the real dialogs and scheduling service, in English, French and Spanish."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.engine import ConversationEngine
from bot.understanding import understand
from bot.understanding.model import Intent
from core.models import Channel
from tests.engine_support import NOW, Chat, load_small_plan

ADA, BEA, CARLA = "+14165550101", "+14165550102", "+14165550103"  # en, fr_CA, es
TUESDAY = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def read(text: str, locale: str):
    return understand(text, locale=locale, now=TUESDAY, timezone="America/Toronto")


class TestReadingANoteRequest:
    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("add a note for the driver", "en"),
            ("can I leave instructions for the courier?", "en"),
            ("je veux laisser une note au livreur", "fr_CA"),
            ("j'aimerais ajouter une note pour le livreur", "fr_CA"),
            ("quiero dejar una nota al repartidor", "es"),
        ],
    )
    def test_a_request_to_leave_a_note_without_its_content_carries_no_note(self, text, locale):
        understood = read(text, locale)
        assert understood.intent is Intent.instructions and understood.instructions is None

    def test_a_note_with_its_content_keeps_it(self):
        understood = read("add a note: leave it at the back door", "en")
        assert understood.intent is Intent.instructions
        assert understood.instructions == "Leave it at the back door"

    @pytest.mark.parametrize(
        ("text", "locale", "note"),
        [
            ("can the driver leave it at the back door", "en", "Leave it at the back door"),
            ("Hi! could you please leave it on the porch? thanks", "en", "Leave it on the porch"),
            ("tell the driver to buzz 402", "en", "Buzz 402"),
            ("please ring the bell twice", "en", "Ring the bell twice"),
            ("Est-ce que le livreur peut le laisser chez le voisin?", "fr_CA", "Le laisser chez le voisin"),
            ("ajoutez une note : code 1234", "fr_CA", "Code 1234"),
            ("¿Puede dejarlo con el conserje?", "es", "Dejarlo con el conserje"),
            ("agregue una nota: tocar el timbre dos veces", "es", "Tocar el timbre dos veces"),
            # nothing to take off: kept as written
            ("leave it with the concierge please", "en", "leave it with the concierge please"),
            ("laissez le colis chez le voisin svp", "fr_CA", "laissez le colis chez le voisin svp"),
        ],
    )
    def test_the_note_keeps_what_the_driver_should_read_not_how_it_was_asked(self, text, locale, note):
        """The driver read "can the driver leave it at the back door" as the note itself."""
        understood = read(text, locale)
        assert understood.intent is Intent.instructions and understood.instructions == note


class TestReadingAnAbsence:
    @pytest.mark.parametrize(
        ("text", "locale", "day"),
        [
            ("I won't be home tomorrow", "en", date(2026, 11, 25)),
            ("I'm not home on friday", "en", date(2026, 11, 27)),
            ("je ne serai pas là demain", "fr_CA", date(2026, 11, 25)),
            ("je serai absent vendredi", "fr_CA", date(2026, 11, 27)),
            ("no estaré en casa mañana", "es", date(2026, 11, 25)),
            ("no voy a estar el viernes", "es", date(2026, 11, 27)),
            ("no one's home tomorrow", "en", date(2026, 11, 25)),
            ("personne ne sera là demain", "fr_CA", date(2026, 11, 25)),
        ],
    )
    def test_the_day_they_are_away_is_reported_as_excluded(self, text, locale, day):
        understood = read(text, locale)
        assert understood.intent is Intent.reschedule and understood.window_start is None
        assert understood.not_on == day and understood.as_json()["not_on"] == day.isoformat()

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("what if I'm not home?", "en"),
            ("nobody will be home", "en"),
            ("no one's home tomorrow", "en"),
            ("et si je ne suis pas à la maison?", "fr_CA"),
            ("personne ne sera là", "fr_CA"),
            ("¿y si no estoy en casa?", "es"),
            ("no hay nadie en casa", "es"),
        ],
    )
    def test_saying_they_are_away_asks_for_every_way_round_it(self, text, locale):
        result = read(text, locale)
        assert result.intent is Intent.reschedule and result.away, result

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("I won't be home, can we change the time?", "en"),
            ("je ne serai pas là, pouvez-vous reporter?", "fr_CA"),
            ("can you come friday morning, I'm at work today", "en"),
            ("can it come later?", "en"),
        ],
    )
    def test_asking_for_another_time_is_not_only_being_away(self, text, locale):
        result = read(text, locale)
        assert result.intent is Intent.reschedule and not result.away, result

    def test_a_request_for_a_time_excludes_nothing(self):
        understood = read("not home tomorrow morning, afternoon would be better", "en")
        assert understood.window_start is not None and understood.not_on is None
        assert read("where is my parcel", "en").not_on is None


def engine_for(ctx):
    return ConversationEngine(ctx, clock=lambda: NOW)


class TestTheDialogs:
    @pytest.mark.parametrize(
        ("phone", "text", "question"),
        [
            (ADA, "add a note for the driver", "What should the driver know?"),
            (BEA, "je veux laisser une note au livreur", "Que doit savoir le livreur"),
            (CARLA, "quiero dejar una nota al repartidor", "Qué debe saber el repartidor"),
        ],
    )
    async def test_a_note_without_content_is_asked_for_then_read_back(self, ctx, acme, phone, text, question):
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(engine_for(ctx), Channel.sms, phone)
        asked = await chat.say(text)
        assert question in asked and text not in asked
        answer = await chat.say("code 4512 at the side door")
        assert '"code 4512 at the side door"' in answer

    @pytest.mark.parametrize(
        ("phone", "text"),
        [
            (ADA, "I won't be home tomorrow"),
            (BEA, "je ne serai pas là demain"),
            (CARLA, "no estaré en casa mañana"),
        ],
    )
    async def test_an_absence_tomorrow_offers_only_other_days(self, ctx, acme, phone, text):
        await load_small_plan(ctx, acme.retailer_id)
        # NOW is Dec 2; the delivery is planned for tomorrow, Dec 3, which has free windows to offer
        other = Chat(engine_for(ctx), Channel.sms, "+14165550104")
        await other.say("I want another time")
        assert any(p.startswith("win:2026-12-03") for p in other.payloads())
        chat = Chat(engine_for(ctx), Channel.sms, phone)
        await chat.say(text)
        offered = [p for p in chat.payloads() if p.startswith("win:")]
        assert offered and not any(p.startswith("win:2026-12-03") for p in offered)
