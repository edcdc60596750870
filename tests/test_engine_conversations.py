"""The engine's mechanics: de-duplication, storage, the outbox, keywords, identity and hand-off.

The understanding is a scripted fake here (the transcripts run the real one); the scheduling service
is the real one wherever a dialog reaches it.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import structlog
from sqlmodel import col, select
from structlog.testing import capture_logs

from bot import handoff
from bot.engine import ConversationEngine
from bot.events import HandedBack, HandoffRequested, MessageReceived, MessageSent, TakenOver
from bot.messages import InboundMessage
from bot.state import DatabaseStateStore
from bot.understanding.model import Intent
from core.consent import opted_out
from core.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
    Notification,
    OutboxMessage,
    Owner,
    PickupPoint,
    Recipient,
    SlotCapacity,
    User,
)
from core.sms import is_gsm7
from notifications.outreach import CHAT_CONFIRMATION_GRACE, fire_notifications, make_event_handler
from tests.conftest import make_tenant
from tests.engine_support import NOW, Chat, ScriptedUnderstanding, load_small_plan, understood
from tests.scheduling_support import deadlocked

ADA = "+14165550101"  # T001, English
BEA = "+14165550102"  # T002, French


def engine_for(ctx, understanding=None):
    return ConversationEngine(ctx, clock=lambda: NOW, understand=understanding or ScriptedUnderstanding())


class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    async def __call__(self, events) -> None:
        self.events.extend(events)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


async def rows(ctx, model, *where):
    async with ctx.uow() as uow:
        query = select(model)
        for clause in where:
            query = query.where(clause)
        return list((await uow.session.exec(query)).all())


class TestStorage:
    async def test_a_retried_webhook_is_answered_once_and_stored_once(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding({"where is it": understood(Intent.where_is_parcel)})
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
        first = await chat.send("where is it", provider_id="SM1")
        again = await chat.send("where is it", provider_id="SM1")
        assert first and again == []
        assert len(await rows(ctx, Message, Message.direction == Direction.inbound)) == 1
        assert len(understanding.asked) == 1

    async def test_the_same_webhook_delivered_twice_at_once_is_answered_once(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding({"where is it": understood(Intent.where_is_parcel)})
        engine = engine_for(ctx, understanding)
        message = InboundMessage(channel=Channel.sms, sender=ADA, text="where is it", provider_id="SM-race")
        first, second = await asyncio.gather(engine.handle(message), engine.handle(message))
        assert sorted([len(first), len(second)]) == [0, 1]
        assert len(await rows(ctx, OutboxMessage)) == 1
        assert len(await rows(ctx, Message, Message.direction == Direction.inbound)) == 1

    async def test_two_first_messages_at_once_open_one_conversation(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        engine = engine_for(ctx, ScriptedUnderstanding({"hi": understood(Intent.greeting)}))
        messages = [
            InboundMessage(channel=Channel.sms, sender=ADA, text="hi", provider_id=f"SM-first-{n}")
            for n in (1, 2)
        ]
        replies = await asyncio.gather(*(engine.handle(m) for m in messages))
        assert all(replies)
        assert len(await rows(ctx, Conversation)) == 1

    async def test_both_sides_are_kept_and_each_reply_is_in_the_outbox_once(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding({"where is it": understood(Intent.where_is_parcel)})
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA, service_address="+15145550100")
        replies = await chat.send("where is it", provider_id="SM2")
        conversations = await rows(ctx, Conversation)
        assert len(conversations) == 1 and conversations[0].retailer_id == acme.retailer_id
        messages = await rows(ctx, Message)
        assert [m.direction for m in messages] == [Direction.inbound, Direction.outbound]
        outbox = await rows(ctx, OutboxMessage)
        assert len(outbox) == len(replies) == 1
        row = outbox[0]
        assert row.to_address == ADA and row.from_address == "+15145550100"
        assert row.idempotency_key == "reply:sms:SM2:0"
        assert row.body == replies[0].text and messages[1].outbox_id == row.id
        assert row.options == [{"label": o.label, "payload": o.payload} for o in replies[0].options]

    async def test_one_conversation_per_sender_and_channel(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        engine = engine_for(ctx)
        await Chat(engine, Channel.sms, ADA).say("hello?")
        await Chat(engine, Channel.sms, ADA).say("hello again?", provider_id="x2")
        await Chat(engine, Channel.whatsapp, ADA).say("hello?")
        conversations = await rows(ctx, Conversation)
        assert sorted(c.channel for c in conversations) == [Channel.sms, Channel.whatsapp]

    async def test_sms_replies_use_plain_spaces_and_dashes(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding({"where is it": understood(Intent.where_is_parcel)})
        text = await Chat(engine_for(ctx, understanding), Channel.sms, ADA).say("where is it")
        assert "T001" in text and "Thu Dec 3" in text
        assert is_gsm7(text)

    async def test_events_go_out_after_commit_with_the_conversation(self, ctx, acme):
        recorder = Recorder()
        ctx.event_handlers.append(recorder)
        await load_small_plan(ctx, acme.retailer_id)
        await Chat(engine_for(ctx), Channel.sms, ADA).say("blah")
        received, sent = recorder.of(MessageReceived), recorder.of(MessageSent)
        assert len(received) == 1 and len(sent) == 1
        assert received[0].retailer_id == acme.retailer_id == sent[0].retailer_id
        # what the recipient said comes before the bot's answer, as the console shows them
        said = [type(e) for e in recorder.events if isinstance(e, MessageReceived | MessageSent)]
        assert said == [MessageReceived, MessageSent]
        assert received[0].message_id < sent[0].message_id


class TestKeywords:
    async def test_stop_silences_every_row_of_that_phone_on_that_channel_only(self, ctx, acme, globex):
        await load_small_plan(ctx, acme.retailer_id)
        await load_small_plan(ctx, globex.retailer_id, prefix="G")
        text = await Chat(engine_for(ctx), Channel.sms, ADA).say("STOP")
        assert "START" in text
        recipients = await rows(ctx, Recipient, Recipient.phone == ADA)
        assert len(recipients) == 2
        assert all(opted_out(r, Channel.sms) and not opted_out(r, Channel.whatsapp) for r in recipients)
        await Chat(engine_for(ctx), Channel.sms, ADA).say("start", provider_id="again")
        recipients = await rows(ctx, Recipient, Recipient.phone == ADA)
        assert not any(opted_out(r, Channel.sms) for r in recipients)

    async def test_arret_with_its_accent_answers_in_french(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        text = await Chat(engine_for(ctx), Channel.sms, ADA).say("Arrêt")
        assert "START" in text and "Acme" in text and "messages" in text
        assert "won't" not in text
        assert opted_out((await rows(ctx, Recipient, Recipient.phone == ADA))[0], Channel.sms)

    async def test_help_names_the_brand_and_how_to_stop_in_every_language(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        engine = engine_for(ctx)
        english = await Chat(engine, Channel.sms, ADA).say("HELP")
        french = await Chat(engine, Channel.sms, ADA).say("aide", provider_id="h2")
        spanish = await Chat(engine, Channel.sms, ADA).say("AYUDA", provider_id="h3")
        for text in (english, french, spanish):
            assert "Acme" in text and "STOP" in text
        assert len({english, french, spanish}) == 3

    async def test_a_sentence_containing_stop_is_not_an_opt_out(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        await Chat(engine_for(ctx), Channel.sms, ADA).say("please stop by after 3")
        assert not opted_out((await rows(ctx, Recipient, Recipient.phone == ADA))[0], Channel.sms)


class TestIdentity:
    async def test_an_unknown_phone_learns_nothing(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding(
            {"where is T001": understood(Intent.where_is_parcel, tracking="T001", postal_code="M5V2A1")}
        )
        text = await Chat(engine_for(ctx, understanding), Channel.sms, "+14165559999").say("where is T001")
        assert "can't find a delivery" in text and "T001" not in text and "Dec" not in text

    async def test_a_phone_with_two_retailers_is_asked_which_one_and_a_number_picks_it(
        self, ctx, acme, globex
    ):
        await load_small_plan(ctx, acme.retailer_id)
        await load_small_plan(ctx, globex.retailer_id, prefix="G")
        understanding = ScriptedUnderstanding({"where is my parcel": understood(Intent.where_is_parcel)})
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
        text = await chat.say("where is my parcel")
        assert "Which one" in text and "T001" not in text and "G001" not in text
        assert [o.label for o in chat.last[0].options] == ["Acme", "Globex"]
        text = await chat.say("2")
        assert "G001" in text and "T001" not in text

    async def test_writing_to_another_retailers_own_number_shows_none_of_this_retailers_deliveries(
        self, ctx, acme
    ):
        await load_small_plan(ctx, acme.retailer_id)  # Ada is Acme's recipient, not Globex's
        globex = await make_tenant(ctx, "globex", sms_from="+15145550177")
        understanding = ScriptedUnderstanding({"where is my parcel": understood(Intent.where_is_parcel)})
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA, service_address="+15145550177")
        text = await chat.say("where is my parcel")
        assert "can't find a delivery" in text and "T001" not in text and "Dec" not in text
        (conversation,) = await rows(ctx, Conversation)
        assert conversation.retailer_id == globex.retailer_id

    async def test_naming_one_of_ones_parcels_talks_about_that_one(self, ctx, acme, globex):
        await load_small_plan(ctx, acme.retailer_id)
        await load_small_plan(ctx, globex.retailer_id, prefix="G")
        understanding = ScriptedUnderstanding(
            {
                "where is T001": understood(Intent.where_is_parcel, tracking="T001"),
                "and g-001?": understood(Intent.where_is_parcel, tracking="G-001"),
            }
        )
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
        text = await chat.say("where is T001")
        assert "T001" in text and "G001" not in text and "Which one" not in text
        text = await chat.say("and g-001?")
        assert "G001" in text and "T001" not in text
        (conversation,) = await rows(ctx, Conversation)
        assert conversation.retailer_id == globex.retailer_id

    async def test_another_persons_tracking_number_is_never_acted_on_and_reveals_nothing(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        monday = datetime(2026, 12, 7, 15, tzinfo=UTC), datetime(2026, 12, 7, 17, tzinfo=UTC)
        understanding = ScriptedUnderstanding(
            {
                "move T003 to monday": understood(
                    Intent.reschedule, tracking="T003", window_start=monday[0], window_end=monday[1]
                ),
                "move ZZ999999 to monday": understood(
                    Intent.reschedule, tracking="ZZ999999", window_start=monday[0], window_end=monday[1]
                ),
                "buzzer A1234567": understood(
                    Intent.instructions, tracking="A1234567", instructions="buzzer A1234567"
                ),
            }
        )
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
        existing = await chat.say("move T003 to monday")
        assert "can't find the delivery T003 among yours" in existing and "Dec" not in existing
        missing = await chat.say("move ZZ999999 to monday")
        assert missing == existing.replace("T003", "ZZ999999")
        windows = {d.tracking: (d.window_start, d.window_end) for d in await rows(ctx, Delivery)}
        assert windows["T001"][0].day == windows["T003"][0].day == 3  # nobody's delivery moved
        text = await chat.say("buzzer A1234567")
        assert "A1234567" in text and "can't find" not in text  # a note keeps its codes

    async def test_a_telegram_deep_link_links_the_chat_to_the_recipient(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        token = (await rows(ctx, Delivery, Delivery.tracking == "T002"))[0].telegram_link_token
        chat = Chat(engine_for(ctx), Channel.telegram, "777001")
        text = await chat.say(f"/start {token}", start_token=token)
        assert "T002" in text and "Bonjour" in text
        recipient = (await rows(ctx, Recipient, Recipient.phone == BEA))[0]
        assert recipient.telegram_chat_id == 777001

    async def test_a_shared_contact_with_a_matching_phone_links_the_chat(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(engine_for(ctx), Channel.telegram, "777002")
        text = await chat.say("hello")
        assert "share your phone number" in text and chat.last[0].request_contact
        text = await chat.say("", contact_phone="14165550101")
        assert "T001" in text
        assert (await rows(ctx, Recipient, Recipient.phone == ADA))[0].telegram_chat_id == 777002

    async def test_a_tracking_number_alone_reveals_nothing_but_with_the_postal_code_it_does(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding(
            {
                "T003": understood(tracking="T003"),
                "M5V 9Z9": understood(postal_code="M5V9Z9"),
                "M5V 2A1": understood(postal_code="M5V2A1"),
            }
        )
        chat = Chat(engine_for(ctx, understanding), Channel.telegram, "777003")
        text = await chat.say("T003")
        assert "postal code" in text and "Dec" not in text
        text = await chat.say("M5V 9Z9")
        assert "couldn't find" in text and "Dec" not in text
        await chat.say("T003")
        text = await chat.say("M5V 2A1")
        assert "T003" in text and "Dec 3" in text
        recipient = (await rows(ctx, Recipient, Recipient.phone == "+14165550103"))[0]
        assert recipient.telegram_chat_id is None  # the conversation is linked, not the recipient

    async def test_a_web_session_acts_for_the_recipient_the_sandbox_picked(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        recipient = (await rows(ctx, Recipient, Recipient.phone == "+14165550103"))[0]
        engine = engine_for(ctx, ScriptedUnderstanding({"hola": understood(Intent.greeting, language="es")}))
        await engine.link_web_session("sandbox-1", recipient.id)
        text = await Chat(engine, Channel.web, "sandbox-1").say("hola")
        assert "T003" in text and "Hola" in text


async def agent(ctx) -> int:
    async with ctx.uow() as uow:
        user = User(email=f"agent{id(uow)}@example.com", name="Agent", password_hash="-")
        uow.session.add(user)
        await uow.commit()
        return user.id


class TestHandoff:
    async def test_two_misunderstood_turns_offer_a_person(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(engine_for(ctx), Channel.sms, ADA)
        first = await chat.say("qwerty")
        assert "didn't understand" in first and "menu:person" in chat.payloads()
        second = await chat.say("asdf")
        assert "talk to a person" in second.lower()
        assert chat.payloads()[0] == "menu:person"

    async def test_asking_for_a_person_queues_the_conversation_at_once(self, ctx, acme):
        recorder = Recorder()
        ctx.event_handlers.append(recorder)
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(
            engine_for(ctx, ScriptedUnderstanding({"agent please": understood(Intent.human)})),
            Channel.sms,
            ADA,
        )
        text = await chat.say("agent please")
        assert "person" in text
        conversation = (await rows(ctx, Conversation))[0]
        assert conversation.status == ConversationStatus.needs_person and conversation.owner == Owner.bot
        assert len(recorder.of(HandoffRequested)) == 1
        lines = [m for m in await rows(ctx, Message) if m.author == Author.system]
        assert [(m.payload, m.internal_note) for m in lines] == [("bot:handoff_requested", True)]
        assert lines[0].text == "The recipient asked for a person"

    async def test_while_an_agent_owns_it_the_bot_records_and_stays_silent_then_answers_after_hand_back(
        self, ctx, acme
    ):
        recorder = Recorder()
        ctx.event_handlers.append(recorder)
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding({"where is it": understood(Intent.where_is_parcel)})
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
        await chat.say("where is it")
        conversation_id = (await rows(ctx, Conversation))[0].id
        user_id = await agent(ctx)
        async with ctx.uow() as uow:
            await handoff.take_over(uow, conversation_id, user_id=user_id)
        assert await chat.send("where is it") == []
        inbound = await rows(ctx, Message, Message.direction == Direction.inbound)
        assert len(inbound) == 2 and len(await rows(ctx, OutboxMessage)) == 1
        async with ctx.uow() as uow:
            await handoff.hand_back(uow, conversation_id, user_id=user_id)
        assert "T001" in await chat.say("where is it")
        conversation = (await rows(ctx, Conversation))[0]
        assert conversation.owner == Owner.bot and conversation.assignee_id is None
        assert recorder.of(TakenOver) and recorder.of(HandedBack)

    async def test_another_retailers_agent_cannot_take_the_conversation(self, ctx, acme, globex):
        await load_small_plan(ctx, acme.retailer_id)
        await Chat(engine_for(ctx), Channel.sms, ADA).say("hi?")
        conversation_id = (await rows(ctx, Conversation))[0].id
        async with ctx.uow() as uow:
            try:
                await handoff.take_over(uow, conversation_id, 1, retailer_ids=[globex.retailer_id])
            except handoff.ConversationNotFound:
                pass
            else:
                raise AssertionError("took another retailer's conversation")
        assert (await rows(ctx, Conversation))[0].owner == Owner.bot

    async def test_closing_gives_it_back_to_the_bot_and_a_new_message_reopens_it(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(engine_for(ctx), Channel.sms, ADA)
        await chat.say("hi?")
        conversation_id = (await rows(ctx, Conversation))[0].id
        user_id = await agent(ctx)
        async with ctx.uow() as uow:
            await handoff.take_over(uow, conversation_id, user_id)
        async with ctx.uow() as uow:
            await handoff.close(uow, conversation_id, user_id)
        closed = (await rows(ctx, Conversation))[0]
        assert closed.status == ConversationStatus.closed and closed.owner == Owner.bot
        assert await chat.say("hello?")
        assert (await rows(ctx, Conversation))[0].status == ConversationStatus.open


class TestLanguage:
    async def test_a_recipient_writing_another_language_is_answered_in_it(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding(
            {"¿dónde está mi paquete?": understood(Intent.where_is_parcel, language="es")}
        )
        text = await Chat(engine_for(ctx, understanding), Channel.whatsapp, BEA).say(
            "¿dónde está mi paquete?"
        )
        assert "T002" in text and "jue 3 dic" in text

    async def test_a_number_keeps_the_language_of_the_conversation(self, ctx, acme, globex):
        await load_small_plan(ctx, acme.retailer_id)
        await load_small_plan(ctx, globex.retailer_id, prefix="G")
        understanding = ScriptedUnderstanding(
            {"où est mon colis": understood(Intent.where_is_parcel, language="fr_CA")}
        )
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
        assert "Laquelle" in await chat.say("où est mon colis")
        assert "jeu. 3 déc." in await chat.say("1")

    async def test_changing_the_language_changes_the_profile(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding(
            {"in english please": understood(Intent.change_language, language="en", target_language="en")}
        )
        text = await Chat(engine_for(ctx, understanding), Channel.sms, BEA).say("in english please")
        assert "English" in text
        assert (await rows(ctx, Recipient, Recipient.phone == BEA))[0].locale == "en"


class TestRestart:
    async def test_the_dialog_survives_a_new_engine(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding(
            {"T003": understood(tracking="T003"), "M5V 2A1": understood(postal_code="M5V2A1")}
        )
        await Chat(engine_for(ctx, understanding), Channel.telegram, "777004").say("T003")
        restarted = Chat(engine_for(ctx, understanding), Channel.telegram, "777004")
        restarted.count = 10
        assert "T003" in await restarted.say("M5V 2A1")
        assert len(await rows(ctx, Conversation, col(Conversation.delivery_id).is_not(None))) == 1

    async def test_the_dialog_survives_a_new_engine_with_redis(self, ctx, acme):
        from bot.state import RedisStateStore

        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding(
            {"T003": understood(tracking="T003"), "M5V 2A1": understood(postal_code="M5V2A1")}
        )
        prefix = "doorstep-test-engine:" + str(id(ctx))

        def engine():
            store = RedisStateStore.from_url("redis://127.0.0.1:6379/0", prefix=prefix, ttl_seconds=60)
            return ConversationEngine(
                ctx, clock=lambda: NOW, understand=understanding, state_store=store
            ), store

        first, first_store = engine()
        assert "postal code" in await Chat(first, Channel.telegram, "777005").say("T003")
        await first_store.close()
        second, second_store = engine()
        restarted = Chat(second, Channel.telegram, "777005")
        restarted.count = 10
        assert "T003" in await restarted.say("M5V 2A1")
        await second_store.close()
        assert "dialog" not in (await rows(ctx, Conversation))[0].state  # it lived in Redis


SATURDAY_2PM = datetime(2026, 12, 5, 14, tzinfo=ZoneInfo("America/Toronto"))


FRIDAY_5PM = datetime(2026, 12, 4, 17, tzinfo=ZoneInfo("America/Toronto"))


async def asked_for_friday_evening(ctx, tenant) -> Chat:
    """Ada asked for Friday evening and was offered the times that evening."""
    await load_small_plan(ctx, tenant.retailer_id)
    evening = understood(
        Intent.reschedule, language="en", window_start=FRIDAY_5PM, window_end=FRIDAY_5PM + timedelta(hours=4)
    )
    understanding = ScriptedUnderstanding({"friday evening": evening, "yes": understood(Intent.yes)})
    chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
    await chat.say("friday evening")
    return chat


class TestYesToAChoice:
    """ "Yes" answers a YES/NO question; said to a list of times it must not lose the list."""

    async def test_yes_to_several_times_asks_which_one_with_the_same_times(self, ctx, acme):
        chat = await asked_for_friday_evening(ctx, acme)
        offered = chat.payloads()
        assert len(offered) >= 2 and all(p.startswith("win:") for p in offered)
        assert f"number from 1 to {len(offered)}" in await chat.say("yes")
        assert chat.payloads() == offered
        assert "Move your delivery to Fri Dec 4, 6:00-8:00 PM?" in await chat.say(str(len(offered)))

    async def test_yes_to_the_only_time_offered_asks_to_confirm_that_time(self, ctx, acme):
        chat = await asked_for_friday_evening(ctx, acme)
        last = chat.last[0].options[-1]
        async with ctx.uow() as uow:  # of the times offered, only the last one is left on offer
            conversation = (await uow.session.exec(select(Conversation))).one()
            dialog = copy.deepcopy(conversation.state["dialog"])
            dialog["options"] = [{"label": last.label, "payload": last.payload}]
            dialog["offers"] = {last.payload: dialog["offers"][last.payload]}
            conversation.state = {**conversation.state, "dialog": dialog}
            uow.session.add(conversation)
            await uow.commit()
        assert f"Move your delivery to {last.label}? Reply YES or NO" in await chat.say("yes")
        t001 = (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0]
        assert t001.window_start.astimezone(ZoneInfo("America/Toronto")).day == 3  # asked, not yet moved
        assert "Done!" in await chat.say("yes")
        t001 = (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0]
        assert t001.window_start.astimezone(ZoneInfo("America/Toronto")).hour == 18


class DiesAfterTheChange(DatabaseStateStore):
    """The process dies after the scheduling service committed the change and before the turn's own
    commit (where the dialog state and the bot's replies are written)."""

    async def save(self, uow, conversation, state) -> None:
        raise ConnectionResetError("the process died here")


class TestTheConfirmationOfAChange:
    """A change made in a chat is confirmed once: by the bot, or by a message if the bot's reply died."""

    async def moved_to_friday_evening(self, ctx, acme, state_store=None):
        ctx.clock = lambda: NOW
        ctx.event_handlers.append(make_event_handler(ctx))
        chat = await asked_for_friday_evening(ctx, acme)
        await chat.say("1")
        understanding = chat.engine._understand
        chat.engine = ConversationEngine(
            ctx, clock=lambda: NOW, understand=understanding, state_store=state_store
        )
        return chat

    async def confirmations_two_minutes_on(self, ctx):
        ctx.clock = lambda: NOW + CHAT_CONFIRMATION_GRACE + timedelta(seconds=1)
        await fire_notifications(ctx)
        return [m.body for m in await rows(ctx, OutboxMessage) if m.template_key == "reschedule_confirmed"]

    async def test_the_bots_reply_is_the_only_confirmation(self, ctx, acme):
        chat = await self.moved_to_friday_evening(ctx, acme)
        assert "Done! Your delivery T001 is now planned for Fri Dec 4" in await chat.say("yes")
        assert await self.confirmations_two_minutes_on(ctx) == []
        (note,) = await rows(ctx, Notification, Notification.event == "reschedule_confirmed")
        assert note.status == "skipped" and note.context["outcome"] == "confirmed in the conversation"

    async def test_a_yes_whose_reply_died_with_the_process_is_confirmed_by_message(self, ctx, acme):
        chat = await self.moved_to_friday_evening(ctx, acme, DiesAfterTheChange())
        with pytest.raises(ConnectionResetError):
            await chat.say("yes")
        t001 = (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0]
        assert t001.window_start.astimezone(ZoneInfo("America/Toronto")).day == 4  # the change was made
        assert not [m for m in await rows(ctx, OutboxMessage) if m.template_key == "reschedule.done"]
        (body,) = await self.confirmations_two_minutes_on(ctx)
        assert "T001" in body and "Fri Dec 4" in body

    async def test_a_second_change_whose_reply_died_is_not_deemed_confirmed_by_the_first(self, ctx, acme):
        chat = await self.moved_to_friday_evening(ctx, acme)
        assert "Done!" in await chat.say("yes")
        first = (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0].window_start
        a_minute_on = NOW + timedelta(minutes=1)
        ctx.clock = lambda: a_minute_on
        understanding = chat.engine._understand
        chat.engine = ConversationEngine(ctx, clock=lambda: a_minute_on, understand=understanding)
        # the one other time that evening
        assert "Move your delivery to Fri Dec 4, 6:00-8:00 PM?" in await chat.say("friday evening")
        chat.engine = ConversationEngine(
            ctx, clock=lambda: a_minute_on, understand=understanding, state_store=DiesAfterTheChange()
        )
        with pytest.raises(ConnectionResetError):
            await chat.say("yes")
        second = (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0]
        assert second.window_start != first  # the second change was made, its reply never went
        ctx.clock = lambda: a_minute_on + CHAT_CONFIRMATION_GRACE + timedelta(seconds=1)
        await fire_notifications(ctx)
        sent = [m.body for m in await rows(ctx, OutboxMessage) if m.template_key == "reschedule_confirmed"]
        expected = second.window_start.astimezone(ZoneInfo("America/Toronto")).strftime("%-I:%M")
        assert len(sent) == 1 and expected in sent[0]


PICKUP_ANSWERS = {
    "pickup point please": understood(Intent.redirect_pickup),
    "yes": understood(Intent.yes),
    "where is it": understood(Intent.where_is_parcel),
}


async def ada_sends_t001_to_queen_st_lockers(ctx, acme) -> Chat:
    await load_small_plan(ctx, acme.retailer_id)
    chat = Chat(engine_for(ctx, ScriptedUnderstanding(PICKUP_ANSWERS)), Channel.sms, ADA)
    await chat.say("pickup point please")
    await chat.say(str(1 + [o.label for o in chat.last[0].options].index("Queen St Lockers")))
    assert "Done!" in await chat.say("yes")
    return chat


class TestPickupHours:
    async def test_a_parcel_waiting_at_a_closed_point_says_it_is_closed_today(self, ctx, acme):
        chat = await ada_sends_t001_to_queen_st_lockers(ctx, acme)
        async with ctx.uow() as uow:  # the driver left it there; Queen St Lockers is closed on weekends
            t001 = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T001"))).one()
            t001.status = DeliveryStatus.ready_for_pickup
            uow.session.add(t001)
            await uow.commit()
        saturday = datetime(2026, 12, 5, 15, tzinfo=ZoneInfo("UTC"))
        understanding = ScriptedUnderstanding(PICKUP_ANSWERS)
        chat.engine = ConversationEngine(ctx, clock=lambda: saturday, understand=understanding)
        text = await chat.say("where is it")
        assert "ready for pickup at Queen St Lockers" in text and text.endswith("Closed Sat Dec 5.")

    async def test_a_point_without_an_address_is_named_alone(self, ctx, acme):
        """The status read "on its way to Queen St Lockers, ." when the carrier gave no address."""
        chat = await ada_sends_t001_to_queen_st_lockers(ctx, acme)
        async with ctx.uow() as uow:
            lockers = select(PickupPoint).where(PickupPoint.name == "Queen St Lockers")
            point = (await uow.session.exec(lockers)).one()
            point.address = ""
            uow.session.add(point)
            await uow.commit()
        text = await chat.say("where is it")
        assert "is on its way to Queen St Lockers." in text


FRIDAY_10AM_UTC = datetime(2026, 12, 4, 15, tzinfo=UTC)  # 10:00 in Toronto: Ada's pool slot
FRIDAY_2PM_UTC = datetime(2026, 12, 4, 19, tzinfo=UTC)  # 14:00: Carl's, where Ada asks to go


class TestConflicts:
    async def test_a_change_postgresql_fails_to_break_a_deadlock_is_run_again_and_confirmed(self, ctx, acme):
        """A real deadlock: another transaction holds the 14:00 slot's row while Ada's YES runs, then
        asks for the 10:00 row her change holds. PostgreSQL fails her change (it waited first); the
        dialog rolls back and runs it again, and she gets her "Done!"."""
        if ctx.engine.dialect.name != "postgresql":
            pytest.skip("SQLite has one writer: no two transactions can deadlock")
        await load_small_plan(ctx, acme.retailer_id)
        zone = ZoneInfo("America/Toronto")
        wishes = {
            f"friday {start} to {start + 2}": understood(
                Intent.reschedule,
                language="en",
                window_start=datetime(2026, 12, 4, start, tzinfo=zone),
                window_end=datetime(2026, 12, 4, start + 2, tzinfo=zone),
            )
            for start in (10, 14)
        }
        understanding = ScriptedUnderstanding({**wishes, "yes": understood(Intent.yes)})
        engine = engine_for(ctx, understanding)
        ada, carl = Chat(engine, Channel.sms, ADA), Chat(engine, Channel.sms, "+14165550103")
        for chat, wish in ((ada, "friday 10 to 12"), (carl, "friday 14 to 16")):
            assert "Reply YES or NO" in await chat.say(wish)
            assert "Done!" in await chat.say("yes")  # Friday has no plan: both wait in its pool
        assert "Reply YES or NO" in await ada.say("friday 14 to 16")

        assert "Done!" in await deadlocked(ctx, FRIDAY_2PM_UTC, FRIDAY_10AM_UTC, ada.say("yes"))
        t001 = (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0]
        assert t001.window_start == FRIDAY_2PM_UTC
        taken = {s.slot_start.astimezone(UTC): s.taken for s in await rows(ctx, SlotCapacity)}
        assert taken[FRIDAY_10AM_UTC] == 0 and taken[FRIDAY_2PM_UTC] == 2


class TestRefusedChanges:
    """Between the question and the YES someone else may take the place: the reply says so and offers more."""

    async def test_a_window_taken_in_the_meantime_brings_the_nearest_alternatives(self, ctx):
        tenant = await make_tenant(ctx, "acme", settings={"slot_capacity": 1})
        await load_small_plan(ctx, tenant.retailer_id)
        wish = understood(
            Intent.reschedule,
            language="en",
            window_start=SATURDAY_2PM,
            window_end=SATURDAY_2PM + timedelta(hours=2),
        )
        understanding = ScriptedUnderstanding({"saturday 2 to 4": wish, "yes": understood(Intent.yes)})
        engine = engine_for(ctx, understanding)
        ada, carl = Chat(engine, Channel.sms, ADA), Chat(engine, Channel.sms, "+14165550103")
        assert "Reply YES or NO" in await ada.say("saturday 2 to 4")
        assert "Reply YES or NO" in await carl.say("saturday 2 to 4")
        assert "Done!" in await carl.say("yes")
        text = await ada.say("yes")
        assert "no longer available" in text and "Done" not in text
        assert ada.payloads() and all(p.startswith("win:") for p in ada.payloads())
        assert "win:2026-12-05T14:00" not in ada.payloads()
        t001 = (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0]
        assert t001.window_start.astimezone(ZoneInfo("America/Toronto")).day == 3

    async def test_a_full_pickup_point_brings_the_other_points(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding(
            {"pickup point please": understood(Intent.redirect_pickup), "yes": understood(Intent.yes)}
        )
        engine = engine_for(ctx, understanding)
        chats = {phone: Chat(engine, Channel.sms, phone) for phone in (ADA, "+14165550103", "+14165550104")}

        async def ask_for_queen_street(chat):
            await chat.say("pickup point please")
            index = next(i for i, o in enumerate(chat.last[0].options) if o.label == "Queen St Lockers")
            await chat.say(str(index + 1))
            assert chat.payloads() == ["yes", "no"]

        for chat in chats.values():
            await ask_for_queen_street(chat)
        assert "¡Listo!" in await chats["+14165550103"].say("yes")
        assert "Done!" in await chats["+14165550104"].say("yes")  # Queen St Lockers holds 2 parcels a day
        text = await chats[ADA].say("yes")
        assert "can't take your parcel any more" in text and "Annex Books" in text
        assert (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0].pickup_point_id is None


class TestSeveralDeliveries:
    async def test_a_recipient_with_two_deliveries_is_asked_which_one(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        await load_small_plan(ctx, acme.retailer_id, prefix="U", day="2026-12-04")
        understanding = ScriptedUnderstanding({"where is my parcel": understood(Intent.where_is_parcel)})
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
        text = await chat.say("where is my parcel")
        assert "several deliveries" in text and "Dec" not in text.split("\n")[0]
        assert [o.label for o in chat.last[0].options] == ["T001 · Thu Dec 3", "U001 · Fri Dec 4"]
        text = await chat.say("2")
        assert "U001" in text and "Fri Dec 4" in text
        assert "U001" in await chat.say("where is my parcel")  # the choice holds for the conversation


class TestBrokenUnderstanding:
    async def test_a_reader_that_fails_gets_a_clarifying_reply_not_an_error(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)

        def broken(text, **_):
            raise ValueError("bug")

        text = await Chat(engine_for(ctx, broken), Channel.sms, ADA).say("where is it")
        assert "didn't understand" in text


class TestLogs:
    async def test_a_turn_logs_its_conversation_and_never_the_phone_or_the_text(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        understanding = ScriptedUnderstanding(
            {"where is it, 42 Secret St": understood(Intent.where_is_parcel)}
        )
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            await Chat(engine_for(ctx, understanding), Channel.sms, ADA).say("where is it, 42 Secret St")
        turn = [entry for entry in logs if entry["event"] == "conversation_turn"]
        assert turn and turn[0]["conversation_id"] and turn[0]["channel"] == "sms"
        flat = repr(logs)
        assert ADA not in flat and ADA[2:] not in flat and "Secret" not in flat


class TestWhatsAppWindow:
    async def test_a_whatsapp_message_opens_the_24_hour_window_for_every_row_of_that_phone(
        self, ctx, acme, globex
    ):
        await load_small_plan(ctx, acme.retailer_id)
        await load_small_plan(ctx, globex.retailer_id, prefix="G")
        await Chat(engine_for(ctx), Channel.whatsapp, ADA).say("hello?")
        recipients = await rows(ctx, Recipient, Recipient.phone == ADA)
        assert len(recipients) == 2 and all(r.whatsapp_last_inbound_at == NOW for r in recipients)
        outbox = await rows(ctx, OutboxMessage)
        assert outbox and all(
            row.template_key for row in outbox
        )  # the kind picks a template if the window closes


class TestHandoffBeforeTheRetailerIsKnown:
    async def test_a_first_message_asking_for_a_person_is_tied_to_the_one_retailer_of_the_phone(
        self, ctx, acme, globex
    ):
        await load_small_plan(ctx, acme.retailer_id)
        recorder = Recorder()
        ctx.event_handlers.append(recorder)
        chat = Chat(
            engine_for(ctx, ScriptedUnderstanding({"agent please": understood(Intent.human)})),
            Channel.sms,
            ADA,
        )
        assert "passing you to a person" in await chat.say("agent please")
        conversation = (await rows(ctx, Conversation))[0]
        ada = (await rows(ctx, Recipient, Recipient.phone == ADA))[0]
        t001 = (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0]
        assert conversation.status == ConversationStatus.needs_person
        assert (conversation.retailer_id, conversation.recipient_id) == (acme.retailer_id, ada.id)
        assert conversation.delivery_id == t001.id
        assert [e.retailer_id for e in recorder.of(HandoffRequested)] == [acme.retailer_id]

    async def test_a_linked_telegram_chat_asking_for_a_person_is_tied_to_its_retailer(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        async with ctx.uow() as uow:
            ada = (await uow.session.exec(select(Recipient).where(Recipient.phone == ADA))).one()
            ada.telegram_chat_id = 777001
            uow.session.add(ada)
            await uow.commit()
        chat = Chat(
            engine_for(ctx, ScriptedUnderstanding({"agent please": understood(Intent.human)})),
            Channel.telegram,
            "777001",
        )
        assert "passing you to a person" in await chat.say("agent please")
        conversation = (await rows(ctx, Conversation))[0]
        assert conversation.status == ConversationStatus.needs_person
        assert conversation.retailer_id == acme.retailer_id

    async def test_a_phone_of_two_retailers_is_asked_which_one_then_queued_with_the_one_chosen(
        self, ctx, acme, globex
    ):
        await load_small_plan(ctx, acme.retailer_id)
        await load_small_plan(ctx, globex.retailer_id, prefix="G")
        recorder = Recorder()
        ctx.event_handlers.append(recorder)
        chat = Chat(
            engine_for(ctx, ScriptedUnderstanding({"agent please": understood(Intent.human)})),
            Channel.sms,
            ADA,
        )
        text = await chat.say("agent please")
        assert "Which one" in text and [o.label for o in chat.last[0].options] == ["Acme", "Globex"]
        conversation = (await rows(ctx, Conversation))[0]
        assert conversation.status != ConversationStatus.needs_person and conversation.retailer_id is None
        assert recorder.of(HandoffRequested) == []
        assert "passing you to a person" in await chat.say("2")
        conversation = (await rows(ctx, Conversation))[0]
        ada_globex = (
            await rows(ctx, Recipient, Recipient.phone == ADA, Recipient.retailer_id == globex.retailer_id)
        )[0]
        assert conversation.status == ConversationStatus.needs_person
        assert (conversation.retailer_id, conversation.recipient_id) == (globex.retailer_id, ada_globex.id)
        assert [e.retailer_id for e in recorder.of(HandoffRequested)] == [globex.retailer_id]

    async def test_an_unknown_phone_asking_for_a_person_stays_unassigned(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        chat = Chat(
            engine_for(ctx, ScriptedUnderstanding({"agent please": understood(Intent.human)})),
            Channel.sms,
            "+14165559999",
        )
        assert "passing you to a person" in await chat.say("agent please")
        conversation = (await rows(ctx, Conversation))[0]
        assert conversation.status == ConversationStatus.needs_person and conversation.retailer_id is None


class TestCallingOffASetup:
    async def test_the_menu_offers_it_even_for_a_parcel_dropped_off_in_no_time(self, ctx, acme):
        """VROOM's `service` defaults to 0: a drop-off time of 0 s is a real one to restore."""
        from scheduling.service import SYSTEM, book_white_glove, white_glove_slots

        await load_small_plan(ctx, acme.retailer_id)
        async with ctx.uow() as uow:
            t001 = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "T001"))).one()
            t001.service_seconds = 0
            uow.session.add(t001)
            await uow.commit()
        async with ctx.uow() as uow:
            slot = (await white_glove_slots(uow, t001, days=1, now=NOW))[0]
            await book_white_glove(uow, t001, slot.start, slot.end, SYSTEM, now=NOW)
        understanding = ScriptedUnderstanding({"where is my parcel": understood(Intent.where_is_parcel)})
        chat = Chat(engine_for(ctx, understanding), Channel.sms, ADA)
        await chat.say("where is my parcel")
        assert "menu:whiteglove_cancel" in chat.payloads()
        await chat.send(payload="menu:whiteglove_cancel")
        assert chat.payloads() == ["yes", "no"]
        assert "Done! The in-home setup is called off" in await chat.say(payload="yes")
        assert (await rows(ctx, Delivery, Delivery.tracking == "T001"))[0].service_seconds == 0
