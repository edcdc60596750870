"""A loopback fake of the Telegram Bot API, strict the way the official spec is.

The real aiogram client talks to it over HTTP (`TELEGRAM_API_URL=fake.base_url`). Every call to
`/bot<token>/<method>` is checked against `../shared/specs/telegram_bot_api.json`: an unknown method
answers 404, an unknown or missing required field (also inside JSON-serialised objects such as
`reply_markup`) answers 400, in the Bot API's own error shape `{"ok": false, "error_code", "description"}`.
Accepted calls are recorded in `calls`. Switches make the next answers a 5xx, a 429 with
`parameters.retry_after`, or a 403 for a chat that blocked the bot. `getUpdates` serves updates the
test pushed, for the polling mode. Files a user "sent" (`add_file`) are known to `getFile` and
downloaded from `/file/bot<token>/<file_path>`, as from the real server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "specs" / "telegram_bot_api.json"
BOT_USER = {"id": 424242, "is_bot": True, "first_name": "Doorstep", "username": "DoorstepDemoBot"}


class SpecViolation(Exception):
    def __init__(self, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.status = status


@dataclass
class Call:
    method: str
    params: dict[str, Any]  # JSON-serialised fields decoded
    at: float = field(default_factory=time.monotonic)


class BotApiSpec:
    """The methods and types of the Bot API, and the checks the real server makes on requests."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        data = json.loads(path.read_text())
        self.version: str = data["version"]
        self.methods: dict[str, dict[str, Any]] = data["methods"]
        self.types: dict[str, dict[str, Any]] = data["types"]
        self._methods_lower = {name.lower(): name for name in self.methods}

    def method(self, name: str) -> str:
        """The method's canonical name (the Bot API matches names case-insensitively)."""
        canonical = self._methods_lower.get(name.lower())
        if canonical is None:
            raise SpecViolation("Not Found", status=404)
        return canonical

    def check_call(self, method: str, raw: dict[str, Any], *, form: bool) -> dict[str, Any]:
        fields = {f["name"]: f for f in self.methods[method].get("fields", [])}
        for name in raw:
            if name not in fields:
                raise SpecViolation(f"Bad Request: unknown parameter {name!r} of {method}")
        for name, spec in fields.items():
            if spec["required"] and (name not in raw or raw[name] in ("", None)):
                raise SpecViolation(f"Bad Request: parameter {name!r} of {method} is required")
        decoded: dict[str, Any] = {}
        for name, value in raw.items():
            decoded[name] = self._check_value(value, fields[name]["types"], f"{method}.{name}", form=form)
        return decoded

    def _check_value(self, value: Any, types: list[str], where: str, *, form: bool) -> Any:
        problems = []
        for type_name in types:
            try:
                return self._as_type(value, type_name, where, form=form)
            except SpecViolation as exc:
                problems.append(exc.description)
        raise SpecViolation(problems[0] if len(problems) == 1 else f"Bad Request: {where}: {problems}")

    def _as_type(self, value: Any, type_name: str, where: str, *, form: bool) -> Any:
        if type_name == "String":
            if isinstance(value, str):
                return value
            if form:
                return str(value)
            raise SpecViolation(f"Bad Request: {where} must be a String")
        if type_name == "Integer":
            if isinstance(value, bool):
                raise SpecViolation(f"Bad Request: {where} must be an Integer")
            if isinstance(value, int):
                return value
            if isinstance(value, str) and value.lstrip("-").isdigit():
                return int(value)
            raise SpecViolation(f"Bad Request: {where} must be an Integer")
        if type_name == "Float":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise SpecViolation(f"Bad Request: {where} must be a Float") from None
        if type_name == "Boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            raise SpecViolation(f"Bad Request: {where} must be a Boolean")
        if type_name == "InputFile":
            return value
        # Arrays and objects come JSON-serialised in form posts.
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise SpecViolation(f"Bad Request: can't parse {where} JSON object") from None
        if type_name.startswith("Array of "):
            if not isinstance(value, list):
                raise SpecViolation(f"Bad Request: {where} must be an Array")
            inner = type_name.removeprefix("Array of ")
            return [self._as_type(v, inner, f"{where}[{i}]", form=False) for i, v in enumerate(value)]
        return self._check_object(value, type_name, where)

    def _check_object(self, value: Any, type_name: str, where: str) -> dict[str, Any]:
        spec = self.types.get(type_name)
        if spec is None:
            raise SpecViolation(f"Bad Request: {where}: unknown type {type_name}")
        if not isinstance(value, dict):
            raise SpecViolation(f"Bad Request: {where} must be an object {type_name}")
        if spec.get("subtypes"):
            return self._check_value(value, spec["subtypes"], where, form=False)  # type: ignore[no-any-return]
        fields = {f["name"]: f for f in spec.get("fields", [])}
        for name in value:
            if name not in fields:
                raise SpecViolation(f"Bad Request: {where}: unknown field {name!r} of {type_name}")
        for name, field_spec in fields.items():
            if field_spec["required"] and name not in value:
                raise SpecViolation(f"Bad Request: {where}: field {name!r} of {type_name} is required")
        return {
            name: self._check_value(v, fields[name]["types"], f"{where}.{name}", form=False)
            for name, v in value.items()
        }


def _limits(method: str, params: dict[str, Any]) -> None:
    """Limits the spec states in prose that the real server enforces."""
    if method == "sendMessage":
        if not 1 <= len(params["text"]) <= 4096:
            raise SpecViolation("Bad Request: message text is empty or too long")
        if params.get("parse_mode") == "HTML":
            _check_html(params["text"])
    markup = params.get("reply_markup") or {}
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= 64:
                raise SpecViolation("Bad Request: BUTTON_DATA_INVALID")
            kinds = [k for k in button if k not in ("text", "icon_custom_emoji_id", "style")]
            if len(kinds) != 1:
                raise SpecViolation("Bad Request: an inline keyboard button needs exactly one action")
    if method == "answerCallbackQuery" and len(params.get("text", "")) > 200:
        raise SpecViolation("Bad Request: MESSAGE_TOO_LONG")


_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a", "tg-spoiler"}


def _check_html(text: str) -> None:
    """The subset of HTML Telegram parses: known tags, balanced, and '<', '>', '&' escaped elsewhere."""
    from html.parser import HTMLParser

    stack: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag not in _ALLOWED_TAGS:
                raise SpecViolation(f"Bad Request: can't parse entities: unsupported start tag {tag!r}")
            stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if not stack or stack.pop() != tag:
                raise SpecViolation(f"Bad Request: can't parse entities: unexpected end tag {tag!r}")

    for i, ch in enumerate(text):
        if ch == "&":
            entity = text[i : i + 8]
            if not any(entity.startswith(e) for e in ("&lt;", "&gt;", "&amp;", "&quot;", "&#")):
                raise SpecViolation("Bad Request: can't parse entities: unescaped '&'")
    checker = Checker(convert_charrefs=True)
    checker.feed(text)
    checker.close()
    if stack:
        raise SpecViolation(f"Bad Request: can't parse entities: unclosed tag {stack[-1]!r}")


class FakeTelegramAPI:
    """Start with `await fake.start()` (port 0 on 127.0.0.1); `fake.base_url` goes in TELEGRAM_API_URL."""

    def __init__(self, token: str = "123456:development-token", spec: BotApiSpec | None = None) -> None:
        self.token = token
        self.spec = spec or BotApiSpec()
        self.calls: list[Call] = []
        self.rejected: list[tuple[str, int, str]] = []  # (method, status, description)
        self.blocked_chats: set[int] = set()
        self._failures: list[tuple[int, dict[str, Any]]] = []
        self._message_ids = itertools.count(1)
        self._updates: list[dict[str, Any]] = []
        self._update_event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)

    def add_file(self, content: bytes, file_path: str = "photos/file_0.jpg") -> str:
        """A file a user sent (a photo, a document); answers its file_id."""
        file_id = f"AgAC{len(self.files):04d}{abs(hash(content)) % 10**8:08d}"
        self.files[file_id] = (file_path, content)
        return file_id

    # --- switches --------------------------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        for _ in range(count):
            self._failures.append((status, {"description": "Internal Server Error"}))

    def rate_limit_next(self, retry_after: int = 3, count: int = 1) -> None:
        for _ in range(count):
            self._failures.append(
                (
                    429,
                    {
                        "description": f"Too Many Requests: retry after {retry_after}",
                        "parameters": {"retry_after": retry_after},
                    },
                )
            )

    def push_update(self, update: dict[str, Any]) -> None:
        """An update for `getUpdates` (polling mode)."""
        self._updates.append(update)
        self._update_event.set()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # --- server ----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeTelegramAPI:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        method_name = request.match_info["method"]
        try:
            if request.match_info["token"] != self.token:
                raise SpecViolation("Unauthorized", status=401)
            method = self.spec.method(method_name)
            raw, form = await self._read_params(request)
            params = self.spec.check_call(method, raw, form=form)
            _limits(method, params)
        except SpecViolation as exc:
            self.rejected.append((method_name, exc.status, exc.description))
            return self._error(exc.status, exc.description)
        if self._failures:
            status, extra = self._failures.pop(0)
            return self._error(status, extra["description"], extra.get("parameters"))
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int) and chat_id in self.blocked_chats:
            return self._error(403, "Forbidden: bot was blocked by the user")
        try:
            result = await self._result(method, params)
        except SpecViolation as exc:  # a call well formed but about something the server does not have
            self.rejected.append((method_name, exc.status, exc.description))
            return self._error(exc.status, exc.description)
        self.calls.append(Call(method, params))
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        for file_path, content in self.files.values():
            if file_path == request.match_info["path"]:
                return web.Response(body=content, content_type="application/octet-stream")
        return self._error(404, "Not Found")

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], bool]:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise SpecViolation("Bad Request: can't parse JSON") from None
            if not isinstance(body, dict):
                raise SpecViolation("Bad Request: the request body must be a JSON object")
            return body, False
        if request.method == "GET":
            return dict(request.query), True
        posted = await request.post()
        return {k: v if isinstance(v, str) else v.file.read() for k, v in posted.items()}, True

    def _error(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    async def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method == "sendMessage":
            result = self._sent(params["chat_id"], text=params["text"])
            if "inline_keyboard" in (params.get("reply_markup") or {}):
                result["reply_markup"] = params["reply_markup"]
            return result
        if method == "sendPhoto":  # by URL or file_id here: the sent Message, as the spec says
            photo = [{"file_id": "sent-photo", "file_unique_id": "sp", "width": 640, "height": 480}]
            return self._sent(params["chat_id"], photo=photo, caption=params.get("caption"))
        if method == "sendDocument":
            document = {"file_id": "sent-document", "file_unique_id": "sd"}
            return self._sent(params["chat_id"], document=document, caption=params.get("caption"))
        if method == "getFile":
            file_id = params["file_id"]
            if file_id not in self.files:
                raise SpecViolation("Bad Request: invalid file_id")
            file_path, content = self.files[file_id]
            return {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "file_size": len(content),
                "file_path": file_path,
            }
        if method == "getUpdates":
            return await self._get_updates(params)
        if method in ("getWebhookInfo",):
            return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}
        return True

    def _sent(self, chat_id: Any, **content: Any) -> dict[str, Any]:
        """The Message a send method returns: the bot's, in the chat, with what was sent."""
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"} if isinstance(chat_id, int) else {"id": 1},
            "from": BOT_USER,
            **{field: value for field, value in content.items() if value is not None},
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = params.get("offset", 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            self._update_event.clear()
            try:
                await asyncio.wait_for(self._update_event.wait(), timeout=min(params.get("timeout", 0), 1))
            except TimeoutError:
                return []
        return list(self._updates[: params.get("limit", 100)])
