"""REST routes for retailers' templates (Bearer API key) and the use cases the console editor shares.

Every query is filtered by the retailer of the key: another retailer's templates, versions and
notifications are invisible (they answer as if they did not exist).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, status
from pydantic import BaseModel, Field
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Channel, Delivery, Notification, Retailer
from core.web import Ctx, CurrentRetailer, Uow
from notifications.events import CHANNELS, EVENTS, FILTERS, LOCALES, UnknownTemplateKey, check_key
from notifications.templates import (
    MAX_SOURCE_CHARS,
    TemplateInvalid,
    VersionNotFound,
    active_template,
    active_templates,
    default_body,
    rollback_template,
    save_template,
    validate,
    versions,
)


class TemplateIn(BaseModel):
    body: str = Field(max_length=MAX_SOURCE_CHARS * 2)
    content_sid: str | None = Field(default=None, max_length=64)


class PreviewIn(BaseModel):
    body: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS * 2)
    content_sid: str | None = Field(default=None, max_length=64)
    sample: dict[str, str | int] = Field(default_factory=dict, max_length=20)


class RollbackIn(BaseModel):
    version: int = Field(ge=0, description="0: back to Doorstep's default")


def key_or_404(event: str, locale: str, channel: str) -> Channel:
    try:
        return check_key(event, locale, channel)[2]
    except UnknownTemplateKey as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


def event_doc(event: str) -> dict[str, Any]:
    spec = EVENTS[event]
    return {
        "event": spec.name,
        "title": spec.title,
        "description": spec.description,
        "variables": spec.all_variables,
        "options": [{"payload": o.payload, "labels": o.labels} for o in spec.options],
        "whatsapp_variables": list(spec.whatsapp_variables),
        "first_contact": spec.first_contact,
    }


async def list_view(session: AsyncSession, retailer: Retailer) -> dict[str, Any]:
    overrides = await active_templates(session, retailer.id or 0)
    items = []
    for event in EVENTS:
        for locale in LOCALES:
            for channel in CHANNELS:
                found = overrides.get((event, locale, channel.value))
                items.append(
                    {
                        "event": event,
                        "locale": locale,
                        "channel": channel.value,
                        "source": found.source if found else "default",
                        "version": found.version if found else 0,
                    }
                )
    return {
        "events": [event_doc(e) for e in EVENTS],
        "locales": list(LOCALES),
        "channels": [c.value for c in CHANNELS],
        "filters": FILTERS,
        "templates": items,
    }


async def template_view(
    session: AsyncSession, retailer: Retailer, event: str, locale: str, channel: Channel
) -> dict[str, Any]:
    active = await active_template(session, retailer.id or 0, event, locale, channel)
    return {
        "event": event,
        "locale": locale,
        "channel": channel.value,
        "body": active.body,
        "content_sid": active.content_sid,
        "version": active.version,
        "source": active.source,
        "default_body": default_body(event, locale, channel),
        "doc": event_doc(event),
    }


def version_view(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "active": row.active,
        "body": row.body,
        "content_sid": row.content_sid,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }


def invalid(exc: TemplateInvalid) -> HTTPException:
    report = exc.report
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        {"msg": "the template was refused", "errors": report.errors, "warnings": report.warnings},
    )


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["templates"])
    path = "/templates/{event}/{locale}/{channel}"

    @router.get("/templates")
    async def list_templates(retailer: CurrentRetailer, uow: Uow) -> dict[str, Any]:
        """Every event x locale x channel, whether it is Doorstep's default or yours, and the variables."""
        return await list_view(uow.session, retailer)

    @router.get(path)
    async def read_template(
        event: str, locale: str, channel: str, retailer: CurrentRetailer, uow: Uow
    ) -> dict[str, Any]:
        """The active template (your newest version, or Doorstep's default) and its documentation."""
        channel_ = key_or_404(event, locale, channel)
        return await template_view(uow.session, retailer, event, locale, channel_)

    @router.put(path)
    async def write_template(
        event: str, locale: str, channel: str, body: TemplateIn, retailer: CurrentRetailer, uow: Uow, ctx: Ctx
    ) -> dict[str, Any]:
        """Validate and save a new version (422 with every problem when refused)."""
        channel_ = key_or_404(event, locale, channel)
        try:
            row = await save_template(
                uow.session,
                retailer,
                event,
                locale,
                channel_,
                body.body,
                content_sid=body.content_sid,
                author=f"api-key:{retailer.slug}",
            )
        except TemplateInvalid as exc:
            raise invalid(exc) from None
        await uow.commit()
        return {**version_view(row), "event": event, "locale": locale, "channel": channel_.value}

    @router.post(path + "/preview")
    async def preview_template(
        event: str, locale: str, channel: str, body: PreviewIn, retailer: CurrentRetailer, uow: Uow, ctx: Ctx
    ) -> dict[str, Any]:
        """Render with sample data (the saved template when no body is given): text, options, SMS
        segments and encoding, errors and warnings."""
        channel_ = key_or_404(event, locale, channel)
        source = body.body
        content_sid = body.content_sid
        if source is None:
            active = await active_template(uow.session, retailer.id or 0, event, locale, channel_)
            source, content_sid = active.body, content_sid or active.content_sid
        report = validate(
            retailer,
            event,
            locale,
            channel_,
            source,
            content_sid=content_sid,
            sample=body.sample,
            telegram_bot=ctx.settings.telegram_bot_username,
        )
        return report.as_dict()

    @router.get(path + "/versions")
    async def list_versions(
        event: str, locale: str, channel: str, retailer: CurrentRetailer, uow: Uow
    ) -> dict[str, Any]:
        """Every saved version, newest first; version 0 is the default."""
        channel_ = key_or_404(event, locale, channel)
        rows = await versions(uow.session, retailer.id or 0, event, locale, channel_)
        return {
            "versions": [version_view(r) for r in rows],
            "default_body": default_body(event, locale, channel_),
        }

    @router.post(path + "/rollback")
    async def rollback(
        event: str, locale: str, channel: str, body: RollbackIn, retailer: CurrentRetailer, uow: Uow
    ) -> dict[str, Any]:
        """Make an earlier version active again (saved as a new version); 0 returns to the default."""
        channel_ = key_or_404(event, locale, channel)
        try:
            await rollback_template(
                uow.session,
                retailer,
                event,
                locale,
                channel_,
                body.version,
                author=f"api-key:{retailer.slug}",
            )
        except VersionNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no version {body.version}") from None
        except TemplateInvalid as exc:
            raise invalid(exc) from None
        await uow.commit()
        return await template_view(uow.session, retailer, event, locale, channel_)

    @router.get("/deliveries/{tracking}/notifications", tags=["notifications"])
    async def delivery_notifications(tracking: str, retailer: CurrentRetailer, uow: Uow) -> dict[str, Any]:
        """The notifications owed or sent for one of your deliveries: event, due time, status, channel."""
        delivery = (
            await uow.session.exec(
                select(Delivery).where(Delivery.retailer_id == retailer.id, Delivery.tracking == tracking)
            )
        ).first()
        if delivery is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such delivery")
        rows = (
            await uow.session.exec(
                select(Notification)
                .where(Notification.delivery_id == delivery.id, Notification.retailer_id == retailer.id)
                .order_by(col(Notification.due_at), col(Notification.id))
            )
        ).all()
        return {
            "tracking": tracking,
            "notifications": [
                {
                    "id": n.id,
                    "event": n.event,
                    "due_at": n.due_at.isoformat(),
                    "status": n.status,
                    "channel": n.channel,
                    "outbox_id": n.outbox_id,
                }
                for n in rows
            ],
        }

    return router


def install(app: FastAPI) -> None:
    """Wire notifications into the app: the template API and editor now, outreach and timing at start."""
    from notifications.editor import install as install_editor
    from notifications.scheduler import start_notifications

    app.include_router(build_router())
    install_editor(app)
    app.state.starters.append(start_notifications)
