"""The neutral messages that cross the channel/bot seam, and what each channel can render."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.models import Channel


@dataclass(frozen=True)
class Option:
    """A choice offered to the recipient: a button, a quick reply or a numbered line on SMS."""

    label: str  # what the recipient sees, already translated
    payload: str  # what comes back when chosen (<= 64 bytes, [A-Za-z0-9_:.-])


@dataclass(frozen=True)
class Attachment:
    """A picture or file the recipient sent, as the channel keeps it: Twilio's media URL or Telegram's
    file id. Nothing is downloaded when it arrives; the console fetches it when an agent opens it."""

    content_type: str  # "image/jpeg", "application/pdf"
    ref: str

    def as_json(self) -> dict[str, str]:
        return {"content_type": self.content_type, "ref": self.ref}


@dataclass(frozen=True)
class InboundMessage:
    channel: Channel
    sender: str  # E.164 phone for SMS/WhatsApp, chat id for Telegram, session id for the sandbox
    text: str = ""
    payload: str | None = None  # a button's payload when one was pressed
    provider_id: str | None = None  # MessageSid, update_id...: a retried webhook is handled once
    service_address: str = ""  # our number they wrote to ("" when shared)
    received_at: datetime | None = None
    contact_phone: str | None = None  # a phone number the channel vouches for (Telegram shared contact)
    start_token: str | None = None  # Telegram /start deep-link payload
    sender_name: str = ""
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class OutboundMessage:
    text: str
    options: tuple[Option, ...] = ()
    template_key: str | None = None  # the message's kind, e.g. "reschedule.confirm"
    request_contact: bool = False  # Telegram: offer a "share my phone number" button


@dataclass(frozen=True)
class Capabilities:
    buttons: bool
    max_buttons: int
    text_limit: int
    messaging_window_hours: int | None = None  # WhatsApp's customer-service window
    formatting: bool = False
    extra: dict[str, str] = field(default_factory=dict)


CAPABILITIES: dict[Channel, Capabilities] = {
    Channel.sms: Capabilities(buttons=False, max_buttons=0, text_limit=1600),
    Channel.whatsapp: Capabilities(buttons=True, max_buttons=3, text_limit=1024, messaging_window_hours=24),
    Channel.telegram: Capabilities(buttons=True, max_buttons=8, text_limit=4096, formatting=True),
    Channel.web: Capabilities(buttons=True, max_buttons=10, text_limit=4096),
}
