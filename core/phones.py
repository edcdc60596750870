"""Phone numbers in E.164, parsed with Google's libphonenumber (Canada by default)."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    pass


def to_e164(raw: str, default_region: str = "CA") -> str:
    text = raw.strip()
    if text.startswith("whatsapp:"):
        text = text.removeprefix("whatsapp:")
    if text and text[0].isdigit() and len(text) > 10 and default_region == "CA" and text.startswith("1"):
        text = "+" + text  # Telegram's shared contacts come without the "+"
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(phone: str | None) -> str:
    """A phone number fit for logs: country code and last two digits only."""
    if not phone:
        return ""
    return phone[:2] + "…" + phone[-2:]
