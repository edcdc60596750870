"""How a neutral reply looks on Telegram: escaped HTML text, an inline keyboard, a contact button.

Pure functions with no aiogram import, so the sandbox can show the Telegram rendering cheaply and the
sender turns the result into aiogram's markup types.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024  # a photo's or document's caption, in characters after formatting
CALLBACK_DATA_LIMIT = 64  # bytes
# Options whose labels are short share a row of two; longer ones get a row each.
SHORT_LABEL = 18
# A Telegram button that asks for the phone number: an option with this payload.
REQUEST_CONTACT_PAYLOAD = "share_contact"
START_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_BOLD = re.compile(r"\*\*(.+?)\*\*")
# Tracking numbers (letters then digits, 8+ characters) in monospace: tap to copy on Telegram.
_TRACKING = re.compile(r"\b([A-Z]{2,4}\d{6,})\b")


class InvalidCallbackData(ValueError):
    """A payload that cannot be a Telegram callback_data (empty or over 64 bytes)."""


@dataclass(frozen=True)
class InlineButton:
    text: str
    callback_data: str


@dataclass(frozen=True)
class TelegramRendering:
    html: str
    inline_keyboard: list[list[InlineButton]] = field(default_factory=list)
    contact_button: str | None = None  # label of a reply-keyboard button with request_contact

    def as_dict(self) -> dict[str, object]:
        return {
            "parse_mode": "HTML",
            "text": self.html,
            "inline_keyboard": [
                [{"text": b.text, "callback_data": b.callback_data} for b in row]
                for row in self.inline_keyboard
            ],
            "contact_button": self.contact_button,
        }


def format_html(text: str) -> str:
    """Escape the text for Telegram's HTML mode, then add light formatting.

    `**words**` become bold and tracking numbers monospace; everything else is shown as written.
    """
    if len(text) > TEXT_LIMIT - 100:
        text = text[: TEXT_LIMIT - 101] + "…"
    escaped = html.escape(text, quote=False)
    escaped = _BOLD.sub(r"<b>\1</b>", escaped)
    return _TRACKING.sub(r"<code>\1</code>", escaped)


def check_callback_data(payload: str) -> str:
    if not payload or len(payload.encode()) > CALLBACK_DATA_LIMIT:
        raise InvalidCallbackData(f"callback_data must be 1-{CALLBACK_DATA_LIMIT} bytes")
    return payload


def keyboard_rows(buttons: list[InlineButton]) -> list[list[InlineButton]]:
    rows: list[list[InlineButton]] = []
    for button in buttons:
        last = rows[-1] if rows else None
        if (
            last is not None
            and len(last) == 1
            and len(last[0].text) <= SHORT_LABEL
            and len(button.text) <= SHORT_LABEL
        ):
            last.append(button)
        else:
            rows.append([button])
    return rows


def render(
    text: str, options: Iterable[Mapping[str, str]], request_contact: bool = False
) -> TelegramRendering:
    """Options are `{"label", "payload"}` mappings (as stored in the outbox).

    A message carries one keyboard: with a contact request it is the reply keyboard, and any other
    options become numbered lines (the engine reads "2" as the second option offered).
    """
    buttons: list[tuple[int, InlineButton]] = []
    contact_label: str | None = None
    for number, option in enumerate(options, start=1):
        if option.get("payload") == REQUEST_CONTACT_PAYLOAD:
            contact_label = option.get("label") or "📱"
            continue
        buttons.append((number, InlineButton(option["label"], check_callback_data(option["payload"]))))
    if request_contact and contact_label is None:
        contact_label = "📱"
    if contact_label is not None and buttons:
        text = text + "\n" + "\n".join(f"{number}. {button.text}" for number, button in buttons)
        buttons = []
    return TelegramRendering(format_html(text), keyboard_rows([b for _, b in buttons]), contact_label)


def parse_start_token(text: str) -> str | None:
    """The deep-link payload of `/start TOKEN` (also `/start@Bot TOKEN`), when it is well formed."""
    parts = text.strip().split(maxsplit=1)
    if len(parts) != 2 or not (parts[0] == "/start" or parts[0].startswith("/start@")):
        return None
    token = parts[1].strip()
    return token if START_TOKEN.match(token) else None
