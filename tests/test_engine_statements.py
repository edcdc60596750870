"""How many SQL statements a typical inbound message costs, pinned so that round trips do not creep back.

Each statement is a round trip to the database and most of the engine's CPU time per message; the
ceilings are the counts measured when they were set (PostgreSQL opens a savepoint for a first
message's new conversation, hence the +2 there), with no slack for another query per turn.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event

from bot.engine import ConversationEngine
from bot.understanding.model import Intent
from core.db import is_postgres
from core.models import Channel
from tests.conftest import make_tenant
from tests.engine_support import NOW, Chat, ScriptedUnderstanding, load_small_plan, understood

ADA = "+14165550101"  # T001
BEA = "+14165550102"  # T002
ACME_NUMBER = "+15145550199"  # a number of the retailer's own: the webhook passes it on
TORONTO = ZoneInfo("America/Toronto")

ANSWERS = {
    "where is my parcel": understood(Intent.where_is_parcel),
    "tomorrow 2 to 4 pm": understood(
        Intent.reschedule,
        window_start=datetime(2026, 12, 3, 14, 0, tzinfo=TORONTO),
        window_end=datetime(2026, 12, 3, 16, 0, tzinfo=TORONTO),
    ),
    "another time please": understood(Intent.reschedule),
}


@contextmanager
def counted(ctx):
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(ctx.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(ctx.engine.sync_engine, "before_cursor_execute", record)


def per_row_inserts(ctx) -> int:
    """The inbound message and the replies go in one INSERT on PostgreSQL; SQLite inserts them one by
    one (SQLAlchemy batches ORM inserts with RETURNING there only for tables with a sentinel column)."""
    return 0 if is_postgres(ctx.engine) else 1


def engine_for(ctx, clock=lambda: NOW):
    return ConversationEngine(ctx, clock=clock, understand=ScriptedUnderstanding(ANSWERS))


def ticking():
    """A clock a minute later at every reading: each turn stamps the conversation anew, as in life."""
    minutes = itertools.count()
    return lambda: NOW + timedelta(minutes=next(minutes))


class TestStatementsPerInboundMessage:
    async def test_where_is_my_parcel_costs_at_most_six_statements_once_the_conversation_exists(
        self, ctx, acme
    ):
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(engine_for(ctx, ticking()), Channel.sms, ADA)
        new_conversation = 2 if is_postgres(ctx.engine) else 0
        with counted(ctx) as first:
            assert "T001" in await chat.say("where is my parcel")
        with counted(ctx) as again:
            assert "T001" in await chat.say("where is my parcel")
        assert len(first) <= 8 + new_conversation + per_row_inserts(ctx), first
        assert len(again) <= 6 + per_row_inserts(ctx), again

    async def test_writing_to_the_retailers_own_number_costs_no_more_than_to_the_shared_one(self, ctx):
        """The sender's rows and the retailer owning the number come in one query."""
        acme = await make_tenant(ctx, "acme", sms_from=ACME_NUMBER)
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(engine_for(ctx, ticking()), Channel.sms, ADA, ACME_NUMBER)
        await chat.say("where is my parcel")
        with counted(ctx) as again:
            assert "T001" in await chat.say("where is my parcel")
        assert len(again) <= 6 + per_row_inserts(ctx), again

    async def test_a_reschedule_request_with_a_time_costs_at_most_eleven_statements(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        warm = Chat(engine_for(ctx), Channel.sms, BEA)  # the plan is read into memory once per process
        await warm.say("another time please")
        chat = Chat(engine_for(ctx), Channel.sms, ADA)
        await chat.say("where is my parcel")
        with counted(ctx) as statements:
            text = await chat.say("tomorrow 2 to 4 pm")
        assert "Reply YES or NO" in text
        assert len(statements) <= 11 + per_row_inserts(ctx), [s.split(" WHERE")[0][-60:] for s in statements]

    async def test_a_request_for_times_costs_at_most_thirteen_statements(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(engine_for(ctx), Channel.sms, ADA)
        await chat.say("where is my parcel")
        with counted(ctx) as statements:
            text = await chat.say("another time please")
        assert "When would suit you" in text
        assert len(statements) <= 13 + per_row_inserts(ctx), [s.split(" WHERE")[0][-60:] for s in statements]

    async def test_a_retried_webhook_costs_one_statement(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        engine = engine_for(ctx)
        chat = Chat(engine, Channel.sms, ADA)
        await chat.say("where is my parcel", provider_id="SM-retried")
        with counted(ctx) as statements:
            assert await chat.send("where is my parcel", provider_id="SM-retried") == []
        assert len(statements) == 1, statements
