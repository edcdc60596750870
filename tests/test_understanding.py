"""Understanding recipients' messages: intents, languages and the time span asked for.

Times are relative to Tuesday 24 November 2026, 10:30 in Toronto (EST, UTC-5) unless a test says
otherwise. Accuracy on the labelled evaluation set is pinned here; its timing is measured by
bench/bench_understanding.py, never in a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.understanding import Intent, Understanding, understand, warm_up
from bot.understanding.cli import run
from bot.understanding.evaluation import INTENT_TARGET, WINDOW_TARGET, Score, load
from bot.understanding.text import HashedWords, correct, real_words

ROOT = Path(__file__).resolve().parents[1]
TORONTO = "America/Toronto"
NOW = datetime(2026, 11, 24, 10, 30)


def read(text: str, locale: str = "en", now: datetime = NOW, timezone: str = TORONTO) -> Understanding:
    return understand(text, locale=locale, now=now, timezone=timezone)


def at(day: int, hour: int, minute: int = 0, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(TORONTO))


def window(text: str, locale: str = "en", **kwargs: object) -> tuple[datetime | None, datetime | None]:
    result = read(text, locale, **kwargs)  # type: ignore[arg-type]
    return result.window_start, result.window_end


@pytest.fixture(scope="module", autouse=True)
def warmed() -> None:
    warm_up()


class TestTheIssueExamples:
    def test_tomorrow_after_3_gives_a_start_at_15_and_no_end(self):
        assert window("tomorrow after 3") == (at(25, 15), None)

    def test_not_before_noon_on_friday_gives_friday_noon_as_start(self):
        assert window("not before noon on Friday") == (at(27, 12), None)

    def test_avant_midi_vendredi_gives_friday_noon_as_end(self):
        assert window("avant midi vendredi", "fr_CA") == (None, at(27, 12))

    def test_vendredi_matin_gives_fridays_morning(self):
        assert window("vendredi matin", "fr_CA") == (at(27, 8), at(27, 12))

    def test_demain_entre_14h_et_16h_gives_both_ends(self):
        assert window("demain entre 14h et 16h", "fr_CA") == (at(25, 14), at(25, 16))

    def test_el_lunes_por_la_tarde_gives_mondays_afternoon(self):
        assert window("el lunes por la tarde", "es") == (at(30, 12), at(30, 17))

    def test_the_28th_gives_that_whole_day(self):
        assert window("the 28th") == (at(28, 0), at(29, 0))

    def test_a_message_without_time_words_gives_no_window(self):
        assert window("where is my parcel?") == (None, None)

    def test_every_reading_is_aware_in_the_recipients_time_zone(self):
        start, end = window("el viernes por la mañana", "es")
        assert start is not None and end is not None
        assert start.utcoffset() == end.utcoffset() == at(27, 8).utcoffset()


class TestTimes:
    def test_hours_without_am_or_pm_are_delivery_hours(self):
        assert window("after 3") == (at(24, 15), None)
        assert window("after 8") == (at(25, 8), None)  # 08:00 today has passed at 10:30

    def test_the_pm_of_a_range_end_carries_to_its_start(self):
        assert window("between 2 and 4pm tomorrow") == (at(25, 14), at(25, 16))

    def test_a_range_that_crosses_noon_is_read_as_one(self):
        assert window("saturday 10-2") == (at(28, 10), at(28, 14))

    def test_french_hours_with_minutes(self):
        assert window("ce soir après 18h30", "fr_CA") == (at(24, 18, 30), at(24, 21))

    def test_spanish_de_a_range(self):
        assert window("mañana de 10 a 12", "es") == (at(25, 10), at(25, 12))

    def test_a_single_time_gives_the_two_hours_around_it(self):
        assert window("vers 15h demain", "fr_CA") == (at(25, 14), at(25, 16))

    @pytest.mark.parametrize(
        ("text", "locale", "start", "end"),
        [
            ("tomorrow between two and four", "en", (25, 14), (25, 16)),
            ("after three tomorrow", "en", (25, 15), None),
            ("demain à deux heures", "fr_CA", (25, 13), (25, 15)),
            ("de dos a cuatro el viernes", "es", (27, 14), (27, 16)),
            ("tomorrow at half past 2", "en", (25, 13, 30), (25, 15, 30)),
            ("demain à 14h et demie", "fr_CA", (25, 13, 30), (25, 15, 30)),
            ("a las 3 y media mañana", "es", (25, 14, 30), (25, 16, 30)),
            ("quarter to 4 on friday", "en", (27, 14, 45), (27, 16, 45)),
            ("3ish tomorrow", "en", (25, 14), (25, 16)),
        ],
    )
    def test_hours_in_words_halves_and_quarters(self, text, locale, start, end):
        assert window(text, locale) == (at(*start), at(*end) if end else None)

    def test_a_part_of_day_and_a_bound_intersect(self):
        assert window("thursday morning before 10") == (at(26, 8), at(26, 10))

    def test_a_time_already_past_today_means_tomorrow(self):
        assert window("after 3", now=datetime(2026, 11, 24, 20, 0)) == (at(25, 15), None)

    def test_a_time_without_a_day_is_on_the_day_of_the_delivery_talked_about(self):
        friday = date(2026, 11, 27)
        result = understand("at 3pm", locale="en", now=NOW, timezone=TORONTO, default_day=friday)
        assert (result.window_start, result.window_end) == (at(27, 14), at(27, 16))
        named = understand("today at 3pm", locale="en", now=NOW, timezone=TORONTO, default_day=friday)
        assert named.window_start == at(24, 14)
        gone = understand("at 3pm", locale="en", now=NOW, timezone=TORONTO, default_day=date(2026, 11, 20))
        assert gone.window_start == at(24, 14)  # a delivery day already past: today, as without one

    def test_a_weekday_is_never_today(self):
        assert window("Tuesday") == (at(1, 0, month=12), at(2, 0, month=12))

    def test_a_day_of_the_month_already_past_is_next_months(self):
        assert window("the 3rd in the morning") == (at(3, 8, month=12), at(3, 12, month=12))

    def test_month_names_are_read_by_dateparser_in_each_language(self):
        assert window("Dec 3 in the evening") == (at(3, 17, month=12), at(3, 21, month=12))
        assert window("le 3 décembre en soirée", "fr_CA") == (at(3, 17, month=12), at(3, 21, month=12))
        assert window("el 3 de diciembre en la noche", "es") == (at(3, 17, month=12), at(3, 21, month=12))

    def test_spanish_manana_alone_is_tomorrow_and_por_la_manana_is_the_morning(self):
        assert window("mañana", "es") == (at(25, 0), at(26, 0))
        assert window("mañana por la mañana", "es") == (at(25, 8), at(25, 12))

    def test_quebec_avant_midi_is_the_morning(self):
        assert window("mercredi en avant-midi", "fr_CA") == (at(25, 8), at(25, 12))

    def test_a_weekend_and_next_week_are_spans_of_days(self):
        assert window("this weekend") == (at(28, 0), at(30, 0))
        assert window("la semaine prochaine", "fr_CA") == (at(30, 0), at(7, 0, month=12))

    def test_being_at_work_until_five_means_from_five(self):
        assert window("I'm at work until 5 tomorrow") == (at(25, 17), None)

    def test_a_day_the_recipient_is_away_is_not_asked_for(self):
        assert window("not home tomorrow, can you come Thursday?") == (at(26, 0), at(27, 0))
        assert window("not available tomorrow") == (None, None)

    def test_a_greeting_with_a_part_of_day_is_not_a_time(self):
        assert window("good morning, friday afternoon please") == (at(27, 12), at(27, 17))

    def test_dst_end_gives_a_25_hour_sunday(self):
        start, end = window("Sunday", now=datetime(2026, 10, 31, 12, 0))
        assert start == datetime(2026, 11, 1, 0, 0, tzinfo=ZoneInfo(TORONTO))
        assert end == datetime(2026, 11, 2, 0, 0, tzinfo=ZoneInfo(TORONTO))
        assert start is not None and end is not None
        elapsed = end.astimezone(ZoneInfo("UTC")) - start.astimezone(ZoneInfo("UTC"))
        assert elapsed.total_seconds() == 25 * 3600

    def test_dst_start_puts_the_afternoon_in_daylight_time(self):
        start, _ = window("dimanche après 13h", "fr_CA", now=datetime(2026, 3, 7, 9, 0))
        assert start is not None and start.isoformat() == "2026-03-08T13:00:00-04:00"

    def test_another_time_zone_is_honoured(self):
        start, _ = window("after 3 today", now=datetime(2026, 11, 24, 8, 0), timezone="America/Vancouver")
        assert start is not None and start.isoformat() == "2026-11-24T15:00:00-08:00"


class TestWhereIsMyParcel:
    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("Where is my parcel?", "en"),
            ("wheres my pakage??", "en"),
            ("when is it coming", "en"),
            ("où est mon colis", "fr_CA"),
            ("ça arrive quand?", "fr_CA"),
            ("¿Dónde está mi paquete?", "es"),
            ("cuando llega", "es"),
        ],
    )
    def test_questions_about_the_parcel_are_understood(self, text, locale):
        assert read(text, locale).intent is Intent.where_is_parcel

    def test_a_question_about_today_is_not_a_reschedule(self):
        result = read("llega hoy?", "es")
        assert result.intent is Intent.where_is_parcel
        assert (result.window_start, result.window_end) == (None, None)

    def test_a_tracking_number_alone_asks_where_it_is(self):
        result = read("TOR-00012345")
        assert result.intent is Intent.where_is_parcel and result.tracking == "TOR-00012345"


class TestRescheduleAndOtherRequests:
    def test_a_time_phrase_alone_is_a_reschedule(self):
        assert read("vendredi matin", "fr_CA").intent is Intent.reschedule

    def test_reschedule_without_a_time_has_no_window(self):
        result = read("je veux changer la date de livraison", "fr_CA")
        assert (
            result.intent is Intent.reschedule and result.window_start is None and result.window_end is None
        )

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("I'll pick it up at the locker", "en"),
            ("je vais le chercher au point relais", "fr_CA"),
            ("Est-ce que je peux le ramasser au dépanneur?", "fr_CA"),
            ("lo recojo yo en la sucursal", "es"),
        ],
    )
    def test_pickup_point_requests(self, text, locale):
        assert read(text, locale).intent is Intent.redirect_pickup

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("can they assemble the bed", "en"),
            ("service gants blancs svp", "fr_CA"),
            ("me pueden armar el mueble?", "es"),
        ],
    )
    def test_white_glove_requests(self, text, locale):
        assert read(text, locale).intent is Intent.white_glove

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("I moved, deliver to 12 King St W instead", "en"),
            ("we have a new address", "en"),
            ("j'ai déménagé, livrez au 12 rue Saint-Denis", "fr_CA"),
            ("me mudé, entreguen en la calle Ontario 8", "es"),
            ("can I change the delivery address to my work?", "en"),
            ("can it go to my work?", "en"),
            ("pouvez-vous le livrer à mon bureau?", "fr_CA"),
            ("entréguenlo en mi trabajo", "es"),
        ],
    )
    def test_a_new_address_is_for_a_person_not_a_new_time(self, text, locale):
        assert read(text, locale).intent is Intent.human

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("cancel the installation", "en"),
            ("actually I don't need the setup anymore", "en"),
            ("annulez l'installation", "fr_CA"),
            ("je n'ai plus besoin de l'installation", "fr_CA"),
            ("cancelen la instalación", "es"),
            ("ya no necesito el armado", "es"),
        ],
    )
    def test_calling_off_a_setup_is_not_asking_for_crew_times(self, text, locale):
        assert read(text, locale).intent is Intent.cancel_white_glove

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("can you let me know when the driver is close", "en"),
            ("will I get a text before the driver comes?", "en"),
            ("pouvez-vous me prévenir quand le livreur arrive?", "fr_CA"),
            ("textez-moi avant de passer", "fr_CA"),
            ("¿me pueden avisar cuando esté cerca?", "es"),
            ("avísenme antes de llegar", "es"),
            ("will the driver call me first?", "en"),
            ("est-ce que le livreur appelle avant?", "fr_CA"),
            ("¿me van a llamar antes de llegar?", "es"),
        ],
    )
    def test_asking_to_be_told_before_the_driver_comes(self, text, locale):
        assert read(text, locale).intent is Intent.notify_me

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("call me when you arrive", "en"),
            ("can someone call me?", "en"),
            ("when will it arrive", "en"),
            ("¿cuándo llega?", "es"),
            ("¿me pueden llamar?", "es"),
        ],
    )
    def test_a_call_or_a_when_is_not_asking_to_be_told(self, text, locale):
        assert read(text, locale).intent is not Intent.notify_me

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("actually, can you deliver it home instead?", "en"),
            ("I'd rather have it delivered at home", "en"),
            ("I don't want the pickup point anymore", "en"),
            ("cancel the pickup point", "en"),
            ("finalement, livrez-le chez moi", "fr_CA"),
            ("annulez le point de retrait", "fr_CA"),
            ("mejor entréguenlo en mi casa", "es"),
            ("ya no quiero el punto de recogida", "es"),
        ],
    )
    def test_the_door_rather_than_a_pickup_point_is_a_time_at_the_door(self, text, locale):
        result = read(text, locale)
        assert result.intent is Intent.reschedule and result.home

    @pytest.mark.parametrize(
        ("text", "locale", "intent"),
        [
            ("another pickup point please", "en", Intent.redirect_pickup),
            ("deliver to my new address", "en", Intent.human),
            ("I won't be home tomorrow", "en", Intent.reschedule),
            ("je serai pas à la maison demain", "fr_CA", Intent.reschedule),
            ("no voy a estar en casa mañana", "es", Intent.reschedule),
        ],
    )
    def test_another_point_a_new_address_or_being_away_is_not_the_door(self, text, locale, intent):
        result = read(text, locale)
        assert result.intent is intent and not result.home

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("can I pick the exact time?", "en"),
            ("est-ce que je peux choisir l'heure exacte?", "fr_CA"),
            ("¿puedo elegir la hora?", "es"),
        ],
    )
    def test_asking_to_choose_the_time_is_a_reschedule(self, text, locale):
        assert read(text, locale).intent is Intent.reschedule

    @pytest.mark.parametrize(
        ("text", "locale", "direction"),
        [
            ("can the driver come earlier?", "en", "earlier"),
            ("could you come later", "en", "later"),
            ("plus tôt svp", "fr_CA", "earlier"),
            ("¿pueden venir más tarde?", "es", "later"),
            ("earlier tomorrow", "en", None),  # a time is named: it is the wish
            ("later or earlier, anything", "en", None),
        ],
    )
    def test_earlier_or_later_than_planned(self, text, locale, direction):
        result = read(text, locale)
        assert result.intent is Intent.reschedule and result.direction == direction

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("do I have to be home?", "en"),
            ("est-ce que je dois être là?", "fr_CA"),
            ("¿tengo que estar en casa?", "es"),
        ],
    )
    def test_asking_whether_to_be_home_is_being_away(self, text, locale):
        result = read(text, locale)
        assert result.intent is Intent.reschedule and result.away and result.window_start is None

    @pytest.mark.parametrize("text", ["¿y si llueve?", "si no estoy en casa?", "¿qué pasa si no contesto?"])
    def test_the_spanish_if_is_not_a_yes(self, text):
        assert read(text, "es").intent is not Intent.yes

    def test_deliver_to_a_floor_is_still_a_note_for_the_driver(self):
        assert read("deliver to 2nd floor please").intent is Intent.instructions

    def test_white_glove_keeps_the_time_asked_for(self):
        result = read("installation samedi matin", "fr_CA")
        assert result.intent is Intent.white_glove
        assert (result.window_start, result.window_end) == (at(28, 8), at(28, 12))


class TestInstructions:
    def test_the_instruction_text_is_kept_and_the_house_number_is_not_a_time(self):
        result = read("Leave it with the neighbour at 12")
        assert result.intent is Intent.instructions
        assert result.instructions == "Leave it with the neighbour at 12"
        assert result.window_start is None and result.window_end is None

    def test_greetings_and_thanks_around_an_instruction_are_dropped(self):
        result = read("Hi! gate code 1234, thanks")
        assert result.intent is Intent.instructions and result.instructions == "gate code 1234"

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("buzzer code is 4512", "en"),
            ("laissez-le devant la porte svp", "fr_CA"),
            ("sonnez pas, le bébé dort", "fr_CA"),
            ("déjalo con el vecino por favor", "es"),
            ("el código del portón es 5521", "es"),
        ],
    )
    def test_instructions_in_each_language(self, text, locale):
        assert read(text, locale).intent is Intent.instructions

    def test_a_postal_code_is_not_a_door_code(self):
        result = read("my postal code is m5v 2a1")
        assert result.intent is not Intent.instructions and result.postal_code == "M5V2A1"


class TestConversationMoves:
    @pytest.mark.parametrize(
        "text", ["yes", "👍", "oui", "Ouais c'est correct", "sí", "vale", "yess", "go", "ok go", "on y go"]
    )
    def test_yes(self, text):
        assert read(text).intent is Intent.yes

    @pytest.mark.parametrize(
        "text", ["where do I go to get it", "do I have to go there", "ça va être livré par qui?"]
    )
    def test_go_in_a_question_is_no_yes(self, text):
        assert read(text).intent is not Intent.yes

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("any", "en"),
            ("whichever one!", "en"),
            ("n'importe lequel", "fr_CA"),
            ("n'importe", "fr_CA"),
            ("ça m'est égal", "fr_CA"),
            ("cualquiera", "es"),
            ("me da igual", "es"),
        ],
    )
    def test_any_of_them_alone_is_the_first_choice(self, text, locale):
        result = read(text, locale)
        assert result.intent is Intent.choose_option and result.option == 1

    def test_any_inside_a_question_is_not_a_choice(self):
        assert read("any news on my parcel?").intent is Intent.where_is_parcel

    @pytest.mark.parametrize("text", ["no", "👎", "nope", "non", "non merci", "no gracias", "not now"])
    def test_no(self, text):
        assert read(text).intent is Intent.no

    @pytest.mark.parametrize(
        ("text", "option"),
        [
            ("2", 2),
            ("option 2", 2),
            ("the second one", 2),
            ("2️⃣", 2),
            ("la deuxième", 2),
            ("la segunda", 2),
            ("#3 please", 3),
            ("option two", 2),
        ],
    )
    def test_options(self, text, option):
        result = read(text)
        assert result.intent is Intent.choose_option and result.option == option

    def test_the_2nd_alone_is_a_date_not_an_option(self):
        result = read("the 2nd", now=datetime(2026, 12, 30, 15, 0))
        assert result.intent is Intent.reschedule and result.option is None
        assert result.window_start == datetime(2027, 1, 2, 0, 0, tzinfo=ZoneInfo(TORONTO))

    def test_yes_thank_you_is_a_yes_and_ok_thanks_is_thanks(self):
        assert read("yes thank you").intent is Intent.yes
        assert read("ok thanks").intent is Intent.thanks

    @pytest.mark.parametrize(
        ("text", "intent"),
        [
            ("thx so much 🙏", Intent.thanks),
            ("merci, bonne journée", Intent.thanks),
            ("gracias!", Intent.thanks),
            ("bye", Intent.goodbye),
            ("have a great weekend", Intent.goodbye),
            ("hasta mañana", Intent.goodbye),
            ("hola", Intent.greeting),
            ("Good morning", Intent.greeting),
            ("talk to a person", Intent.human),
            ("je veux parler à quelqu'un", Intent.human),
            ("quiero hablar con una persona", Intent.human),
            ("asdfgh", Intent.unknown),
        ],
    )
    def test_social_and_human(self, text, intent):
        assert read(text).intent is intent


class TestLanguages:
    @pytest.mark.parametrize(
        ("text", "language"),
        [
            ("where is my parcel", "en"),
            ("ou est mon colis", "fr_CA"),
            ("donde esta mi paquete", "es"),
            ("merci", "fr_CA"),
            ("👍", None),
            ("2", None),
            ("ok", None),
        ],
    )
    def test_the_language_is_read_from_the_words(self, text, language):
        assert read(text, "en").language == language

    @pytest.mark.parametrize("text", ["installation", "correct", "super", "point"])
    def test_words_english_shares_with_french_say_no_language(self, text):
        """An English speaker's "book installation" or "relay point" was answered in French."""
        assert read(text, "en").language is None

    @pytest.mark.parametrize(
        ("text", "language"),
        [
            ("book installation", "en"),
            ("relay point", "en"),
            ("installation svp", "fr_CA"),
            ("point relais", "fr_CA"),
        ],
    )
    def test_shared_words_take_the_language_of_the_rest(self, text, language):
        assert read(text, "en").language == language

    def test_a_message_in_another_language_than_the_profile_is_detected(self):
        assert read("tomorrow after 3", "fr_CA").language == "en"
        assert read("demain après 15h", "en").language == "fr_CA"

    @pytest.mark.parametrize(
        ("text", "target"),
        [
            ("en français svp", "fr_CA"),
            ("English please", "en"),
            ("en español por favor", "es"),
            ("parlez-vous espagnol?", "es"),
        ],
    )
    def test_change_of_language(self, text, target):
        result = read(text)
        assert result.intent is Intent.change_language and result.target_language == target

    def test_i_dont_speak_french_asks_for_the_language_written_in(self):
        result = read("I don't speak French", "fr_CA")
        assert result.intent is Intent.change_language and result.target_language == "en"


class TestCarrierKeywords:
    @pytest.mark.parametrize(
        ("text", "intent"),
        [
            ("STOP", Intent.stop),
            ("stop.", Intent.stop),
            ("ARRET", Intent.stop),
            ("Arrêt", Intent.stop),
            ("UNSUBSCRIBE", Intent.stop),
            ("cancel", Intent.stop),
            ("END", Intent.stop),
            ("quit", Intent.stop),
            ("START", Intent.start),
            ("unstop", Intent.start),
            ("HELP", Intent.help),
            ("aide", Intent.help),
            ("AYUDA", Intent.help),
        ],
    )
    def test_whole_message_keywords(self, text, intent):
        result = read(text)
        assert result.intent is intent and result.confidence == 1.0

    @pytest.mark.parametrize(
        ("text", "locale"),
        [
            ("please stop sending me messages", "en"),
            ("don't text me anymore", "en"),
            ("arrêtez de m'envoyer des messages svp", "fr_CA"),
            ("dejen de mandarme mensajes", "es"),
        ],
    )
    def test_asking_in_words_not_to_be_written_to_is_an_opt_out(self, text, locale):
        assert read(text, locale).intent is Intent.stop

    def test_a_keyword_inside_a_sentence_is_not_a_carrier_keyword(self):
        assert read("please don't stop the delivery, just come after 3").intent is not Intent.stop
        assert read("I need help finding my parcel").intent is not Intent.help


class TestEvaluationSet:
    def test_the_set_has_at_least_300_messages_in_the_three_languages(self):
        cases = load()
        assert len(cases) >= 300
        per_locale = {locale: sum(c["locale"] == locale for c in cases) for locale in ("en", "fr_CA", "es")}
        assert min(per_locale.values()) >= 100, per_locale

    def test_accuracy_stays_above_the_targets(self):
        score = Score()
        for case in load():
            answer = read(case["text"], case["locale"], datetime.fromisoformat(case["now"]), case["timezone"])
            score.add(case, answer.as_json())
        assert score.intent_accuracy >= INTENT_TARGET, score.misses
        assert score.window_accuracy >= WINDOW_TARGET, score.misses


class TestCommandLine:
    def test_json_lines_in_one_json_line_out_per_message_and_bad_lines_get_an_error(self):
        lines = [
            {"text": "vendredi matin", "locale": "fr_CA", "now": "2026-11-24T10:30:00", "timezone": TORONTO},
            "not json",
            {"text": 3},
            {"text": "after 3pm tomorrow", "locale": "en", "now": "2026-11-24T10:30:00", "timezone": TORONTO},
            {"text": "x", "timezone": "Mars/Olympus"},
            {"text": "x", "now": "yesterday-ish"},
            ["a", "list"],
        ]
        stdin = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
        done = subprocess.run(
            [sys.executable, "app.py", "understand"],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        out = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(out) == len(lines)
        assert out[0]["intent"] == "reschedule" and out[0]["language"] == "fr_CA"
        assert out[0]["window"] == {"start": "2026-11-27T08:00:00-05:00", "end": "2026-11-27T12:00:00-05:00"}
        assert out[3]["window"] == {"start": "2026-11-25T15:00:00-05:00", "end": None}
        assert set(out[0]) >= {"intent", "language", "window", "option", "instructions", "target_language"}
        assert set(out[0]) >= {"postal_code", "confidence"}
        assert [sorted(o) for o in (out[1], out[2], out[4], out[5], out[6])] == [["error", "line"]] * 5
        assert out[2]["error"] == '"text" must be a string' and out[2]["line"] == 3
        assert "timezone" in out[4]["error"] and "now" in out[5]["error"]

    def test_timings_are_added_on_request(self):
        import io

        stdin = io.StringIO(json.dumps({"text": "hola", "locale": "es", "now": "2026-11-24T10:30:00"}) + "\n")
        stdout = io.StringIO()
        assert run(stdin, stdout, timings=True) == 0
        answer = json.loads(stdout.getvalue())
        assert answer["intent"] == "greeting" and answer["elapsed_ms"] >= 0 and answer["cpu_ms"] >= 0

    def test_a_naive_now_is_local_time_and_an_aware_one_is_converted(self):
        naive = read("after 3")
        aware = understand(
            "after 3", locale="en", now=at(24, 10, 30).astimezone(ZoneInfo("UTC")), timezone=TORONTO
        )
        assert naive.window_start == aware.window_start == at(24, 15)


class TestAnyText:
    """Whatever a recipient types, the reader answers with a well-formed Understanding."""

    @staticmethod
    def check(result: Understanding) -> None:
        assert isinstance(result.intent, Intent)
        assert 0.0 <= result.confidence <= 1.0
        for moment in (result.window_start, result.window_end):
            assert moment is None or moment.tzinfo is not None
        if result.window_start is not None and result.window_end is not None:
            assert result.window_start < result.window_end
        assert result.option is None or 1 <= result.option <= 99

    @settings(max_examples=150, deadline=None)
    @given(st.text(max_size=200))
    def test_arbitrary_unicode(self, text):
        self.check(read(text))

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(
            st.sampled_from(
                [
                    "after",
                    "before",
                    "between",
                    "and",
                    "entre",
                    "et",
                    "y",
                    "de",
                    "a",
                    "-",
                    "h",
                    ":",
                    "pm",
                    "am",
                    "the",
                    "le",
                    "el",
                    "28th",
                    "1er",
                    "99",
                    "0",
                    "24",
                    "12",
                    "7",
                    "45",
                    "3",
                    "31/02",
                    "99/99/9999",
                    "noon",
                    "midi",
                    "friday",
                    "demain",
                    "mañana",
                    "por la tarde",
                    "not",
                    "pas avant",
                    "until",
                    "tomorrow",
                    "dec",
                    "décembre",
                    "in",
                    "dans",
                    "days",
                    "jours",
                    "option",
                    "2️⃣",
                    "🙏",
                    "STOP",
                    "h30",
                    "15h30",
                    "10-2",
                    "weekend",
                    "next week",
                ]
            ),
            max_size=12,
        )
    )
    def test_time_words_in_any_order(self, words):
        self.check(read(" ".join(words), "fr_CA"))


class TestRealWords:
    """The spelling lists' real words, kept as hashes: a typo is corrected, a real word is left alone."""

    def test_a_hashed_word_list_answers_membership_like_a_set(self):
        words = HashedWords(["maison", "like", "souper", "mañana"])
        assert [w in words for w in ("maison", "like", "souper", "mañana")] == [True] * 4
        assert [w in words for w in ("maisn", "lik", "", "manana")] == [False] * 4
        assert len(HashedWords(["a", "a", "b"])) == 2

    def test_real_words_of_the_three_languages_are_known_and_typos_are_not(self):
        words = real_words()
        assert len(words) > 80_000
        assert all(w in words for w in ("like", "souper", "manana", "weekend", "livraison"))
        assert not any(w in words for w in ("tomorow", "livriason", "paqete"))

    def test_typos_are_corrected_and_real_words_left_alone(self):
        assert correct("tomorow") == "tomorrow"
        assert correct("like") == "like"
        assert correct("souper") == "souper"
