"""Wiring of the console into the app: its routers, its static files, its live-update hub."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import api, auth, live, pages, saved_replies
from console.rendering import STATIC

# Scripts, styles and pictures come from the app itself; no frame may embed the console (clickjacking).
CONSOLE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]


class ConsoleHeaders:
    """Security headers on every /console response (a pure ASGI middleware: event streams pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/console"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in CONSOLE_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    app.add_middleware(ConsoleHeaders)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(auth.build_router())
    app.include_router(pages.build_router())
    app.include_router(saved_replies.build_router())
    app.include_router(api.build_router())
    app.state.starters.append(live.start_live)
