"""Pictures and files: those recipients send, and those agents send.

A recipient's message keeps only where the channel holds its media (`bot.messages.Attachment`:
Twilio's media URL, Telegram's file id). When an agent opens the conversation, the console asks the
channel's fetcher for the content (`media_fetchers(ctx)[channel]`), registered by the channel at start
with its credentials, which never reach the browser.

An agent's picture or PDF is kept in the database (`OutgoingFile`) and sent by URL: Twilio and
Telegram fetch it from `PUBLIC_URL/media/<token>` (`build_media_router`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Protocol

from fastapi import APIRouter, HTTPException, Path, Request, Response
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Channel, OutgoingFile

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


# --- what agents send ------------------------------------------------------------------------------

# Pictures every channel shows and PDFs, 5 MB at most: an MMS carries 5 MB in all, and Telegram takes a
# photo by URL up to 5 MB (a document by URL only as PDF, GIF or ZIP)
MAX_SEND_BYTES = 5 * 1024 * 1024
SENDABLE_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
OUTGOING_REF = "doorstep:"  # an attachment's ref for an OutgoingFile: "doorstep:<token>"
MEDIA_PATH = "/media/{token}"
# long enough for every retry of a send; then the public URL answers 404 (agents still see the file)
PUBLIC_FOR = timedelta(days=30)


class NotSendable(ValueError):
    """An agent's file no channel would take (its reason is shown to the agent)."""


def sendable_type(content: bytes) -> str:
    """The file's type read from its first bytes, not from what the browser said it was."""
    if not content:
        raise NotSendable("The file is empty.")
    if len(content) > MAX_SEND_BYTES:
        raise NotSendable(f"The file is {len(content) / 1_048_576:.1f} MB: 5 MB at most.")
    for signature, content_type in SENDABLE_SIGNATURES:
        if content.startswith(signature):
            return content_type
    raise NotSendable("Only JPEG, PNG or GIF pictures and PDF files can be sent.")


def outgoing_ref(token: str) -> str:
    return OUTGOING_REF + token


def public_media_url(public_url: str, ref: str) -> str:
    """Where Twilio or Telegram fetch an agent's file (`PUBLIC_URL` first)."""
    token = ref.removeprefix(OUTGOING_REF)
    return public_url.rstrip("/") + MEDIA_PATH.format(token=token)


async def outgoing_file(session: AsyncSession, ref: str) -> OutgoingFile | None:
    """An agent's file by its ref ("doorstep:<token>"); None for any other ref."""
    if not ref.startswith(OUTGOING_REF):
        return None
    token = ref.removeprefix(OUTGOING_REF)
    return (await session.exec(select(OutgoingFile).where(OutgoingFile.token == token))).first()


def file_headers(content_type: str, filename: str) -> dict[str, str]:
    """Served as data, never as a page: sandboxed, and anything but a picture or sound as a download."""
    headers = {
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Content-Type-Options": "nosniff",
    }
    if content_type not in INLINE_TYPES:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return headers


def build_media_router() -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.get(
        MEDIA_PATH, summary="An agent's picture or PDF, for the channel to fetch", include_in_schema=False
    )
    async def outgoing_media(request: Request, token: Annotated[str, Path(max_length=64)]) -> Response:
        """Public by design (Twilio and Telegram fetch it without credentials): the 43-character random
        token is the only way to it; an unknown one, or one older than PUBLIC_FOR, answers 404."""
        ctx: AppContext = request.app.state.ctx
        async with ctx.uow() as uow:
            kept = await outgoing_file(uow.session, outgoing_ref(token))
        if kept is None or kept.created_at <= ctx.clock() - PUBLIC_FOR:
            raise HTTPException(404, "no such file")
        headers = {
            "Cache-Control": "private, max-age=3600",
            **file_headers(kept.content_type, "doorstep-file"),
        }
        return Response(kept.content, media_type=kept.content_type, headers=headers)

    return router
