"""Fragments and the event stream behind the console's live updates.

The browser listens on `/console/events` (server-sent events). A notice carries only ids; the
browser answers by fetching the fragment that changed (the inbox list, the thread, the context),
each read under the same retailer filter as the pages.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from console import live
from console.auth import CurrentUser
from console.pages import Filters, context_data, conversation_or_404, inbox_rows
from console.queries import retailers_of
from console.rendering import templates
from core.models import Role
from core.web import Ctx


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/fragments/inbox", response_class=HTMLResponse)
    async def inbox_fragment(
        request: Request, ctx: Ctx, user: CurrentUser, filters: Filters, selected: int | None = None
    ) -> Response:
        async with ctx.uow() as uow:
            rows = await inbox_rows(uow, user, filters)
            retailers = await retailers_of(uow.session, user.retailer_ids)
        return templates.TemplateResponse(
            request,
            "_inbox_list.html",
            {"rows": rows, "retailers": retailers, "filters": filters, "selected_id": selected},
        )

    @router.get("/fragments/conversations/{conversation_id}/thread", response_class=HTMLResponse)
    async def thread_fragment(
        request: Request, ctx: Ctx, user: CurrentUser, conversation_id: int
    ) -> Response:
        async with ctx.uow() as uow:
            view = await conversation_or_404(uow, user, conversation_id, ctx.clock())
        tz = view.retailer.timezone if view.retailer else "America/Toronto"
        return templates.TemplateResponse(request, "_thread.html", {"view": view, "tz": tz})

    @router.get("/fragments/conversations/{conversation_id}/context", response_class=HTMLResponse)
    async def context_fragment(
        request: Request, ctx: Ctx, user: CurrentUser, conversation_id: int, delivery: int | None = None
    ) -> Response:
        now = ctx.clock()
        async with ctx.uow() as uow:
            view = await conversation_or_404(uow, user, conversation_id, now, delivery)
            context = await context_data(uow, view.delivery, now) if view.delivery else None
        if context is None:
            return HTMLResponse('<p class="empty">No delivery is linked to this conversation yet.</p>')
        return templates.TemplateResponse(request, "_context.html", {"view": view, "context": context})

    @router.get("/events")
    async def events(request: Request, ctx: Ctx, user: CurrentUser) -> StreamingResponse:
        """Server-sent events: notices of the user's retailers only."""
        hub = live.hub(ctx)
        subscriber = hub.subscribe(user.retailer_ids, include_unassigned=user.role == Role.admin)
        return StreamingResponse(
            live.stream(hub, subscriber, request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router
