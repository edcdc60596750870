"""The change log: every change appended with who, through which channel, before and after.

Retailers read it with `GET /api/v1/changes?since=CURSOR` and may have it pushed to a webhook of
theirs (settings `change_webhook_url`, `change_webhook_secret`), HMAC-signed, in order, with
retries and exponential back-off, so an external TMS or driver app stays in sync. A row is claimed
(a short lease on `webhook_next_at`) before it is sent, so two processes never push it twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.context import AppContext
from core.logging import get_logger
from core.models import Author, ChangeLog, Delivery, Retailer

log = get_logger("doorstep.changes")

SIGNATURE_HEADER = "X-Doorstep-Signature"
MAX_PAGE = 500


async def log_change(
    session: AsyncSession,
    retailer: Retailer,
    kind: str,
    *,
    actor: Author,
    actor_id: str = "",
    channel: str = "",
    delivery_id: int | None = None,
    plan_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    now: datetime,
) -> ChangeLog:
    """Append one change; it waits for the webhook only when the retailer has one configured."""
    assert retailer.id is not None
    wants_push = bool((retailer.settings or {}).get("change_webhook_url"))
    entry = ChangeLog(
        retailer_id=retailer.id,
        delivery_id=delivery_id,
        plan_id=plan_id,
        kind=kind,
        actor=actor,
        actor_id=actor_id[:200],
        channel=channel[:16],
        before=before or {},
        after=after or {},
        created_at=now,
        webhook_status="pending" if wants_push else "none",
    )
    session.add(entry)
    return entry


def change_payload(entry: ChangeLog, tracking: str | None) -> dict[str, Any]:
    return {
        "cursor": str(entry.id),
        "id": entry.id,
        "kind": entry.kind,
        "tracking": tracking,
        "plan_id": entry.plan_id,
        "actor": {"kind": entry.actor, "id": entry.actor_id, "channel": entry.channel},
        "before": entry.before,
        "after": entry.after,
        "at": entry.created_at.isoformat(),
    }


async def changes_since(
    session: AsyncSession, retailer_id: int, since: int, limit: int = 100
) -> list[dict[str, Any]]:
    rows = (
        await session.exec(
            select(ChangeLog, Delivery.tracking)
            .join(Delivery, col(Delivery.id) == col(ChangeLog.delivery_id), isouter=True)
            .where(ChangeLog.retailer_id == retailer_id, col(ChangeLog.id) > since)
            .order_by(col(ChangeLog.id))
            .limit(min(max(limit, 1), MAX_PAGE))
        )
    ).all()
    return [change_payload(entry, tracking) for entry, tracking in rows]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`: the receiver recomputes and compares."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, now: datetime, tolerance_seconds: int = 300) -> bool:
    """What a receiver does: check the signature and that it is recent (replays are refused)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


async def allowed_url(url: str, *, production: bool) -> bool:
    """A retailer's URL may not point the server at itself or its private network (SSRF): in
    production it must be https and resolve only to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return False
    if not production:
        return True
    if parts.scheme != "https":
        return False
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    return bool(addresses) and all(a.is_global for a in addresses)


class ChangeWebhookPusher:
    """Pushes each retailer's pending changes, oldest first; a failing change holds back later ones."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        client: httpx.AsyncClient | None = None,
        max_attempts: int = 8,
        base_delay_seconds: float = 2.0,
        max_delay_seconds: float = 900.0,
        lease_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
        batch: int = 50,
    ) -> None:
        self.ctx = ctx
        self.client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_client = client is None
        self.max_attempts = max_attempts
        self.base_delay = base_delay_seconds
        self.max_delay = max_delay_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def run_once(self) -> int:
        """One pass over every retailer with a webhook; returns how many changes were delivered."""
        async with self.ctx.uow() as uow:
            retailers = [
                (r.id, dict(r.settings or {}))
                for r in (await uow.session.exec(select(Retailer))).all()
                if (r.settings or {}).get("change_webhook_url")
            ]
        delivered = 0
        for retailer_id, settings in retailers:
            assert retailer_id is not None
            delivered += await self._push_retailer(retailer_id, settings)
        return delivered

    async def _push_retailer(self, retailer_id: int, settings: dict[str, Any]) -> int:
        url = str(settings["change_webhook_url"])
        secret = str(settings.get("change_webhook_secret") or "")
        if not secret or not await allowed_url(url, production=self.ctx.settings.environment == "production"):
            log.warning("change_webhook_refused_url", retailer_id=retailer_id)
            return 0
        now = self.ctx.clock()
        async with self.ctx.uow() as uow:
            rows = (
                await uow.session.exec(
                    select(ChangeLog, Delivery.tracking)
                    .join(Delivery, col(Delivery.id) == col(ChangeLog.delivery_id), isouter=True)
                    .where(ChangeLog.retailer_id == retailer_id, ChangeLog.webhook_status == "pending")
                    .order_by(col(ChangeLog.id))
                    .limit(self.batch)
                )
            ).all()
        delivered = 0
        for entry, tracking in rows:
            if entry.webhook_next_at is not None and entry.webhook_next_at > now:
                break  # in order: a change waiting for its retry holds back the later ones
            if not await self._claim(entry, now):
                break
            ok = await self._post(url, secret, change_payload(entry, tracking), now)
            await self._settle(entry, ok, now)
            if not ok:
                break
            delivered += 1
        return delivered

    async def _claim(self, entry: ChangeLog, now: datetime) -> bool:
        async with self.ctx.uow() as uow:
            result: Any = await uow.session.exec(
                update(ChangeLog)
                .where(
                    col(ChangeLog.id) == entry.id,
                    col(ChangeLog.webhook_status) == "pending",
                    or_(col(ChangeLog.webhook_next_at).is_(None), col(ChangeLog.webhook_next_at) <= now),
                )
                .values(webhook_next_at=now + self.lease)
            )
            await uow.commit()
            return bool(result.rowcount == 1)

    async def _post(self, url: str, secret: str, payload: dict[str, Any], now: datetime) -> bool:
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, int(now.timestamp()), body),
            "X-Doorstep-Change": str(payload["id"]),
            "X-Doorstep-Kind": str(payload["kind"]),
        }
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("change_webhook_error", change=payload["id"], error=type(exc).__name__)
            return False
        if 200 <= response.status_code < 300:
            return True
        log.warning("change_webhook_refused", change=payload["id"], status=response.status_code)
        return False

    async def _settle(self, entry: ChangeLog, ok: bool, now: datetime) -> None:
        attempts = entry.webhook_attempts + 1
        if ok:
            values: dict[str, Any] = {"webhook_status": "sent", "webhook_attempts": attempts}
        elif attempts >= self.max_attempts:
            values = {"webhook_status": "failed", "webhook_attempts": attempts}
        else:
            delay = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
            values = {"webhook_attempts": attempts, "webhook_next_at": now + timedelta(seconds=delay)}
        async with self.ctx.uow() as uow:
            await uow.session.exec(update(ChangeLog).where(col(ChangeLog.id) == entry.id).values(**values))
            await uow.commit()


async def start_change_webhooks(
    app: Any, ctx: AppContext, *, poll_seconds: float = 2.0, pusher: ChangeWebhookPusher | None = None
) -> Callable[[], Awaitable[None]] | None:
    """Run the pusher in the background while the app lives (not when the scheduler is disabled)."""
    if not ctx.settings.scheduler_enabled:
        return None
    worker = pusher or ChangeWebhookPusher(ctx)

    async def loop() -> None:
        while True:
            try:
                await worker.run_once()
            except Exception:  # a bad pass must not end the loop; it is logged and retried
                log.exception("change_webhook_pass_failed")
            await asyncio.sleep(poll_seconds)

    task = asyncio.create_task(loop(), name="change-webhooks")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()

    return stop
