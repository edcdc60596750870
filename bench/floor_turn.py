"""The floor of a conversational turn in Python on this stack, for bench_scale.py to measure.

`floor_app` takes the same signed Twilio webhook as Doorstep and does what a turn cannot do without:
checks the signature, then in one PostgreSQL transaction claims the MessageSid, finds or opens and
stamps the conversation, reads the sender's recipients with their retailers, the retailer of the
number written to and the sender's deliveries, runs the real understanding, stores one reply in the
outbox, the message and the reply in the conversation, and the dialog state: the statements of
Doorstep's turn, hand-written on a bare asyncpg pool. No ORM, no dialog, no templates, no events,
no logging. Whatever Doorstep does on this path costs at least this much, so the ratio of this server
to the bare endpoint bounds the ratio a turn in its own transaction can reach here.

`batched_floor_app` does the same work for concurrent webhooks together (group commit): each request
waits while a single writer takes up to `BATCH` queued messages and runs the same steps once per batch,
as set-based statements over arrays in one transaction, then answers all of them. This is the shape a
design that meets a much higher ratio would need, measured rather than guessed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request, Response
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
CLAIM = (
    "INSERT INTO inboundreceipt (provider, external_id, received_at) VALUES ('sms', $1, $2)"
    " ON CONFLICT DO NOTHING RETURNING id"
)
CONVERSATION = (
    "INSERT INTO conversation (channel, address, service_address, locale, owner, status, state,"
    " misunderstood, updated_at, created_at, last_inbound_at)"
    " VALUES ('sms', $1, $2, 'en', 'bot', 'open', '{}', 0, $3, $3, $3)"
    " ON CONFLICT (channel, address, service_address) DO UPDATE SET last_inbound_at = $3, updated_at = $3"
    " RETURNING id, state"
)
RECIPIENTS = (
    "SELECT recipient.*, retailer.timezone, retailer.brand_name FROM recipient"
    " JOIN retailer ON retailer.id = recipient.retailer_id WHERE recipient.phone = $1"
)
SERVICE_RETAILER = "SELECT * FROM retailer WHERE sms_from = $1"
DELIVERIES = (
    "SELECT * FROM delivery WHERE recipient_id = ANY($1::int[]) AND status <> 'cancelled'"
    " ORDER BY day, window_start, id"
)
OUTBOX = (
    "INSERT INTO outboxmessage (channel, to_address, from_address, body, options, content_variables,"
    " idempotency_key, status, attempts, next_attempt_at, last_error, segments, encoding, created_at,"
    " retailer_id, conversation_id, recipient_id)"
    " VALUES ('sms', $1, $2, $3, '[]', '{}', $4, 'pending', 0, $5, '', 1, 'GSM-7', $5, $6, $7, $8)"
    " RETURNING id"
)
MESSAGES = (
    "INSERT INTO message (conversation_id, channel, direction, author, text, options, internal_note,"
    " created_at, provider_id, outbox_id) VALUES ($1, 'sms', $2, $3, $4, '[]', false, $5, $6, $7)"
)
STATE = "UPDATE conversation SET state = $2, retailer_id = $3, recipient_id = $4 WHERE id = $1"

BATCH = 128
CLAIM_ALL = (
    "INSERT INTO inboundreceipt (provider, external_id, received_at)"
    " SELECT 'sms', sid, $2 FROM unnest($1::text[]) AS sid ON CONFLICT DO NOTHING RETURNING external_id"
)
CONVERSATIONS = (
    "INSERT INTO conversation (channel, address, service_address, locale, owner, status, state,"
    " misunderstood, updated_at, created_at, last_inbound_at)"
    " SELECT 'sms', a, s, 'en', 'bot', 'open', '{}', 0, $3, $3, $3"
    " FROM unnest($1::text[], $2::text[]) AS t(a, s)"
    " ON CONFLICT (channel, address, service_address) DO UPDATE SET last_inbound_at = $3, updated_at = $3"
    " RETURNING id, address, service_address, state"
)
RECIPIENTS_ALL = (
    "SELECT recipient.*, retailer.timezone, retailer.brand_name FROM recipient"
    " JOIN retailer ON retailer.id = recipient.retailer_id WHERE recipient.phone = ANY($1::text[])"
)
SERVICE_RETAILERS = "SELECT * FROM retailer WHERE sms_from = ANY($1::text[])"
OUTBOX_ALL = (
    "INSERT INTO outboxmessage (channel, to_address, from_address, body, options, content_variables,"
    " idempotency_key, status, attempts, next_attempt_at, last_error, segments, encoding, created_at,"
    " retailer_id, conversation_id, recipient_id)"
    " SELECT 'sms', t, f, b, '[]', '{}', k, 'pending', 0, $5, '', 1, 'GSM-7', $5, r, c, p"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::int[], $7::int[], $8::int[])"
    " AS u(t, f, b, k, r, c, p) RETURNING id, idempotency_key"
)
MESSAGES_ALL = (
    "INSERT INTO message (conversation_id, channel, direction, author, text, options, internal_note,"
    " created_at, provider_id, outbox_id)"
    " SELECT c, 'sms', d::direction, a::author, x, '[]', false, $6, p, o"
    " FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $7::int[])"
    " AS u(c, d, a, x, p, o)"
)
STATES = (
    "UPDATE conversation SET state = u.s::json, retailer_id = u.r, recipient_id = u.p"
    " FROM unnest($1::int[], $2::text[], $3::int[], $4::int[]) AS u(i, s, r, p) WHERE conversation.id = u.i"
)


def reply_text(deliveries: list[Any], intent: str) -> str:
    """A reply of the usual length, without templates."""
    tracking = deliveries[0]["tracking"] if deliveries else "-"
    return f"Your parcel {tracking} is on its way ({intent})."


async def signed_form(request: Request, validator: RequestValidator, public: str) -> dict[str, str]:
    """The webhook's form once its Twilio signature checks out, as Doorstep checks it."""
    form = await request.form()
    if not validator.validate(public + request.url.path, form, request.headers.get("X-Twilio-Signature", "")):
        raise HTTPException(403)
    return {key: str(value) for key, value in form.items()}


def database_url() -> str:
    return os.environ["DATABASE_URL"].replace("+asyncpg", "").replace("+psycopg", "")


def webhook_app(
    answer: Callable[[dict[str, str]], Awaitable[None]],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> FastAPI:
    """The webhook as Doorstep takes it: signature checked, then `answer(form)`, then empty TwiML."""
    from bot.understanding import warm_up

    warm_up()
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    public = os.environ["PUBLIC_URL"]
    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/twilio/messages")
    async def inbound(request: Request) -> Response:
        await answer(await signed_form(request, validator, public))
        return Response(TWIML, media_type="text/xml")

    return app


def floor_app() -> FastAPI:
    from bot.understanding import understand

    pool: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool["pg"] = await asyncpg.create_pool(database_url(), min_size=2, max_size=10)
        yield
        await pool["pg"].close()

    async def turn(form: dict[str, str]) -> None:
        sender, service = form["From"], form["To"]
        body, sid = form["Body"][:4000], form["MessageSid"][:64]
        now = datetime.now(UTC)
        async with pool["pg"].acquire() as connection, connection.transaction():
            if await connection.fetchval(CLAIM, sid, now) is None:
                return
            conversation = await connection.fetchrow(CONVERSATION, sender, service, now)
            recipients = await connection.fetch(RECIPIENTS, sender)
            pinned = await connection.fetchrow(SERVICE_RETAILER, service)
            deliveries = await connection.fetch(DELIVERIES, [r["id"] for r in recipients])
            recipient = recipients[0] if recipients else None
            timezone = recipient["timezone"] if recipient else "America/Toronto"
            understood = understand(body[:1000], locale="en", now=now, timezone=timezone)
            reply = reply_text(deliveries, understood.intent)
            retailer_id = pinned["id"] if pinned else (recipient["retailer_id"] if recipient else None)
            recipient_id = recipient["id"] if recipient else None
            outbox_id = await connection.fetchval(
                OUTBOX, sender, service, reply, f"reply:sms:{sid}:0", now, retailer_id,
                conversation["id"], recipient_id,
            )  # fmt: skip
            await connection.executemany(
                MESSAGES,
                [
                    (conversation["id"], "inbound", "recipient", body, now, sid, None),
                    (conversation["id"], "outbound", "bot", reply, now, None, outbox_id),
                ],
            )
            state = {"generation": 0, "dialog": {"language": "en", "intent": understood.intent}}
            await connection.execute(STATE, conversation["id"], json.dumps(state), retailer_id, recipient_id)

    return webhook_app(turn, lifespan)


class Inbound:
    """One webhook waiting for its batch."""

    def __init__(self, sender: str, service: str, body: str, sid: str) -> None:
        self.sender, self.service, self.body, self.sid = sender, service, body, sid
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reply = ""
        self.conversation_id = 0


def batched_floor_app() -> FastAPI:
    from bot.understanding import understand

    queue: list[Inbound] = []
    shared: dict[str, Any] = {}

    async def turns(batch: list[Inbound]) -> None:
        now = datetime.now(UTC)
        async with shared["pg"].acquire() as connection, connection.transaction():
            claimed = {row[0] for row in await connection.fetch(CLAIM_ALL, [m.sid for m in batch], now)}
            batch = [m for m in batch if m.sid in claimed]
            if not batch:
                return
            pairs = sorted({(m.sender, m.service) for m in batch})  # one row per conversation
            conversations = {
                (row["address"], row["service_address"]): row["id"]
                for row in await connection.fetch(
                    CONVERSATIONS, [a for a, _ in pairs], [s for _, s in pairs], now
                )
            }
            recipients: dict[str, list[Any]] = {}
            for row in await connection.fetch(RECIPIENTS_ALL, list({m.sender for m in batch})):
                recipients.setdefault(row["phone"], []).append(row)
            pinned = {
                row["sms_from"]: row["id"]
                for row in await connection.fetch(SERVICE_RETAILERS, list({m.service for m in batch}))
            }
            ids = [r["id"] for rows in recipients.values() for r in rows]
            deliveries: dict[int, list[Any]] = {}
            for row in await connection.fetch(DELIVERIES, ids):
                deliveries.setdefault(row["recipient_id"], []).append(row)
            outbox: list[tuple[Any, ...]] = []
            states: list[tuple[Any, ...]] = []
            for m in batch:
                m.conversation_id = conversations[(m.sender, m.service)]
                recipient = (recipients.get(m.sender) or [None])[0]
                timezone = recipient["timezone"] if recipient else "America/Toronto"
                understood = understand(m.body[:1000], locale="en", now=now, timezone=timezone)
                known = deliveries.get(recipient["id"], []) if recipient else []
                m.reply = reply_text(known, understood.intent)
                retailer_id = pinned.get(m.service) or (recipient["retailer_id"] if recipient else None)
                recipient_id = recipient["id"] if recipient else None
                outbox.append(
                    (
                        m.sender,
                        m.service,
                        m.reply,
                        f"reply:sms:{m.sid}:0",
                        retailer_id,
                        m.conversation_id,
                        recipient_id,
                    )
                )
                state = {"generation": 0, "dialog": {"language": "en", "intent": understood.intent}}
                states.append((m.conversation_id, json.dumps(state), retailer_id, recipient_id))
            columns = list(zip(*outbox, strict=True))
            outbox_ids = {
                row["idempotency_key"]: row["id"]
                for row in await connection.fetch(
                    OUTBOX_ALL,
                    columns[0],
                    columns[1],
                    columns[2],
                    columns[3],
                    now,
                    columns[4],
                    columns[5],
                    columns[6],
                )
            }
            said: list[tuple[Any, ...]] = []
            for m in batch:
                said.append((m.conversation_id, "inbound", "recipient", m.body, m.sid, None))
                said.append(
                    (m.conversation_id, "outbound", "bot", m.reply, None, outbox_ids[f"reply:sms:{m.sid}:0"])
                )
            c, d, a, x, p, o = zip(*said, strict=True)
            await connection.execute(MESSAGES_ALL, c, d, a, x, p, now, o)
            await connection.execute(STATES, *zip(*states, strict=True))

    async def writer(wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            while queue:
                batch = queue[:BATCH]
                del queue[:BATCH]
                try:
                    await turns(batch)
                except Exception as exc:  # every webhook of a failed batch gets the failure
                    for m in batch:
                        m.done.set_exception(exc)
                    continue
                for m in batch:
                    m.done.set_result(None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        shared["pg"] = await asyncpg.create_pool(database_url(), min_size=1, max_size=2)
        shared["wake"] = asyncio.Event()
        task = asyncio.create_task(writer(shared["wake"]))
        yield
        task.cancel()
        await shared["pg"].close()

    async def wait_for_batch(form: dict[str, str]) -> None:
        waiting = Inbound(form["From"], form["To"], form["Body"][:4000], form["MessageSid"][:64])
        queue.append(waiting)
        shared["wake"].set()
        await waiting.done

    return webhook_app(wait_for_batch, lifespan)
