"""What the understanding layer tells the dialogs: an intent and the details it found."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime


class Intent(enum.StrEnum):
    where_is_parcel = "where_is_parcel"
    reschedule = "reschedule"
    redirect_pickup = "redirect_pickup"
    white_glove = "white_glove"
    cancel_white_glove = "cancel_white_glove"
    notify_me = "notify_me"
    instructions = "instructions"
    human = "human"
    personal_data = "personal_data"  # to see or erase what is held about them: a person's to handle
    yes = "yes"
    no = "no"
    choose_option = "choose_option"
    change_language = "change_language"
    thanks = "thanks"
    goodbye = "goodbye"
    greeting = "greeting"
    stop = "stop"
    start = "start"
    help = "help"
    unknown = "unknown"


@dataclass(frozen=True)
class Understanding:
    intent: Intent
    language: str | None  # "en" | "fr_CA" | "es" detected from the text, None if no clue
    window_start: datetime | None  # aware, in the recipient's time zone
    window_end: datetime | None
    option: int | None  # "2", "option 2", "the second one", "2️⃣"
    instructions: str | None  # the instruction text to save on the stop
    target_language: str | None  # for change_language ("en français" -> "fr_CA")
    postal_code: str | None  # Canadian postal code, normalised "M5V2A1"
    tracking: str | None  # a tracking-like token (letters and digits, at least 8 characters)
    # 1.0 a carrier keyword; 0.6-0.95 phrase cues (more cues, more confidence); 0.85 yes/no/thanks...;
    # 0.7 a time phrase alone (reschedule); 0.4 single words leaning to an intent; 0.0 unknown.
    confidence: float
    # the day the recipient says they are away ("I won't be home tomorrow"), when no time was asked
    not_on: date | None = None
    # they say they won't be there, ask no time and do not ask to change it ("what if I'm not home?"):
    # every way round it helps, not only another time
    away: bool = False
    # they ask for the parcel at their door rather than at a pickup point ("deliver it home instead")
    home: bool = False
    # "earlier" or "later" than the time planned, asked without naming a time ("can you come earlier?")
    direction: str | None = None

    def as_json(self) -> dict[str, object]:
        """The shape `python app.py understand` prints."""
        return {
            "intent": self.intent.value,
            "language": self.language,
            "window": {
                "start": self.window_start.isoformat() if self.window_start else None,
                "end": self.window_end.isoformat() if self.window_end else None,
            },
            "option": self.option,
            "instructions": self.instructions,
            "target_language": self.target_language,
            "postal_code": self.postal_code,
            "tracking": self.tracking,
            "confidence": round(self.confidence, 2),
            "not_on": self.not_on.isoformat() if self.not_on else None,
            "away": self.away,
            "home": self.home,
            "direction": self.direction,
        }
