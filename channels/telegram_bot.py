"""The Telegram channel's aiogram 3 side: updates in, outbox sender out, polling and setWebhook.

Handlers only translate: an update becomes an `InboundMessage` for the conversation engine
(`ctx.components["engine"]`), which stores it, de-duplicates it by update id and writes its replies to
the outbox; `TelegramSender` sends outbox rows with inline keyboards; `TelegramMedia` downloads a photo,
voice message, audio, video or document a user sent (getFile) when an agent opens it. Only
`channels/telegram.py` imports this module, and only when the channel is on: aiogram costs a process
tens of MB even with its types built on first use (`channels/aiogram_models.py`).
"""

from __future__ import annotations

import channels.aiogram_models  # noqa: F401 - before aiogram: its types are built when first used

# isort: split
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from aiogram.utils.token import TokenValidationError as TokenValidationError  # start_telegram catches it

from bot.messages import Attachment, InboundMessage, OutboundMessage
from channels.base import PermanentSendError, SendResult, TransientSendError
from channels.media import (
    MAX_MEDIA_BYTES,
    PICTURE_TYPES,
    Media,
    MediaUnavailable,
    normal_content_type,
    public_media_url,
)
from channels.ratelimit import Limit, RateLimited
from channels.telegram import RUNTIME_COMPONENT
from channels.telegram_format import InvalidCallbackData, TelegramRendering, parse_start_token, render
from core.config import Settings
from core.logging import get_logger
from core.models import Channel, OutboxMessage

if TYPE_CHECKING:
    from fastapi import FastAPI

    from core.context import AppContext

log = get_logger("doorstep.telegram")

Handle = Callable[[InboundMessage], Awaitable[list[OutboundMessage]]]
CHAT_ID = re.compile(r"^-?\d{1,20}$")
OVERALL_PER_SECOND = 30.0
PER_CHAT_INTERVAL = 1.0


# --- inbound: updates become InboundMessages ------------------------------------------------------


def attachments_of(message: Message) -> tuple[Attachment, ...]:
    """A photo (its largest size: Telegram sends JPEG), a voice message, an audio file, a video or a
    document, by file id."""
    if message.photo:
        largest = max(message.photo, key=lambda size: size.width * size.height)
        return (Attachment("image/jpeg", largest.file_id),)
    if message.voice is not None:  # Telegram records voice messages as OGG/Opus
        return (
            Attachment(normal_content_type(message.voice.mime_type or "audio/ogg"), message.voice.file_id),
        )
    for sent in (message.audio, message.video, message.document):
        if sent is not None:
            return (Attachment(normal_content_type(sent.mime_type), sent.file_id),)
    return ()


def inbound_from_message(message: Message, update_id: int) -> InboundMessage | None:
    """A private chat's message; None for groups and channels, where the bot has nothing to say."""
    if message.chat.type != "private":
        return None
    text = message.text or message.caption or ""
    user = message.from_user
    contact_phone = None
    if message.contact is not None and user is not None and message.contact.user_id == user.id:
        contact_phone = message.contact.phone_number  # Telegram vouches for the sender's own number
    return InboundMessage(
        channel=Channel.telegram,
        sender=str(message.chat.id),
        text=text,
        provider_id=str(update_id),
        received_at=message.date,
        contact_phone=contact_phone,
        start_token=parse_start_token(text) if text.startswith("/start") else None,
        sender_name=user.full_name if user is not None else "",
        attachments=attachments_of(message),
    )


def inbound_from_callback(query: CallbackQuery, update_id: int) -> InboundMessage | None:
    if not query.data:
        return None
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    return InboundMessage(
        channel=Channel.telegram,
        sender=str(chat_id),
        payload=query.data,
        provider_id=str(update_id),
        sender_name=query.from_user.full_name,
    )


def build_router(handle: Handle) -> Router:
    """The bot's handlers. No magic filters: aiogram runs those in a thread, and we branch in Python."""
    router = Router(name="doorstep")

    @router.message()
    async def on_message(message: Message, event_update: Update) -> None:
        inbound = inbound_from_message(message, event_update.update_id)
        if inbound is not None:
            await handle(inbound)

    @router.callback_query()
    async def on_callback(query: CallbackQuery, event_update: Update) -> None:
        # Answer first so the button stops spinning even if the engine fails; a retried update
        # answers again, which Telegram refuses as too old: nothing to do then.
        with suppress(TelegramAPIError):
            await query.answer()
        inbound = inbound_from_callback(query, event_update.update_id)
        if inbound is not None:
            await handle(inbound)

    return router


def engine_handle(ctx: AppContext) -> Handle:
    """Looks the engine up at each update, so the router can be built before the engine is."""

    async def handle(message: InboundMessage) -> list[OutboundMessage]:
        engine = ctx.components.get("engine")
        if engine is None:
            raise RuntimeError("no conversation engine is registered")
        replies: list[OutboundMessage] = await engine.handle(message)
        return replies

    return handle


# --- outbound: the outbox sender ------------------------------------------------------------------


def telegram_limits(message: OutboxMessage) -> list[Limit]:
    """The outbox worker's pacing for Telegram: about 30 messages/s overall and 1/s per chat."""
    return [
        Limit("telegram", OVERALL_PER_SECOND, burst=OVERALL_PER_SECOND),
        Limit(f"telegram:{message.to_address}", 1.0 / PER_CHAT_INTERVAL),
    ]


def reply_markup(rendering: TelegramRendering) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | None:
    if rendering.contact_button is not None:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=rendering.contact_button, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if rendering.inline_keyboard:
        return InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=b.text, callback_data=b.callback_data) for b in row]
                for row in rendering.inline_keyboard
            ]
        )
    return None


class TelegramSender:
    """Sends outbox rows of Channel.telegram with sendMessage (sendPhoto or sendDocument for an agent's
    file, which Telegram fetches from `public_url`); implements channels.base.Sender.

    The worker paces sends with `telegram_limits`; after a 429 the chat waits the `retry_after`
    Telegram gave, and its other messages wait too (RateLimited spends no attempt).
    """

    def __init__(self, bot: Bot, public_url: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.bot = bot
        self.public_url = public_url
        self.clock = clock
        self._paused_until: dict[str, float] = {}

    def pause(self, chat: str, seconds: float) -> None:
        now = self.clock()
        if len(self._paused_until) > 10_000:
            self._paused_until = {c: t for c, t in self._paused_until.items() if t > now}
        self._paused_until[chat] = max(self._paused_until.get(chat, 0.0), now + seconds)

    async def send(self, message: OutboxMessage) -> SendResult:
        if not CHAT_ID.match(message.to_address):
            raise PermanentSendError("the address is not a Telegram chat id")
        chat_id = int(message.to_address)
        if not message.body.strip() and not message.attachments:
            raise PermanentSendError("an empty message cannot be sent on Telegram")
        try:
            rendering = render(message.body, message.options) if message.body.strip() else None
        except InvalidCallbackData as exc:
            raise PermanentSendError(str(exc)) from exc
        chat = str(chat_id)
        waiting = self._paused_until.get(chat, 0.0) - self.clock()
        if waiting > 0:
            raise RateLimited(waiting)
        try:
            if message.attachments:
                sent = await self._send_file(chat_id, message.attachments[0], rendering)
            else:
                assert rendering is not None
                sent = await self.bot.send_message(
                    chat_id=chat_id,
                    text=rendering.html,
                    parse_mode="HTML",
                    reply_markup=reply_markup(rendering),
                )
        except TelegramRetryAfter as exc:
            self.pause(chat, exc.retry_after)
            raise TransientSendError("telegram flood control (429)", retry_after=exc.retry_after) from exc
        except TelegramForbiddenError as exc:
            raise PermanentSendError("the recipient blocked the bot or never started it (403)") from exc
        except (TelegramServerError, TelegramNetworkError) as exc:
            raise TransientSendError(f"telegram unavailable: {type(exc).__name__}") from exc
        except TelegramBadRequest as exc:
            raise PermanentSendError(f"telegram refused the message: {exc.message[:200]}") from exc
        except TelegramAPIError as exc:
            raise TransientSendError(f"telegram error: {type(exc).__name__}") from exc
        return SendResult(provider_id=f"{chat_id}:{sent.message_id}")

    async def _send_file(
        self, chat_id: int, attachment: dict[str, str], rendering: TelegramRendering | None
    ) -> Message:
        """An agent's picture (sendPhoto) or PDF (sendDocument), by the URL Telegram fetches it from,
        with the reply as its caption: the console keeps such a reply within a caption's length
        (`telegram_format.CAPTION_LIMIT`), so one call sends both and a retry never sends the file twice."""
        url = public_media_url(self.public_url, attachment["ref"])
        caption, parse_mode = (rendering.html, "HTML") if rendering is not None else (None, None)
        if attachment["content_type"] in PICTURE_TYPES:
            return await self.bot.send_photo(
                chat_id=chat_id, photo=url, caption=caption, parse_mode=parse_mode
            )
        return await self.bot.send_document(
            chat_id=chat_id, document=url, caption=caption, parse_mode=parse_mode
        )


class TelegramMedia:
    """Downloads a file a user sent: getFile for its path, then the Bot API's file URL (with the token,
    which stays on the server)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def fetch(self, ref: str, content_type: str) -> Media:
        try:
            found = await self.bot.get_file(ref)
            if (found.file_size or 0) > MAX_MEDIA_BYTES or not found.file_path:
                raise MediaUnavailable("Telegram cannot give this file (too large or gone)")
            content = await self.bot.download_file(found.file_path)
        except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as exc:
            raise MediaUnavailable(f"Telegram did not give the file: {type(exc).__name__}") from exc
        if content is None:
            raise MediaUnavailable("Telegram gave no content")
        return Media(content_type, content.read())


# --- wiring: bot, dispatcher, polling, setWebhook ---------------------------------------------


class TelegramOff(RuntimeError):
    """The channel is not configured (no bot token), so there is no bot to poll or point."""


@dataclass
class TelegramRuntime:
    bot: Bot
    dispatcher: Dispatcher
    sender: TelegramSender

    def parse_update(self, body: bytes) -> Update:
        """A webhook's body as an aiogram Update; raises pydantic's ValidationError when malformed."""
        return Update.model_validate_json(body, context={"bot": self.bot})


def build_bot(settings: Settings) -> Bot:
    token = settings.telegram_token
    if token is None:
        raise TelegramOff("TELEGRAM_BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/")))
    return Bot(token.get_secret_value(), session=session)


def build_runtime(settings: Settings, handle: Handle) -> TelegramRuntime:
    bot = build_bot(settings)
    dispatcher = Dispatcher(disable_fsm=True)  # dialog state is the engine's, never aiogram's FSM
    dispatcher.include_router(build_router(handle))
    return TelegramRuntime(bot=bot, dispatcher=dispatcher, sender=TelegramSender(bot, settings.public_url))


async def run_polling(app: FastAPI, **polling: Any) -> None:
    """`python app.py telegram-polling`: the app's services started, updates pulled with getUpdates."""
    async with app.router.lifespan_context(app):
        runtime: TelegramRuntime | None = app.state.ctx.components.get(RUNTIME_COMPONENT)
        if runtime is None:
            raise TelegramOff("the Telegram channel is off: set a valid TELEGRAM_BOT_TOKEN")
        await runtime.bot.delete_webhook(drop_pending_updates=False)
        log.info("telegram_polling_started")
        await runtime.dispatcher.start_polling(runtime.bot, close_bot_session=False, **polling)


async def set_webhook(settings: Settings) -> str:
    """Point Telegram at `PUBLIC_URL/webhooks/telegram` with the secret token; answers the URL."""
    url = settings.public_url.rstrip("/") + "/webhooks/telegram"
    bot = build_bot(settings)
    try:
        await bot.set_webhook(
            url,
            secret_token=settings.telegram_webhook_secret.get_secret_value(),
            allowed_updates=["message", "callback_query"],
        )
    finally:
        await bot.session.close()
    return url
