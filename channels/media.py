"""Pictures and files recipients send: read from the webhooks, fetched from the channel on demand.

A message keeps only where the channel holds its media (`bot.messages.Attachment`: Twilio's media
URL, Telegram's file id). When an agent opens the conversation, the console asks the channel's
fetcher for the content (`media_fetchers(ctx)[channel]`), registered by the channel at start with
its credentials, which never reach the browser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from core.models import Channel

if TYPE_CHECKING:
    from core.context import AppContext

# WhatsApp takes media up to 16 MB (MMS 5 MB; Telegram bots download up to 20 MB): the most we fetch
MAX_MEDIA_BYTES = 16 * 1024 * 1024
# "type/subtype" as the channel said; anything else is shown as a plain download
CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
# shown in the page (pictures) or played in it (voice messages, videos); any other type (SVG, HTML...)
# is offered as a download, never rendered
PICTURE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/bmp"})
AUDIO_TYPES = frozenset({"audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/wav", "audio/webm"})
VIDEO_TYPES = frozenset({"video/mp4", "video/webm"})
INLINE_TYPES = PICTURE_TYPES | AUDIO_TYPES | VIDEO_TYPES


def normal_content_type(value: str | None) -> str:
    """The channel's content type if it is one, else the neutral one."""
    value = (value or "").strip().lower().split(";")[0]
    return value if CONTENT_TYPE.match(value) else "application/octet-stream"


class MediaUnavailable(Exception):
    """The channel could not give the content now (down, refused, gone, too large, not configured)."""


@dataclass(frozen=True)
class Media:
    content_type: str
    content: bytes


class MediaFetcher(Protocol):
    async def fetch(self, ref: str, content_type: str) -> Media: ...


def media_fetchers(ctx: AppContext) -> dict[Channel, MediaFetcher]:
    registry: dict[Channel, MediaFetcher] = ctx.components.setdefault("media_fetchers", {})
    return registry
