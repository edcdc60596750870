"""Doorstep: the FastAPI application factory and the command line.

`create_app()` is the composition root: settings, database, routers and background services are
built here and nowhere at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import col, func, select

from bot.engine import start_engine
from bot.privacy import build_router as build_privacy_router
from channels.media import MAX_SEND_BYTES, build_media_router
from channels.outbox_worker import install as install_outbox
from channels.sandbox import install as install_sandbox
from channels.sandbox import sandbox_enabled
from channels.telegram import install as install_telegram
from channels.twilio import install as install_twilio
from console.web import install as install_console
from core.config import Settings
from core.context import AppContext
from core.db import make_engine, make_sessionmaker, migrate
from core.logging import configure_logging, get_logger
from core.models import KeptEvent, OutboxMessage, OutboxStatus
from core.observability import EdgeMiddleware, Metrics
from core.redis import COMPONENT as REDIS_COMPONENT
from core.redis import SharedRedis
from core.resilience import install_outage_handlers, is_database_outage
from notifications.api import install as install_notifications
from scheduling import api as scheduling_api
from scheduling.changelog import start_change_webhooks

log = get_logger("doorstep.app")

# Components that later layers register: each is called with (app, ctx) when the app starts and
# may return an async callable to run at shutdown.
Starter = Callable[[FastAPI, AppContext], Any]


def build_context(settings: Settings, metrics: Metrics | None = None) -> AppContext:
    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
    return AppContext(
        settings=settings, engine=engine, sessionmaker=make_sessionmaker(engine), metrics=metrics or Metrics()
    )


def create_app(settings: Settings | None = None, *, ctx: AppContext | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)
    metrics = ctx.metrics if ctx is not None else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, settings.database_url)
        context = ctx or build_context(settings, metrics)
        app.state.ctx = context
        stoppers = []
        for start in app.state.starters:
            stopper = await start(app, context)
            if stopper is not None:
                stoppers.append(stopper)
        log.info("app_started", database=context.engine.dialect.name)
        try:
            yield
        finally:
            for stop in reversed(stoppers):
                await stop()
            if ctx is None:
                await context.engine.dispose()

    app = FastAPI(
        title="Doorstep",
        version="0.1.0",
        description="Conversational last-mile delivery assistant: route plans, recipient changes, channels.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.starters = [start_shared_redis, start_engine]
    install_outage_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Any, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": jsonable_errors(exc.errors())})

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics of this process (webhooks, replies, notifications, sends, queue depths)."""
        context: AppContext = request.app.state.ctx
        try:
            async with context.sessionmaker() as session:
                rows = await session.exec(
                    select(OutboxMessage.status, func.count()).group_by(col(OutboxMessage.status))
                )
                depth = dict(rows.all())
                kept = (await session.exec(select(func.count()).select_from(KeptEvent))).one()
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            depth = None  # the database is down: still serve this process's metrics, depth as last seen
        if depth is not None:
            for status in (OutboxStatus.pending, OutboxStatus.sending):
                metrics.queue_depth.labels(status.value).set(depth.get(status, 0))
            metrics.kept_events.set(kept)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/sandbox" if sandbox_enabled(settings) else "/docs")

    app.include_router(scheduling_api.build_router())
    app.include_router(build_privacy_router())
    app.state.starters.append(start_change_webhooks)
    install_console(app)
    install_twilio(app)
    install_outbox(app)
    install_telegram(app)
    install_sandbox(app)
    install_notifications(app)
    app.include_router(build_media_router())
    app.add_middleware(
        EdgeMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        uploads=[(CONSOLE_REPLY_PATH, MAX_SEND_BYTES + UPLOAD_FORM_OVERHEAD)],
    )
    return app


async def start_shared_redis(_app: FastAPI, ctx: AppContext) -> Callable[[], Any]:
    """Redis first, so every later component finds it (or its absence) in ctx.components."""
    shared = ctx.components.get(REDIS_COMPONENT)
    if not isinstance(shared, SharedRedis):
        shared = ctx.components[REDIS_COMPONENT] = SharedRedis(ctx.settings.redis_url)
    await shared.start()
    return shared.stop


def jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors
    ]


# --- command line --------------------------------------------------------------------------------


async def _with_context(settings: Settings, work: Callable[[AppContext], Any]) -> Any:
    """Run a command's work; the plan changes it commits (`import-plan`, `demo`) plan their
    notifications at once, as the server's would (the server's sweeper fires them when due)."""
    from notifications.outreach import make_event_handler

    await asyncio.to_thread(migrate, settings.database_url)
    ctx = build_context(settings)
    ctx.event_handlers.append(make_event_handler(ctx))
    try:
        return await work(ctx)
    finally:
        await ctx.engine.dispose()


# Open event streams (the console's live updates) never end by themselves: stop waiting for them.
SHUTDOWN_GRACE_SECONDS = 5
# an agent's reply may carry a picture or PDF: its path takes that much more than MAX_BODY_BYTES
CONSOLE_REPLY_PATH = re.compile(r"/console/conversations/\d+/reply")
UPLOAD_FORM_OVERHEAD = 64 * 1024  # the form's text fields and multipart framing


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    port = args.port or settings.port
    if args.workers > 1:
        # each worker process builds its own app from the environment (uvicorn needs an import string)
        uvicorn.run(
            "app:create_app",
            factory=True,
            host=args.host,
            port=port,
            workers=args.workers,
            log_level="warning",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        return 0
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    return 0


def cmd_retailer_create(args: argparse.Namespace, settings: Settings) -> int:
    from core.tenants import InvalidSlug, RetailerExists, create_retailer

    async def work(ctx: AppContext) -> tuple[str, str]:
        async with ctx.uow() as uow:
            retailer, key = await create_retailer(uow.session, args.slug, args.name)
            await uow.commit()
            return retailer.slug, key

    try:
        slug, key = asyncio.run(_with_context(settings, work))
    except (RetailerExists, InvalidSlug) as exc:
        print(f"error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"retailer": slug, "api_key": key}))
    return 0


def cmd_import_plan(args: argparse.Namespace, settings: Settings) -> int:
    from sqlmodel import select

    from core.models import Retailer
    from scheduling.plans import PlanRejected, import_plan

    payload = json.loads(Path(args.file).read_text())

    async def work(ctx: AppContext) -> int:
        async with ctx.uow() as uow:
            retailer = (
                await uow.session.exec(select(Retailer).where(Retailer.slug == args.retailer))
            ).first()
            if retailer is None:
                print(f"error: no retailer {args.retailer!r}", file=sys.stderr)
                return 1
            try:
                plan = await import_plan(uow, retailer, payload, speed_kmh=settings.urban_speed_kmh)
            except PlanRejected as exc:
                for problem in exc.problems:
                    print(f"error: {'.'.join(map(str, problem.loc))}: {problem.msg}", file=sys.stderr)
                return 2
            print(json.dumps({"plan": plan.id, "date": plan.day.isoformat()}))
            return 0

    result: int = asyncio.run(_with_context(settings, work))
    return result


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from scheduling.demo import load_demo

    async def work(ctx: AppContext) -> dict[str, Any]:
        from console.demo import load_demo_console

        summary = await load_demo(ctx, reset=args.reset)
        return summary | await load_demo_console(ctx)

    summary = asyncio.run(_with_context(settings, work))
    print(json.dumps(summary))
    return 0


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    from console.auth import UnknownRetailer, UserExists, create_user
    from core.models import Role

    async def work(ctx: AppContext) -> str:
        async with ctx.uow() as uow:
            _user, password = await create_user(
                uow.session,
                args.email,
                Role(args.role),
                args.retailer,
                password=args.password,
                name=args.name,
            )
            await uow.commit()
            return password

    try:
        password = asyncio.run(_with_context(settings, work))
    except (UserExists, UnknownRetailer, ValueError) as exc:
        print(f"error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    result = {"user": args.email.strip().lower(), "role": args.role, "retailers": args.retailer}
    if args.password is None:
        result["password"] = password
    print(json.dumps(result))
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    """Delete now what the retention policy no longer keeps (the leader does it daily)."""
    from core.retention import purge_expired

    async def work(ctx: AppContext) -> dict[str, int]:
        return (await purge_expired(ctx)).counts

    print(json.dumps(asyncio.run(_with_context(settings, work))))
    return 0


def cmd_telegram_polling(args: argparse.Namespace, settings: Settings) -> int:
    from channels.telegram_bot import TelegramOff, run_polling

    try:
        asyncio.run(run_polling(create_app(settings)))
    except TelegramOff as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_understand(args: argparse.Namespace, settings: Settings) -> int:
    """JSON lines on stdin -> one JSON line each: the intent and time span a message asks for."""
    from bot.understanding.cli import run

    run(sys.stdin, sys.stdout, timings=args.timings)
    return 0


def cmd_telegram_set_webhook(args: argparse.Namespace, settings: Settings) -> int:
    from channels.telegram_bot import TelegramOff, set_webhook

    try:
        print(json.dumps({"webhook": asyncio.run(set_webhook(settings))}))
    except TelegramOff as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="Doorstep command line")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the app with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL only)")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="load the demo dataset (idempotent)")
    demo.add_argument("--reset", action="store_true", help="drop the demo retailers' data first")
    demo.set_defaults(func=cmd_demo)

    imp = sub.add_parser("import-plan", help="import a route plan file (VROOM JSON)")
    imp.add_argument("file")
    imp.add_argument("--retailer", required=True)
    imp.set_defaults(func=cmd_import_plan)

    purge = sub.add_parser("purge", help="delete now what the retention policy no longer keeps")
    purge.set_defaults(func=cmd_purge)

    polling = sub.add_parser("telegram-polling", help="development: pull Telegram updates (no webhook)")
    polling.set_defaults(func=cmd_telegram_polling)
    set_webhook = sub.add_parser("telegram-set-webhook", help="register PUBLIC_URL/webhooks/telegram")
    set_webhook.set_defaults(func=cmd_telegram_set_webhook)

    understand = sub.add_parser("understand", help="read messages as JSON lines, print what each asks for")
    understand.add_argument("--timings", action="store_true", help="add each message's elapsed_ms")
    understand.set_defaults(func=cmd_understand)

    retailer = sub.add_parser("retailer", help="manage retailers")
    retailer_sub = retailer.add_subparsers(dest="action", required=True)
    create = retailer_sub.add_parser("create", help="create a retailer and print its API key")
    create.add_argument("slug")
    create.add_argument("--name", required=True)
    create.set_defaults(func=cmd_retailer_create)

    user = sub.add_parser("user", help="manage console users")
    user_sub = user.add_subparsers(dest="action", required=True)
    user_create = user_sub.add_parser("create", help="create a console user; prints a generated password")
    user_create.add_argument("email")
    user_create.add_argument("--role", required=True, choices=["agent", "retailer_admin", "admin"])
    user_create.add_argument("--retailer", action="append", default=[], help="retailer slug (repeatable)")
    user_create.add_argument("--password", default=None, help="default: a generated one, printed once")
    user_create.add_argument("--name", default="")
    user_create.set_defaults(func=cmd_user_create)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    result: int = args.func(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
