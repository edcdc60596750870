"""The notifications Doorstep sends, the variables each template may use and the choices each offers.

This is the documentation retailers read (the API and the editor show it) and the allowlist the
validator checks templates against: a template may use only its event's variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.models import Channel

LOCALES: tuple[str, ...] = ("en", "fr_CA", "es")
CHANNELS: tuple[Channel, ...] = (Channel.sms, Channel.whatsapp, Channel.telegram, Channel.web)
# the web sandbox has no template files of its own: it shows Telegram's text
FILE_CHANNEL: dict[Channel, Channel] = {
    Channel.sms: Channel.sms,
    Channel.whatsapp: Channel.whatsapp,
    Channel.telegram: Channel.telegram,
    Channel.web: Channel.telegram,
}

COMMON_VARIABLES: dict[str, str] = {
    "brand": "the retailer's brand name",
    "recipient_name": "the recipient's name as the plan gave it (may be empty)",
    "tracking": "the delivery's tracking id",
    "address": "the delivery address",
    "window": "the delivery window (start, end); format it with the `window` filter",
    "day": "the delivery day (a date); format it with the `date` filter",
    "locale": "the recipient's locale: en, fr_CA or es",
    "timezone": "the delivery's time zone (the plan's), e.g. America/Toronto",
}


@dataclass(frozen=True)
class OptionSpec:
    """A choice a message offers. `payload` is one of the engine's fixed menu payloads
    (bot/dialogs/turn.py MENU_INTENTS), understood in any turn; on SMS "1", "2"... work through the
    options the conversation was offered."""

    payload: str
    labels: dict[str, str]

    def label(self, locale: str) -> str:
        return self.labels.get(locale) or self.labels["en"]


RESCHEDULE = OptionSpec(
    "menu:reschedule", {"en": "Change the time", "fr_CA": "Changer l'heure", "es": "Cambiar la hora"}
)
PICKUP = OptionSpec(
    "menu:pickup",
    {"en": "Pickup point", "fr_CA": "Point de retrait", "es": "Punto de recogida"},
)
HUMAN = OptionSpec(
    "menu:person", {"en": "Talk to a person", "fr_CA": "Parler à quelqu'un", "es": "Hablar con alguien"}
)


@dataclass(frozen=True)
class EventSpec:
    name: str
    title: str
    description: str
    variables: dict[str, str] = field(default_factory=dict)  # beyond COMMON_VARIABLES
    options: tuple[OptionSpec, ...] = ()
    # WhatsApp approved templates take positional variables: {{1}} is the first name here, and so on
    whatsapp_variables: tuple[str, ...] = ("brand", "tracking")
    first_contact: bool = False  # may be the first message to a number: names the brand, says how to stop

    @property
    def all_variables(self) -> dict[str, str]:
        return {**COMMON_VARIABLES, **self.variables}


EVENTS: dict[str, EventSpec] = {
    spec.name: spec
    for spec in (
        EventSpec(
            "window_assigned",
            "Window assigned",
            "Sent when an imported plan gives the delivery its window; usually the first message.",
            {"telegram_link": "a t.me deep link that links this delivery to the recipient's Telegram"},
            options=(RESCHEDULE, PICKUP),
            whatsapp_variables=("brand", "tracking", "window_text"),
            first_contact=True,
        ),
        EventSpec(
            "day_before_reminder",
            "Day-before reminder",
            "Sent the day before the delivery at the retailer's reminder time (settings.reminder_time).",
            options=(RESCHEDULE, PICKUP),
            whatsapp_variables=("brand", "tracking", "window_text"),
            first_contact=True,
        ),
        EventSpec(
            "out_for_delivery",
            "Out for delivery",
            "Sent the morning of the delivery, or when the driver leaves with the parcel.",
            {"eta": "the expected arrival (a datetime, may be empty); format it with the `time` filter"},
            whatsapp_variables=("brand", "tracking", "window_text"),
        ),
        EventSpec(
            "arriving_soon",
            "Arriving soon",
            "Sent once when the driver is a few stops away (settings.arriving_stops) or 30 minutes out.",
            {
                "eta": "the expected arrival (a datetime); format it with the `time` filter",
                "stops_away": "how many stops before this one (a number)",
            },
            whatsapp_variables=("brand", "tracking", "eta_text"),
        ),
        EventSpec(
            "delivered",
            "Delivered",
            "Sent when the driver marks the delivery done, with the proof of delivery.",
            {
                "delivered_at": "when it was delivered (a datetime); format it with the `time` filter",
                "proof_photo_url": "a link to the photo taken at the door (may be empty)",
                "proof_signer": "the name of the person who signed (may be empty)",
            },
            whatsapp_variables=("brand", "tracking", "proof_text"),
        ),
        EventSpec(
            "attempt_failed",
            "Failed attempt",
            "Sent when the driver could not deliver; offers to reschedule or to use a pickup point.",
            {"reason": "why it failed, as the driver reported it (may be empty)"},
            options=(RESCHEDULE, PICKUP, HUMAN),
            whatsapp_variables=("brand", "tracking"),
        ),
        EventSpec(
            "reschedule_confirmed",
            "Reschedule confirmed",
            "Sent when a delivery was given a new window by an agent, the retailer or the system.",
            whatsapp_variables=("brand", "tracking", "window_text"),
        ),
        EventSpec(
            "redirect_confirmed",
            "Redirect confirmed",
            "Sent when a delivery was redirected to a pickup point.",
            {
                "pickup_name": "the pickup point's name",
                "pickup_address": "the pickup point's address",
            },
            whatsapp_variables=("brand", "tracking", "pickup_name"),
        ),
        EventSpec(
            "white_glove_confirmed",
            "White-glove booking confirmed",
            "Sent when in-home setup was booked.",
            {"slot": "the white-glove slot (start, end); format it with the `window` filter"},
            whatsapp_variables=("brand", "tracking", "slot_text"),
        ),
        EventSpec(
            "white_glove_reminder",
            "White-glove reminder",
            "Sent the day before the in-home setup at the retailer's reminder time.",
            {"slot": "the white-glove slot (start, end); format it with the `window` filter"},
            options=(RESCHEDULE, HUMAN),
            whatsapp_variables=("brand", "tracking", "slot_text"),
        ),
        EventSpec(
            "white_glove_cancelled",
            "White-glove setup called off",
            "Sent when an in-home setup booked through Doorstep was called off; the parcel still comes "
            "in its window.",
            whatsapp_variables=("brand", "tracking", "window_text"),
        ),
    )
}

FILTERS: dict[str, str] = {
    "window": "`{{ window|window }}` → Thu Dec 3, 2:00–4:00 PM, jeu. 3 déc., 14 h à 16 h (in the "
    "delivery's time zone and the recipient's locale, worded as the bot's replies word it); "
    "`{{ window|window('time') }}` → 2:00–4:00 PM",
    "date": "`{{ day|date }}` → Thu Dec 3; a babel pattern or skeleton: `{{ day|date('long') }}`",
    "time": "`{{ eta|time }}` → 2:35 PM in the delivery's time zone",
    "distance": "`{{ 1234|distance }}` → 1.2 km (metres in)",
    "default": "`{{ recipient_name|default('there') }}` when a value may be empty",
    "upper / lower / title / capitalize / trim / truncate / replace / length": "Jinja's own, output "
    "capped in size",
}


class UnknownTemplateKey(LookupError):
    """No such event, locale or channel."""


def check_key(event: str, locale: str, channel: str) -> tuple[EventSpec, str, Channel]:
    spec = EVENTS.get(event)
    if spec is None:
        raise UnknownTemplateKey(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
    if locale not in LOCALES:
        raise UnknownTemplateKey(f"unknown locale {locale!r}; one of {', '.join(LOCALES)}")
    try:
        channel_ = Channel(channel)
    except ValueError:
        raise UnknownTemplateKey(
            f"unknown channel {channel!r}; one of {', '.join(c.value for c in CHANNELS)}"
        ) from None
    return spec, locale, channel_
