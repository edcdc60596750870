"""The Telegram channel's wiring: the webhook route, and the bot started only when the channel is on.

The channel is on when a bot token is configured (`Settings.telegram_token`: `TELEGRAM_BOT_TOKEN`, or a
placeholder outside production so development and tests run against a loopback Bot API). Everything
that needs aiogram lives in `channels/telegram_bot.py` and is imported by `start_telegram` only then:
aiogram costs a process tens of MB even with its types built on first use, which an SMS and WhatsApp
deployment does not pay.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from channels.media import media_fetchers
from channels.outbox_worker import register_rate_limit, senders, wake
from core.config import Settings
from core.logging import get_logger
from core.models import Channel

if TYPE_CHECKING:
    from fastapi import FastAPI

    from channels.telegram_bot import TelegramRuntime
    from core.context import AppContext

log = get_logger("doorstep.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
MAX_UPDATE_BYTES = 1_000_000
RUNTIME_COMPONENT = "telegram"


async def start_telegram(app: FastAPI, ctx: AppContext) -> Callable[[], Awaitable[None]] | None:
    """Starter for app.state.starters: builds the bot and registers the sender; closes it at shutdown.

    Without a token the channel stays off (the webhook answers 503, Telegram rows wait in the outbox
    for a process that has it). A malformed token leaves the channel off too, rather than keeping
    the whole app, and its other channels, from starting.
    """
    settings: Settings = app.state.settings
    if settings.telegram_token is None:
        log.info("telegram_off", reason="TELEGRAM_BOT_TOKEN is not set")
        return None
    from channels import telegram_bot

    try:
        runtime = telegram_bot.build_runtime(settings, telegram_bot.engine_handle(ctx))
    except telegram_bot.TokenValidationError:
        log.error("telegram_disabled", reason="TELEGRAM_BOT_TOKEN is not a bot token (digits:secret)")
        return None
    ctx.components[RUNTIME_COMPONENT] = runtime
    senders(ctx)[Channel.telegram] = runtime.sender
    media_fetchers(ctx)[Channel.telegram] = telegram_bot.TelegramMedia(runtime.bot)
    register_rate_limit(ctx, Channel.telegram, telegram_bot.telegram_limits)

    async def stop() -> None:
        await runtime.bot.session.close()

    return stop


def secret_matches(given: str | None, settings: Settings) -> bool:
    expected = settings.telegram_webhook_secret.get_secret_value()
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def build_webhook_router() -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.post("/webhooks/telegram", summary="Telegram Bot API webhook")
    async def telegram_webhook(request: Request) -> JSONResponse:
        ctx: AppContext = request.app.state.ctx
        if not secret_matches(request.headers.get(SECRET_HEADER), request.app.state.settings):
            log.warning("telegram_webhook_refused", reason="secret token")
            return JSONResponse({"detail": "bad or missing secret token"}, status_code=403)
        runtime: TelegramRuntime | None = ctx.components.get(RUNTIME_COMPONENT)
        if runtime is None:
            return JSONResponse({"detail": "the Telegram channel is not running"}, status_code=503)
        body = await request.body()
        if len(body) > MAX_UPDATE_BYTES:
            return JSONResponse({"detail": "update too large"}, status_code=413)
        try:
            update = runtime.parse_update(body)
        except ValidationError as exc:
            log.info("telegram_update_malformed", errors=exc.error_count())
            return JSONResponse({"detail": "malformed update"}, status_code=400)
        # An error raised by a handler propagates: the 500 makes Telegram retry, and the engine
        # handles the retried update_id once.
        await runtime.dispatcher.feed_update(runtime.bot, update)
        wake(ctx)  # the engine's replies are in the outbox: send them now
        return JSONResponse({"ok": True})

    return router


def install(app: FastAPI) -> None:
    """Wire the channel into the app: the webhook route now, the bot and sender at start."""
    app.include_router(build_webhook_router())
    app.state.starters.append(start_telegram)
