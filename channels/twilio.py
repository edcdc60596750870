"""SMS and WhatsApp through Twilio: the signed webhooks in, the REST API out.

Inbound: `POST /webhooks/twilio/messages` checks `X-Twilio-Signature` against the URL Twilio called
(rebuilt from PUBLIC_URL), turns the form into an `InboundMessage`, hands it to the conversation
engine (which stores it and writes its replies to the outbox) and answers an empty TwiML
`<Response/>` at once; the outbox worker sends the replies through the REST API.
`POST /webhooks/twilio/status` moves the outbox row's status forward only. Pictures and files
(`NumMedia`, `MediaUrl{N}`, `MediaContentType{N}`) are kept as the URLs Twilio gives; `TwilioMedia`
fetches one, with the account's credentials, when an agent opens the conversation.

Outbound: `TwilioSender` renders a row for SMS or WhatsApp, sends it from the retailer's own number
or the shared one with the real `twilio` client, and maps Twilio's errors to the sender port's.
The client reaches `TWILIO_API_URL` through an HTTP client that swaps scheme and host (twilio 9 has
no base-URL setting).
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from sqlmodel import col, select
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm
from twilio.rest import Client

from bot.messages import Attachment, InboundMessage
from channels import rendering
from channels.base import OutcomeUnknownError, PermanentSendError, SendResult, TransientSendError
from channels.media import (
    MAX_MEDIA_BYTES,
    Media,
    MediaUnavailable,
    media_fetchers,
    normal_content_type,
    public_media_url,
)
from channels.outbox_worker import advance_status, rate_limiter, senders, wake
from channels.ratelimit import Limit
from core.config import Settings
from core.context import AppContext
from core.logging import get_logger
from core.models import Channel, Conversation, OutboxMessage, OutboxStatus, Recipient, Retailer
from core.phones import InvalidPhone, to_e164

log = get_logger("doorstep.twilio")

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
WHATSAPP_PREFIX = "whatsapp:"
MESSAGES_PATH = "/webhooks/twilio/messages"
STATUS_PATH = "/webhooks/twilio/status"

MAX_MEDIA = 10  # Twilio gives at most 10 media per inbound message
# The path of an inbound message's media (the Media resource's URL without ".json"); Twilio redirects
# it to its media store
MEDIA_PATH = re.compile(
    r"/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages/(?:MM|SM)[0-9a-f]{32}/Media/ME[0-9a-f]{32}"
)

# Twilio's MessageStatus values and where they put an outbox row.
TWILIO_STATUS: dict[str, OutboxStatus] = {
    "accepted": OutboxStatus.queued,
    "scheduled": OutboxStatus.queued,
    "queued": OutboxStatus.queued,
    "sending": OutboxStatus.queued,
    "sent": OutboxStatus.sent,
    "delivered": OutboxStatus.delivered,
    "partially_delivered": OutboxStatus.delivered,
    "read": OutboxStatus.read,
    "undelivered": OutboxStatus.undelivered,
    "failed": OutboxStatus.failed,
    "canceled": OutboxStatus.failed,
}


# --- the REST client ---------------------------------------------------------------------------------


class RoutedTwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """twilio's aiohttp client, sent to TWILIO_API_URL (scheme and host swapped, path kept).

    Throttling, server errors and timeouts become the sender port's transient errors here, where
    the response headers (Retry-After) are still at hand.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        parts = urlsplit(base_url.rstrip("/"))
        self._scheme, self._netloc, self._prefix = parts.scheme, parts.netloc, parts.path
        self._timeout = timeout

    def route(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit((self._scheme, self._netloc, self._prefix + parts.path, parts.query, ""))

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - twilio's HttpClient signature
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        headers = dict(headers or {})
        if auth is not None:  # as a header: aiohttp deprecates its `auth` argument
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        try:
            async with asyncio.timeout(timeout or self._timeout):
                response: TwilioResponse = await super().request(
                    method, self.route(url), params, data, headers, None, None, allow_redirects
                )
        except TimeoutError as exc:
            raise OutcomeUnknownError("Twilio did not answer in time") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransientSendError(f"cannot reach Twilio: {exc.__class__.__name__}") from exc
        except aiohttp.ClientError as exc:  # the connection dropped after the request went out
            raise OutcomeUnknownError(f"connection to Twilio lost: {exc.__class__.__name__}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientSendError(f"Twilio answered {status}", retry_after=_retry_after(response.headers))
        return response


def _retry_after(headers: Any) -> float | None:
    value = (headers or {}).get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def build_client(settings: Settings) -> tuple[Client, RoutedTwilioHttpClient]:
    http = RoutedTwilioHttpClient(settings.twilio_api_url, settings.twilio_timeout_seconds)
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http,
        environment={},  # TWILIO_EDGE / TWILIO_REGION would rewrite the host
    )
    return client, http


# --- sending -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendContext:
    """What a send needs to know beyond the row, read in one short unit of work."""

    from_number: str
    locale: str
    retailer_settings: dict[str, Any]
    last_inbound_at: datetime | None
    messages_per_second: float  # the sending number's pace


class TwilioSender:
    """The `Sender` for Channel.sms and Channel.whatsapp."""

    def __init__(self, ctx: AppContext, client: Client) -> None:
        self.ctx = ctx
        self.client = client
        self.settings = ctx.settings

    async def send(self, message: OutboxMessage) -> SendResult:
        info = await self._context(message)
        to = self._address(message.channel, message.to_address)
        from_ = self._address(message.channel, info.from_number)
        fields: dict[str, Any] = {
            "to": to,
            "from_": from_,
            "status_callback": f"{self.settings.public_url.rstrip('/')}{STATUS_PATH}?outbox={message.id}",
        }
        try:
            if message.channel == Channel.sms:
                sms_text = rendering.render_sms(
                    message.body, message.options, info.locale, info.retailer_settings
                )
                fields["body"] = sms_text.body
                segments, encoding = sms_text.segments, sms_text.encoding
            else:
                wa = rendering.render_whatsapp(
                    message.body,
                    message.options,
                    locale=info.locale,
                    window_open=rendering.whatsapp_window_open(info.last_inbound_at, self.ctx.clock()),
                    retailer_settings=info.retailer_settings,
                    template_key=message.template_key,
                    content_sid=message.content_sid,
                    content_variables=message.content_variables,
                )
                if wa.content_sid:
                    fields["content_sid"] = wa.content_sid
                    if wa.content_variables:
                        fields["content_variables"] = wa.content_variables_json
                else:
                    fields["body"] = wa.body
                segments, encoding = 1, ""
        except rendering.RenderError as exc:
            raise PermanentSendError(str(exc)) from exc

        if message.attachments:  # an agent's picture or PDF: Twilio fetches it from our public URL
            fields["media_url"] = [
                public_media_url(self.settings.public_url, a["ref"]) for a in message.attachments
            ]
            if not fields.get("body"):
                fields.pop("body", None)
        pace = info.messages_per_second
        await rate_limiter(self.ctx).acquire_or_raise([Limit(f"twilio:{from_}", pace, burst=max(1.0, pace))])
        if message.uncertain_since is not None:
            body = fields.get("body", "" if message.attachments else None)  # a template's is Twilio's
            sid = await self._already_sent(to, from_, message.uncertain_since, body)
            if sid is not None:
                log.info("twilio_send_reconciled", outbox_id=message.id)
                return SendResult(provider_id=sid, segments=segments, encoding=encoding)
        try:
            created = await self.client.messages.create_async(**fields)
        except TwilioRestException as exc:
            raise PermanentSendError(f"Twilio {exc.code}: {exc.msg}"[:500]) from exc
        except TwilioException as exc:
            raise PermanentSendError(f"Twilio: {exc}"[:500]) from exc
        return SendResult(provider_id=str(created.sid), segments=segments, encoding=encoding)

    async def _already_sent(self, to: str, from_: str, since: datetime, body: str | None) -> str | None:
        """The SID of a message this row already produced, if an uncertain attempt reached Twilio."""
        try:
            found = await self.client.messages.list_async(
                to=to, from_=from_, date_sent_after=since - timedelta(seconds=5), limit=20
            )
        except TwilioRestException as exc:
            raise TransientSendError(f"Twilio {exc.code} while checking for an earlier send") from exc
        matching = [str(c.sid) for c in found if body is None or c.body == body]
        if not matching:
            return None
        async with self.ctx.uow() as uow:  # a message another row already owns is not ours
            taken = set(
                (
                    await uow.session.exec(
                        select(OutboxMessage.provider_id).where(col(OutboxMessage.provider_id).in_(matching))
                    )
                ).all()
            )
        return next((sid for sid in matching if sid not in taken), None)

    @staticmethod
    def _address(channel: Channel, number: str) -> str:
        bare = number.removeprefix(WHATSAPP_PREFIX)
        return WHATSAPP_PREFIX + bare if channel == Channel.whatsapp else bare

    async def _context(self, message: OutboxMessage) -> SendContext:
        shared = (
            self.settings.twilio_whatsapp_from
            if message.channel == Channel.whatsapp
            else self.settings.twilio_sms_from
        )
        async with self.ctx.uow() as uow:
            session = uow.session
            retailer = await session.get(Retailer, message.retailer_id) if message.retailer_id else None
            recipient = await session.get(Recipient, message.recipient_id) if message.recipient_id else None
            conversation = (
                await session.get(Conversation, message.conversation_id) if message.conversation_id else None
            )
            own = retailer.own_number(message.channel) if retailer is not None else None
            from_number = message.from_address or own or shared
            last_inbound: list[datetime] = []
            if message.channel == Channel.whatsapp:
                service_address = "" if from_number.removeprefix(WHATSAPP_PREFIX) == shared else from_number
                rows = await session.exec(
                    select(Conversation.last_inbound_at).where(
                        Conversation.channel == Channel.whatsapp,
                        Conversation.address == message.to_address.removeprefix(WHATSAPP_PREFIX),
                        col(Conversation.service_address).in_([service_address, from_number]),
                    )
                )
                last_inbound.extend(t for t in rows.all() if t is not None)
                if conversation is not None and conversation.last_inbound_at is not None:
                    last_inbound.append(conversation.last_inbound_at)
                if recipient is not None and recipient.whatsapp_last_inbound_at is not None:
                    last_inbound.append(recipient.whatsapp_last_inbound_at)
            locale = (
                (conversation.locale if conversation is not None else None)
                or (recipient.locale if recipient is not None else None)
                or (retailer.default_locale if retailer is not None else None)
                or "en"
            )
            rate = self.settings.twilio_messages_per_second
            if retailer is not None and own and from_number == own:
                rate = _positive(retailer.settings.get("twilio_messages_per_second"), rate)
            return SendContext(
                messages_per_second=rate,
                from_number=from_number,
                locale=locale,
                retailer_settings=dict(retailer.settings) if retailer is not None else {},
                last_inbound_at=max(last_inbound) if last_inbound else None,
            )


def _positive(value: Any, default: float) -> float:
    """A retailer's setting as a positive number, or the default when it is missing or nonsense."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


# --- webhooks ------------------------------------------------------------------------------------------


class SignatureChecker:
    def __init__(self, settings: Settings) -> None:
        self.public_url = settings.public_url.rstrip("/")
        self.validator = RequestValidator(settings.twilio_auth_token.get_secret_value())

    def url_called(self, request: Request) -> str:
        query = request.url.query
        return f"{self.public_url}{request.url.path}" + (f"?{query}" if query else "")

    def check(self, request: Request, form: Mapping[str, Any]) -> None:
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            raise HTTPException(403, "missing X-Twilio-Signature")
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        if not self.validator.validate(self.url_called(request), form, signature, algorithm):
            raise HTTPException(403, "invalid X-Twilio-Signature")


class InboundDeduplicator:
    """A retried webhook (same MessageSid) in this process waits for, or skips, the first one.

    The engine de-duplicates across processes by provider id; this keeps a burst of retries from
    reaching it at all.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._done: OrderedDict[str, None] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._size = size

    async def once(self, key: str, work: Callable[[], Awaitable[None]]) -> bool:
        """Run `work` unless `key` was handled; answer whether it ran here."""
        if key in self._done:
            return False
        pending = self._inflight.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a duplicate waiting on it re-raises, nobody else must
            raise
        else:
            future.set_result(None)
            self._done[key] = None
            if len(self._done) > self._size:
                self._done.popitem(last=False)
        finally:
            del self._inflight[key]
        return True


def _twiml() -> Response:
    return Response(TWIML_EMPTY, media_type="text/xml")


def attachments_of(form: Mapping[str, Any]) -> tuple[Attachment, ...]:
    """The media of an inbound message; a URL that is not a Twilio media URL is left out (and logged)."""
    count = str(form.get("NumMedia") or "0")
    if not count.isdigit() or int(count) > MAX_MEDIA:
        raise HTTPException(400, f"NumMedia must be a whole number from 0 to {MAX_MEDIA}")
    found = []
    for index in range(int(count)):
        url = str(form.get(f"MediaUrl{index}") or "")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not MEDIA_PATH.fullmatch(parts.path) or len(url) > 500:
            log.warning("twilio_media_url_unexpected", index=index)
            continue
        found.append(Attachment(normal_content_type(str(form.get(f"MediaContentType{index}") or "")), url))
    return tuple(found)


class TwilioMedia:
    """Fetches an inbound message's media: the MediaUrl's path on TWILIO_API_URL, with the account's
    Basic auth (the browser never sees it), following Twilio's redirect to its media store."""

    def __init__(self, settings: Settings) -> None:
        self._base = settings.twilio_api_url.rstrip("/")
        self._auth = (settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())
        # one client for the process: the pictures of a page reuse its connections to Twilio
        self._client = httpx.AsyncClient(
            timeout=settings.twilio_timeout_seconds, follow_redirects=True, max_redirects=3
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, ref: str, content_type: str) -> Media:
        path = urlsplit(ref).path
        if not MEDIA_PATH.fullmatch(path):
            raise MediaUnavailable("not a Twilio media URL")
        chunks: list[bytes] = []
        size = 0
        try:
            async with self._client.stream("GET", self._base + path, auth=self._auth) as response:
                if response.status_code != 200:
                    raise MediaUnavailable(f"Twilio answered {response.status_code}")
                if int(response.headers.get("content-length") or 0) > MAX_MEDIA_BYTES:
                    raise MediaUnavailable("the file is larger than Doorstep shows")
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_MEDIA_BYTES:
                        raise MediaUnavailable("the file is larger than Doorstep shows")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise MediaUnavailable(f"cannot reach Twilio: {type(exc).__name__}") from exc
        return Media(content_type, b"".join(chunks))


def build_router(settings: Settings) -> APIRouter:
    """The Twilio webhooks; the router checks every request against this configuration."""
    router = APIRouter(tags=["twilio"], include_in_schema=True)
    checker = SignatureChecker(settings)
    dedupe = InboundDeduplicator()
    shared_numbers = {settings.twilio_sms_from, settings.twilio_whatsapp_from}

    @router.post(MESSAGES_PATH, response_class=Response, summary="Twilio inbound SMS / WhatsApp webhook")
    async def inbound(request: Request) -> Response:
        form = await request.form()
        checker.check(request, form)
        sid = str(form.get("MessageSid") or form.get("SmsMessageSid") or "")
        raw_from, raw_to = str(form.get("From") or ""), str(form.get("To") or "")
        if not sid or not raw_from or not raw_to:
            raise HTTPException(400, "MessageSid, From and To are required")
        channel = Channel.whatsapp if raw_from.startswith(WHATSAPP_PREFIX) else Channel.sms
        try:
            sender = to_e164(raw_from)
            service_number = to_e164(raw_to)
        except InvalidPhone:
            log.info("twilio_inbound_unroutable", channel=str(channel))
            return _twiml()  # a short code or alphanumeric sender: nothing to answer
        ctx: AppContext = request.app.state.ctx
        engine = ctx.components.get("engine")
        if engine is None:
            raise HTTPException(503, "the conversation engine is not running")
        message = InboundMessage(
            channel=channel,
            sender=sender,
            text=str(form.get("Body") or ""),
            payload=str(form.get("ButtonPayload")) if form.get("ButtonPayload") else None,
            provider_id=sid,
            service_address="" if service_number in shared_numbers else service_number,
            received_at=ctx.clock(),
            sender_name=str(form.get("ProfileName") or ""),
            attachments=attachments_of(form),
        )

        async def handle() -> None:
            await engine.handle(message)

        handled = await dedupe.once(sid, handle)
        if handled:
            wake(ctx)
        else:
            log.info("twilio_inbound_duplicate", channel=str(channel))
        ctx.metrics.webhooks.labels("twilio", "handled" if handled else "duplicate").inc()
        return _twiml()

    @router.post(STATUS_PATH, status_code=204, summary="Twilio message status callback")
    async def status_callback(request: Request) -> Response:
        form = await request.form()
        checker.check(request, form)
        sid = str(form.get("MessageSid") or form.get("SmsSid") or "")
        reported = str(form.get("MessageStatus") or form.get("SmsStatus") or "")
        if not sid or not reported:
            raise HTTPException(400, "MessageSid and MessageStatus are required")
        new_status = TWILIO_STATUS.get(reported)
        if new_status is None:
            raise HTTPException(400, f"unknown MessageStatus {reported!r}")
        error_code = str(form.get("ErrorCode") or "")
        outbox_id = request.query_params.get("outbox", "")
        ctx: AppContext = request.app.state.ctx
        async with ctx.uow() as uow:
            row = None
            if outbox_id.isdigit():
                row = await uow.session.get(OutboxMessage, int(outbox_id))
                if row is not None and row.provider_id not in (None, sid):
                    row = None  # the callback of an earlier, superseded send
            if row is None:
                row = (
                    await uow.session.exec(select(OutboxMessage).where(OutboxMessage.provider_id == sid))
                ).first()
            if row is None:
                log.info("twilio_status_unknown_message", status=reported)
                return Response(status_code=204)
            if row.provider_id is None:
                row.provider_id = sid  # the callback beat the worker's own record of the send
            error = f"Twilio {error_code}: message {reported}" if error_code else ""
            changed = advance_status(row, new_status, ctx.clock(), error)
            await uow.commit()
            log.info("twilio_status", outbox_id=row.id, status=reported, applied=changed)
        return Response(status_code=204)

    return router


# --- wiring ----------------------------------------------------------------------------------------------


async def start_twilio(app: FastAPI, ctx: AppContext) -> Callable[[], Awaitable[None]] | None:
    """Starter for app.py: the Twilio client and the SMS/WhatsApp senders for the outbox worker.

    Without a Twilio account (see `Settings.twilio_sends`) no sender registers: the outbox worker
    claims no SMS or WhatsApp rows, which stay queued until the process starts with credentials.
    """
    if not ctx.settings.twilio_sends:
        log.warning(
            "twilio_not_configured",
            detail="SMS and WhatsApp wait in the outbox until TWILIO_ACCOUNT_SID and its token are set",
        )
        return None  # nothing started, nothing to stop
    client, http = build_client(ctx.settings)
    _ = client.messages  # twilio imports its API modules on first use: do it now, not in the first send
    sender = TwilioSender(ctx, client)
    registry = senders(ctx)
    registry[Channel.sms] = sender
    registry[Channel.whatsapp] = sender
    ctx.components["twilio_client"] = client
    media = TwilioMedia(ctx.settings)
    media_fetchers(ctx)[Channel.sms] = media
    media_fetchers(ctx)[Channel.whatsapp] = media

    async def stop() -> None:
        await http.close()
        await media.close()

    return stop


def install(app: FastAPI) -> None:
    """Wire SMS and WhatsApp into the app: the webhooks now, the client and senders at start."""
    app.include_router(build_router(app.state.settings))
    app.state.starters.append(start_twilio)
