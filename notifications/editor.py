"""The template editor of the web console (`/console/templates`), for retailer admins.

The page is the console's layout around a small script (served here, no CDN). Its JSON routes use
the console session (cookie + CSRF token, console/auth.py) instead of an API key, and the same use
cases as the REST API. A user sees only the retailers they belong to; any other id answers 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field
from sqlmodel import col, select

from console.auth import ConsoleUser, require_role
from core.models import Author, Channel, Conversation, Direction, Message, Recipient, Retailer, Role
from core.outbox import enqueue
from core.web import Ctx, Uow
from notifications.api import (
    PreviewIn,
    RollbackIn,
    TemplateIn,
    invalid,
    key_or_404,
    list_view,
    template_view,
    version_view,
)
from notifications.events import EVENTS
from notifications.outreach import recipient_locale
from notifications.templates import (
    TemplateInvalid,
    TemplateProblem,
    VersionNotFound,
    options_for,
    render_source,
    rollback_template,
    sample_context,
    save_template,
    validate,
    versions,
)

PAGE_DIR = Path(__file__).resolve().parent / "editor_page"
CONSOLE_TEMPLATES = Path(__file__).resolve().parent.parent / "console" / "templates"

_env = Environment(
    loader=ChoiceLoader([FileSystemLoader(PAGE_DIR), FileSystemLoader(CONSOLE_TEMPLATES)]),
    autoescape=select_autoescape(["html"]),
)
pages = Jinja2Templates(env=_env)
RetailerAdmin = Annotated[ConsoleUser, Depends(require_role(Role.retailer_admin))]


class TestSend(BaseModel):
    session_id: str = Field(min_length=8, max_length=80)
    body: str | None = Field(default=None, max_length=4000)


async def _retailer(uow: Any, user: ConsoleUser, retailer_id: int) -> Retailer:
    retailer: Retailer | None = (
        await uow.session.get(Retailer, retailer_id) if user.can_see(retailer_id) else None
    )
    if retailer is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such retailer")
    return retailer


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console/templates", include_in_schema=False)
    base = "/api/{retailer_id}/{event}/{locale}/{channel}"

    @router.get("")
    async def page(request: Request, user: RetailerAdmin, uow: Uow) -> Response:
        retailers = (
            await uow.session.exec(
                select(Retailer).where(col(Retailer.id).in_(user.retailer_ids)).order_by(col(Retailer.name))
            )
        ).all()
        return pages.TemplateResponse(
            request,
            "editor.html",
            {
                "user": user,
                "active": "templates",
                "retailers": [{"id": r.id, "name": r.name, "slug": r.slug} for r in retailers],
                "events": [{"name": e.name, "title": e.title} for e in EVENTS.values()],
            },
        )

    @router.get("/api/{retailer_id}")
    async def list_templates(retailer_id: int, user: RetailerAdmin, uow: Uow) -> dict[str, Any]:
        return await list_view(uow.session, await _retailer(uow, user, retailer_id))

    @router.get(base)
    async def read(
        retailer_id: int, event: str, locale: str, channel: str, user: RetailerAdmin, uow: Uow
    ) -> dict[str, Any]:
        channel_ = key_or_404(event, locale, channel)
        return await template_view(
            uow.session, await _retailer(uow, user, retailer_id), event, locale, channel_
        )

    @router.put(base)
    async def write(
        retailer_id: int,
        event: str,
        locale: str,
        channel: str,
        body: TemplateIn,
        user: RetailerAdmin,
        uow: Uow,
    ) -> dict[str, Any]:
        channel_ = key_or_404(event, locale, channel)
        retailer = await _retailer(uow, user, retailer_id)
        try:
            row = await save_template(
                uow.session,
                retailer,
                event,
                locale,
                channel_,
                body.body,
                content_sid=body.content_sid,
                author=user.email,
            )
        except TemplateInvalid as exc:
            raise invalid(exc) from None
        await uow.commit()
        return version_view(row)

    @router.post(base + "/preview")
    async def preview(
        retailer_id: int,
        event: str,
        locale: str,
        channel: str,
        body: PreviewIn,
        user: RetailerAdmin,
        uow: Uow,
        ctx: Ctx,
    ) -> dict[str, Any]:
        channel_ = key_or_404(event, locale, channel)
        retailer = await _retailer(uow, user, retailer_id)
        report = validate(
            retailer,
            event,
            locale,
            channel_,
            body.body or "",
            content_sid=body.content_sid,
            sample=body.sample,
            telegram_bot=ctx.settings.telegram_bot_username,
        )
        return report.as_dict()

    @router.get(base + "/versions")
    async def list_versions(
        retailer_id: int, event: str, locale: str, channel: str, user: RetailerAdmin, uow: Uow
    ) -> dict[str, Any]:
        channel_ = key_or_404(event, locale, channel)
        retailer = await _retailer(uow, user, retailer_id)
        rows = await versions(uow.session, retailer.id or 0, event, locale, channel_)
        return {"versions": [version_view(r) for r in rows]}

    @router.post(base + "/rollback")
    async def rollback(
        retailer_id: int,
        event: str,
        locale: str,
        channel: str,
        body: RollbackIn,
        user: RetailerAdmin,
        uow: Uow,
    ) -> dict[str, Any]:
        channel_ = key_or_404(event, locale, channel)
        retailer = await _retailer(uow, user, retailer_id)
        try:
            await rollback_template(
                uow.session, retailer, event, locale, channel_, body.version, author=user.email
            )
        except VersionNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no version {body.version}") from None
        await uow.commit()
        return await template_view(uow.session, retailer, event, locale, channel_)

    @router.post(base + "/test")
    async def send_test(
        retailer_id: int,
        event: str,
        locale: str,
        channel: str,
        body: TestSend,
        user: RetailerAdmin,
        uow: Uow,
        ctx: Ctx,
    ) -> dict[str, Any]:
        """Render with sample data into a sandbox session of one of this retailer's recipients."""
        from channels.sandbox import session_recipient

        channel_ = key_or_404(event, locale, channel)
        retailer = await _retailer(uow, user, retailer_id)
        recipient_id = session_recipient(ctx.settings, body.session_id)
        recipient = await uow.session.get(Recipient, recipient_id) if recipient_id else None
        if recipient is None or recipient.retailer_id != retailer.id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no sandbox session of this retailer's recipients")
        if body.body is None:
            view = await template_view(uow.session, retailer, event, locale, channel_)
            source = str(view["body"])
        else:
            source = body.body
        context = sample_context(
            event,
            locale,
            brand=retailer.brand_name or retailer.name,
            timezone=retailer.timezone,
            telegram_bot=ctx.settings.telegram_bot_username,
        )
        context["recipient_name"] = recipient.name
        try:
            text = render_source(source, context, channel_)
        except TemplateProblem as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": [exc.as_dict()]}) from None
        options = options_for(EVENTS[event], recipient_locale(recipient, retailer))
        conversation = (
            await uow.session.exec(
                select(Conversation).where(
                    Conversation.channel == Channel.web, Conversation.address == body.session_id
                )
            )
        ).first()
        if conversation is None:
            conversation = Conversation(
                channel=Channel.web,
                address=body.session_id,
                retailer_id=retailer.id,
                recipient_id=recipient.id,
                locale=recipient.locale,
            )
            uow.session.add(conversation)
            await uow.session.flush()
        now = ctx.clock()
        outbox = await enqueue(
            uow.session,
            channel=Channel.web,
            to_address=body.session_id,
            body=text,
            options=options,
            idempotency_key=f"template-test:{user.id}:{now.timestamp():.6f}",
            retailer_id=retailer.id,
            conversation_id=conversation.id,
            recipient_id=recipient.id,
        )
        uow.session.add(
            Message(
                conversation_id=conversation.id or 0,
                channel=Channel.web,
                direction=Direction.outbound,
                author=Author.system,
                text=text,
                options=options,
                outbox_id=outbox.id,
                created_at=now,
            )
        )
        await uow.commit()
        return {"sent": True, "text": text, "options": options, "outbox_id": outbox.id}

    return router


def install(app: FastAPI) -> None:
    app.mount(
        "/console/templates/static", StaticFiles(directory=PAGE_DIR / "static"), name="template-editor-static"
    )
    app.include_router(build_router())
