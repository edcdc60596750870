"""Saved replies: answers a retailer's agents reuse (Chatwoot's canned responses).

A retailer admin writes them on `/console/saved-replies`; in a conversation the reply box offers those
of the conversation's retailer with the conversation's names filled in. A saved reply is a message
template like the notifications' (`notifications/templates.py`: Jinja's immutable sandbox, the same
node checks and output limit), checked when it is saved and rendered for each conversation shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from console.auth import AdminUser, ConsoleUser
from console.queries import ConversationView, retailers_of
from console.rendering import templates
from core.context import AppContext
from core.logging import get_logger
from core.models import Channel, SavedReply
from core.web import Ctx
from notifications.templates import TemplateProblem, format_window, render_source

log = get_logger("doorstep.console")

TITLE_LIMIT = 60
BODY_LIMIT = 1000
# What a saved reply may name; the sample fills them when it is checked
VARIABLES = ("first_name", "recipient_name", "tracking", "window", "address", "brand", "agent_name")
SAMPLE = {
    "first_name": "Ada",
    "recipient_name": "Ada Lovelace",
    "tracking": "MH2612070001",
    "window": "Mon Dec 7, 8:00-10:00 AM",
    "address": "12 King St W",
    "brand": "Maple Home",
    "agent_name": "Jordan",
}


class SavedReplyRefused(ValueError):
    """A saved reply that cannot be kept (its reason is shown to the admin)."""


@dataclass(frozen=True)
class Offered:
    """A saved reply as the reply box offers it: its title and its text for this conversation."""

    id: int
    title: str
    text: str


def check(title: str, body: str) -> tuple[str, str]:
    title, body = " ".join(title.split()), body.strip()
    if not title or not body:
        raise SavedReplyRefused("A saved reply needs a title and a text.")
    if len(title) > TITLE_LIMIT or len(body) > BODY_LIMIT:
        raise SavedReplyRefused(f"At most {TITLE_LIMIT} characters of title and {BODY_LIMIT} of text.")
    try:
        render_source(body, SAMPLE, Channel.web)
    except TemplateProblem as exc:
        names = ", ".join("{{ " + name + " }}" for name in VARIABLES)
        raise SavedReplyRefused(f"The text cannot be used: {exc}. It may name {names}.") from None
    return title, body


def conversation_names(view: ConversationView, agent: ConsoleUser) -> dict[str, Any]:
    """The names a saved reply fills in, from the conversation shown (blank when unknown)."""
    recipient, delivery, retailer = view.recipient, view.delivery, view.retailer
    name = recipient.name if recipient is not None else ""
    window = ""
    if delivery is not None and delivery.window_start and delivery.window_end:
        locale = view.conversation.locale or (recipient.locale if recipient else "en")
        window = format_window(delivery.window_start, delivery.window_end, locale, delivery.timezone)
    return {
        "first_name": name.split(" ")[0] if name else "",
        "recipient_name": name,
        "tracking": delivery.tracking if delivery is not None else "",
        "window": window,
        "address": delivery.address if delivery is not None else "",
        "brand": (retailer.brand_name or retailer.name) if retailer is not None else "",
        "agent_name": agent.display_name.split(" ")[0],
    }


async def offered(session: AsyncSession, view: ConversationView, agent: ConsoleUser) -> list[Offered]:
    """The saved replies of the conversation's retailer, filled in for it."""
    retailer_id = view.conversation.retailer_id
    if retailer_id is None or retailer_id not in agent.retailer_ids:
        return []
    rows = (
        await session.exec(
            select(SavedReply).where(SavedReply.retailer_id == retailer_id).order_by(col(SavedReply.title))
        )
    ).all()
    names = conversation_names(view, agent)
    filled = []
    for row in rows:
        try:
            text = render_source(row.body, names, view.conversation.channel)
        except TemplateProblem as exc:  # checked when saved; a later change of the checks is logged
            log.warning("saved_reply_unusable", saved_reply_id=row.id, reason=str(exc))
            continue
        filled.append(Offered(row.id or 0, row.title, text))
    return filled


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console/saved-replies", include_in_schema=False)

    async def page(
        request: Request, ctx: AppContext, user: ConsoleUser, error: str = "", code: int = 200
    ) -> Response:
        async with ctx.uow() as uow:
            retailers = await retailers_of(uow.session, user.retailer_ids)
            saved = (
                await uow.session.exec(
                    select(SavedReply)
                    .where(col(SavedReply.retailer_id).in_(sorted(user.retailer_ids)))
                    .order_by(col(SavedReply.retailer_id), col(SavedReply.title))
                )
            ).all()
        names = {r.id: r.name for r in retailers}
        return templates.TemplateResponse(
            request,
            "saved_replies.html",
            {
                "retailers": retailers,
                "saved": [(names.get(s.retailer_id, "?"), s) for s in saved],
                "variables": VARIABLES,
                "error": error,
                "active": "saved-replies",
            },
            status_code=code,
        )

    @router.get("", response_class=HTMLResponse)
    async def list_page(request: Request, ctx: Ctx, user: AdminUser) -> Response:
        return await page(request, ctx, user)

    @router.post("")
    async def create(
        request: Request,
        ctx: Ctx,
        user: AdminUser,
        retailer_id: Annotated[int, Form()],
        title: Annotated[str, Form(max_length=200)] = "",
        body: Annotated[str, Form(max_length=5000)] = "",
    ) -> Response:
        if retailer_id not in user.retailer_ids:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such retailer")
        try:
            title, body = check(title, body)
        except SavedReplyRefused as exc:
            return await page(request, ctx, user, str(exc), status.HTTP_422_UNPROCESSABLE_CONTENT)
        async with ctx.uow() as uow:
            uow.session.add(
                SavedReply(
                    retailer_id=retailer_id,
                    title=title,
                    body=body,
                    created_by=user.id,
                    created_at=ctx.clock().astimezone(UTC),
                )
            )
            await uow.commit()
        log.info("saved_reply_added", retailer_id=retailer_id, user_id=user.id)
        return RedirectResponse("/console/saved-replies", status.HTTP_303_SEE_OTHER)

    @router.post("/{saved_id}/delete")
    async def delete(ctx: Ctx, user: AdminUser, saved_id: int) -> Response:
        async with ctx.uow() as uow:
            row = await uow.session.get(SavedReply, saved_id)
            if row is None or row.retailer_id not in user.retailer_ids:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such saved reply")
            await uow.session.delete(row)
            await uow.commit()
        log.info("saved_reply_deleted", saved_reply_id=saved_id, user_id=user.id)
        return RedirectResponse("/console/saved-replies", status.HTTP_303_SEE_OTHER)

    return router
