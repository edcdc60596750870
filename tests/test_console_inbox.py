"""The inbox: who needs a person first, filters, search; and retailer isolation everywhere."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from core.models import Channel, Conversation, Delivery, OutboxMessage, OutboxStatus, Owner
from core.outbox import enqueue
from tests.console_helpers import (
    add_user,
    cheap_password_hashing,  # noqa: F401 - autouse fixture
    load_small_plan,
    seed_conversation,
    sign_in,
)


def listed_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="[^"]*" data-id="(\d+)"', html)]


@pytest.fixture
async def two_retailers(ctx, acme, globex):
    await load_small_plan(ctx, acme.retailer_id, "A")
    await load_small_plan(ctx, globex.retailer_id, "G")
    await add_user(ctx, "ana@acme.test", ["acme"])
    await add_user(ctx, "gus@globex.test", ["globex"])
    return acme, globex


class TestInboxOrder:
    async def test_conversations_that_need_a_person_come_first_then_agents_then_the_bots(
        self, client, ctx, two_retailers
    ):
        acme, _ = two_retailers
        bot_recent = await seed_conversation(ctx, acme.retailer_id, "A001", minutes_ago=1)
        needs_old = await seed_conversation(
            ctx, acme.retailer_id, "A002", status="needs_person", texts=("AGENT",), minutes_ago=50
        )
        agent_owned = await seed_conversation(ctx, acme.retailer_id, "A003", owner="agent", minutes_ago=20)
        closed = await seed_conversation(ctx, acme.retailer_id, "A004", status="closed", minutes_ago=2)
        await sign_in(client, "ana@acme.test")
        page = await client.get("/console")
        assert page.status_code == 200
        assert listed_ids(page.text) == [needs_old, agent_owned, bot_recent]
        assert "needs a person" in page.text
        closed_page = await client.get("/console?status=closed")
        assert listed_ids(closed_page.text) == [closed]

    async def test_a_conversation_whose_last_send_failed_joins_those_that_need_a_person(
        self, client, ctx, two_retailers
    ):
        acme, _ = two_retailers
        fine = await seed_conversation(ctx, acme.retailer_id, "A001", minutes_ago=1)
        failing = await seed_conversation(ctx, acme.retailer_id, "A002", minutes_ago=30)
        async with ctx.uow() as uow:
            row = await enqueue(
                uow.session,
                channel=Channel.sms,
                to_address="+14165550102",
                body="Your parcel",
                idempotency_key="t-failed",
                retailer_id=acme.retailer_id,
                conversation_id=failing,
            )
            row.status = OutboxStatus.failed
            row.last_error = "21610: unsubscribed recipient"
            await uow.commit()
        await sign_in(client, "ana@acme.test")
        page = await client.get("/console")
        assert listed_ids(page.text) == [failing, fine]
        assert "send failed" in page.text
        needs = await client.get("/console?needs=1")
        assert listed_ids(needs.text) == [failing]
        view = await client.get(f"/console/conversations/{failing}")
        assert "Not delivered: 21610: unsubscribed recipient" in view.text

    async def test_a_conversation_the_bot_keeps_misunderstanding_needs_a_person_too(
        self, client, ctx, two_retailers
    ):
        acme, _ = two_retailers
        fine = await seed_conversation(ctx, acme.retailer_id, "A001", minutes_ago=1)
        stuck = await seed_conversation(ctx, acme.retailer_id, "A002", texts=("blorp", "zzz"), minutes_ago=30)
        async with ctx.uow() as uow:
            conversation = await uow.session.get(Conversation, stuck)
            conversation.misunderstood = 2
            uow.session.add(conversation)
            await uow.commit()
        await sign_in(client, "ana@acme.test")
        page = await client.get("/console")
        assert listed_ids(page.text) == [stuck, fine]
        assert "bot stuck" in page.text
        assert listed_ids((await client.get("/console?needs=1")).text) == [stuck]


class TestFiltersAndSearch:
    async def test_filters_by_needs_a_person_mine_and_channel(self, client, ctx, two_retailers):
        acme, _ = two_retailers
        sms = await seed_conversation(ctx, acme.retailer_id, "A001")
        whatsapp = await seed_conversation(ctx, acme.retailer_id, "A002", channel="whatsapp")
        needs = await seed_conversation(ctx, acme.retailer_id, "A003", status="needs_person")
        await sign_in(client, "ana@acme.test")
        assert listed_ids((await client.get("/console?channel=whatsapp")).text) == [whatsapp]
        assert listed_ids((await client.get("/console?needs=1")).text) == [needs]
        assert listed_ids((await client.get("/console?mine=1")).text) == []
        me = (await client.get("/console/me")).json()
        async with ctx.uow() as uow:
            conversation = await uow.session.get(Conversation, sms)
            conversation.owner, conversation.assignee_id = Owner.agent, me["id"]
            uow.session.add(conversation)
            await uow.commit()
        assert listed_ids((await client.get("/console?mine=1")).text) == [sms]

    async def test_search_finds_a_conversation_by_tracking_number_name_or_phone(
        self, client, ctx, two_retailers
    ):
        acme, _ = two_retailers
        first = await seed_conversation(ctx, acme.retailer_id, "A001")
        second = await seed_conversation(ctx, acme.retailer_id, "A003")
        await sign_in(client, "ana@acme.test")
        assert listed_ids((await client.get("/console?q=a003")).text) == [second]
        assert listed_ids((await client.get("/console?q=Recipient 1")).text) == [first]
        assert listed_ids((await client.get("/console?q=(416) 555-0403")).text) == [second]
        assert listed_ids((await client.get("/console?q=nobody")).text) == []


class TestIsolation:
    async def test_an_agent_never_sees_another_retailers_conversations_by_listing_search_or_url(
        self, client, ctx, two_retailers
    ):
        acme, globex = two_retailers
        theirs = await seed_conversation(ctx, acme.retailer_id, "A001", status="needs_person")
        mine = await seed_conversation(ctx, globex.retailer_id, "G001")
        signed = await sign_in(client, "gus@globex.test")
        assert listed_ids((await client.get("/console")).text) == [mine]
        assert listed_ids((await client.get("/console?q=A001")).text) == []
        assert listed_ids((await client.get(f"/console?retailer={acme.retailer_id}")).text) == []
        for url in (
            f"/console/conversations/{theirs}",
            f"/console/fragments/conversations/{theirs}/thread",
            f"/console/fragments/conversations/{theirs}/context",
        ):
            response = await client.get(url)
            assert response.status_code == 404, url
            assert "A001" not in response.text
        for action in ("take-over", "hand-back", "close"):
            response = await client.post(f"/console/conversations/{theirs}/{action}", headers=signed.headers)
            assert response.status_code == 404, action
        reply = await client.post(
            f"/console/conversations/{theirs}/reply",
            data={"text": "hi", "reply_token": "x1", "csrf_token": signed.csrf},
        )
        assert reply.status_code == 404
        async with ctx.uow() as uow:
            conversation = await uow.session.get(Conversation, theirs)
            assert conversation.owner == Owner.bot and conversation.status == "needs_person"
            assert (await uow.session.exec(select(OutboxMessage))).all() == []

    async def test_an_agent_cannot_act_on_another_retailers_delivery_through_their_own_conversation(
        self, client, ctx, two_retailers
    ):
        _acme, globex = two_retailers
        mine = await seed_conversation(ctx, globex.retailer_id, "G001")
        async with ctx.uow() as uow:
            foreign = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A001"))).one()
        signed = await sign_in(client, "gus@globex.test")
        for action, data in (
            ("instructions", {"instructions": "Leave it at the door"}),
            ("redirect", {"pickup_point_id": "1"}),
            ("reschedule", {"window": "2026-12-03T15:00:00+00:00|2026-12-03T17:00:00+00:00"}),
        ):
            response = await client.post(
                f"/console/conversations/{mine}/deliveries/{foreign.id}/{action}",
                data={**data, "csrf_token": signed.csrf},
            )
            assert response.status_code == 404, action
        async with ctx.uow() as uow:
            assert (await uow.session.get(Delivery, foreign.id)).instructions == ""
        assert (await client.get(f"/console/conversations/{mine}?delivery={foreign.id}")).text.count(
            "A001"
        ) == 0

    async def test_the_dashboard_is_for_retailer_admins_and_only_of_their_retailers(
        self, client, ctx, two_retailers
    ):
        acme, _globex = two_retailers
        await add_user(ctx, "boss@globex.test", ["globex"], role="retailer_admin")
        await sign_in(client, "gus@globex.test")
        assert (await client.get("/console/dashboard")).status_code == 403
        await sign_in(client, "boss@globex.test")
        page = await client.get("/console/dashboard")
        assert page.status_code == 200 and "Hand-offs" in page.text
        assert (await client.get(f"/console/dashboard?retailer={acme.retailer_id}")).status_code == 404


class TestConversationsWithoutARetailerYet:
    """A recipient who asks for a person before the bot knows which delivery: the conversation has
    no retailer yet, and belongs to whichever retailer the sender's phone is a recipient of."""

    async def _unassigned(self, ctx, phone: str) -> int:
        async with ctx.uow() as uow:
            conversation = Conversation(channel=Channel.sms, address=phone, status="needs_person")
            uow.session.add(conversation)
            await uow.commit()
            return conversation.id

    async def test_the_agents_of_the_senders_retailer_see_it_and_taking_over_ties_it_to_them(
        self, client, ctx, two_retailers
    ):
        acme, _ = two_retailers
        conversation = await self._unassigned(ctx, "+14165550401")  # A001's recipient
        await sign_in(client, "gus@globex.test")
        assert listed_ids((await client.get("/console")).text) == []
        assert (await client.get(f"/console/conversations/{conversation}")).status_code == 404
        signed = await sign_in(client, "ana@acme.test")
        page = await client.get("/console")
        assert listed_ids(page.text) == [conversation] and "Recipient 1" in page.text
        taken = await client.post(
            f"/console/conversations/{conversation}/take-over", data={"csrf_token": signed.csrf}
        )
        assert taken.status_code == 303
        async with ctx.uow() as uow:
            row = await uow.session.get(Conversation, conversation)
            delivery = await uow.session.get(Delivery, row.delivery_id)
            assert row.retailer_id == acme.retailer_id and delivery.tracking == "A001"

    async def test_a_phone_known_to_two_retailers_stays_with_the_admins(self, client, ctx, two_retailers):
        _acme, globex = two_retailers
        async with ctx.uow() as uow:
            from core.models import Recipient

            uow.session.add(
                Recipient(retailer_id=globex.retailer_id, phone="+14165550401", name="Same phone")
            )
            await uow.commit()
        conversation = await self._unassigned(ctx, "+14165550401")
        await add_user(ctx, "root@ops.test", [], role="admin")
        for email, expected in (
            ("ana@acme.test", []),
            ("gus@globex.test", []),
            ("root@ops.test", [conversation]),
        ):
            await sign_in(client, email)
            assert listed_ids((await client.get("/console")).text) == expected, email
