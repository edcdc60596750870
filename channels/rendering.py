"""Neutral replies rendered for SMS and WhatsApp.

SMS has no buttons: options become numbered lines ("Reply 1 for ..."), characters that would force
UCS-2 are replaced by their GSM-7 equivalents where the language allows (core/sms.py, the same code
the template editor counts with), and every message knows its encoding and segment count.
WhatsApp allows free text and up to three quick replies only within 24 hours of the recipient's last
message; outside that window only an approved template (Content SID) may go, and a message without
one is refused here rather than left for Twilio to fail with 63016.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.messages import CAPABILITIES, Option
from core import sms
from core.models import Channel

TWILIO_MAX_CHARS = sms.TWILIO_MAX_CHARS
WHATSAPP_WINDOW = timedelta(hours=CAPABILITIES[Channel.whatsapp].messaging_window_hours or 24)
WHATSAPP_MAX_QUICK_REPLIES = CAPABILITIES[Channel.whatsapp].max_buttons
OUTSIDE_WINDOW = "outside 24h window, no approved template (63016)"


class RenderError(ValueError):
    """The message cannot be rendered for this channel; the reason goes on the outbox row."""


class OutsideWindow(RenderError):
    def __init__(self) -> None:
        super().__init__(OUTSIDE_WINDOW)


def as_options(options: Sequence[Option | Mapping[str, str]]) -> tuple[Option, ...]:
    """Options as stored on an outbox row ({"label", "payload"}) or as the bot made them."""
    return tuple(
        o
        if isinstance(o, Option)
        else Option(label=str(o.get("label", "")), payload=str(o.get("payload", "")))
        for o in options
    )


def labels(options: Sequence[Option]) -> list[str]:
    return [o.label for o in options]


def fit(
    text: str,
    options: Sequence[Option],
    locale: str,
    transform: Callable[[str], str] = str,
    limit: int = TWILIO_MAX_CHARS,
) -> str:
    """Text and numbered options, transformed, within Twilio's limit: the text is cut, never the options."""
    try:
        return sms.fit(text, labels(options), locale, transform, limit)
    except sms.SmsTooLong as exc:
        raise RenderError(str(exc)) from exc


# --- SMS -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsRendering:
    body: str
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int


def render_sms(
    text: str,
    options: Sequence[Option | Mapping[str, str]] = (),
    locale: str = "en",
    retailer_settings: Mapping[str, Any] | None = None,
) -> SmsRendering:
    """Numbered options, GSM-7 where a plain letter reads the same (unless the retailer turned
    `sms_smart_encoding` off), cut to Twilio's 1,600."""
    smart = sms.smart_encoding(retailer_settings, locale)
    try:
        message = sms.compose(text, labels(as_options(options)), locale, smart=smart)
    except sms.SmsTooLong as exc:
        raise RenderError(str(exc)) from exc
    return SmsRendering(body=message.body, encoding=message.encoding, segments=message.segments)


# --- WhatsApp ------------------------------------------------------------------------------------


def whatsapp_window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    return last_inbound_at is not None and now - last_inbound_at < WHATSAPP_WINDOW


@dataclass(frozen=True)
class WhatsAppRendering:
    kind: Literal["text", "quick_reply", "template"]
    body: str  # free text, or the quick reply's body; "" for a template (Twilio fills it)
    content_sid: str | None = None
    content_variables: dict[str, str] = field(default_factory=dict)
    buttons: tuple[Option, ...] = ()

    @property
    def content_variables_json(self) -> str:
        return json.dumps(self.content_variables, ensure_ascii=False, separators=(",", ":"))


def template_for(
    settings: Mapping[str, Any], template_key: str | None, body: str, variables: Mapping[str, str]
) -> WhatsAppRendering | None:
    """The retailer's approved template for this kind of message, its variables filled by name.

    settings["whatsapp_templates"][key] = {"content_sid": "HX...", "variables": ["name", "window"]}:
    Twilio's variable "1" gets the message's variable "name", "2" gets "window"; the name "body"
    stands for the message text itself.
    """
    if not template_key:
        return None
    entry = (settings.get("whatsapp_templates") or {}).get(template_key)
    if not isinstance(entry, Mapping) or not entry.get("content_sid"):
        return None
    filled: dict[str, str] = {}
    for position, name in enumerate(entry.get("variables") or [], start=1):
        if name == "body":
            filled[str(position)] = body
        elif name in variables:
            filled[str(position)] = str(variables[name])
        else:
            raise RenderError(f"template {template_key!r} needs variable {name!r}")
    return WhatsAppRendering(
        kind="template", body="", content_sid=str(entry["content_sid"]), content_variables=filled
    )


def quick_reply_content(
    settings: Mapping[str, Any], text: str, options: Sequence[Option]
) -> WhatsAppRendering | None:
    """Quick-reply buttons through the retailer's session quick-reply content, if it has one.

    settings["whatsapp_quick_reply"] = {"1": "HX...", "2": "HX...", "3": "HX..."}: one twilio/quick-reply
    content per number of buttons, whose variable "1" is the body and, for button i, variable 2i is
    its title and 2i+1 its id (the payload that comes back as ButtonPayload).
    """
    sid = (settings.get("whatsapp_quick_reply") or {}).get(str(len(options)))
    if not sid:
        return None
    variables = {"1": text}
    for i, option in enumerate(options, start=1):
        variables[str(2 * i)] = option.label
        variables[str(2 * i + 1)] = option.payload
    return WhatsAppRendering(
        kind="quick_reply",
        body=text,
        content_sid=str(sid),
        content_variables=variables,
        buttons=tuple(options),
    )


def render_whatsapp(
    text: str,
    options: Sequence[Option | Mapping[str, str]] = (),
    *,
    locale: str = "en",
    window_open: bool,
    retailer_settings: Mapping[str, Any] | None = None,
    template_key: str | None = None,
    content_sid: str | None = None,
    content_variables: Mapping[str, str] | None = None,
) -> WhatsAppRendering:
    """Inside the window: free text with quick replies (numbered lines when they cannot be buttons).
    Outside: the message's own Content SID or the retailer's template for its kind, else OutsideWindow.
    """
    settings = retailer_settings or {}
    variables = dict(content_variables or {})
    if content_sid:
        return WhatsAppRendering(
            kind="template", body="", content_sid=content_sid, content_variables=variables
        )
    opts = as_options(options)
    if not window_open:
        template = template_for(settings, template_key, text, variables)
        if template is None:
            raise OutsideWindow()
        return template
    if opts and len(opts) <= WHATSAPP_MAX_QUICK_REPLIES:
        buttons = quick_reply_content(settings, text, opts)
        if buttons is not None:
            return buttons
    return WhatsAppRendering(kind="text", body=fit(text, opts, locale))


# --- previews (the web sandbox shows what each channel would send) -------------------------------


def preview(
    channel: Channel,
    text: str,
    options: Sequence[Option | Mapping[str, str]] = (),
    *,
    locale: str = "en",
    window_open: bool = True,
    retailer_settings: Mapping[str, Any] | None = None,
    template_key: str | None = None,
) -> dict[str, Any]:
    """What SMS or WhatsApp would send for a reply, as a JSON-friendly dict."""
    if channel == Channel.sms:
        rendered = render_sms(text, options, locale, retailer_settings)
        return {
            "channel": "sms",
            "body": rendered.body,
            "encoding": rendered.encoding,
            "segments": rendered.segments,
        }
    if channel == Channel.whatsapp:
        try:
            wa = render_whatsapp(
                text,
                options,
                locale=locale,
                window_open=window_open,
                retailer_settings=retailer_settings,
                template_key=template_key,
            )
        except RenderError as exc:
            return {"channel": "whatsapp", "kind": "refused", "error": str(exc)}
        return {
            "channel": "whatsapp",
            "kind": wa.kind,
            "body": wa.body,
            "content_sid": wa.content_sid,
            "content_variables": wa.content_variables,
            "buttons": [{"label": b.label, "payload": b.payload} for b in wa.buttons],
        }
    raise ValueError(f"no SMS/WhatsApp preview for channel {channel}")
