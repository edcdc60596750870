"""The console's HTML pages: the three-pane inbox and conversation view, their forms, the dashboard.

Pages are rendered on the server (Jinja2, autoescaped) and work without JavaScript: every action is
a form posted with the session's CSRF token, answered by a redirect (or the page again with the
error, e.g. 409 with the windows still offered). console.js adds live updates and shortcuts.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi import Path as FastApiPath
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from channels.media import (
    MAX_SEND_BYTES,
    OUTGOING_REF,
    Media,
    MediaUnavailable,
    file_headers,
    media_fetchers,
    outgoing_file,
)
from console import actions, dashboard, saved_replies
from console.auth import AdminUser, ConsoleUser, CurrentUser
from console.pictures import MapPoint, map_svg, timeline_from_plan, timeline_svg
from console.queries import (
    ConversationView,
    DeliveryContext,
    InboxFilters,
    InboxRow,
    NotFound,
    delivery_context,
    describe_change,
    inbox,
    load_conversation,
    retailers_of,
    visible_message,
)
from console.rendering import templates
from core.context import AppContext
from core.db import UnitOfWork
from core.logging import get_logger
from core.models import Channel, Delivery, Role, RoutePlan
from core.web import Ctx
from scheduling import service
from scheduling.repository import load_plan
from scheduling.service import PickupOption, SchedulingError, WindowOffer

log = get_logger("doorstep.console")


DONE_MESSAGES = {
    "taken_over": "You own this conversation: the bot is silent until you hand back.",
    "handed_back": "Handed back: the bot answers again.",
    "assigned": "Given to your colleague: they own this conversation now.",
    "closed": "Conversation closed.",
    "replied": "Reply queued; its delivery receipt appears below.",
    "noted": "Note added (agents only).",
    "rescheduled": "Delivery rescheduled; the change log records you.",
    "redirected": "Delivery redirected to the pickup point.",
    "white_glove": "White-glove visit booked.",
    "white_glove_called_off": "White-glove setup called off; the parcel keeps its window.",
    "instructions": "Instructions saved.",
    "erased": "The recipient's personal data was erased, with their conversations.",
}


def _filters(
    needs: str | None,
    mine: str | None,
    channel: str | None,
    retailer: str | None,
    status_: str | None,
    q: str | None,
) -> InboxFilters:
    chosen_channel = Channel(channel) if channel and channel in Channel.__members__ else None
    retailer_id = int(retailer) if retailer and retailer.isdigit() else None
    return InboxFilters(
        needs_person=needs == "1",
        mine=mine == "1",
        channel=chosen_channel,
        retailer_id=retailer_id,
        status=status_ if status_ in ("active", "closed", "all") else "active",
        q=(q or "").strip()[:100],
    )


def filter_params(
    needs: Annotated[str | None, Query(max_length=1)] = None,
    mine: Annotated[str | None, Query(max_length=1)] = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    retailer: Annotated[str | None, Query(max_length=12)] = None,
    status: Annotated[str | None, Query(max_length=8)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> InboxFilters:
    return _filters(needs, mine, channel, retailer, status, q)


Filters = Annotated[InboxFilters, Depends(filter_params)]


async def inbox_rows(uow: UnitOfWork, user: ConsoleUser, filters: InboxFilters) -> list[InboxRow]:
    return await inbox(
        uow.session, user.retailer_ids, user.id, filters, include_unassigned=user.role == Role.admin
    )


@dataclass
class Offers:
    windows: list[WindowOffer]
    pickups: list[PickupOption]
    white_glove: list[WindowOffer]
    problems: list[str]


async def _offers(uow: UnitOfWork, delivery: Delivery, now: datetime) -> Offers:
    """What the agent can offer, from the same scheduling service as the bot."""
    offers = Offers([], [], [], [])
    calls: list[tuple[str, Any]] = [
        ("windows", service.offer_windows(uow, delivery, now=now)),
        ("pickups", service.pickup_options(uow, delivery, now=now)),
    ]
    if delivery.white_glove:
        calls.append(("white_glove", service.white_glove_slots(uow, delivery, now=now)))
    for name, call in calls:
        try:
            setattr(offers, name, list(await call))
        except SchedulingError as exc:
            offers.problems.append(str(exc))
        except NotImplementedError:
            offers.problems.append("The scheduling service cannot offer changes yet.")
    return offers


async def context_data(
    uow: UnitOfWork, delivery: Delivery, now: datetime, alternatives: list[WindowOffer] | None = None
) -> dict[str, Any]:
    """The delivery's context pane: facts, change log, timeline, map and the offers to act with."""
    info: DeliveryContext = await delivery_context(uow.session, delivery)
    offers = await _offers(uow, delivery, now)
    if alternatives:
        offers.windows = alternatives
    timeline: Markup | None = None
    plan = await uow.session.get(RoutePlan, delivery.plan_id) if delivery.plan_id else None
    if plan is not None:
        loaded = await load_plan(uow.session, plan)
        route = loaded.route_of(delivery.id or 0)
        if route is not None:
            stops = [
                (
                    d.tracking,
                    spec.window,
                    stop.arrival,
                    spec.service,
                    spec.done,
                    d.id == delivery.id,
                )
                for stop, d, spec in zip(route.stops, route.deliveries, route.specs, strict=True)
            ]
            timeline = timeline_svg(
                timeline_from_plan(
                    day=plan.day,
                    timezone=plan.timezone,
                    vehicle_name=route.vehicle.description or f"vehicle {route.vehicle.vroom_id}",
                    shift=route.spec.shift,
                    stops=stops,
                    offers=[(o.start, o.end) for o in offers.windows],
                    now=now,
                )
            )
    points = [MapPoint(delivery.lon, delivery.lat, delivery.address or delivery.tracking, "address")]
    for point, _distance in info.nearest_points:
        kind = "chosen" if point.id == delivery.pickup_point_id else "pickup"
        points.append(MapPoint(point.lon, point.lat, point.name, kind))
    return {
        "info": info,
        "offers": offers,
        "timeline": timeline,
        "map": map_svg(points),
        "changes": [(c, describe_change(c)) for c in info.changes],
    }


async def conversation_or_404(
    uow: UnitOfWork, user: ConsoleUser, conversation_id: int, now: datetime, delivery_id: int | None = None
) -> ConversationView:
    """The conversation as the user may see it (admins also see unassigned ones), else 404."""
    try:
        return await load_conversation(
            uow.session,
            conversation_id,
            user.retailer_ids,
            include_unassigned=user.role == Role.admin,
            delivery_id=delivery_id,
            now=now,
        )
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such conversation") from None


async def conversation_data(
    ctx: AppContext,
    user: ConsoleUser,
    conversation_id: int,
    filters: InboxFilters,
    delivery_id: int | None = None,
    alternatives: list[WindowOffer] | None = None,
) -> dict[str, Any]:
    now = ctx.clock()
    async with ctx.uow() as uow:
        view = await conversation_or_404(uow, user, conversation_id, now, delivery_id)
        rows = await inbox_rows(uow, user, filters)
        retailers = await retailers_of(uow.session, user.retailer_ids)
        context = await context_data(uow, view.delivery, now, alternatives) if view.delivery else None
        offered_replies = await saved_replies.offered(uow.session, view, user)
        assignable = (
            [
                u
                for u in await actions.colleagues(uow, view.conversation)
                if u.id != view.conversation.assignee_id
            ]
            if actions.may_give_away(user, view.conversation)
            else []
        )
    blocker = actions.reply_blocker(view.conversation, view.recipient, now)
    return {
        "view": view,
        "rows": rows,
        "retailers": retailers,
        "filters": filters,
        "context": context,
        "blocker": blocker,
        "mine": view.conversation.assignee_id == user.id,
        "reply_token": secrets.token_urlsafe(16),
        "saved_replies": offered_replies,
        "assignable": assignable,
        "personal_data": actions.may_handle_personal_data(user) and view.conversation.retailer_id is not None,
        "now": now,
        "active": "inbox",
        "selected_id": conversation_id,
    }


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("", response_class=HTMLResponse)
    async def inbox_page(
        request: Request, ctx: Ctx, user: CurrentUser, filters: Filters, done: str | None = None
    ) -> Response:
        async with ctx.uow() as uow:
            rows = await inbox_rows(uow, user, filters)
            retailers = await retailers_of(uow.session, user.retailer_ids)
        return templates.TemplateResponse(
            request,
            "inbox.html",
            {
                "rows": rows,
                "retailers": retailers,
                "filters": filters,
                "view": None,
                "active": "inbox",
                "selected_id": None,
                "now": ctx.clock(),
                "done": DONE_MESSAGES.get(done or ""),
            },
        )

    @router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
    async def conversation_page(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        filters: Filters,
        conversation_id: int,
        delivery: int | None = None,
        done: str | None = None,
    ) -> Response:
        data = await conversation_data(ctx, user, conversation_id, filters, delivery)
        data["done"] = DONE_MESSAGES.get(done or "")
        return templates.TemplateResponse(request, "inbox.html", data)

    async def _after(
        request: Request,
        ctx: AppContext,
        user: ConsoleUser,
        conversation_id: int,
        done: str,
        work: Callable[[], Awaitable[Any]],
        *,
        delivery_id: int | None = None,
    ) -> Response:
        """Run an action; on success redirect back (PRG), on refusal show the page with the reason."""
        filters = _filters(
            *(request.query_params.get(k) for k in ("needs", "mine", "channel", "retailer", "status", "q"))
        )
        try:
            await work()
        except NotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such conversation or delivery") from None
        except actions.ActionRefused as exc:
            return await _error_page(
                request, ctx, user, conversation_id, filters, str(exc), exc.status_code, delivery_id
            )
        except (service.WindowUnavailable, service.SlotUnavailable) as exc:
            return await _error_page(
                request, ctx, user, conversation_id, filters, str(exc), 409, delivery_id, exc.alternatives
            )
        except service.InvalidRequest as exc:
            return await _error_page(request, ctx, user, conversation_id, filters, str(exc), 422, delivery_id)
        except SchedulingError as exc:
            return await _error_page(request, ctx, user, conversation_id, filters, str(exc), 409, delivery_id)
        query = filters.query_string()
        target = f"/console/conversations/{conversation_id}?done={done}"
        if delivery_id:
            target += f"&delivery={delivery_id}"
        if query:
            target += "&" + query
        return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)

    async def _error_page(
        request: Request,
        ctx: AppContext,
        user: ConsoleUser,
        conversation_id: int,
        filters: InboxFilters,
        error: str,
        code: int,
        delivery_id: int | None,
        alternatives: list[WindowOffer] | None = None,
    ) -> Response:
        data = await conversation_data(ctx, user, conversation_id, filters, delivery_id, alternatives)
        data["error"] = error
        data["alternatives"] = bool(alternatives)
        return templates.TemplateResponse(request, "inbox.html", data, status_code=code)

    @router.post("/conversations/{conversation_id}/take-over")
    async def take_over(request: Request, ctx: Ctx, user: CurrentUser, conversation_id: int) -> Response:
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "taken_over",
            lambda: actions.take_over(ctx, user, conversation_id),
        )

    @router.post("/conversations/{conversation_id}/assign")
    async def assign(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        assignee_id: Annotated[int, Form(ge=1)],
    ) -> Response:
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "assigned",
            lambda: actions.assign(ctx, user, conversation_id, assignee_id),
        )

    @router.post("/conversations/{conversation_id}/hand-back")
    async def hand_back(request: Request, ctx: Ctx, user: CurrentUser, conversation_id: int) -> Response:
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "handed_back",
            lambda: actions.hand_back(ctx, user, conversation_id),
        )

    @router.post("/conversations/{conversation_id}/close")
    async def close(request: Request, ctx: Ctx, user: CurrentUser, conversation_id: int) -> Response:
        return await _after(
            request, ctx, user, conversation_id, "closed", lambda: actions.close(ctx, user, conversation_id)
        )

    @router.post("/conversations/{conversation_id}/personal-data/export")
    async def export_personal_data(
        request: Request, ctx: Ctx, user: CurrentUser, conversation_id: int
    ) -> Response:
        """The recipient's data as a JSON download, for the agent to send them (an access request)."""
        exported: dict[str, Any] = {}

        async def work() -> None:
            exported.update(await actions.export_personal_data(ctx, user, conversation_id))

        refused = await _after(request, ctx, user, conversation_id, "", work)
        if not exported:
            return refused
        return Response(
            json.dumps(exported, ensure_ascii=False, indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="personal-data-{conversation_id}.json"'},
        )

    @router.post("/conversations/{conversation_id}/personal-data/erase")
    async def erase_personal_data(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        confirm: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        async def work() -> None:
            if confirm != "yes":
                raise actions.InvalidInput("Tick the box to confirm: an erasure cannot be undone.")
            await actions.erase_personal_data(ctx, user, conversation_id)

        answer = await _after(request, ctx, user, conversation_id, "erased", work)
        if answer.status_code != status.HTTP_303_SEE_OTHER:
            return answer
        return RedirectResponse("/console?done=erased", status_code=status.HTTP_303_SEE_OTHER)

    @router.post("/conversations/{conversation_id}/reply")
    async def reply(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        text: Annotated[str, Form(max_length=5000)] = "",
        reply_token: Annotated[str, Form(max_length=64)] = "",
        mode: Annotated[str, Form(max_length=8)] = "reply",
        file: Annotated[UploadFile | None, File(description="a JPEG, PNG or GIF picture or a PDF")] = None,
    ) -> Response:
        upload = None
        if file is not None and file.filename:  # a form without a chosen file still sends an empty part
            upload = actions.Upload(await file.read(MAX_SEND_BYTES + 1), file.filename)
        if mode == "note" and upload is not None:

            async def refuse() -> int:
                raise actions.InvalidInput("A note cannot carry a file: choose Reply to send it.")

            return await _after(request, ctx, user, conversation_id, "noted", refuse)
        if mode == "note":
            return await _after(
                request,
                ctx,
                user,
                conversation_id,
                "noted",
                lambda: actions.add_note(ctx, user, conversation_id, text),
            )
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "replied",
            lambda: actions.reply(ctx, user, conversation_id, text, reply_token, upload),
        )

    @router.post("/conversations/{conversation_id}/note")
    async def note(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        text: Annotated[str, Form(max_length=5000)] = "",
    ) -> Response:
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "noted",
            lambda: actions.add_note(ctx, user, conversation_id, text),
        )

    @router.post("/conversations/{conversation_id}/deliveries/{delivery_id}/reschedule")
    async def reschedule(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        delivery_id: int,
        window: Annotated[str, Form(max_length=120)] = "",
    ) -> Response:
        await _visible_conversation(ctx, user, conversation_id)
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "rescheduled",
            lambda: actions.reschedule(ctx, user, delivery_id, window, conversation_id),
            delivery_id=delivery_id,
        )

    @router.post("/conversations/{conversation_id}/deliveries/{delivery_id}/redirect")
    async def redirect(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        delivery_id: int,
        pickup_point_id: Annotated[int, Form()] = 0,
    ) -> Response:
        await _visible_conversation(ctx, user, conversation_id)
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "redirected",
            lambda: actions.redirect(ctx, user, delivery_id, pickup_point_id, conversation_id),
            delivery_id=delivery_id,
        )

    @router.post("/conversations/{conversation_id}/deliveries/{delivery_id}/white-glove")
    async def white_glove(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        delivery_id: int,
        window: Annotated[str, Form(max_length=120)] = "",
    ) -> Response:
        await _visible_conversation(ctx, user, conversation_id)
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "white_glove",
            lambda: actions.book_white_glove(ctx, user, delivery_id, window, conversation_id),
            delivery_id=delivery_id,
        )

    @router.post("/conversations/{conversation_id}/deliveries/{delivery_id}/white-glove/call-off")
    async def call_off_white_glove(
        request: Request, ctx: Ctx, user: CurrentUser, conversation_id: int, delivery_id: int
    ) -> Response:
        await _visible_conversation(ctx, user, conversation_id)
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "white_glove_called_off",
            lambda: actions.call_off_white_glove(ctx, user, delivery_id, conversation_id),
            delivery_id=delivery_id,
        )

    @router.post("/conversations/{conversation_id}/deliveries/{delivery_id}/instructions")
    async def instructions(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        delivery_id: int,
        instructions: Annotated[str, Form(max_length=600)] = "",
    ) -> Response:
        await _visible_conversation(ctx, user, conversation_id)
        return await _after(
            request,
            ctx,
            user,
            conversation_id,
            "instructions",
            lambda: actions.set_instructions(ctx, user, delivery_id, instructions, conversation_id),
            delivery_id=delivery_id,
        )

    async def _visible_conversation(ctx: AppContext, user: ConsoleUser, conversation_id: int) -> None:
        async with ctx.uow() as uow:
            await conversation_or_404(uow, user, conversation_id, ctx.clock())

    @router.get(
        "/conversations/{conversation_id}/messages/{message_id}/attachments/{index}",
        summary="A picture or file of a message: the recipient's, fetched from the channel, or an agent's",
    )
    async def attachment(
        ctx: Ctx,
        user: CurrentUser,
        conversation_id: int,
        message_id: int,
        index: Annotated[int, FastApiPath(ge=0, le=9)],
    ) -> Response:
        """The content, through the app: the channel's credentials never reach the browser, and only
        pictures and sound are shown inline (anything else downloads, sandboxed)."""
        async with ctx.uow() as uow:  # one query, not the whole conversation page, for each picture shown
            message = await visible_message(
                uow.session,
                conversation_id,
                message_id,
                user.retailer_ids,
                include_unassigned=user.role == Role.admin,
            )
            if message is None or index >= len(message.attachments):
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such attachment")
            kept = message.attachments[index]
            sent = await outgoing_file(uow.session, kept["ref"])
        if kept["ref"].startswith(OUTGOING_REF):
            if sent is None or sent.conversation_id != conversation_id:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "the file is no longer kept")
            media = Media(sent.content_type, sent.content)
        else:
            media = await _from_channel(ctx, message.channel, kept)
        headers = {
            "Cache-Control": "private, max-age=3600",
            **file_headers(media.content_type, f"attachment-{message_id}-{index + 1}"),
        }
        return Response(media.content, media_type=media.content_type, headers=headers)

    async def _from_channel(ctx: AppContext, channel: Channel, kept: dict[str, str]) -> Media:
        fetcher = media_fetchers(ctx).get(channel)
        if fetcher is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"the {channel} channel is not set up here"
            )
        try:
            return await fetcher.fetch(kept["ref"], kept["content_type"])
        except MediaUnavailable as exc:
            log.warning("attachment_unavailable", channel=str(channel), reason=str(exc))
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"the channel did not give it: {exc}") from None

    @router.get("/dashboard", response_class=HTMLResponse)
    async def dashboard_page(
        request: Request,
        ctx: Ctx,
        user: AdminUser,
        retailer: Annotated[str | None, Query(max_length=12)] = None,
        days: Annotated[int, Query(ge=1, le=90)] = 14,
    ) -> Response:
        retailer_id = int(retailer) if retailer and retailer.isdigit() else None
        if retailer_id is not None and retailer_id not in user.retailer_ids:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such retailer")
        ids = frozenset({retailer_id}) if retailer_id is not None else user.retailer_ids
        async with ctx.uow() as uow:
            retailers = await retailers_of(uow.session, user.retailer_ids)
            figures = await dashboard.daily_figures(uow.session, ids, days=days, now=ctx.clock())
        return templates.TemplateResponse(
            request,
            "dashboard.html",
            {
                "retailers": retailers,
                "retailer_id": retailer_id,
                "days": days,
                "figures": figures,
                "charts": dashboard.charts(figures),
                "active": "dashboard",
            },
        )

    return router
