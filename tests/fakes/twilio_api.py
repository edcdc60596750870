"""A loopback fake of Twilio's Messages REST API, strict the way the official spec is.

The real `twilio` client talks to it over HTTP (`TWILIO_API_URL=fake.base_url`). Requests are checked
against `../shared/specs/twilio_api_v2010.json`: wrong Basic auth answers 401; an unknown form or
query field, a field of the wrong type or format, or a missing required one answers 400 in Twilio's
error shape `{"code", "message", "more_info", "status"}`, as do Twilio's own rules the spec leaves to
prose (From or MessagingServiceSid; Body, ContentSid or MediaUrl; 1,600 characters; matching
`whatsapp:` prefixes). Accepted messages are recorded in `messages`. Switches make the next answers
a 5xx, a 429 with Retry-After, or hang (a timeout for the client). Media a recipient "sent"
(`add_media`) is served at the URL Twilio gives in an inbound webhook's `MediaUrl{N}`
(`/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}`, the resource's `.json` path
without the suffix), behind the same Basic auth.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from core import sms

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "specs" / "twilio_api_v2010.json"
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
MESSAGE = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
MEDIA = "/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}.json"
MEDIA_CONTENT = re.compile(
    r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages/((?:MM|SM)[0-9a-f]{32})/Media/(ME[0-9a-f]{32})"
)
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        return web.json_response(
            {
                "code": self.code,
                "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
                "status": self.status,
            },
            status=self.status,
        )


class MessagesSpec:
    """Fields, types and required parameters of the Messages endpoints, read from the OpenAPI file."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        spec = json.loads(path.read_text())
        self.schemas: dict[str, Any] = spec["components"]["schemas"]
        paths = spec["paths"]
        create = paths[MESSAGES]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"][
            "schema"
        ]
        self.create_fields: dict[str, Any] = create["properties"]
        self.create_required: list[str] = create.get("required", [])
        self.list_params = {p["name"]: p for p in paths[MESSAGES]["get"]["parameters"] if p["in"] == "query"}
        self.account_pattern = re.compile(
            next(p for p in paths[MESSAGES]["post"]["parameters"] if p["name"] == "AccountSid")["schema"][
                "pattern"
            ]
        )
        self.sid_pattern = re.compile(
            next(p for p in paths[MESSAGE]["get"]["parameters"] if p["name"] == "Sid")["schema"]["pattern"]
        )
        self.message_properties: list[str] = list(self.schemas["api.v2010.account.message"]["properties"])
        self.statuses: list[str] = self.schemas["message_enum_status"]["enum"]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        return self.schemas[ref.rsplit("/", 1)[1]] if ref else schema

    def check_value(self, name: str, schema: dict[str, Any], values: list[str]) -> None:
        schema = self.resolve(schema)
        kind = schema.get("type")
        if kind != "array" and len(values) > 1:
            raise TwilioError(400, 20001, f"Parameter '{name}' given more than once")
        items = self.resolve(schema.get("items", {})) if kind == "array" else schema
        for value in values:
            item_kind = items.get("type")
            if "enum" in items and value not in items["enum"]:
                raise TwilioError(400, 20001, f"Invalid value '{value}' for parameter '{name}'")
            if item_kind == "integer" and not re.fullmatch(r"-?\d+", value):
                raise TwilioError(400, 20001, f"Parameter '{name}' must be an integer")
            if item_kind == "number":
                try:
                    float(value)
                except ValueError:
                    raise TwilioError(400, 20001, f"Parameter '{name}' must be a number") from None
            if item_kind == "boolean" and value.lower() not in ("true", "false"):
                raise TwilioError(400, 20001, f"Parameter '{name}' must be true or false")
            fmt = items.get("format")
            if fmt == "uri" and not re.match(r"^https?://", value):
                raise TwilioError(400, 21609, f"Invalid {name} URL")
            if fmt == "date-time":
                try:
                    datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise TwilioError(
                        400, 20001, f"Parameter '{name}' must be an ISO 8601 date-time"
                    ) from None

    def check_fields(self, form: dict[str, list[str]], allowed: dict[str, Any]) -> None:
        for name, values in form.items():
            schema = allowed.get(name)
            if schema is None:
                raise TwilioError(400, 20001, f"Unknown parameter '{name}'")
            self.check_value(name, schema.get("schema", schema), values)


@functools.cache
def default_spec() -> MessagesSpec:
    return MessagesSpec()


@dataclass
class FakeMessage:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    content_sid: str | None
    content_variables: dict[str, str]
    status_callback: str | None
    status: str = "queued"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    form: dict[str, list[str]] = field(default_factory=dict)

    def resource(self, spec: MessagesSpec) -> dict[str, Any]:
        cost = sms.cost(self.body)
        stamp = format_datetime(self.created_at)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        values: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": stamp,
            "date_sent": stamp,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(cost.segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }
        return {name: values.get(name) for name in spec.message_properties}


@dataclass
class Fault:
    status: int = 500
    retry_after: float | None = None
    hang_seconds: float = 0.0
    accept_then_hang: bool = False  # the message is created, but the answer never comes in time


class FakeTwilioApi:
    def __init__(self, account_sid: str, auth_token: str, spec: MessagesSpec | None = None) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.spec = spec or default_spec()
        self.messages: list[FakeMessage] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, accepted or not
        self.refusals: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.media: dict[str, tuple[str, bytes]] = {}  # path -> (content type, content)

    def add_media(self, content_type: str, content: bytes, message_sid: str | None = None) -> str:
        """Media of an inbound message; answers the `MediaUrl` Twilio would put in the webhook."""
        message_sid = message_sid or "MM" + secrets.token_hex(16)
        path = MEDIA.replace(".json", "").format(
            AccountSid=self.account_sid, MessageSid=message_sid, Sid="ME" + secrets.token_hex(16)
        )
        self.media[path] = (content_type, content)
        return "https://api.twilio.com" + path

    # --- switches --------------------------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        self._faults.extend(Fault(status=status) for _ in range(count))

    def throttle_next(self, count: int = 1, retry_after: float = 1.0) -> None:
        self._faults.extend(Fault(status=429, retry_after=retry_after) for _ in range(count))

    def hang_next(self, seconds: float, count: int = 1, *, accept: bool = False) -> None:
        self._faults.extend(Fault(hang_seconds=seconds, accept_then_hang=accept) for _ in range(count))

    def sent_to(self, to: str) -> list[FakeMessage]:
        return [m for m in self.messages if m.to == to]

    def callback_form(
        self, message: FakeMessage, status: str, error_code: str | None = None
    ) -> dict[str, str]:
        """The form Twilio posts to a message's StatusCallback."""
        if status not in self.spec.statuses:
            raise ValueError(f"{status} is not a Twilio message status")
        form = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "AccountSid": self.account_sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message.to,
            "From": message.from_,
            "ApiVersion": "2010-04-01",
        }
        if error_code:
            form["ErrorCode"] = error_code
        return form

    # --- server ------------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        try:
            return await self._route(request)
        except TwilioError as exc:
            self.refusals.append({"path": request.path, "code": exc.code, "message": exc.message})
            return exc.response()

    async def _route(self, request: web.Request) -> web.StreamResponse:
        media = MEDIA_CONTENT.fullmatch(request.path)
        if media is not None and request.method == "GET":
            return self._media(request, media.group(1))
        match = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/Messages(?:/([^/]+))?\.json", request.path)
        if match is None:
            raise TwilioError(404, 20404, "The requested resource was not found")
        account, sid = match.groups()
        self._authenticate(request, account)
        if sid is None and request.method == "POST":
            return await self._create(request, account)
        if sid is None and request.method == "GET":
            return self._list(request)
        if sid is not None and request.method == "GET":
            if not self.spec.sid_pattern.match(sid):
                raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
            for message in self.messages:
                if message.sid == sid:
                    return web.json_response(message.resource(self.spec))
            raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
        raise TwilioError(405, 20004, "Method not allowed")

    def _media(self, request: web.Request, account: str) -> web.StreamResponse:
        self._authenticate(request, account)
        if self._faults and not self._faults[0].hang_seconds:
            fault = self._faults.pop(0)
            return TwilioError(fault.status, 20500, "Internal").response()
        found = self.media.get(request.path)
        if found is None:
            raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
        content_type, content = found
        return web.Response(body=content, content_type=content_type)

    def _authenticate(self, request: web.Request, account: str) -> None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            login = password = ""
        if scheme.lower() != "basic" or login != self.account_sid or password != self.auth_token:
            raise TwilioError(401, 20003, "Authenticate")
        if not self.spec.account_pattern.match(account) or account != self.account_sid:
            raise TwilioError(404, 20404, "The requested resource was not found")

    async def _create(self, request: web.Request, account: str) -> web.StreamResponse:
        if not request.content_type.startswith("application/x-www-form-urlencoded"):
            raise TwilioError(400, 20001, "Expected a form-encoded body")
        posted = await request.post()
        form: dict[str, list[str]] = {}
        for key, value in posted.items():
            form.setdefault(key, []).append(str(value))
        self.spec.check_fields(form, self.spec.create_fields)
        for name in self.spec.create_required:
            if name not in form:
                raise TwilioError(400, 21604, f"A '{name}' phone number is required.")
        one = {k: v[0] for k, v in form.items()}
        if "From" not in one and "MessagingServiceSid" not in one:
            raise TwilioError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if not any(k in one for k in ("Body", "ContentSid", "MediaUrl")):
            raise TwilioError(400, 21602, "Message body is required.")
        media = form.get("MediaUrl", [])
        if len(media) > 10 or not all(url.startswith(("http://", "https://")) for url in media):
            raise TwilioError(400, 21620, "Invalid media URL(s)")
        to, from_ = one["To"], one.get("From", "")
        for name, number in (("To", to), ("From", from_)):
            if number and not E164.match(number.removeprefix("whatsapp:")):
                raise TwilioError(400, 21211 if name == "To" else 21212, f"Invalid '{name}' Phone Number")
        if from_ and to.startswith("whatsapp:") != from_.startswith("whatsapp:"):
            raise TwilioError(
                400, 21910, "Invalid From and To pair. From and To should be of the same channel"
            )
        body = one.get("Body", "")
        if len(body) > 1600:
            raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit")
        variables: dict[str, str] = {}
        if "ContentVariables" in one:
            if "ContentSid" not in one:
                raise TwilioError(400, 21656, "ContentVariables requires ContentSid")
            try:
                parsed = json.loads(one["ContentVariables"])
            except json.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
                raise TwilioError(400, 21656, "The ContentVariables Parameter is invalid")
            variables = parsed

        fault = self._faults.pop(0) if self._faults else None
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=account,
            to=to,
            from_=from_,
            body=body,
            content_sid=one.get("ContentSid"),
            content_variables=variables,
            status_callback=one.get("StatusCallback"),
            form=form,
        )
        if fault is not None:
            if fault.hang_seconds:
                if fault.accept_then_hang:
                    self.messages.append(message)
                await asyncio.sleep(fault.hang_seconds)
                if not fault.accept_then_hang:  # never accepted: no message, however late the answer
                    return TwilioError(500, 20500, "Internal").response()
            else:
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                code = 20429 if fault.status == 429 else 20500
                error = TwilioError(
                    fault.status, code, "Too Many Requests" if fault.status == 429 else "Internal"
                )
                response = error.response()
                response.headers.update(headers)
                self.refusals.append({"path": request.path, "code": code, "message": error.message})
                return response
        if fault is None:
            self.messages.append(message)
        return web.json_response(message.resource(self.spec), status=201)

    def _list(self, request: web.Request) -> web.StreamResponse:
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        self.spec.check_fields(query, self.spec.list_params)
        found: Iterable[FakeMessage] = self.messages
        if "To" in query:
            found = [m for m in found if m.to == query["To"][0]]
        if "From" in query:
            found = [m for m in found if m.from_ == query["From"][0]]
        if "DateSent>" in query:
            after = datetime.fromisoformat(query["DateSent>"][0].replace("Z", "+00:00"))
            found = [m for m in found if m.created_at >= after]
        if "DateSent<" in query:
            before = datetime.fromisoformat(query["DateSent<"][0].replace("Z", "+00:00"))
            found = [m for m in found if m.created_at <= before]
        page_size = int(query.get("PageSize", ["50"])[0])
        items = [m.resource(self.spec) for m in list(found)[:page_size]]
        uri = request.path_qs
        return web.json_response(
            {
                "messages": items,
                "end": max(len(items) - 1, 0),
                "first_page_uri": uri,
                "next_page_uri": None,
                "page": 0,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": 0,
                "uri": uri,
            }
        )
