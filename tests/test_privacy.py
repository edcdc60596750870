"""A person's requests about their data (bot/privacy.py): a retailer exports it, or has it erased."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.engine import ConversationEngine
from bot.state import RedisStateStore
from bot.understanding.model import Intent
from core.models import (
    ChangeLog,
    Channel,
    Conversation,
    Delivery,
    DeliveryStatus,
    Message,
    Notification,
    OutboxMessage,
    OutboxStatus,
    Recipient,
)
from tests.engine_support import NOW, Chat, ScriptedUnderstanding, load_small_plan, understood
from tests.redis_support import REDIS_URL, redis_or_skip
from tests.test_retention import agents_picture, count

ADA = "+14165550101"  # T001 in the small plan
BEA = "+14165550102"  # T002
ADA_CHAT = 7_700_101
ERASE = "/api/v1/recipients/erase"
EXPORT = "/api/v1/recipients/export"


@pytest.fixture(autouse=True)
def before_the_plans_day(ctx):
    ctx.clock = lambda: NOW


def chat(ctx, sender: str = ADA) -> Chat:
    understanding = ScriptedUnderstanding({"where is my parcel": understood(Intent.where_is_parcel)})
    engine = ConversationEngine(ctx, clock=lambda: NOW, understand=understanding)
    return Chat(engine, Channel.sms, sender)


async def delivery(ctx, tracking: str) -> Delivery:
    async with ctx.uow() as uow:
        found = (await uow.session.exec(select(Delivery).where(Delivery.tracking == tracking))).one()
        return found


async def set_status(ctx, tracking: str, status: DeliveryStatus) -> None:
    async with ctx.uow() as uow:
        await uow.session.exec(
            update(Delivery).where(col(Delivery.tracking) == tracking).values(status=status)  # type: ignore[call-overload]
        )
        await uow.commit()


async def ada_on_telegram_and_with_a_file(ctx, retailer_id: int) -> int:
    """Ada also linked Telegram and wrote there; an agent sent her a picture by SMS. Returns the
    Telegram conversation's id."""
    async with ctx.uow() as uow:
        recipient = (
            await uow.session.exec(
                select(Recipient).where(Recipient.phone == ADA, Recipient.retailer_id == retailer_id)
            )
        ).one()
        recipient.telegram_chat_id = ADA_CHAT
        uow.session.add(recipient)
        telegram = Conversation(
            channel=Channel.telegram,
            address=str(ADA_CHAT),
            retailer_id=retailer_id,
            recipient_id=recipient.id,
            created_at=NOW,
            updated_at=NOW,
        )
        uow.session.add(telegram)
        await uow.session.flush()
        uow.session.add(
            Message(
                conversation_id=telegram.id or 0,
                channel=Channel.telegram,
                direction="inbound",
                author="recipient",
                text="I live at 1 Queen St W",
                created_at=NOW,
            )
        )
        sms = (await uow.session.exec(select(Conversation).where(Conversation.address == ADA))).one()
        uow.session.add(agents_picture(sms.id or 0, retailer_id, NOW))
        await uow.commit()
        return telegram.id or 0


async def globex_notice_in_acmes_conversation(ctx, globex_id: int) -> int:
    """A notice Globex sent Ada on the shared number, in the conversation now about Acme's parcel."""
    async with ctx.uow() as uow:
        conversation = (await uow.session.exec(select(Conversation).where(Conversation.address == ADA))).one()
        recipient = (
            await uow.session.exec(
                select(Recipient).where(Recipient.phone == ADA, Recipient.retailer_id == globex_id)
            )
        ).one()
        notice = OutboxMessage(
            channel=Channel.sms,
            to_address=ADA,
            body="Globex: your parcel G001 came",
            idempotency_key="globex-notice",
            status=OutboxStatus.sent,
            retailer_id=globex_id,
            recipient_id=recipient.id,
            conversation_id=conversation.id,
        )
        uow.session.add(notice)
        await uow.session.flush()
        uow.session.add(
            Message(
                conversation_id=conversation.id or 0,
                channel=Channel.sms,
                direction="outbound",
                author="system",
                text=notice.body,
                outbox_id=notice.id,
                created_at=NOW,
            )
        )
        await uow.commit()
        return notice.id or 0


async def precise_place(ctx, tracking: str) -> None:
    async with ctx.uow() as uow:
        await uow.session.exec(
            update(Delivery).where(col(Delivery.tracking) == tracking).values(lon=-79.40123, lat=43.66789)  # type: ignore[call-overload]
        )
        await uow.commit()


class TestErasure:
    async def test_a_recipient_whose_parcel_came_is_forgotten(self, client, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        assert "T001" in await chat(ctx).say("where is my parcel")  # its reply is still to be sent
        assert "T002" in await chat(ctx, BEA).say("where is my parcel")
        telegram_id = await ada_on_telegram_and_with_a_file(ctx, acme.retailer_id)
        await client.put(
            "/api/v1/deliveries/T001/instructions", json={"instructions": "Code 4321"}, headers=acme.headers
        )
        await set_status(ctx, "T001", DeliveryStatus.delivered)
        await precise_place(ctx, "T001")
        ada = await delivery(ctx, "T001")
        scheduled = await count(
            ctx, Notification, Notification.delivery_id == ada.id, Notification.status == "scheduled"
        )
        assert scheduled >= 1  # the plan's notices not yet due

        response = await client.post(ERASE, json={"phone": "(416) 555-0101"}, headers=acme.headers)

        assert response.status_code == 200, response.text
        assert response.json() == {
            "recipients": 1,
            "deliveries": 1,
            "conversations": 2,
            "messages": 3,
            "outbox": 1,
            "files": 1,
            "notifications_cancelled": scheduled,
        }
        async with ctx.uow() as uow:
            recipient = await uow.session.get(Recipient, ada.recipient_id)
            assert recipient is not None
            assert (recipient.name, recipient.phone, recipient.telegram_chat_id) == ("", None, None)
            assert recipient.channel_consent == {}
            changes = (await uow.session.exec(select(ChangeLog).where(ChangeLog.delivery_id == ada.id))).all()
            assert changes and all("4321" not in str(c.before) + str(c.after) for c in changes)
            contexts = (
                await uow.session.exec(select(Notification.context).where(Notification.delivery_id == ada.id))
            ).all()
            assert all(c == {} for c in contexts)
        erased = await delivery(ctx, "T001")
        assert (erased.address, erased.postal_code, erased.instructions, erased.proof) == ("", "", "", {})
        assert erased.telegram_link_token is None
        assert (erased.lon, erased.lat) == (-79.40123, 43.66789)  # its day's routes still use it
        assert erased.status == DeliveryStatus.delivered and erased.tracking == "T001"
        assert await count(ctx, Conversation, col(Conversation.address).in_([ADA, str(ADA_CHAT)])) == 0
        assert await count(ctx, Conversation, Conversation.id == telegram_id) == 0
        assert await count(ctx, OutboxMessage, OutboxMessage.to_address == ADA) == 0
        # Bea, another recipient of the same retailer, keeps everything
        assert await count(ctx, Conversation, Conversation.address == BEA) == 1
        assert await count(ctx, OutboxMessage, OutboxMessage.to_address == BEA) >= 1
        assert (await delivery(ctx, "T002")).address
        # the change feed records it for the retailer's own systems, without personal data
        feed = (await client.get("/api/v1/changes", params={"since": 0}, headers=acme.headers)).json()
        erasures = [c for c in feed["changes"] if c["kind"] == "personal_data_erased"]
        assert [(c["tracking"], c["actor"]["id"], c["actor"]["channel"]) for c in erasures] == [
            ("T001", "api:acme", "api")
        ]
        assert erasures[0]["after"]["conversations"] == 2 and "4321" not in str(feed)
        # and the same request again finds no one
        again = await client.post(ERASE, json={"phone": ADA}, headers=acme.headers)
        assert again.status_code == 404

    async def test_a_past_days_delivery_keeps_only_a_rounded_place(self, client, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        await set_status(ctx, "T001", DeliveryStatus.delivered)
        await precise_place(ctx, "T001")
        ctx.clock = lambda: NOW + timedelta(days=2)  # the plan's day (Dec 3) is over
        assert (await client.post(ERASE, json={"phone": ADA}, headers=acme.headers)).status_code == 200
        erased = await delivery(ctx, "T001")
        assert (erased.lon, erased.lat) == (-79.4, 43.67)

    async def test_a_recipient_writing_after_the_erasure_is_a_stranger(self, client, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        await chat(ctx).say("where is my parcel")
        await set_status(ctx, "T001", DeliveryStatus.delivered)
        assert (await client.post(ERASE, json={"phone": ADA}, headers=acme.headers)).status_code == 200
        answer = await chat(ctx).say("where is my parcel")
        assert "T001" not in answer and "Queen St" not in answer

    async def test_while_a_delivery_is_under_way_nothing_is_erased_and_it_is_named(self, client, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        await chat(ctx).say("where is my parcel")
        response = await client.post(ERASE, json={"phone": ADA}, headers=acme.headers)
        assert response.status_code == 409
        assert response.json()["detail"]["trackings"] == ["T001"]
        assert await count(ctx, Conversation, Conversation.address == ADA) == 1
        assert (await delivery(ctx, "T001")).address == "1 Queen St W, Toronto"
        await set_status(ctx, "T001", DeliveryStatus.cancelled)
        response = await client.post(ERASE, json={"phone": ADA}, headers=acme.headers)
        assert response.status_code == 200
        assert response.json()["notifications_cancelled"] >= 1  # a cancelled parcel's reminders stop
        ada = await delivery(ctx, "T001")
        assert (
            await count(
                ctx, Notification, Notification.delivery_id == ada.id, Notification.status == "scheduled"
            )
            == 0
        )

    async def test_unknown_and_malformed_numbers_are_answered_with_the_reason(self, client, acme):
        unknown = await client.post(ERASE, json={"phone": "+14165559999"}, headers=acme.headers)
        assert (
            unknown.status_code == 404 and unknown.json()["detail"] == "no recipient with this phone number"
        )
        malformed = await client.post(ERASE, json={"phone": "call me"}, headers=acme.headers)
        assert malformed.status_code == 422 and "phone" in malformed.text
        assert (await client.post(ERASE, json={}, headers=acme.headers)).status_code == 422
        assert (await client.post(ERASE, json={"phone": ADA})).status_code == 401

    async def test_a_retailer_erases_only_its_own(self, client, ctx, acme, globex):
        """Both retailers deliver to Ada; Globex's erasure leaves Acme's recipient and conversation."""
        await load_small_plan(ctx, acme.retailer_id)
        await load_small_plan(ctx, globex.retailer_id, prefix="G")
        await chat(ctx).say("where is my parcel")
        async with ctx.uow() as uow:  # the shared number's conversation is about Acme's parcel
            await uow.session.exec(
                update(Conversation)
                .where(col(Conversation.address) == ADA)
                .values(retailer_id=acme.retailer_id)  # type: ignore[call-overload]
            )
            await uow.commit()
        await set_status(ctx, "G001", DeliveryStatus.delivered)
        globex_notice = await globex_notice_in_acmes_conversation(ctx, globex.retailer_id)
        response = await client.post(ERASE, json={"phone": ADA}, headers=globex.headers)
        assert response.status_code == 200
        assert response.json()["conversations"] == 0 and response.json()["recipients"] == 1
        # Globex's own notice to Ada goes; the thread it sits in is Acme's and stays, unlinked
        assert response.json()["outbox"] == 1
        async with ctx.uow() as uow:
            assert await uow.session.get(OutboxMessage, globex_notice) is None
            linked = (await uow.session.exec(select(Message).where(Message.outbox_id == globex_notice))).all()
            assert linked == []
        assert await count(ctx, Message, Message.text == "Globex: your parcel G001 came") == 1
        assert await count(ctx, Conversation, Conversation.address == ADA) == 1
        assert (
            await count(ctx, Recipient, Recipient.phone == ADA, Recipient.retailer_id == acme.retailer_id)
            == 1
        )
        assert (await delivery(ctx, "T001")).address == "1 Queen St W, Toronto"
        assert (await delivery(ctx, "G001")).address == ""


class TestExport:
    async def test_everything_held_about_a_person_comes_back_in_one_answer(self, client, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        await chat(ctx).say("where is my parcel")
        await chat(ctx, BEA).say("where is my parcel")
        await ada_on_telegram_and_with_a_file(ctx, acme.retailer_id)
        await client.put(
            "/api/v1/deliveries/T001/instructions", json={"instructions": "Code 4321"}, headers=acme.headers
        )
        response = await client.post(EXPORT, json={"phone": "416-555-0101"}, headers=acme.headers)
        assert response.status_code == 200, response.text
        data = response.json()
        assert [(r["name"], r["phone"], r["telegram_chat_id"]) for r in data["recipients"]] == [
            ("Recipient 1", ADA, ADA_CHAT)
        ]
        [parcel] = data["deliveries"]
        assert (parcel["tracking"], parcel["address"], parcel["instructions"]) == (
            "T001",
            "1 Queen St W, Toronto",
            "Code 4321",
        )
        assert data["notifications"] and {n["tracking"] for n in data["notifications"]} == {"T001"}
        channels = [(c["channel"], c["address"]) for c in data["conversations"]]
        assert channels == [("sms", ADA), ("telegram", str(ADA_CHAT))]
        sms = data["conversations"][0]["messages"]
        assert (sms[0]["author"], sms[0]["text"]) == ("recipient", "where is my parcel")
        assert any("T001" in m["text"] and m["author"] == "bot" for m in sms)
        assert data["conversations"][1]["messages"][0]["text"] == "I live at 1 Queen St W"
        assert BEA not in response.text and "T002" not in response.text

    async def test_another_retailer_gets_only_its_own_and_an_erased_person_is_unknown(
        self, client, ctx, acme, globex
    ):
        await load_small_plan(ctx, acme.retailer_id)
        await chat(ctx).say("where is my parcel")
        assert (await client.post(EXPORT, json={"phone": ADA}, headers=globex.headers)).status_code == 404
        await load_small_plan(ctx, globex.retailer_id, prefix="G")
        theirs = (await client.post(EXPORT, json={"phone": ADA}, headers=globex.headers)).json()
        assert [d["tracking"] for d in theirs["deliveries"]] == ["G001"] and theirs["conversations"] == []
        await set_status(ctx, "T001", DeliveryStatus.delivered)
        assert (await client.post(ERASE, json={"phone": ADA}, headers=acme.headers)).status_code == 200
        assert (await client.post(EXPORT, json={"phone": ADA}, headers=acme.headers)).status_code == 404
        assert (await client.post(EXPORT, json={"phone": "nobody"}, headers=acme.headers)).status_code == 422


class TestDialogStates:
    async def test_redis_forgets_the_dialogs_of_erased_conversations(self, ctx):
        redis = await redis_or_skip()
        await redis.aclose()
        store = RedisStateStore.from_url(REDIS_URL, prefix="doorstep:test-erasure")
        try:
            kept, erased = Conversation(id=1, state={}), Conversation(id=2, state={"generation": 3})
            async with ctx.uow() as uow:
                await store.save(uow, kept, {"pending": "reschedule"})
                await store.save(uow, erased, {"pending": "instructions", "text": "Code 4321"})
                await store.forget([(2, 3)])
                assert await store.load(uow, erased) == {}
                assert await store.load(uow, kept) == {"pending": "reschedule"}
            await store.forget([(1, 0)])
        finally:
            await store.close()

    async def test_the_pending_reply_of_an_erased_conversation_is_never_sent(self, client, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        await chat(ctx).say("where is my parcel")
        assert await count(ctx, OutboxMessage, OutboxMessage.status == OutboxStatus.pending) == 1
        await set_status(ctx, "T001", DeliveryStatus.picked_up)
        assert (await client.post(ERASE, json={"phone": ADA}, headers=acme.headers)).status_code == 200
        assert await count(ctx, OutboxMessage, OutboxMessage.status == OutboxStatus.pending) == 0
