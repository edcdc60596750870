"""Dialog state of a conversation: in the database by default, in Redis when `REDIS_URL` is set.

The conversation row always carries a `generation` counter in its `state` column. Hand-back and
close bump it (`reset_dialog`), which empties the dialog in both stores at once: the database store
keeps the dialog beside the counter, the Redis store keys the dialog by conversation and generation,
so an old generation is simply never read again (and expires).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from core.db import UnitOfWork
from core.models import Conversation

DialogState = dict[str, Any]


def generation(conversation: Conversation) -> int:
    return int(conversation.state.get("generation", 0))


def reset_dialog(conversation: Conversation) -> None:
    """Forget the dialog (pending confirmations, offered options): the next turn starts afresh."""
    conversation.state = {"generation": generation(conversation) + 1}
    conversation.misunderstood = 0


class StateStore(Protocol):
    async def load(self, uow: UnitOfWork, conversation: Conversation) -> DialogState: ...

    async def save(self, uow: UnitOfWork, conversation: Conversation, state: DialogState) -> None: ...

    async def close(self) -> None: ...


class DatabaseStateStore:
    """The dialog in the conversation row, committed with the turn that changed it."""

    async def load(self, uow: UnitOfWork, conversation: Conversation) -> DialogState:
        return dict(conversation.state.get("dialog", {}))

    async def save(self, uow: UnitOfWork, conversation: Conversation, state: DialogState) -> None:
        conversation.state = {"generation": generation(conversation), "dialog": dict(state)}
        uow.session.add(conversation)

    async def close(self) -> None:
        return None


class RedisStateStore:
    """The dialog in Redis, shared by every process; keys expire after `ttl_seconds` of silence."""

    def __init__(
        self, redis: Any, *, prefix: str = "doorstep:dialog", ttl_seconds: int = 30 * 86_400
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStateStore:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), **kwargs)

    def key(self, conversation: Conversation) -> str:
        return f"{self._prefix}:{conversation.id}:{generation(conversation)}"

    async def load(self, uow: UnitOfWork, conversation: Conversation) -> DialogState:
        raw = await self._redis.get(self.key(conversation))
        if not raw:
            return {}
        value = json.loads(raw)
        return value if isinstance(value, dict) else {}

    async def save(self, uow: UnitOfWork, conversation: Conversation, state: DialogState) -> None:
        await self._redis.set(self.key(conversation), json.dumps(state), ex=self._ttl)

    async def close(self) -> None:
        await self._redis.aclose()


def build_state_store(redis_url: str | None) -> StateStore:
    if redis_url:
        return RedisStateStore.from_url(redis_url)
    return DatabaseStateStore()
