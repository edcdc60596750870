"""Understanding recipients' messages in English, Canadian French and Spanish, without a hosted model.

`understand(text, locale=..., now=..., timezone=..., default_day=None)` returns an `Understanding`
(`default_day`: the day a time said without one falls on, the delivery's): the intent, the
language the message is written in, the time span asked for (see `when.py` for its semantics), an
option number, instruction text, a target language, a postal code and a tracking number when present.
"""

from bot.understanding.model import Intent, Understanding
from bot.understanding.reader import understand, warm_up

__all__ = ["Intent", "Understanding", "understand", "warm_up"]
