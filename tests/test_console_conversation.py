"""The conversation view: history with receipts, take over, reply, notes, hand back, close, and acting
on the delivery through the scheduling service with the agent in the change log."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import col, select

from core.models import (
    Author,
    ChangeLog,
    Conversation,
    Delivery,
    DeliveryStatus,
    Message,
    OutboxMessage,
    Owner,
    Role,
    User,
)
from tests.console_helpers import (
    add_user,
    cheap_password_hashing,  # noqa: F401 - autouse fixture
    load_small_plan,
    seed_conversation,
    sign_in,
)


@pytest.fixture
async def acme_agent(ctx, acme):
    await load_small_plan(ctx, acme.retailer_id, "A")
    await add_user(ctx, "ana@acme.test", ["acme"])
    await add_user(ctx, "bob@acme.test", ["acme"])
    return acme


def reply_token(html: str) -> str:
    return re.search(r'name="reply_token" value="([^"]+)"', html).group(1)


class TestHistory:
    async def test_the_view_shows_the_recipients_messages_across_channels_and_the_delivery(
        self, client, ctx, acme_agent
    ):
        sms = await seed_conversation(
            ctx, acme_agent.retailer_id, "A001", texts=("When is it coming?",), minutes_ago=30
        )
        await seed_conversation(
            ctx, acme_agent.retailer_id, "A001", channel="telegram", texts=("Hi from Telegram",)
        )
        await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{sms}")
        assert page.status_code == 200
        assert "When is it coming?" in page.text and "Hi from Telegram" in page.text
        thread = page.text.split('id="thread"', 1)[1]
        assert thread.index("When is it coming?") < thread.index("Hi from Telegram")
        assert "A001" in page.text and 'class="timeline"' in page.text and 'class="map"' in page.text
        assert "Recipient 1" in page.text

    async def test_message_text_is_escaped(self, client, ctx, acme_agent):
        conversation = await seed_conversation(
            ctx, acme_agent.retailer_id, "A001", texts=("<script>alert(1)</script>",)
        )
        await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation}")
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


class TestTakeOverAndReply:
    async def test_an_agent_takes_over_replies_through_the_outbox_and_hands_back(
        self, client, ctx, acme_agent
    ):
        conversation = await seed_conversation(
            ctx, acme_agent.retailer_id, "A002", status="needs_person", texts=("I want a person",)
        )
        signed = await sign_in(client, "ana@acme.test")
        taken = await client.post(
            f"/console/conversations/{conversation}/take-over", data={"csrf_token": signed.csrf}
        )
        assert taken.status_code == 303
        page = await client.get(taken.headers["location"])
        assert "You own this conversation" in page.text and "ana took over" in page.text
        replied = await client.post(
            f"/console/conversations/{conversation}/reply",
            data={
                "text": "Hi, I'm Ana. Let me look.",
                "reply_token": reply_token(page.text),
                "csrf_token": signed.csrf,
            },
        )
        assert replied.status_code == 303
        again = await client.post(  # the same form sent twice sends once
            f"/console/conversations/{conversation}/reply",
            data={
                "text": "Hi, I'm Ana. Let me look.",
                "reply_token": reply_token(page.text),
                "csrf_token": signed.csrf,
            },
        )
        assert again.status_code == 303
        async with ctx.uow() as uow:
            outbox = (await uow.session.exec(select(OutboxMessage))).all()
            assert [(o.channel, o.to_address, o.body, o.status) for o in outbox] == [
                ("sms", "+14165550402", "Hi, I'm Ana. Let me look.", "pending")
            ]
            message = (await uow.session.exec(select(Message).where(Message.author == Author.agent))).one()
            assert message.outbox_id == outbox[0].id and not message.internal_note
            row = await uow.session.get(Conversation, conversation)
            assert row.owner == Owner.agent and row.status == "open"
        back = await client.post(
            f"/console/conversations/{conversation}/hand-back", data={"csrf_token": signed.csrf}
        )
        assert back.status_code == 303
        async with ctx.uow() as uow:
            row = await uow.session.get(Conversation, conversation)
            assert row.owner == Owner.bot and row.assignee_id is None

    async def test_a_reply_needs_the_conversation_taken_over_first(self, client, ctx, acme_agent):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002")
        signed = await sign_in(client, "ana@acme.test")
        response = await client.post(
            f"/console/conversations/{conversation}/reply",
            data={"text": "Hello", "reply_token": "tok1", "csrf_token": signed.csrf},
        )
        assert response.status_code == 409
        assert "Take over the conversation before replying" in response.text

    async def test_a_reply_without_the_csrf_token_is_refused(self, client, ctx, acme_agent):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002")
        await sign_in(client, "ana@acme.test")
        response = await client.post(
            f"/console/conversations/{conversation}/reply", data={"text": "Hello", "reply_token": "tok1"}
        )
        assert response.status_code == 403

    async def test_another_agents_conversation_cannot_be_taken_from_them(self, client, ctx, acme_agent):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002")
        bob = await sign_in(client, "bob@acme.test")
        await client.post(f"/console/conversations/{conversation}/take-over", data={"csrf_token": bob.csrf})
        ana = await sign_in(client, "ana@acme.test")
        response = await client.post(
            f"/console/conversations/{conversation}/take-over", data={"csrf_token": ana.csrf}
        )
        assert response.status_code == 409
        assert "Another agent is handling this conversation." in response.text

    async def test_a_free_text_whatsapp_reply_outside_the_24_hour_window_is_refused_with_a_warning(
        self, client, ctx, acme_agent
    ):
        conversation = await seed_conversation(
            ctx, acme_agent.retailer_id, "A003", channel="whatsapp", minutes_ago=25 * 60
        )
        signed = await sign_in(client, "ana@acme.test")
        await client.post(
            f"/console/conversations/{conversation}/take-over", data={"csrf_token": signed.csrf}
        )
        page = await client.get(f"/console/conversations/{conversation}")
        assert "WhatsApp&#39;s 24-hour window is closed" in page.text
        response = await client.post(
            f"/console/conversations/{conversation}/reply",
            data={"text": "Hello", "reply_token": "tok2", "csrf_token": signed.csrf},
        )
        assert response.status_code == 409
        async with ctx.uow() as uow:
            assert (await uow.session.exec(select(OutboxMessage))).all() == []

    async def test_an_internal_note_is_stored_but_never_sent(self, client, ctx, acme_agent):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002")
        signed = await sign_in(client, "ana@acme.test")
        response = await client.post(
            f"/console/conversations/{conversation}/reply",
            data={"text": "Called the driver", "mode": "note", "reply_token": "t", "csrf_token": signed.csrf},
        )
        assert response.status_code == 303
        async with ctx.uow() as uow:
            note = (await uow.session.exec(select(Message).where(col(Message.internal_note).is_(True)))).one()
            assert note.text == "Called the driver" and note.author == Author.agent
            assert (await uow.session.exec(select(OutboxMessage))).all() == []
        page = await client.get(f"/console/conversations/{conversation}")
        assert "internal note" in page.text and "Called the driver" in page.text

    async def test_closing_gives_the_conversation_back_to_the_bot_and_out_of_the_active_inbox(
        self, client, ctx, acme_agent
    ):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002", status="needs_person")
        signed = await sign_in(client, "ana@acme.test")
        await client.post(
            f"/console/conversations/{conversation}/take-over", data={"csrf_token": signed.csrf}
        )
        closed = await client.post(
            f"/console/conversations/{conversation}/close", data={"csrf_token": signed.csrf}
        )
        assert closed.status_code == 303
        async with ctx.uow() as uow:
            row = await uow.session.get(Conversation, conversation)
            assert row.status == "closed" and row.owner == Owner.bot
        assert f'data-id="{conversation}"' not in (await client.get("/console")).text


class TestActingOnTheDelivery:
    async def test_an_agent_reschedules_through_the_scheduling_service_and_is_in_the_change_log(
        self, client, ctx, acme_agent
    ):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A001")
        signed = await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation}")
        windows = re.findall(r'name="window" value="([^"]+)"', page.text)
        assert windows, "the scheduling service offers windows"
        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A001"))).one()
        chosen = windows[-1]
        response = await client.post(
            f"/console/conversations/{conversation}/deliveries/{delivery.id}/reschedule",
            data={"window": chosen, "csrf_token": signed.csrf},
        )
        assert response.status_code == 303, response.text
        async with ctx.uow() as uow:
            moved = await uow.session.get(Delivery, delivery.id)
            assert f"{moved.window_start.isoformat()}|{moved.window_end.isoformat()}" == chosen
            change = (
                await uow.session.exec(
                    select(ChangeLog).where(
                        ChangeLog.delivery_id == delivery.id, ChangeLog.actor == Author.agent
                    )
                )
            ).one()
            assert (change.actor_id, change.channel) == ("ana@acme.test", "console")
        after = await client.get(response.headers["location"])
        assert "rescheduled" in after.text and "ana@acme.test" in after.text

    async def test_a_window_the_plan_cannot_keep_is_refused_inline(self, client, ctx, acme_agent):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A001")
        signed = await sign_in(client, "ana@acme.test")
        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A001"))).one()
        start = delivery.window_start.replace(hour=3)  # 22:00 the day before in Toronto
        window = f"{start.isoformat()}|{(start + timedelta(hours=2)).isoformat()}"
        response = await client.post(
            f"/console/conversations/{conversation}/deliveries/{delivery.id}/reschedule",
            data={"window": window, "csrf_token": signed.csrf},
        )
        assert response.status_code in (409, 422)
        assert 'id="action-error"' in response.text

    async def test_instructions_are_saved_with_the_agent_as_actor(self, client, ctx, acme_agent):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A001")
        signed = await sign_in(client, "ana@acme.test")
        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A001"))).one()
        response = await client.post(
            f"/console/conversations/{conversation}/deliveries/{delivery.id}/instructions",
            data={"instructions": "Ring twice", "csrf_token": signed.csrf},
        )
        assert response.status_code == 303
        async with ctx.uow() as uow:
            assert (await uow.session.get(Delivery, delivery.id)).instructions == "Ring twice"
            change = (await uow.session.exec(select(ChangeLog).where(ChangeLog.actor == Author.agent))).one()
            assert change.actor_id == "ana@acme.test"

    async def test_an_agent_redirects_to_a_pickup_point_the_service_offers(self, client, ctx, acme_agent):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002")
        signed = await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation}")
        points = re.findall(r'name="pickup_point_id" value="(\d+)"', page.text)
        assert points, "the scheduling service offers pickup points"
        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A002"))).one()
        response = await client.post(
            f"/console/conversations/{conversation}/deliveries/{delivery.id}/redirect",
            data={"pickup_point_id": points[0], "csrf_token": signed.csrf},
        )
        assert response.status_code == 303, response.text
        async with ctx.uow() as uow:
            moved = await uow.session.get(Delivery, delivery.id)
            assert moved.pickup_point_id == int(points[0])
            change = (
                await uow.session.exec(
                    select(ChangeLog).where(
                        ChangeLog.delivery_id == delivery.id, ChangeLog.actor == Author.agent
                    )
                )
            ).one()
            assert change.actor_id == "ana@acme.test" and change.channel == "console"

    async def test_an_agent_brings_a_parcel_going_to_a_pickup_point_back_to_the_door(
        self, client, ctx, acme_agent
    ):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002")
        signed = await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation}")
        points = re.findall(r'name="pickup_point_id" value="(\d+)"', page.text)
        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A002"))).one()
        base = f"/console/conversations/{conversation}/deliveries/{delivery.id}"
        redirected = await client.post(
            f"{base}/redirect", data={"pickup_point_id": points[0], "csrf_token": signed.csrf}
        )
        assert redirected.status_code == 303, redirected.text
        page = await client.get(f"/console/conversations/{conversation}")
        others = re.findall(r'name="pickup_point_id" value="(\d+)"', page.text)
        assert others and points[0] not in others  # the other points, not the one it goes to
        assert "Deliver to the door instead" in page.text and "Another pickup point" in page.text
        windows = re.findall(r'name="window" value="([^"]+)"', page.text)
        assert windows, "a parcel going to a point can still come to the door"
        home = await client.post(f"{base}/reschedule", data={"window": windows[0], "csrf_token": signed.csrf})
        assert home.status_code == 303, home.text
        async with ctx.uow() as uow:
            back = await uow.session.get(Delivery, delivery.id)
            assert back.status == DeliveryStatus.scheduled and back.pickup_point_id is None
            assert f"{back.window_start.isoformat()}|{back.window_end.isoformat()}" == windows[0]

    async def test_an_agent_calls_off_a_setup_booked_through_doorstep_and_not_one_sold_with_the_order(
        self, client, ctx, acme_agent
    ):
        from scheduling.service import SYSTEM, white_glove_slots
        from scheduling.service import book_white_glove as book

        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A001")
        sold_with_it = await seed_conversation(ctx, acme_agent.retailer_id, "A005")
        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A001"))).one()
            slot = (await white_glove_slots(uow, delivery, days=1, now=ctx.clock()))[0]
            await book(uow, delivery, slot.start, slot.end, SYSTEM, now=ctx.clock())
        signed = await sign_in(client, "ana@acme.test")
        assert (
            'id="act-call-off-white-glove"'
            not in (await client.get(f"/console/conversations/{sold_with_it}")).text
        )
        page = await client.get(f"/console/conversations/{conversation}")
        assert 'id="act-call-off-white-glove"' in page.text
        response = await client.post(
            f"/console/conversations/{conversation}/deliveries/{delivery.id}/white-glove/call-off",
            data={"csrf_token": signed.csrf},
        )
        assert response.status_code == 303, response.text
        async with ctx.uow() as uow:
            kept = await uow.session.get(Delivery, delivery.id)
            assert kept.white_glove_start is None and (kept.window_start, kept.window_end) == (
                slot.start,
                slot.end,
            )
            change = (
                await uow.session.exec(
                    select(ChangeLog).where(
                        ChangeLog.delivery_id == delivery.id, ChangeLog.kind == "white_glove_cancelled"
                    )
                )
            ).one()
            assert change.actor_id == "ana@acme.test" and change.channel == "console"
        page = await client.get(f"/console/conversations/{conversation}")
        assert "called off the white-glove setup of A001" in page.text
        again = await client.post(
            f"/console/conversations/{conversation}/deliveries/{delivery.id}/white-glove/call-off",
            data={"csrf_token": signed.csrf},
        )
        assert again.status_code == 409 and "no in-home setup booked" in again.text

    async def test_an_agent_books_a_white_glove_slot_for_a_delivery_that_needs_one(
        self, client, ctx, acme_agent
    ):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A005")
        signed = await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation}")
        assert 'id="act-white-glove"' in page.text
        slots = re.findall(r'action="[^"]+/white-glove">.*?</form>', page.text, flags=re.S)
        windows = re.findall(r'name="window" value="([^"]+)"', slots[0])
        assert windows, "the scheduling service offers crew slots"
        async with ctx.uow() as uow:
            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A005"))).one()
        response = await client.post(
            f"/console/conversations/{conversation}/deliveries/{delivery.id}/white-glove",
            data={"window": windows[0], "csrf_token": signed.csrf},
        )
        assert response.status_code == 303, response.text
        async with ctx.uow() as uow:
            booked = await uow.session.get(Delivery, delivery.id)
            assert (
                f"{booked.white_glove_start.isoformat()}|{booked.white_glove_end.isoformat()}" == windows[0]
            )


class TestGivingAConversationToAColleague:
    async def test_the_agent_handling_it_gives_it_to_a_colleague_who_then_owns_it(
        self, client, ctx, acme_agent
    ):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002", status="needs_person")
        ana = await sign_in(client, "ana@acme.test")
        await client.post(f"/console/conversations/{conversation}/take-over", data={"csrf_token": ana.csrf})
        page = await client.get(f"/console/conversations/{conversation}")
        (bob_id,) = re.findall(r'<option value="(\d+)">bob@acme.test</option>', page.text)
        given = await client.post(
            f"/console/conversations/{conversation}/assign",
            data={"csrf_token": ana.csrf, "assignee_id": bob_id},
        )
        assert given.status_code == 303
        async with ctx.uow() as uow:
            row = await uow.session.get(Conversation, conversation)
            assert (row.owner, row.assignee_id, row.status) == (Owner.agent, int(bob_id), "open")
        page = await client.get(f"/console/conversations/{conversation}")
        assert "ana gave it to bob" in page.text and 'id="assign"' not in page.text  # no longer hers
        await sign_in(client, "bob@acme.test")
        page = await client.get(f"/console/conversations/{conversation}")
        assert 'id="conversation-owner">you<' in page.text.replace("\n", "")

    async def test_an_agent_not_handling_it_cannot_give_it_away_but_an_admin_can(
        self, client, ctx, acme_agent
    ):
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002", status="needs_person")
        await add_user(ctx, "rita@acme.test", ["acme"], role=Role.retailer_admin)
        ana = await sign_in(client, "ana@acme.test")
        await client.post(f"/console/conversations/{conversation}/take-over", data={"csrf_token": ana.csrf})
        async with ctx.uow() as uow:
            bob = (await uow.session.exec(select(User).where(User.email == "bob@acme.test"))).one()
        bob_signed = await sign_in(client, "bob@acme.test")
        refused = await client.post(
            f"/console/conversations/{conversation}/assign",
            data={"csrf_token": bob_signed.csrf, "assignee_id": str(bob.id)},
        )
        assert refused.status_code == 409 and "Only the agent handling this conversation" in refused.text
        rita = await sign_in(client, "rita@acme.test")
        given = await client.post(
            f"/console/conversations/{conversation}/assign",
            data={"csrf_token": rita.csrf, "assignee_id": str(bob.id)},
        )
        assert given.status_code == 303
        async with ctx.uow() as uow:
            assert (await uow.session.get(Conversation, conversation)).assignee_id == bob.id

    async def test_only_someone_of_the_retailers_team_can_be_given_it(self, client, ctx, acme_agent, globex):
        await add_user(ctx, "gus@globex.test", ["globex"])
        conversation = await seed_conversation(ctx, acme_agent.retailer_id, "A002", status="needs_person")
        async with ctx.uow() as uow:
            gus = (await uow.session.exec(select(User).where(User.email == "gus@globex.test"))).one()
        ana = await sign_in(client, "ana@acme.test")
        await client.post(f"/console/conversations/{conversation}/take-over", data={"csrf_token": ana.csrf})
        page = await client.get(f"/console/conversations/{conversation}")
        assert "gus@globex.test" not in page.text
        refused = await client.post(
            f"/console/conversations/{conversation}/assign",
            data={"csrf_token": ana.csrf, "assignee_id": str(gus.id)},
        )
        assert refused.status_code == 422 and "this retailer&#39;s team" in refused.text
        gus_signed = await sign_in(client, "gus@globex.test")
        hidden = await client.post(
            f"/console/conversations/{conversation}/assign",
            data={"csrf_token": gus_signed.csrf, "assignee_id": str(gus.id)},
        )
        assert hidden.status_code == 404
