"""The dialog state store's contract, run over both implementations: the database and Redis."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from bot.state import DatabaseStateStore, RedisStateStore, reset_dialog
from core.models import Channel, Conversation
from tests.redis_support import REDIS_URL, redis_or_skip


@pytest.fixture(params=["database", "redis"])
async def make_store(request):
    """A factory: each call is a new store object, as after a restart of the process."""
    if request.param == "database":
        yield DatabaseStateStore
        return
    prefix = f"doorstep-test:{uuid.uuid4().hex[:8]}"
    clients = []

    def build():
        client = Redis.from_url(REDIS_URL)
        clients.append(client)
        return RedisStateStore(client, prefix=prefix, ttl_seconds=60)

    probe = await redis_or_skip()
    yield build
    async for key in probe.scan_iter(f"{prefix}:*"):
        await probe.delete(key)
    await probe.aclose()
    for client in clients:
        await client.aclose()


async def new_conversation(ctx, address: str) -> int:
    async with ctx.uow() as uow:
        conversation = Conversation(channel=Channel.sms, address=address)
        uow.session.add(conversation)
        await uow.commit()
        return conversation.id


async def save(ctx, store, conversation_id: int, state: dict) -> None:
    async with ctx.uow() as uow:
        conversation = await uow.session.get(Conversation, conversation_id)
        await store.save(uow, conversation, state)
        await uow.commit()


async def load(ctx, store, conversation_id: int) -> dict:
    async with ctx.uow() as uow:
        conversation = await uow.session.get(Conversation, conversation_id)
        return await store.load(uow, conversation)


class TestStateStore:
    async def test_a_new_conversation_has_an_empty_dialog(self, ctx, make_store):
        conversation_id = await new_conversation(ctx, "+14165550001")
        assert await load(ctx, make_store(), conversation_id) == {}

    async def test_what_is_saved_is_read_back_after_a_restart(self, ctx, make_store):
        conversation_id = await new_conversation(ctx, "+14165550001")
        state = {"pending": {"kind": "reschedule", "start": "2026-12-04T19:00:00+00:00"}, "options": [1, 2]}
        await save(ctx, make_store(), conversation_id, state)
        assert await load(ctx, make_store(), conversation_id) == state

    async def test_conversations_do_not_see_each_others_dialog(self, ctx, make_store):
        first = await new_conversation(ctx, "+14165550001")
        second = await new_conversation(ctx, "+14165550002")
        store = make_store()
        await save(ctx, store, first, {"language": "es"})
        await save(ctx, store, second, {"language": "fr_CA"})
        assert (await load(ctx, store, first))["language"] == "es"
        assert (await load(ctx, store, second))["language"] == "fr_CA"

    async def test_a_reset_forgets_the_dialog_in_every_store(self, ctx, make_store):
        conversation_id = await new_conversation(ctx, "+14165550001")
        store = make_store()
        await save(ctx, store, conversation_id, {"pending": {"kind": "pickup"}})
        async with ctx.uow() as uow:
            conversation = await uow.session.get(Conversation, conversation_id)
            reset_dialog(conversation)
            uow.session.add(conversation)
            await uow.commit()
        assert await load(ctx, make_store(), conversation_id) == {}
        await save(ctx, store, conversation_id, {"language": "en"})
        assert await load(ctx, make_store(), conversation_id) == {"language": "en"}


class FlakyRedis:
    """A Redis client that stops answering and comes back, around a real one."""

    def __init__(self, real: Redis) -> None:
        self.real = real
        self.down = False

    async def get(self, key):
        if self.down:
            raise ConnectionError("redis is down")
        return await self.real.get(key)

    async def set(self, key, value, ex=None):
        if self.down:
            raise ConnectionError("redis is down")
        return await self.real.set(key, value, ex=ex)

    async def aclose(self):
        await self.real.aclose()


class TestRedisOutage:
    async def test_the_dialog_goes_to_the_row_while_redis_is_down_and_the_newer_copy_wins_after(self, ctx):
        real = await redis_or_skip()
        flaky = FlakyRedis(real)
        store = RedisStateStore(flaky, prefix=f"doorstep-test:{uuid.uuid4().hex[:8]}", ttl_seconds=60)
        conversation_id = await new_conversation(ctx, "+14165550001")
        await save(ctx, store, conversation_id, {"step": "before the outage"})
        flaky.down = True
        assert await load(ctx, store, conversation_id) == {}  # the row has nothing yet: a fresh dialog
        await save(ctx, store, conversation_id, {"step": "during the outage"})
        assert await load(ctx, store, conversation_id) == {"step": "during the outage"}
        flaky.down = False
        assert await load(ctx, store, conversation_id) == {"step": "during the outage"}
        await save(ctx, store, conversation_id, {"step": "after the outage"})
        assert await load(ctx, store, conversation_id) == {"step": "after the outage"}
        async with ctx.uow() as uow:
            assert "dialog" not in (await uow.session.get(Conversation, conversation_id)).state
        await store.close()
