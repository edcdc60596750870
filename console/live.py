"""Live updates for the console: committed events, fanned out to the agents' browsers as server-sent events.

Every committed unit of work's events reach `LiveHub.publish` (it is one of `ctx.event_handlers`).
Each becomes a small JSON notice (kind, retailer, conversation, delivery: ids only, never text or
phone numbers) that browsers answer by re-reading what changed. With Redis the notice goes through
one pub/sub channel, so agents connected to any app process see it; without Redis (or while it is
down) it is fanned out in this process only, and the degraded mode is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from core.context import AppContext
from core.logging import get_logger
from core.models import Channel, Conversation, Recipient
from core.redis import REDIS_ERRORS, shared_redis

log = get_logger("doorstep.console.live")

CHANNEL = "doorstep:console:live"
COMPONENT = "console.live"
QUEUE_SIZE = 256
KEEPALIVE_SECONDS = 15.0


@dataclass(eq=False)
class Subscriber:
    retailer_ids: frozenset[int]
    include_unassigned: bool = False
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def wants(self, notice: dict[str, Any]) -> bool:
        retailer_id = notice.get("retailer_id")
        if retailer_id is None:
            return self.include_unassigned
        return retailer_id in self.retailer_ids


def notice_of(event: Any) -> dict[str, Any] | None:
    """The console's notice for a domain event: its kind and ids; None for events without a retailer."""
    if not hasattr(event, "retailer_id"):
        return None
    notice: dict[str, Any] = {"kind": type(event).__name__, "retailer_id": event.retailer_id}
    for name in ("conversation_id", "delivery_id", "outbox_id"):
        value = getattr(event, name, None)
        if isinstance(value, int):
            notice[name] = value
    if "conversation_id" not in notice and "delivery_id" not in notice:
        return None
    return notice


class LiveHub:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._degraded_logged = False
        self.delivered = 0

    # subscribers ---------------------------------------------------------------------------------

    def subscribe(self, retailer_ids: frozenset[int], *, include_unassigned: bool = False) -> Subscriber:
        subscriber = Subscriber(retailer_ids, include_unassigned)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def fan_out(self, notice: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            if not subscriber.wants(notice):
                continue
            try:
                subscriber.queue.put_nowait(notice)
                self.delivered += 1
            except asyncio.QueueFull:  # a stalled browser: it reloads what it missed on reconnect
                log.warning("console_live_queue_full")

    # publishing ----------------------------------------------------------------------------------

    async def publish(self, events: list[Any]) -> None:
        """The event handler: one notice per event, through Redis when it answers."""
        notices = [n for n in (notice_of(e) for e in events) if n is not None]
        if not notices:
            return
        await self._place_unassigned(notices)
        redis = shared_redis(self.ctx)
        if redis.available and redis.client is not None and self._task is not None:
            try:
                async with redis.client.pipeline(transaction=False) as pipe:  # one round trip per commit
                    for notice in notices:
                        pipe.publish(CHANNEL, json.dumps(notice))
                    await pipe.execute()
                return
            except REDIS_ERRORS as exc:
                redis.mark_down(exc)
        self._log_degraded()
        for notice in notices:
            self.fan_out(notice)

    async def _place_unassigned(self, notices: list[dict[str, Any]]) -> None:
        """A conversation not yet tied to a retailer (a hand-off asked first thing) goes to the agents
        of the one retailer whose recipient the sender's phone is, as the inbox shows it."""
        missing = {
            n["conversation_id"] for n in notices if n.get("retailer_id") is None and "conversation_id" in n
        }
        sessionmaker = getattr(self.ctx, "sessionmaker", None)
        if not missing or sessionmaker is None:
            return
        retailers: dict[int, set[int]] = {}
        try:
            async with sessionmaker() as session:  # the publishing unit of work has committed already
                rows = await session.exec(
                    select(Conversation.id, Recipient.retailer_id)
                    .join(Recipient, col(Recipient.phone) == col(Conversation.address))
                    .where(
                        col(Conversation.id).in_(sorted(missing)),
                        col(Conversation.retailer_id).is_(None),
                        col(Conversation.channel).in_([Channel.sms, Channel.whatsapp]),
                    )
                )
                for conversation_id, retailer_id in rows.all():
                    if conversation_id is not None:
                        retailers.setdefault(conversation_id, set()).add(retailer_id)
        except SQLAlchemyError as exc:
            log.warning("console_live_unassigned_lookup_failed", error=type(exc).__name__)
            return
        for notice in notices:
            found = retailers.get(notice.get("conversation_id", -1), set())
            if notice.get("retailer_id") is None and len(found) == 1:
                notice["retailer_id"] = next(iter(found))

    def _log_degraded(self) -> None:
        if not self._degraded_logged:
            self._degraded_logged = True
            log.warning(
                "console_live_in_process", mode="degraded: live updates reach this process's agents only"
            )

    # the Redis listener --------------------------------------------------------------------------

    def start(self) -> None:
        if shared_redis(self.ctx).configured:
            self._task = asyncio.create_task(self._listen(), name="console-live-redis")
        else:
            self._log_degraded()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        redis = shared_redis(self.ctx)
        while True:
            if not redis.available or redis.client is None:
                await asyncio.sleep(1.0)
                continue
            pubsub = redis.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                if self._degraded_logged:
                    log.info("console_live_shared", mode="live updates through Redis pub/sub")
                    self._degraded_logged = False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        notice = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    if isinstance(notice, dict):
                        self.fan_out(notice)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                redis.mark_down(exc)
                self._log_degraded()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped in older redis releases


def hub(ctx: AppContext) -> LiveHub:
    live = ctx.components.get(COMPONENT)
    if not isinstance(live, LiveHub):
        live = ctx.components[COMPONENT] = LiveHub(ctx)
        ctx.event_handlers.append(live.publish)
    return live


async def start_live(_app: FastAPI, ctx: AppContext) -> Callable[[], Awaitable[None]]:
    live = hub(ctx)
    live.start()
    return live.stop


async def stream(
    live: LiveHub,
    subscriber: Subscriber,
    is_disconnected: Callable[[], Awaitable[bool]],
    *,
    keepalive: float = KEEPALIVE_SECONDS,
    poll: float = 1.0,
) -> AsyncIterator[str]:
    """The text/event-stream body: one `event:` per notice, a comment every `keepalive` seconds.

    The browser leaving is noticed within `poll` seconds (nothing tells a streaming response sooner),
    so the subscriber is dropped and the server can shut down without waiting for a keep-alive."""
    try:
        yield "retry: 3000\n: connected\n\n"
        quiet = 0.0
        while not await is_disconnected():
            try:
                notice = await asyncio.wait_for(subscriber.queue.get(), min(poll, keepalive))
            except TimeoutError:
                quiet += min(poll, keepalive)
                if quiet >= keepalive:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                continue
            quiet = 0.0
            yield f"event: {notice['kind']}\ndata: {json.dumps(notice)}\n\n"
    finally:
        live.unsubscribe(subscriber)
