"""Per-channel consent and opt-out of a recipient, checked before every proactive send."""

from __future__ import annotations

from datetime import datetime

from core.models import Channel, Recipient


def opted_out(recipient: Recipient, channel: Channel | str) -> bool:
    entry = recipient.channel_consent.get(str(channel), {})
    return bool(entry.get("opted_out_at"))


def set_opt_out(recipient: Recipient, channel: Channel | str, opted_out_: bool, at: datetime) -> None:
    """Record an opt-out (STOP) or an opt-in (START) on one channel; reassigns the JSON so it is saved."""
    consent = {key: dict(value) for key, value in recipient.channel_consent.items()}
    entry = consent.setdefault(str(channel), {})
    if opted_out_:
        entry["opted_out_at"] = at.isoformat()
    else:
        entry["opted_out_at"] = None
        entry["opted_in_at"] = at.isoformat()
    recipient.channel_consent = consent
