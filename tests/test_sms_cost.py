"""Counting SMS segments with the real GSM-7 table."""

from core.sms import cost, plain


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
