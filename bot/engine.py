"""The conversation engine: one inbound message in, the bot's replies out, everything recorded.

`handle()` is what every channel adapter calls. In one unit of work it de-duplicates the provider's
message id, finds or opens the conversation (one per channel, sender and service number), stores
what the recipient said, runs the dialog unless an agent owns the conversation, and stores each reply
twice: as a message of the conversation (for agents) and as an outbox row (for the channel's sender),
with an idempotency key derived from the inbound message. Events go out after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import importlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import bindparam, insert, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.dialogs.conversation import Dialogs, Understand
from bot.dialogs.turn import Turn
from bot.events import MessageReceived, MessageSent
from bot.i18n import Speaker, normalize_locale
from bot.messages import InboundMessage, OutboundMessage
from bot.state import StateStore, build_state_store
from core.context import AppContext
from core.db import UnitOfWork, is_postgres
from core.logging import get_logger
from core.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    Direction,
    InboundReceipt,
    Message,
    OutboxMessage,
    Owner,
    Recipient,
)
from core.outbox import outbox_values
from core.ratelimit import tracking_guess_limiter
from core.redis import shared_redis

log = get_logger("doorstep.bot")
TEXT_LIMIT = 4000  # what we keep of one inbound message

# Built once: a statement object caches its own cache key, so each turn skips rebuilding it
_OUTBOX_TABLE, _MESSAGE_TABLE = OutboxMessage.__table__, Message.__table__  # type: ignore[attr-defined]
INSERT_OUTBOX = insert(_OUTBOX_TABLE).returning(_OUTBOX_TABLE.c.idempotency_key, _OUTBOX_TABLE.c.id)
INSERT_MESSAGES = insert(_MESSAGE_TABLE).returning(_MESSAGE_TABLE.c.id, sort_by_parameter_order=True)
CLAIM_ON_POSTGRES, CLAIM_ON_SQLITE = (
    dialect_insert(InboundReceipt.__table__)  # type: ignore[attr-defined]
    .on_conflict_do_nothing(index_elements=["provider", "external_id"])
    .returning(col(InboundReceipt.id))
    for dialect_insert in (postgresql_insert, sqlite_insert)
)
_BY_ADDRESS = (
    col(Conversation.channel) == bindparam("of_channel"),
    col(Conversation.address) == bindparam("of_address"),
    col(Conversation.service_address) == bindparam("of_service_address"),
)
CONVERSATION_STAMPED = (
    update(Conversation)
    .where(*_BY_ADDRESS)
    .values(last_inbound_at=bindparam("stamp"), updated_at=bindparam("stamp"))
    .returning(Conversation)
    # nothing of this session is loaded yet: the returned row is the one object to keep in step
    .execution_options(synchronize_session=False)
)
CONVERSATION_FOR_UPDATE = select(Conversation).where(*_BY_ADDRESS).with_for_update()


def understanding_module() -> Any:
    """bot.understanding, imported when first needed (its parsers take a moment to load)."""
    return importlib.import_module("bot.understanding")


def default_understand() -> Understand:
    understand: Understand = understanding_module().understand
    return understand


def message_values(message: Message) -> dict[str, Any]:
    """A message's columns for a batched Core insert (every row the same keys)."""
    return {
        "conversation_id": message.conversation_id,
        "channel": message.channel,
        "direction": message.direction,
        "author": message.author,
        "author_user_id": message.author_user_id,
        "text": message.text,
        "payload": message.payload,
        "options": list(message.options),
        "attachments": list(message.attachments),
        "internal_note": message.internal_note,
        "provider_id": message.provider_id,
        "outbox_id": message.outbox_id,
        "created_at": message.created_at,
    }


class ConversationEngine:
    def __init__(
        self,
        ctx: AppContext,
        *,
        clock: Callable[[], datetime] | None = None,
        understand: Understand | None = None,
        state_store: StateStore | None = None,
    ) -> None:
        self._ctx = ctx
        self._clock = clock or ctx.clock
        self._understand = understand
        # Redis holds dialogs only if it answered at start (core/redis.py); otherwise the database does
        redis_url = ctx.settings.redis_url if shared_redis(ctx).available else None
        self.state_store = state_store or build_state_store(redis_url)

    @property
    def dialogs(self) -> Dialogs:
        if self._understand is None:
            self._understand = default_understand()
        return Dialogs(self._understand, tracking_guess_limiter(self._ctx))

    def warm_up(self) -> None:
        """Load the understanding's per-language parsers now rather than on the first message."""
        understanding_module().warm_up()

    async def close(self) -> None:
        await self.state_store.close()

    # --- the one entry point -----------------------------------------------------------------

    async def handle(self, message: InboundMessage) -> list[OutboundMessage]:
        # every log line of the turn, the scheduling service's too, names the conversation and channel
        with structlog.contextvars.bound_contextvars(
            channel=str(message.channel), conversation_id=None, retailer_id=None
        ):
            return await self._handle(message)

    async def _handle(self, message: InboundMessage) -> list[OutboundMessage]:
        now = self._clock()
        async with self._ctx.uow() as uow:
            if message.provider_id and not await self._claim(uow, message, now):
                return []
            conversation = await self._conversation(uow, message, now)
            structlog.contextvars.bind_contextvars(
                conversation_id=conversation.id, retailer_id=conversation.retailer_id
            )
            inbound = Message(
                conversation_id=conversation.id or 0,
                channel=message.channel,
                direction=Direction.inbound,
                author=Author.recipient,
                text=message.text[:TEXT_LIMIT],
                payload=(message.payload or None) and message.payload[:128],
                provider_id=(message.provider_id or None) and message.provider_id[:64],
                attachments=[a.as_json() for a in message.attachments],
                created_at=now,
            )
            # Added to the session at the end, in one INSERT with the replies (or earlier, with what
            # the turn recorded, when a change is committed midway: the checkpoint)
            if conversation.status == ConversationStatus.closed:
                conversation.status = ConversationStatus.open
            if message.channel == Channel.whatsapp:
                # the 24-hour window in which free-form WhatsApp replies (bot's or agent's) may go out
                for recipient in (
                    await uow.session.exec(select(Recipient).where(Recipient.phone == message.sender))
                ).all():
                    recipient.whatsapp_last_inbound_at = now
                    uow.session.add(recipient)
            turn = await self._turn(uow, message, conversation, inbound, now)
            if conversation.owner == Owner.agent:
                # the agent answers; only STOP/START/HELP, which carriers require us to honour, get ours
                if not await self.dialogs.run_keyword_only(turn):
                    self._touch(uow, conversation, now)
                    uow.session.add(inbound)
                    await uow.session.flush()
                    uow.record(
                        MessageReceived(
                            conversation.id or 0, conversation.retailer_id, inbound.id or 0, message.channel
                        )
                    )
                    await uow.commit()
                    log.info("inbound_for_agent", conversation_id=conversation.id, channel=message.channel)
                    return []
            else:
                await self.dialogs.run(turn)
            turn.remember_offers()
            await self.state_store.save(uow, conversation, turn.state)
            self._touch(uow, conversation, now)
            sent = await self._send(uow, turn, inbound)
            # recorded now that the dialog knows the retailer, so the console files it under the right
            # one; what was said comes before the answers, as the console shows them
            uow.record(
                MessageReceived(
                    conversation.id or 0, conversation.retailer_id, inbound.id or 0, message.channel
                )
            )
            for event in sent:
                uow.record(event)
            await uow.commit()
            log.info(
                "conversation_turn",
                conversation_id=conversation.id,
                retailer_id=conversation.retailer_id,
                channel=message.channel,
                replies=len(turn.replies),
            )
            return turn.replies

    # --- steps -----------------------------------------------------------------------------------

    @staticmethod
    def _touch(uow: UnitOfWork, conversation: Conversation, now: datetime) -> None:
        """Stamped at the end of the turn, so the row is written once with the dialog's changes."""
        conversation.last_inbound_at = now
        conversation.updated_at = now
        uow.session.add(conversation)

    async def _claim(self, uow: UnitOfWork, message: InboundMessage, now: datetime) -> bool:
        """Record the provider's message id; False when this webhook was already handled.

        One `INSERT ... ON CONFLICT DO NOTHING RETURNING id` (PostgreSQL and SQLite alike): a retried
        webhook, even one handled concurrently by another worker, inserts nothing and returns no row.
        """
        statement = CLAIM_ON_POSTGRES if is_postgres(self._ctx.engine) else CLAIM_ON_SQLITE
        values = {
            "provider": str(message.channel),
            "external_id": (message.provider_id or "")[:64],
            "received_at": now,
        }
        connection = await uow.session.connection()
        return (await connection.execute(statement, values)).first() is not None

    async def _conversation(
        self, uow: UnitOfWork, message: InboundMessage, now: datetime, *, inbound: bool = True
    ) -> Conversation:
        """The conversation of this sender on this channel and service number, locked for the turn.

        For an inbound message the row is found, locked and stamped by one `UPDATE ... RETURNING`
        (an UPDATE locks the row as `FOR UPDATE` does): the turn's closing stamp then finds nothing to
        change, and a turn that changes nothing else in the conversation writes it no second time.
        """
        session = uow.session

        async def find() -> Conversation | None:
            where = {
                "of_channel": message.channel,
                "of_address": message.sender[:64],
                "of_service_address": message.service_address[:64],
            }
            if not inbound:
                return (await session.exec(CONVERSATION_FOR_UPDATE, params=where)).first()
            stamped = await session.exec(CONVERSATION_STAMPED, params={**where, "stamp": now})
            found: Conversation | None = stamped.scalars().first()
            return found

        conversation = await find()
        if conversation is not None:
            return conversation
        conversation = Conversation(
            channel=message.channel,
            address=message.sender[:64],
            service_address=message.service_address[:64],
            created_at=now,
            updated_at=now,
        )
        if not is_postgres(self._ctx.engine):  # SQLite has one writer: nobody can race us here
            session.add(conversation)
            await session.flush()
            return conversation
        try:
            async with session.begin_nested():
                session.add(conversation)
        except IntegrityError:
            found = await find()
            assert found is not None
            return found
        return conversation

    async def _turn(
        self,
        uow: UnitOfWork,
        message: InboundMessage,
        conversation: Conversation,
        inbound: Message,
        now: datetime,
    ) -> Turn:
        state = await self.state_store.load(uow, conversation)
        turn: Turn

        async def checkpoint() -> None:
            """Keep what this turn recorded so far before the scheduling service commits a change."""
            uow.session.add_all([conversation, inbound])
            await uow.commit()

        async def recover(held: list[Any]) -> None:
            """After a refused change: roll back whatever the service left, reload what we hold."""
            uow.events = []
            turn.deliveries = None
            await uow.session.rollback()
            # the inbound message too, once the checkpoint stored it (else it is still to be added)
            stored = [inbound] if sa_inspect(inbound).persistent else []
            for row in [conversation, *turn.recipients, *turn.retailers.values(), *held, *stored]:
                await uow.session.refresh(row)

        turn = Turn(
            uow=uow,
            message=message,
            conversation=conversation,
            state=state,
            now=now,
            speaker=Speaker(normalize_locale(conversation.locale), message.channel),
            checkpoint=checkpoint,
            recover=recover,
        )
        return turn

    async def _send(self, uow: UnitOfWork, turn: Turn, inbound: Message) -> list[MessageSent]:
        """Each reply becomes a message of the conversation and an outbox row, in this transaction.

        The keys `reply:<channel>:<provider id>:<n>` are new (the provider id was just claimed; a
        message without one gets a random key), so the rows go in without looking for an existing one,
        as column values rather than ORM objects (this is every inbound message's path): one batched
        INSERT for the outbox rows, one for the inbound message (unless a checkpoint stored it) with
        the replies. Returns the replies' events, for the caller to record after the inbound one.
        """
        conversation, message = turn.conversation, turn.message
        if not turn.replies:
            uow.session.add(inbound)
            await uow.session.flush()
            return []
        origin = f"{message.channel}:{message.provider_id[:64]}" if message.provider_id else uuid.uuid4().hex
        recipient = turn.recipient
        recipient_id = recipient.id if recipient is not None else conversation.recipient_id
        options = [
            [{"label": o.label, "payload": o.payload} for o in reply.options] for reply in turn.replies
        ]
        keys = [f"reply:{origin}:{index}" for index in range(len(turn.replies))]
        rows = [
            outbox_values(
                channel=message.channel,
                to_address=message.sender,
                from_address=message.service_address,
                body=reply.text,
                options=choices,
                idempotency_key=key,
                conversation_id=conversation.id,
                retailer_id=conversation.retailer_id,
                recipient_id=recipient_id,
                template_key=reply.template_key,
                now=turn.now,
            )
            for reply, choices, key in zip(turn.replies, options, keys, strict=True)
        ]
        # Core statements on the unit's connection: nothing pending has to be flushed first (the
        # conversation row exists), and the ORM's bulk machinery cost more than the inserts
        connection = await uow.session.connection()
        # RETURNING without a guaranteed order (SQLite batches the rows): ids are matched by key
        outbox_ids: dict[str, int] = {
            key: outbox_id for key, outbox_id in (await connection.execute(INSERT_OUTBOX, rows)).all()
        }
        stored = sa_inspect(inbound).persistent
        heard = message_values(inbound)
        said = [] if stored else [heard]
        said += [
            {
                **heard,
                "direction": Direction.outbound,
                "author": Author.bot,
                "text": reply.text,
                "payload": None,
                "options": choices,
                "attachments": [],
                "provider_id": None,
                "outbox_id": outbox_ids[key],
            }
            for reply, choices, key in zip(turn.replies, options, keys, strict=True)
        ]
        message_ids = (await connection.execute(INSERT_MESSAGES, said)).scalars().all()
        if not stored:
            inbound.id = message_ids[0]
            message_ids = message_ids[1:]
        return [
            MessageSent(
                conversation.id or 0, conversation.retailer_id, message_id, message.channel, outbox_ids[key]
            )
            for message_id, key in zip(message_ids, keys, strict=True)
        ]

    # --- the web sandbox -------------------------------------------------------------------------

    async def link_web_session(
        self, session_id: str, recipient_id: int, *, delivery_id: int | None = None
    ) -> int:
        """Link a sandbox session to the demo recipient the sandbox picked; returns the conversation id."""
        now = self._clock()
        async with self._ctx.uow() as uow:
            recipient = await uow.session.get(Recipient, recipient_id)
            if recipient is None:
                raise LookupError(f"no recipient {recipient_id}")
            message = InboundMessage(channel=Channel.web, sender=session_id)
            conversation = await self._conversation(uow, message, now, inbound=False)
            if conversation.recipient_id != recipient_id:
                conversation.delivery_id = None
                conversation.state = {"generation": int(conversation.state.get("generation", 0)) + 1}
            conversation.recipient_id = recipient_id
            conversation.retailer_id = recipient.retailer_id
            conversation.locale = normalize_locale(recipient.locale)
            if delivery_id is not None:
                delivery = await uow.session.get(Delivery, delivery_id)
                if delivery is None or delivery.recipient_id != recipient_id:
                    raise LookupError(f"no delivery {delivery_id} for recipient {recipient_id}")
                conversation.delivery_id = delivery_id
            conversation.updated_at = now
            uow.session.add(conversation)
            await uow.commit()
            return conversation.id or 0


def freeze_start_up_heap(_warming: Any = None) -> None:
    """Move everything alive now out of the garbage collector's sight (`gc.freeze`), and give the
    memory freed while warming up back to the system.

    Once warmed, a process holds ~200,000 container objects built at start (the understanding's
    word lists and parsers, the models, the routes) that live as long as it does; every full
    collection walked them all, stalling the event loop for 80-120 ms under load. Frozen, they are
    never walked again; what is created afterwards is collected as usual.

    Reading the spelling word lists allocates and frees ~15 MB that glibc's allocator keeps in its
    heap, resident, for the life of the process; `malloc_trim` returns those pages (on a C library
    without it, nothing happens).
    """
    gc.collect()
    gc.freeze()
    log.info("start_up_heap_frozen", objects=gc.get_freeze_count())
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


async def start_engine(_app: Any, ctx: AppContext) -> Callable[[], Awaitable[None]]:
    """The app's starter: one engine per process in ctx.components["engine"], its parsers warmed."""
    engine = ConversationEngine(ctx)
    ctx.components["engine"] = engine
    # warm in a thread: the first recipient need not wait for the parsers, nor the start for them
    warming = asyncio.create_task(asyncio.to_thread(engine.warm_up), name="understanding-warm-up")
    if ctx.settings.environment == "production":  # tests build many apps in one process: not there
        warming.add_done_callback(freeze_start_up_heap)

    async def stop() -> None:
        try:
            await warming
        except Exception as exc:  # a failed warm-up only costs the first message some time
            log.warning("understanding_warm_up_failed", error=type(exc).__name__)
        await engine.close()
        ctx.components.pop("engine", None)

    return stop
