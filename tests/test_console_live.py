"""Live updates: notices carry ids only, reach only the agents of the event's retailer, and go
through Redis pub/sub between processes when REDIS_URL is set."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from console.live import LiveHub, notice_of, stream
from core.redis import COMPONENT, SharedRedis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True)
class MessageReceived:
    conversation_id: int
    retailer_id: int | None
    message_id: int
    channel: str
    text: str = "secret words"


@dataclass(frozen=True)
class DeliveryRescheduled:
    retailer_id: int
    delivery_id: int


class FakeContext:
    def __init__(self, redis_url: str | None = None) -> None:
        self.components = {COMPONENT: SharedRedis(redis_url)}
        self.event_handlers = []


class TestNotices:
    def test_a_notice_carries_the_kind_and_ids_but_never_the_text(self):
        notice = notice_of(MessageReceived(7, 3, 11, "sms"))
        assert notice == {"kind": "MessageReceived", "retailer_id": 3, "conversation_id": 7}
        assert "secret" not in json.dumps(notice)
        assert notice_of(DeliveryRescheduled(3, 5)) == {
            "kind": "DeliveryRescheduled",
            "retailer_id": 3,
            "delivery_id": 5,
        }
        assert notice_of(object()) is None

    async def test_each_agent_gets_only_the_notices_of_their_retailers(self):
        hub = LiveHub(FakeContext())
        acme = hub.subscribe(frozenset({1}))
        globex = hub.subscribe(frozenset({2}))
        admin = hub.subscribe(frozenset({1, 2}), include_unassigned=True)
        await hub.publish([MessageReceived(7, 1, 11, "sms"), MessageReceived(8, None, 12, "sms")])
        assert [n["conversation_id"] for n in drain(acme)] == [7]
        assert drain(globex) == []
        assert [n["conversation_id"] for n in drain(admin)] == [7, 8]

    async def test_the_stream_sends_server_sent_events_and_forgets_the_subscriber_when_the_browser_leaves(
        self,
    ):
        hub = LiveHub(FakeContext())
        subscriber = hub.subscribe(frozenset({1}))
        gone = asyncio.Event()

        async def is_disconnected() -> bool:
            return gone.is_set()

        chunks = stream(hub, subscriber, is_disconnected, keepalive=0.05)
        assert (await anext(chunks)).startswith("retry: 3000")
        await hub.publish([MessageReceived(7, 1, 11, "sms")])
        event = await anext(chunks)
        assert event.startswith("event: MessageReceived\ndata: ") and '"conversation_id": 7' in event
        assert await anext(chunks) == ": keep-alive\n\n"
        gone.set()
        with pytest.raises(StopAsyncIteration):
            await anext(chunks)
        assert subscriber not in hub.subscribers


def drain(subscriber):
    notices = []
    while not subscriber.queue.empty():
        notices.append(subscriber.queue.get_nowait())
    return notices


async def redis_answers() -> bool:
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        await client.ping()
        return True
    except Exception:
        return False
    finally:
        await client.aclose()


class TestAcrossProcesses:
    async def test_a_notice_published_in_one_process_reaches_the_agents_of_another_through_redis(self):
        if not await redis_answers():
            print(f"\nSKIP Redis live test: no Redis at {REDIS_URL}")
            pytest.skip(f"no Redis at {REDIS_URL}")
        # two hubs with their own Redis clients stand for two app processes
        first, second = FakeContext(REDIS_URL), FakeContext(REDIS_URL)
        hubs = [LiveHub(first), LiveHub(second)]
        for ctx in (first, second):
            await ctx.components[COMPONENT].start()
        for hub in hubs:
            hub.start()
        try:
            listener = hubs[1].subscribe(frozenset({1}))
            other = hubs[1].subscribe(frozenset({2}))
            await asyncio.sleep(0.3)  # the listeners subscribe
            retailer, conversation = 1, int(uuid.uuid4().int % 1000)
            # a unit of work's events go out together (one pipeline), each a notice, in order
            await hubs[0].publish(
                [
                    MessageReceived(conversation, retailer, 1, "sms"),
                    MessageReceived(conversation + 1, retailer, 2, "sms"),
                ]
            )
            notices = [await asyncio.wait_for(listener.queue.get(), 5) for _ in range(2)]
            assert [(n["kind"], n["retailer_id"], n["conversation_id"]) for n in notices] == [
                ("MessageReceived", 1, conversation),
                ("MessageReceived", 1, conversation + 1),
            ]
            assert other.queue.empty()
        finally:
            for hub in hubs:
                await hub.stop()
            for ctx in (first, second):
                await ctx.components[COMPONENT].stop()

    async def test_without_redis_the_hub_falls_back_to_this_process(self):
        ctx = FakeContext("redis://127.0.0.1:1/0")  # nothing listens there
        await ctx.components[COMPONENT].start()
        hub = LiveHub(ctx)
        hub.start()
        try:
            listener = hub.subscribe(frozenset({1}))
            await hub.publish([MessageReceived(7, 1, 11, "sms")])
            assert drain(listener) == [{"kind": "MessageReceived", "retailer_id": 1, "conversation_id": 7}]
        finally:
            await hub.stop()
            await ctx.components[COMPONENT].stop()


class TestHandOffsBeforeTheBotKnowsTheRetailer:
    async def test_the_notice_goes_to_the_agents_of_the_retailer_the_senders_phone_belongs_to(
        self, ctx, acme, globex
    ):
        from bot.handoff import request_person
        from core.models import Channel, Conversation, Recipient

        hub = LiveHub(ctx)
        ctx.event_handlers.append(hub.publish)
        acme_agent = hub.subscribe(frozenset({acme.retailer_id}))
        globex_agent = hub.subscribe(frozenset({globex.retailer_id}))
        async with ctx.uow() as uow:
            uow.session.add(Recipient(retailer_id=acme.retailer_id, phone="+14165550999", name="Ada"))
            conversation = Conversation(channel=Channel.sms, address="+14165550999")
            uow.session.add(conversation)
            await uow.session.flush()
            request_person(uow, conversation, "asked", ctx.clock())
            await asyncio.wait_for(uow.commit(), 10)  # the handler reads after the commit: no deadlock
        notices = drain(acme_agent)
        assert [(n["kind"], n["retailer_id"]) for n in notices] == [("HandoffRequested", acme.retailer_id)]
        assert drain(globex_agent) == []
