"""The web sandbox: chat as a demo recipient through the real engine, and see every channel's rendering.

`GET /sandbox` serves a page (its own JS and CSS, no CDN). Its JSON API lists recipients, opens a
session as one of them, posts messages on channel `web` to the conversation engine, renders each reply
for SMS, WhatsApp and Telegram, and lists what the recipient received on any channel. No credential is
needed, so the sandbox runs only outside production unless SANDBOX_ENABLED=true, and then shows only
the demo retailers' recipients. Session ids are signed with SECRET_KEY and carry the recipient's id:
nobody can open a session as a recipient the listing did not offer, and no state is kept in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func, or_
from sqlmodel import col, select

from bot.messages import InboundMessage, OutboundMessage
from channels import rendering
from channels.base import SendResult
from channels.media import OUTGOING_REF, public_media_url
from channels.outbox_worker import senders
from channels.telegram_format import InvalidCallbackData
from channels.telegram_format import render as render_telegram
from core.config import Settings
from core.logging import get_logger
from core.models import (
    Channel,
    Conversation,
    Delivery,
    Message,
    OutboxMessage,
    OutboxStatus,
    Recipient,
    Retailer,
    utcnow,
)
from core.phones import mask

if TYPE_CHECKING:
    from core.context import AppContext

log = get_logger("doorstep.sandbox")

PAGE_DIR = Path(__file__).resolve().parent / "sandbox_page"
DEMO_RETAILERS = ("maple-home", "north-outfitters")  # scheduling/demo.py's slugs
SESSION = re.compile(r"^sb_(\d{1,12})_([0-9a-f]{16})_([0-9a-f]{20})$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9-]{8,40}$")
LIST_LIMIT = 200


def sandbox_enabled(settings: Settings) -> bool:
    if settings.sandbox_enabled is not None:
        return settings.sandbox_enabled
    return settings.environment != "production"


def demo_only(settings: Settings) -> bool:
    """In production (turned on explicitly), only the demo retailers' recipients are reachable."""
    return settings.environment == "production"


# --- signed session ids --------------------------------------------------------------------------


def _mac(settings: Settings, recipient_id: int, nonce: str) -> str:
    key = hashlib.sha256(b"sandbox-session:" + settings.secret_key.get_secret_value().encode()).digest()
    return hmac.new(key, f"{recipient_id}.{nonce}".encode(), hashlib.sha256).hexdigest()[:20]


def new_session_id(settings: Settings, recipient_id: int) -> str:
    nonce = secrets.token_hex(8)
    return f"sb_{recipient_id}_{nonce}_{_mac(settings, recipient_id, nonce)}"


def session_recipient(settings: Settings, session_id: str) -> int | None:
    """The recipient a session id was issued for, or None when it is malformed or forged."""
    match = SESSION.match(session_id)
    if match is None:
        return None
    recipient_id, nonce, mac = int(match[1]), match[2], match[3]
    return recipient_id if hmac.compare_digest(mac, _mac(settings, recipient_id, nonce)) else None


# --- the web channel's sender ----------------------------------------------------------------------


class WebSender:
    """Channel.web has no provider: the sandbox page shows the rows, so a send is a delivery."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def send(self, message: OutboxMessage) -> SendResult:
        now = self.ctx.clock()
        async with self.ctx.uow() as uow:
            row = await uow.session.get(OutboxMessage, message.id)
            if row is not None and row.status == OutboxStatus.sending:
                row.status = OutboxStatus.delivered
                row.status_at = now
                row.sent_at = now
                await uow.commit()
        return SendResult(provider_id=f"web-{message.id}")


# --- API models ------------------------------------------------------------------------------------


class NewSession(BaseModel):
    recipient_id: int = Field(gt=0)


class PostedMessage(BaseModel):
    text: str = Field(default="", max_length=1000)
    payload: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_:.\-]+$")
    client_id: str | None = Field(default=None, pattern=CLIENT_ID.pattern)

    @model_validator(mode="after")
    def _text_or_payload(self) -> PostedMessage:
        if not self.text.strip() and not self.payload:
            raise ValueError("write a message or choose an option")
        return self


# --- queries ---------------------------------------------------------------------------------------


async def _recipient_view(ctx: AppContext, settings: Settings, recipient_id: int) -> dict[str, Any] | None:
    async with ctx.uow() as uow:
        found = (
            await uow.session.exec(
                select(Recipient, Retailer)
                .join(Retailer, col(Retailer.id) == col(Recipient.retailer_id))
                .where(Recipient.id == recipient_id)
            )
        ).first()
        if found is None:
            return None
        recipient, retailer = found
        if demo_only(settings) and retailer.slug not in DEMO_RETAILERS:
            return None
        deliveries = (
            await uow.session.exec(
                select(Delivery)
                .where(Delivery.recipient_id == recipient_id)
                .order_by(col(Delivery.day).desc())
            )
        ).all()
        return {
            "id": recipient.id,
            "name": recipient.name,
            "locale": recipient.locale,
            "retailer": {"slug": retailer.slug, "name": retailer.name, "settings": dict(retailer.settings)},
            "deliveries": [
                {
                    "tracking": d.tracking,
                    "status": str(d.status),
                    "day": d.day.isoformat(),
                    "window_start": _iso(d.window_start),
                    "window_end": _iso(d.window_end),
                    "timezone": d.timezone,
                    "white_glove": d.white_glove,
                    "address": d.address,
                }
                for d in deliveries
            ],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _public(recipient: dict[str, Any]) -> dict[str, Any]:
    """What the page may see: no retailer settings."""
    retailer = {k: v for k, v in recipient["retailer"].items() if k != "settings"}
    return {**recipient, "retailer": retailer}


def renderings(reply: OutboundMessage, locale: str, retailer_settings: dict[str, Any]) -> dict[str, Any]:
    """The same reply as SMS, WhatsApp and Telegram would carry it."""
    options = [{"label": o.label, "payload": o.payload} for o in reply.options]
    out: dict[str, Any] = {}
    for channel in (Channel.sms, Channel.whatsapp):
        try:
            out[str(channel)] = rendering.preview(
                channel,
                reply.text,
                options,
                locale=locale,
                window_open=True,
                retailer_settings=retailer_settings,
                template_key=reply.template_key,
            )
        except rendering.RenderError as exc:
            out[str(channel)] = {"channel": str(channel), "kind": "refused", "error": str(exc)}
    try:
        telegram = render_telegram(reply.text, options, request_contact=reply.request_contact).as_dict()
    except InvalidCallbackData as exc:
        telegram = {"error": str(exc)}
    out["telegram"] = {"channel": "telegram", **telegram}
    return out


# --- the router ------------------------------------------------------------------------------------


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox"])

    def context(request: Request) -> AppContext:
        ctx: AppContext = request.app.state.ctx
        return ctx

    def engine(ctx: AppContext) -> Any:
        found = ctx.components.get("engine")
        if found is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the conversation engine is not running")
        return found

    async def session_view(ctx: AppContext, session_id: str) -> dict[str, Any]:
        recipient_id = session_recipient(settings, session_id)
        view = await _recipient_view(ctx, settings, recipient_id) if recipient_id is not None else None
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown sandbox session: pick a recipient again")
        return view

    @router.get("", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    @router.get("/api/recipients", summary="Demo recipients to chat as")
    async def list_recipients(
        request: Request,
        q: Annotated[str, Query(max_length=100)] = "",
        limit: Annotated[int, Query(ge=1, le=LIST_LIMIT)] = 50,
    ) -> dict[str, Any]:
        ctx = context(request)
        first_delivery = (
            select(
                col(Delivery.recipient_id).label("rid"),
                func.min(Delivery.tracking).label("tracking"),
                func.count().label("deliveries"),
            )
            .group_by(col(Delivery.recipient_id))
            .subquery()
        )
        query = (
            select(Recipient, Retailer, first_delivery.c.tracking, first_delivery.c.deliveries)
            .join(Retailer, col(Retailer.id) == col(Recipient.retailer_id))
            .join(first_delivery, first_delivery.c.rid == col(Recipient.id))
            .order_by(col(Retailer.name), col(Recipient.name), col(Recipient.id))
            .limit(limit)
        )
        if demo_only(settings):
            query = query.where(col(Retailer.slug).in_(DEMO_RETAILERS))
        needle = q.strip()
        if needle:
            pattern = f"%{needle.lower()}%"
            query = query.where(
                or_(
                    func.lower(col(Recipient.name)).like(pattern),
                    func.lower(first_delivery.c.tracking).like(pattern),
                    func.lower(col(Retailer.name)).like(pattern),
                    func.lower(col(Recipient.locale)).like(pattern),
                )
            )
        async with ctx.uow() as uow:
            rows = (await uow.session.exec(query)).all()
            items = [
                {
                    "id": recipient.id,
                    "name": recipient.name,
                    "locale": recipient.locale,
                    "retailer": {"slug": retailer.slug, "name": retailer.name},
                    "tracking": tracking,
                    "deliveries": count,
                }
                for recipient, retailer, tracking, count in rows
            ]
        return {"recipients": items}

    @router.post("/api/sessions", status_code=201, summary="Chat as a recipient")
    async def open_session(request: Request, body: NewSession) -> dict[str, Any]:
        ctx = context(request)
        view = await _recipient_view(ctx, settings, body.recipient_id)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such demo recipient")
        session_id = new_session_id(settings, body.recipient_id)
        await engine(ctx).link_web_session(session_id, body.recipient_id)
        log.info("sandbox_session_opened", recipient_id=body.recipient_id)
        return {"session_id": session_id, "recipient": _public(view)}

    @router.get("/api/sessions/{session_id}", summary="The session's recipient and conversation so far")
    async def get_session(
        request: Request, session_id: str, after: Annotated[int, Query(ge=0)] = 0
    ) -> dict[str, Any]:
        """Messages after the id `after` (0: all); the page polls it for agents' and system messages."""
        ctx = context(request)
        view = await session_view(ctx, session_id)
        async with ctx.uow() as uow:
            messages = (
                await uow.session.exec(
                    select(Message)
                    .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
                    .where(
                        Conversation.channel == Channel.web,
                        Conversation.address == session_id,
                        col(Message.id) > after,
                    )
                    .order_by(col(Message.id))
                    .limit(500)
                )
            ).all()
            transcript = [
                {
                    "id": m.id,
                    "direction": str(m.direction),
                    "author": str(m.author),
                    "text": m.text,
                    "payload": m.payload,
                    "options": m.options,
                    "files": [  # an agent's pictures and PDFs, at the URL the channels fetch them from
                        {"content_type": a["content_type"], "url": public_media_url("", a["ref"])}
                        for a in m.attachments
                        if a["ref"].startswith(OUTGOING_REF)
                    ],
                    "at": m.created_at.isoformat(),
                }
                for m in messages
                if not m.internal_note
            ]
        return {"session_id": session_id, "recipient": _public(view), "messages": transcript}

    @router.post("/api/sessions/{session_id}/messages", summary="Say something as the recipient")
    async def post_message(request: Request, session_id: str, body: PostedMessage) -> dict[str, Any]:
        ctx = context(request)
        view = await session_view(ctx, session_id)
        inbound = InboundMessage(
            channel=Channel.web,
            sender=session_id,
            text=body.text.strip(),
            payload=body.payload,
            provider_id=f"web-{body.client_id or uuid.uuid4().hex}",
            received_at=utcnow(),
            sender_name=view["name"],
        )
        replies: list[OutboundMessage] = await engine(ctx).handle(inbound)
        settings = view["retailer"]["settings"]
        return {
            "replies": [
                {
                    "text": r.text,
                    "options": [{"label": o.label, "payload": o.payload} for o in r.options],
                    "template_key": r.template_key,
                    "renderings": renderings(r, view["locale"], settings),
                }
                for r in replies
            ]
        }

    @router.get("/api/sessions/{session_id}/notifications", summary="What the recipient received")
    async def notifications(
        request: Request, session_id: str, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> dict[str, Any]:
        ctx = context(request)
        view = await session_view(ctx, session_id)
        async with ctx.uow() as uow:
            rows = (
                await uow.session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.recipient_id == view["id"], OutboxMessage.channel != Channel.web)
                    .order_by(col(OutboxMessage.created_at).desc(), col(OutboxMessage.id).desc())
                    .limit(limit)
                )
            ).all()
            items = [
                {
                    "id": row.id,
                    "channel": str(row.channel),
                    "status": str(row.status),
                    "to": row.to_address if row.channel == Channel.telegram else mask(row.to_address),
                    "body": row.body,
                    "options": row.options,
                    "content_sid": row.content_sid,
                    "segments": row.segments,
                    "encoding": row.encoding,
                    "error": row.last_error,
                    "created_at": row.created_at.isoformat(),
                    "sent_at": _iso(row.sent_at),
                }
                for row in rows
            ]
        return {"notifications": items}

    return router


async def start_web_sender(_app: FastAPI, ctx: AppContext) -> Callable[[], Awaitable[None]] | None:
    senders(ctx)[Channel.web] = WebSender(ctx)
    return None


def install(app: FastAPI) -> None:
    """The web channel's sender always; the sandbox page and API only where it is enabled."""
    app.state.starters.append(start_web_sender)
    settings: Settings = app.state.settings
    if not sandbox_enabled(settings):
        return
    app.mount("/sandbox/static", StaticFiles(directory=PAGE_DIR / "static"), name="sandbox-static")
    app.include_router(build_router(settings))
