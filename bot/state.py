"""Dialog state of a conversation: in the database by default, in Redis when `REDIS_URL` is set.

The conversation row always carries a `generation` counter in its `state` column. Hand-back and
close bump it (`reset_dialog`), which empties the dialog in both stores at once: the database store
keeps the dialog beside the counter, the Redis store keys the dialog by conversation and generation,
so an old generation is simply never read again (and expires).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Protocol

from core.db import UnitOfWork
from core.logging import get_logger
from core.models import Conversation
from core.redis import REDIS_ERRORS

log = get_logger("doorstep.bot.state")

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

    async def forget(self, dialogs: Sequence[tuple[int, int]]) -> None:
        """Drop the dialogs of deleted conversations, given as (conversation id, generation)."""

    async def close(self) -> None: ...


class DatabaseStateStore:
    """The dialog in the conversation row, committed with the turn that changed it."""

    async def load(self, uow: UnitOfWork, conversation: Conversation) -> DialogState:
        return dict(conversation.state.get("dialog", {}))

    async def save(self, uow: UnitOfWork, conversation: Conversation, state: DialogState) -> None:
        conversation.state = {"generation": generation(conversation), "dialog": dict(state)}
        uow.session.add(conversation)

    async def forget(self, dialogs: Sequence[tuple[int, int]]) -> None:
        return None  # they went with their rows

    async def close(self) -> None:
        return None


class RedisStateStore:
    """The dialog in Redis, shared by every process; keys expire after `ttl_seconds` of silence.

    While Redis does not answer, the dialog goes to the conversation row instead (as with the
    database store), stamped with a save counter; once Redis is back the newer of the two is read, so
    an outage loses neither a pending confirmation nor what was said during it.
    """

    def __init__(
        self, redis: Any, *, prefix: str = "doorstep:dialog", ttl_seconds: int = 30 * 86_400
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStateStore:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0), **kwargs)

    def key(self, conversation: Conversation) -> str:
        return self._key(conversation.id or 0, generation(conversation))

    def _key(self, conversation_id: int, dialog_generation: int) -> str:
        return f"{self._prefix}:{conversation_id}:{dialog_generation}"

    async def forget(self, dialogs: Sequence[tuple[int, int]]) -> None:
        """Deleted at once; while Redis does not answer they expire with the rest (`ttl_seconds`)."""
        if not dialogs:
            return
        try:
            await self._redis.delete(*(self._key(cid, gen) for cid, gen in dialogs))
        except REDIS_ERRORS as exc:
            log.warning("dialog_state_not_forgotten", dialogs=len(dialogs), error=type(exc).__name__)

    async def load(self, uow: UnitOfWork, conversation: Conversation) -> DialogState:
        kept = dict(conversation.state.get("dialog") or {})
        kept_at = int(conversation.state.get("saved_at", 0))
        try:
            raw = await self._redis.get(self.key(conversation))
        except REDIS_ERRORS as exc:
            log.warning("dialog_state_degraded", conversation_id=conversation.id, error=type(exc).__name__)
            return kept
        blob = json.loads(raw) if raw else {}
        if not isinstance(blob, dict):
            blob = {}
        if kept and kept_at > int(blob.get("saved_at", 0)):
            return kept
        return dict(blob.get("dialog") or {})

    async def save(self, uow: UnitOfWork, conversation: Conversation, state: DialogState) -> None:
        saved_at = time.time_ns()
        try:
            await self._redis.set(
                self.key(conversation), json.dumps({"dialog": state, "saved_at": saved_at}), ex=self._ttl
            )
        except REDIS_ERRORS as exc:
            log.warning("dialog_state_degraded", conversation_id=conversation.id, error=type(exc).__name__)
            conversation.state = {
                "generation": generation(conversation),
                "dialog": state,
                "saved_at": saved_at,
            }
            uow.session.add(conversation)
            return
        if conversation.state.get("dialog"):  # Redis is back: the row's copy is now the older one
            conversation.state = {"generation": generation(conversation)}
            uow.session.add(conversation)

    async def close(self) -> None:
        await self._redis.aclose()


def build_state_store(redis_url: str | None) -> StateStore:
    if redis_url:
        return RedisStateStore.from_url(redis_url)
    return DatabaseStateStore()
