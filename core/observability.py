"""Metrics (Prometheus) and the HTTP edge: request ids, access metrics, body size limits.

The middleware is plain ASGI (no BaseHTTPMiddleware, which costs a task per request).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """Every metric Doorstep exports; one instance per app, on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "doorstep_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "doorstep_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.webhooks = Counter(
            "doorstep_webhooks_total", "Provider webhooks", ["provider", "outcome"], registry=r
        )
        self.replies = Counter(
            "doorstep_replies_total", "Bot replies written to the outbox", ["channel"], registry=r
        )
        self.notifications = Counter(
            "doorstep_notifications_total",
            "Notifications by event and outcome",
            ["event", "status"],
            registry=r,
        )
        self.sends = Counter(
            "doorstep_sends_total", "Outbox send attempts", ["channel", "outcome"], registry=r
        )
        self.send_latency = Histogram(
            "doorstep_send_seconds",
            "Provider send latency",
            ["channel"],
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.queue_depth = Gauge(
            "doorstep_outbox_queue_depth", "Outbox messages waiting", ["status"], registry=r
        )
        self.kept_events = Gauge(
            "doorstep_kept_events",
            "Scheduling events committed whose notifications are not planned yet (the sweeper plans them)",
            registry=r,
        )
        self.retention_deleted = Counter(
            "doorstep_retention_deleted_total",
            "Rows the retention purge deleted (core/retention.py)",
            ["kind"],
            registry=r,
        )
        self.scheduler_lag = Gauge(
            "doorstep_scheduler_lag_seconds", "How late the last timed job fired", registry=r
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class EdgeMiddleware:
    """Request id (X-Request-ID, bound to every log line), access metrics and a request body limit
    (`max_body_bytes`, or a larger one for the paths `uploads` names: an agent's picture)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        uploads: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.uploads = uploads

    def body_limit(self, path: str) -> int:
        limits = (limit for pattern, limit in self.uploads if pattern.fullmatch(path))
        return next(limits, self.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        declared = headers.get(b"content-length")
        max_body_bytes = self.body_limit(scope.get("path", ""))
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            await _plain(send, 413, b'{"detail":"request body too large"}', request_id)
            return
        started = time.perf_counter()
        status_holder = {"status": 500}
        seen = 0
        overflowed = False

        async def limited_receive() -> Message:
            nonlocal seen, overflowed
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_body_bytes:
                    overflowed = True
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            if overflowed:
                # the app turned our BodyTooLarge into its own error (FastAPI answers 400): say 413
                if message["type"] == "http.response.start":
                    await _plain(send, 413, b'{"detail":"request body too large"}', request_id)
                    status_holder["status"] = 413
                return
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            if status_holder["status"] != 413:
                await _plain(send, 413, b'{"detail":"request body too large"}', request_id)
                status_holder["status"] = 413
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.http_requests.labels(scope["method"], path, str(status_holder["status"])).inc()
            self.metrics.http_latency.labels(path).observe(time.perf_counter() - started)


class BodyTooLarge(Exception):
    pass


async def _plain(send: Send, status: int, body: bytes, request_id: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-request-id", request_id.encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
