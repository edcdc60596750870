"""Proactive notifications: planned from events, fired once, at decent local hours, on one channel."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from structlog.testing import capture_logs

from app import build_context
from bot.i18n import Speaker
from core.consent import set_opt_out
from core.events import DurableEvent, decode, encode
from core.models import (
    Author,
    Channel,
    Conversation,
    Delivery,
    DeliveryStatus,
    KeptEvent,
    Notification,
    OutboxMessage,
    Recipient,
    Retailer,
)
from notifications.outreach import (
    CHAT_CONFIRMATION_GRACE,
    KEPT_EVENT_GRACE,
    fire_notifications,
    make_event_handler,
    replay_kept_events,
)
from scheduling import events as ev
from scheduling.plans import import_plan
from tests.conftest import make_tenant
from tests.plans import small_plan
from tests.redis_support import redis_or_skip


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# The plan is for Thursday Dec 3, 2026 (EST, UTC-5); it is imported Wednesday at 10:00.
WEDNESDAY_10 = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


async def setup(ctx, now=WEDNESDAY_10, day="2026-12-03", **retailer_settings):
    clock = Clock(now)
    ctx.clock = clock
    ctx.event_handlers.append(make_event_handler(ctx))
    tenant = await make_tenant(ctx, "acme", **retailer_settings)
    async with ctx.uow() as uow:
        retailer = await uow.session.get(Retailer, tenant.retailer_id)
        await import_plan(uow, retailer, small_plan(day=day))
    return clock, tenant


async def rows(ctx, model, *where):
    async with ctx.uow() as uow:
        return list((await uow.session.exec(select(model).where(*where))).all())


async def delivery(ctx, tracking):
    return (await rows(ctx, Delivery, Delivery.tracking == tracking))[0]


async def notes_of(ctx, tracking):
    d = await delivery(ctx, tracking)
    return {n.event: n for n in await rows(ctx, Notification, Notification.delivery_id == d.id)}


async def update(ctx, model, row_id, **values):
    async with ctx.uow() as uow:
        row = await uow.session.get(model, row_id)
        for key, value in values.items():
            setattr(row, key, value)
        uow.session.add(row)
        await uow.commit()


class TestPlanning:
    async def test_an_imported_plan_owes_each_recipient_three_messages_at_local_times(self, ctx):
        await setup(ctx)
        notes = await notes_of(ctx, "T001")
        assert set(notes) == {"window_assigned", "day_before_reminder", "out_for_delivery"}
        assert notes["window_assigned"].due_at == WEDNESDAY_10
        assert notes["day_before_reminder"].due_at == datetime(2026, 12, 2, 23, tzinfo=UTC)  # 18:00 EST
        assert notes["out_for_delivery"].due_at == datetime(2026, 12, 3, 13, tzinfo=UTC)  # 08:00 EST

    async def test_the_reminder_time_is_the_retailers_setting(self, ctx):
        await setup(ctx, settings={"reminder_time": "17:30", "morning_time": "07:45"})
        notes = await notes_of(ctx, "T001")
        assert notes["day_before_reminder"].due_at == datetime(2026, 12, 2, 22, 30, tzinfo=UTC)
        assert notes["out_for_delivery"].due_at == datetime(2026, 12, 3, 12, 45, tzinfo=UTC)

    async def test_reminders_follow_the_wall_clock_across_the_november_dst_change(self, ctx):
        # Monday Nov 2, 2026: the reminder is Sunday Nov 1 at 18:00 EST, the day clocks fell back
        await setup(ctx, now=datetime(2026, 10, 30, 14, tzinfo=UTC), day="2026-11-02")
        notes = await notes_of(ctx, "T001")
        assert notes["day_before_reminder"].due_at == datetime(2026, 11, 1, 23, tzinfo=UTC)
        assert notes["out_for_delivery"].due_at == datetime(2026, 11, 2, 13, tzinfo=UTC)

    async def test_reminders_follow_the_wall_clock_across_the_march_dst_change(self, ctx):
        # Monday Mar 15, 2027: the reminder is Sunday Mar 14 at 18:00 EDT, the day clocks sprang forward
        await setup(ctx, now=datetime(2027, 3, 12, 14, tzinfo=UTC), day="2027-03-15")
        notes = await notes_of(ctx, "T001")
        assert notes["day_before_reminder"].due_at == datetime(2027, 3, 14, 22, tzinfo=UTC)
        assert notes["out_for_delivery"].due_at == datetime(2027, 3, 15, 12, tzinfo=UTC)

    async def test_an_event_published_twice_owes_one_notification(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        await ctx.publish([ev.WindowAssigned(d.retailer_id, d.id, d.window_start, d.window_end)])
        assert len(await rows(ctx, Notification, Notification.delivery_id == d.id)) == 3

    async def test_a_late_import_owes_no_reminder_already_past(self, ctx):
        await setup(ctx, now=datetime(2026, 12, 3, 1, tzinfo=UTC))  # 20:00 the evening before
        assert "day_before_reminder" not in await notes_of(ctx, "T001")


class TestFiring:
    async def test_due_notifications_become_one_outbox_row_each_and_fire_once(self, ctx):
        _clock, tenant = await setup(ctx)
        first = await fire_notifications(ctx)
        assert first.sent == 5
        again = await fire_notifications(ctx)
        assert again.sent == 0
        outbox = await rows(ctx, OutboxMessage)
        assert len(outbox) == 5
        assert all(m.idempotency_key.startswith("notif:") for m in outbox)
        d = await delivery(ctx, "T001")
        message = next(m for m in outbox if m.recipient_id == d.recipient_id)
        assert message.channel == Channel.sms and message.to_address == "+14165550101"
        assert "Acme" in message.body and "STOP" in message.body
        assert f"https://t.me/DoorstepDemoBot?start={d.telegram_link_token}" in message.body
        assert [o["payload"] for o in message.options] == ["menu:reschedule", "menu:pickup"]
        assert message.retailer_id == tenant.retailer_id

    async def test_each_recipient_reads_their_own_language(self, ctx):
        await setup(ctx)
        await fire_notifications(ctx)
        bodies = {m.to_address: m.body for m in await rows(ctx, OutboxMessage)}
        assert "votre livraison" in bodies["+14165550102"] and "jeu. 3 déc." in bodies["+14165550102"]
        assert "su entrega" in bodies["+14165550103"] and "jue 3 dic" in bodies["+14165550103"]

    async def test_the_window_reads_as_the_bot_words_it_in_each_language(self, ctx):
        await setup(ctx)
        await fire_notifications(ctx)
        bodies = {m.to_address: m.body for m in await rows(ctx, OutboxMessage)}
        for delivery in await rows(ctx, Delivery, col(Delivery.tracking).in_(["T001", "T002", "T003"])):
            recipient = (await rows(ctx, Recipient, Recipient.id == delivery.recipient_id))[0]
            assert delivery.window_start is not None and delivery.window_end is not None
            speaker = Speaker(recipient.locale, Channel.sms)
            worded = speaker.finish(
                speaker.window(delivery.window_start, delivery.window_end, delivery.timezone)
            )
            assert worded in bodies[recipient.phone], (worded, bodies[recipient.phone])

    async def test_the_conversation_remembers_the_options_offered(self, ctx):
        await setup(ctx)
        await fire_notifications(ctx)
        d = await delivery(ctx, "T001")
        conversation = (await rows(ctx, Conversation, Conversation.address == "+14165550101"))[0]
        assert conversation.delivery_id == d.id and conversation.channel == Channel.sms
        assert conversation.state["dialog"]["options"][0]["payload"] == "menu:reschedule"

    async def test_the_reminder_fires_at_its_time_and_not_before(self, ctx):
        clock, _ = await setup(ctx)
        await fire_notifications(ctx)
        clock.now = datetime(2026, 12, 2, 22, 59, tzinfo=UTC)
        assert (await fire_notifications(ctx)).sent == 0
        clock.now = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
        assert (await fire_notifications(ctx)).sent == 5
        bodies = [
            m.body for m in await rows(ctx, OutboxMessage, col(OutboxMessage.body).contains("tomorrow"))
        ]
        assert len(bodies) == 3  # the English ones


class TestQuietHours:
    async def test_a_message_due_at_night_waits_for_the_morning_in_the_plans_time_zone(self, ctx):
        clock, _ = await setup(ctx, now=datetime(2026, 12, 3, 3, 30, tzinfo=UTC))  # 22:30 EST
        summary = await fire_notifications(ctx)
        assert summary.sent == 0 and summary.postponed == 5
        notes = await notes_of(ctx, "T001")
        assert notes["window_assigned"].due_at == datetime(2026, 12, 3, 13, tzinfo=UTC)
        clock.now = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
        assert (await fire_notifications(ctx)).sent == 10  # the window messages, then the morning ones

    async def test_quiet_hours_are_the_retailers(self, ctx):
        _clock, _ = await setup(ctx, now=datetime(2026, 12, 3, 3, 30, tzinfo=UTC), quiet_hours_start="23:00")
        assert (await fire_notifications(ctx)).sent == 5


class TestConsentAndChannels:
    async def test_an_sms_opt_out_is_honoured(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        async with ctx.uow() as uow:
            recipient = await uow.session.get(Recipient, d.recipient_id)
            set_opt_out(recipient, Channel.sms, True, WEDNESDAY_10)
            uow.session.add(recipient)
            await uow.commit()
        summary = await fire_notifications(ctx)
        assert summary.suppressed == 1 and summary.sent == 4
        assert not await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        assert (await notes_of(ctx, "T001"))["window_assigned"].status == "suppressed"

    async def test_a_linked_telegram_comes_first_and_the_opt_out_is_per_channel(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        await update(ctx, Recipient, d.recipient_id, telegram_chat_id=4242)
        await fire_notifications(ctx)
        sent = await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        assert [(m.channel, m.to_address) for m in sent] == [(Channel.telegram, "4242")]

    async def test_never_two_channels_for_one_notification(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        await update(ctx, Recipient, d.recipient_id, telegram_chat_id=4242, preferred_channel=Channel.sms)
        await fire_notifications(ctx)
        await fire_notifications(ctx)
        sent = await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        assert [m.channel for m in sent] == [Channel.sms]

    async def test_whatsapp_outside_the_24_hours_without_a_template_falls_back_to_sms(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        await update(
            ctx,
            Recipient,
            d.recipient_id,
            preferred_channel=Channel.whatsapp,
            whatsapp_last_inbound_at=WEDNESDAY_10 - timedelta(hours=30),
        )
        await fire_notifications(ctx)
        sent = await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        assert [m.channel for m in sent] == [Channel.sms]

    async def test_whatsapp_inside_the_24_hours_is_free_text(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        await update(
            ctx,
            Recipient,
            d.recipient_id,
            preferred_channel=Channel.whatsapp,
            whatsapp_last_inbound_at=WEDNESDAY_10 - timedelta(hours=2),
        )
        await fire_notifications(ctx)
        (sent,) = await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        assert sent.channel == Channel.whatsapp and sent.content_sid is None and "Acme" in sent.body

    async def test_whatsapp_outside_the_24_hours_uses_the_retailers_approved_template(self, ctx):
        from channels.rendering import render_whatsapp

        sid = "HX" + "ab" * 16
        templates = {"window_assigned": {"content_sid": sid, "variables": ["brand", "window", "tracking"]}}
        await setup(ctx, settings={"whatsapp_templates": templates})
        d = await delivery(ctx, "T001")
        await update(ctx, Recipient, d.recipient_id, preferred_channel=Channel.whatsapp)
        await fire_notifications(ctx)
        (sent,) = await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        assert sent.channel == Channel.whatsapp and sent.template_key == "window_assigned"
        rendered = render_whatsapp(
            sent.body,
            sent.options,
            window_open=False,
            retailer_settings={"whatsapp_templates": templates},
            template_key=sent.template_key,
            content_sid=sent.content_sid,
            content_variables=sent.content_variables,
        )
        assert rendered.content_sid == sid
        assert rendered.content_variables == {
            "1": "Acme",
            "2": "Thu Dec 3, 9:00–11:00\u202fAM",  # as the bot words it (core.wording)
            "3": "T001",
        }

    async def test_an_override_saved_with_a_content_sid_goes_with_positional_variables(self, ctx):
        from notifications.templates import save_template

        sid = "HX" + "cd" * 16
        _clock, tenant = await setup(ctx)
        async with ctx.uow() as uow:
            retailer = await uow.session.get(Retailer, tenant.retailer_id)
            body = "{{ brand }}: {{ tracking }} {{ window|window }}. STOP to stop."
            await save_template(
                uow.session, retailer, "window_assigned", "en", Channel.whatsapp, body, content_sid=sid
            )
            await uow.commit()
        d = await delivery(ctx, "T001")
        await update(ctx, Recipient, d.recipient_id, preferred_channel=Channel.whatsapp)
        await fire_notifications(ctx)
        (sent,) = await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        assert (
            sent.content_sid == sid
            and sent.content_variables["1"] == "Acme"
            and sent.content_variables["2"] == "T001"
        )


class TestChanges:
    async def test_a_window_moved_to_another_day_moves_the_reminders(self, ctx):
        _clock, _ = await setup(ctx)
        d = await delivery(ctx, "T001")
        start, end = d.window_start + timedelta(days=1), d.window_end + timedelta(days=1)
        await update(ctx, Delivery, d.id, window_start=start, window_end=end)
        await ctx.publish([ev.DeliveryRescheduled(d.retailer_id, d.id, start, end, actor="agent:7")])
        notes = await rows(ctx, Notification, Notification.delivery_id == d.id)
        by_key = {n.dedupe_key.rsplit(":", 1)[-1] if "reminder" in n.event else n.event: n for n in notes}
        assert by_key["2026-12-03"].status == "cancelled" and by_key["2026-12-04"].status == "scheduled"
        assert by_key["2026-12-04"].due_at == datetime(2026, 12, 3, 23, tzinfo=UTC)
        summary = await fire_notifications(ctx)
        # the first window's message is no longer true: skipped; the confirmation goes out
        assert summary.skipped == 1
        (mine,) = await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        assert "now arrives Fri Dec 4" in mine.body

    async def test_a_recipients_own_reschedule_waits_for_the_bots_confirmation(self, ctx):
        """The bot confirms in the chat; this message is the fallback if that reply never went out
        (tests/test_engine_conversations.py TestTheConfirmationOfAChange)."""
        clock, _ = await setup(ctx)
        d = await delivery(ctx, "T001")
        await ctx.publish(
            [ev.DeliveryRescheduled(d.retailer_id, d.id, d.window_start, d.window_end, actor="recipient")]
        )
        note = (await notes_of(ctx, "T001"))["reschedule_confirmed"]
        assert note.due_at == clock.now + CHAT_CONFIRMATION_GRACE
        assert note.context["unless_said"] == "reschedule.done"

    async def test_a_redirect_cancels_what_was_owed(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        await update(ctx, Delivery, d.id, status=DeliveryStatus.redirected)
        await ctx.publish([ev.RedirectedToPickup(d.retailer_id, d.id, 1, actor="agent:1")])
        notes = await notes_of(ctx, "T001")
        assert (
            notes["day_before_reminder"].status == "cancelled"
            and notes["out_for_delivery"].status == "cancelled"
        )
        assert notes["redirect_confirmed"].status == "scheduled"

    async def test_a_parcel_brought_back_from_the_point_gets_its_reminders_and_no_point_message(self, ctx):
        from scheduling.service import Actor, pickup_options, redirect_to_pickup, reschedule_delivery

        clock, _ = await setup(ctx)
        d = await delivery(ctx, "T001")
        window = (d.window_start, d.window_end)
        async with ctx.uow() as uow:
            point = (await pickup_options(uow, d, now=clock.now))[0].point
            await redirect_to_pickup(uow, d, point.id or 0, Actor(Author.recipient), now=clock.now)
        notes = await notes_of(ctx, "T001")
        assert notes["day_before_reminder"].status == "cancelled"
        assert notes["redirect_confirmed"].status == "scheduled"  # the fallback of the chat's reply
        async with ctx.uow() as uow:
            await reschedule_delivery(uow, d, *window, Actor(Author.agent, id="7"), now=clock.now)
        notes = await notes_of(ctx, "T001")
        assert notes["day_before_reminder"].status == "scheduled"  # the same day's, planned again
        clock.now += CHAT_CONFIRMATION_GRACE
        await fire_notifications(ctx)
        notes = await notes_of(ctx, "T001")
        assert notes["redirect_confirmed"].status == "skipped"  # no longer true
        bodies = [
            m.body for m in await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        ]
        assert any("now arrives Thu Dec 3" in body for body in bodies)
        assert not any(point.name in body for body in bodies)

    async def test_a_setup_called_off_cancels_its_reminder_and_says_the_parcel_still_comes(self, ctx):
        from scheduling.service import Actor, book_white_glove, cancel_white_glove

        clock, _ = await setup(ctx)
        d = await delivery(ctx, "T002")
        agent = Actor(Author.agent, id="7")
        slot = (datetime(2026, 12, 3, 21, tzinfo=UTC), datetime(2026, 12, 3, 23, tzinfo=UTC))  # 4-6 PM
        async with ctx.uow() as uow:
            await book_white_glove(uow, d, *slot, agent, now=clock.now)
        await fire_notifications(ctx)
        assert (await notes_of(ctx, "T002"))["white_glove_reminder"].status == "scheduled"
        async with ctx.uow() as uow:
            await cancel_white_glove(uow, d, agent, now=clock.now)
        notes = await notes_of(ctx, "T002")
        assert notes["white_glove_reminder"].status == "cancelled"
        assert notes["white_glove_cancelled"].status == "scheduled"
        assert notes["day_before_reminder"].status == "scheduled"  # the parcel still comes
        await fire_notifications(ctx)
        bodies = [
            m.body for m in await rows(ctx, OutboxMessage, OutboxMessage.recipient_id == d.recipient_id)
        ]
        assert set(bodies) == {  # T002's recipient reads French
            "Acme : l'installation à domicile de T002 est réservée le jeu. 3 déc., 16 h à 18 h"
            " au 2 Queen St W, Toronto.",
            "Acme : l'installation à domicile de T002 est annulée. Votre colis arrivera quand même"
            " le jeu. 3 déc., 16 h à 18 h.",
        }

    async def test_a_setup_called_off_in_the_chat_is_confirmed_there_first(self, ctx):
        clock, _ = await setup(ctx)
        d = await delivery(ctx, "T002")
        slot = (datetime(2026, 12, 3, 21, tzinfo=UTC), datetime(2026, 12, 3, 23, tzinfo=UTC))
        await ctx.publish([ev.WhiteGloveCancelled(d.retailer_id, d.id, *slot, actor="recipient")])
        note = (await notes_of(ctx, "T002"))["white_glove_cancelled"]
        assert note.due_at == clock.now + CHAT_CONFIRMATION_GRACE
        assert note.context["unless_said"] == "whiteglove.cancelled"

    async def test_a_cancelled_delivery_owes_nothing(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        await update(ctx, Delivery, d.id, status=DeliveryStatus.cancelled)
        await ctx.publish([ev.DeliveryCancelled(d.retailer_id, d.id)])
        assert {n.status for n in (await notes_of(ctx, "T001")).values()} == {"cancelled"}

    async def test_another_retailers_event_touches_nothing(self, ctx):
        await setup(ctx)
        d = await delivery(ctx, "T001")
        other = await make_tenant(ctx, "globex")
        await ctx.publish([ev.DeliveryCancelled(other.retailer_id, d.id)])
        assert "cancelled" not in {n.status for n in (await notes_of(ctx, "T001")).values()}


class TestDriverProgress:
    async def test_arriving_soon_fires_once_when_a_few_stops_away(self, ctx):
        clock, _ = await setup(ctx, now=datetime(2026, 12, 3, 14, tzinfo=UTC))
        await fire_notifications(ctx)
        d = await delivery(ctx, "T001")
        await ctx.publish([ev.EtaChanged(d.retailer_id, d.id, clock.now + timedelta(hours=2), stops_away=8)])
        assert "arriving_soon" not in await notes_of(ctx, "T001")
        await ctx.publish(
            [ev.EtaChanged(d.retailer_id, d.id, clock.now + timedelta(minutes=50), stops_away=2)]
        )
        await fire_notifications(ctx)
        await ctx.publish(
            [ev.EtaChanged(d.retailer_id, d.id, clock.now + timedelta(minutes=20), stops_away=1)]
        )
        await fire_notifications(ctx)
        sent = await rows(
            ctx,
            OutboxMessage,
            col(OutboxMessage.idempotency_key).like("notif:%"),
            OutboxMessage.recipient_id == d.recipient_id,
        )
        arriving = [m for m in sent if m.template_key == "arriving_soon"]
        assert len(arriving) == 1 and "2 stops away" in arriving[0].body and "9:50 AM" in arriving[0].body

    async def test_arriving_soon_fires_within_thirty_minutes_whatever_the_stops(self, ctx):
        clock, _ = await setup(ctx, now=datetime(2026, 12, 3, 14, tzinfo=UTC))
        d = await delivery(ctx, "T001")
        await ctx.publish(
            [ev.EtaChanged(d.retailer_id, d.id, clock.now + timedelta(minutes=25), stops_away=9)]
        )
        assert "arriving_soon" in await notes_of(ctx, "T001")

    async def test_delivered_carries_the_proof(self, ctx):
        _clock, _ = await setup(ctx, now=datetime(2026, 12, 3, 16, tzinfo=UTC))
        d = await delivery(ctx, "T001")
        proof = {"signer": "Ada", "photo_url": "https://proof.example.com/p/1"}
        await update(ctx, Delivery, d.id, status=DeliveryStatus.delivered, proof=proof)
        await ctx.publish([ev.Delivered(d.retailer_id, d.id, proof=proof)])
        await fire_notifications(ctx)
        (done,) = [m for m in await rows(ctx, OutboxMessage) if m.template_key == "delivered"]
        assert "Signed by Ada" in done.body and "https://proof.example.com/p/1" in done.body

    async def test_a_failed_attempt_offers_to_reschedule_or_redirect(self, ctx):
        _clock, _ = await setup(ctx, now=datetime(2026, 12, 3, 16, tzinfo=UTC))
        d = await delivery(ctx, "T001")
        await update(ctx, Delivery, d.id, status=DeliveryStatus.failed)
        await ctx.publish([ev.AttemptFailed(d.retailer_id, d.id, reason="nobody home")])
        await fire_notifications(ctx)
        (failed,) = [m for m in await rows(ctx, OutboxMessage) if m.template_key == "attempt_failed"]
        assert "(nobody home)" in failed.body
        assert [o["payload"] for o in failed.options] == ["menu:reschedule", "menu:pickup", "menu:person"]


class TestArrivingFromRouteProgress:
    async def test_a_stop_done_tells_the_next_recipient_the_driver_is_coming(self, ctx):
        from core.models import Stop, StopStatus

        clock, _ = await setup(
            ctx, now=datetime(2026, 12, 3, 13, 30, tzinfo=UTC), settings={"arriving_stops": 0}
        )
        first, second = await delivery(ctx, "T001"), await delivery(ctx, "T002")
        (first_stop,) = await rows(ctx, Stop, Stop.delivery_id == first.id)
        (second_stop,) = await rows(ctx, Stop, Stop.delivery_id == second.id)
        await update(ctx, Stop, second_stop.id, eta=clock.now + timedelta(hours=2))
        await update(ctx, Delivery, first.id, status=DeliveryStatus.out_for_delivery)
        await ctx.publish([ev.OutForDelivery(first.retailer_id, first.id, first_stop.eta)])
        assert "arriving_soon" in await notes_of(ctx, "T001")
        assert "arriving_soon" not in await notes_of(ctx, "T002")
        await fire_notifications(ctx)

        await update(ctx, Stop, first_stop.id, status=StopStatus.done)
        await update(ctx, Delivery, first.id, status=DeliveryStatus.delivered)
        await ctx.publish([ev.Delivered(first.retailer_id, first.id, proof={"signer": "Ada"})])
        arriving = (await notes_of(ctx, "T002"))["arriving_soon"]
        assert arriving.context["stops_away"] == 0 and arriving.status == "scheduled"
        await ctx.publish([ev.Delivered(first.retailer_id, first.id, proof={"signer": "Ada"})])
        await fire_notifications(ctx)
        sent = [m for m in await rows(ctx, OutboxMessage) if m.template_key == "arriving_soon"]
        assert sorted(m.to_address for m in sent) == ["+14165550101", "+14165550102"]


class TestKeptEvents:
    """Scheduling events are kept in their change's transaction until their notifications are planned."""

    async def test_events_planned_after_their_commit_are_not_kept(self, ctx):
        await setup(ctx)
        assert len(await notes_of(ctx, "T001")) == 3
        assert await rows(ctx, KeptEvent) == []

    async def test_a_plan_whose_planning_never_ran_is_planned_by_the_sweeper(self, ctx):
        clock = Clock(WEDNESDAY_10)
        ctx.clock = clock
        tenant = await make_tenant(ctx, "acme")
        async with ctx.uow() as uow:  # nothing listens: as if the process died right after the commit
            retailer = await uow.session.get(Retailer, tenant.retailer_id)
            await import_plan(uow, retailer, small_plan())
        assert await rows(ctx, Notification) == []
        assert {k.name for k in await rows(ctx, KeptEvent)} == {"WindowAssigned"}
        assert await replay_kept_events(ctx) == 0  # too fresh: its own process may still be at it
        clock.now += KEPT_EVENT_GRACE + timedelta(seconds=1)
        assert await replay_kept_events(ctx, batch=2) == 5
        assert set(await notes_of(ctx, "T001")) == {
            "window_assigned",
            "day_before_reminder",
            "out_for_delivery",
        }
        assert await rows(ctx, KeptEvent) == []
        assert await replay_kept_events(ctx) == 0

    async def test_a_delivery_recorded_while_the_database_went_away_is_announced_later(self, ctx):
        clock, _ = await setup(ctx)
        d = await delivery(ctx, "T001")
        unreachable = build_context(ctx.settings.model_copy(update={"database_url": UNREACHABLE}))
        ctx.event_handlers[:] = [make_event_handler(unreachable)]
        with capture_logs() as logs:
            async with ctx.uow() as uow:
                row = await uow.session.get(Delivery, d.id)
                row.status = DeliveryStatus.delivered
                uow.session.add(row)
                uow.record(ev.Delivered(d.retailer_id, d.id, proof={"signer": "Ada"}))
                await uow.commit()
        await unreachable.engine.dispose()
        assert [e["kept"] for e in logs if e["event"] == "notifications_planning_failed"] == [1]
        assert "delivered" not in await notes_of(ctx, "T001")
        clock.now += KEPT_EVENT_GRACE + timedelta(seconds=1)
        assert await replay_kept_events(ctx) == 1
        await fire_notifications(ctx)
        (sent,) = await rows(ctx, OutboxMessage, OutboxMessage.template_key == "delivered")
        assert "Ada" in sent.body

    async def test_a_replayed_reschedule_does_not_undo_a_newer_one(self, ctx):
        clock, _ = await setup(ctx)
        d = await delivery(ctx, "T001")
        handlers = list(ctx.event_handlers)
        ctx.event_handlers.clear()  # the first move's planning never runs
        await move(ctx, d, days=1)
        ctx.event_handlers[:] = handlers
        await move(ctx, d, days=2)
        assert await reminder_days(ctx, d) == ["2026-12-05"]
        clock.now += KEPT_EVENT_GRACE + timedelta(seconds=1)
        assert await replay_kept_events(ctx) == 1
        assert await reminder_days(ctx, d) == ["2026-12-05"]
        assert await rows(ctx, KeptEvent) == []

    async def test_a_kept_event_no_code_can_read_is_logged_and_dropped(self, ctx):
        ctx.clock = Clock(WEDNESDAY_10)
        async with ctx.uow() as uow:
            uow.session.add(
                KeptEvent(name="ParcelTeleported", data={"delivery_id": 1}, created_at=WEDNESDAY_10)
            )
            await uow.commit()
        ctx.clock.now += KEPT_EVENT_GRACE + timedelta(seconds=1)
        with capture_logs() as logs:
            assert await replay_kept_events(ctx) == 0
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["kept_events_unreadable"]
        assert await rows(ctx, KeptEvent) == []


UNREACHABLE = "postgresql://doorstep@127.0.0.1:1/gone"
AT = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
EVERY_EVENT = [
    ev.WindowAssigned(1, 2, AT, AT + timedelta(hours=2)),
    ev.DeliveryRescheduled(1, 2, AT, AT + timedelta(hours=2), actor="recipient"),
    ev.RedirectedToPickup(1, 2, 3, actor="agent"),
    ev.WhiteGloveBooked(1, 2, AT, AT + timedelta(hours=3)),
    ev.WhiteGloveCancelled(1, 2, AT, AT + timedelta(hours=3), actor="recipient"),
    ev.EtaChanged(1, 2, AT, stops_away=4),
    ev.OutForDelivery(1, 2, None),
    ev.OutForDelivery(1, 2, AT),
    ev.Arrived(1, 2),
    ev.Delivered(1, 2, proof={"signer": "Ada", "photo_url": "https://p.example/1.jpg"}),
    ev.AttemptFailed(1, 2, reason="nobody home"),
    ev.DeliveryCancelled(1, 2),
]


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_every_scheduling_event_reads_back_as_it_was_kept(event):
    record = json.loads(json.dumps(encode(event)))  # through JSON, as the column stores it
    assert decode(record["name"], record["data"]) == event


def test_every_kind_of_scheduling_event_is_in_that_test():
    kinds = {k for k in DurableEvent.kinds.values() if issubclass(k, ev.Event) and k is not ev.Event}
    assert {type(e) for e in EVERY_EVENT} == kinds


async def move(ctx, d, *, days):
    """Move the delivery's window by whole days and record it, as the scheduling service does."""
    async with ctx.uow() as uow:
        row = await uow.session.get(Delivery, d.id)
        row.window_start = d.window_start + timedelta(days=days)
        row.window_end = d.window_end + timedelta(days=days)
        uow.session.add(row)
        uow.record(
            ev.DeliveryRescheduled(d.retailer_id, d.id, row.window_start, row.window_end, actor="agent:7")
        )
        await uow.commit()


async def reminder_days(ctx, d):
    """The days of the day-before reminders still owed for the delivery."""
    owed = await rows(
        ctx,
        Notification,
        Notification.delivery_id == d.id,
        Notification.event == "day_before_reminder",
        Notification.status == "scheduled",
    )
    return sorted(n.dedupe_key.rsplit(":", 1)[-1] for n in owed)


@pytest.fixture(params=["database", "redis"])
async def state_store(request):
    """The engine's dialog state store: in the conversation row, or in Redis (production mode)."""
    from bot.state import DatabaseStateStore, RedisStateStore

    if request.param == "database":
        yield DatabaseStateStore()
        return
    client = await redis_or_skip()
    prefix = f"doorstep-test:{uuid.uuid4().hex[:8]}"
    yield RedisStateStore(client, prefix=prefix, ttl_seconds=60)
    async for key in client.scan_iter(f"{prefix}:*"):
        await client.delete(key)
    await client.aclose()


def sms_from_ada(text: str) -> Any:
    from bot.messages import InboundMessage

    return InboundMessage(
        channel=Channel.sms, sender="+14165550101", text=text, provider_id="SM" + uuid.uuid4().hex
    )


class TestRepliesToNotifications:
    async def test_replying_1_to_a_failed_attempt_sms_starts_the_reschedule(self, ctx, state_store):
        from bot.engine import ConversationEngine

        clock, _ = await setup(ctx, now=datetime(2026, 12, 3, 16, tzinfo=UTC))
        d = await delivery(ctx, "T001")
        await update(ctx, Delivery, d.id, status=DeliveryStatus.failed)
        await ctx.publish([ev.AttemptFailed(d.retailer_id, d.id, reason="nobody home")])
        await fire_notifications(ctx)
        engine = ConversationEngine(ctx, clock=clock, state_store=state_store)
        replies = await engine.handle(sms_from_ada("1"))
        assert replies, "the engine answered"
        payloads = [o.payload for r in replies for o in r.options]
        assert any(p.startswith("win:") for p in payloads), (replies, payloads)

    async def test_a_notification_after_a_chat_makes_the_numbers_mean_its_options_not_the_chats(
        self, ctx, state_store
    ):
        """The chat's own options were saved by the store (in Redis, in production mode) before the
        notification offered new ones in the conversation row: the newer offer wins."""
        from bot.engine import ConversationEngine

        clock, _ = await setup(ctx, now=datetime(2026, 12, 3, 16, tzinfo=UTC))
        engine = ConversationEngine(ctx, clock=clock, state_store=state_store)
        menu = await engine.handle(sms_from_ada("hello"))
        assert [o.payload for o in menu[-1].options][2] == "menu:instructions", menu
        d = await delivery(ctx, "T001")
        await update(ctx, Delivery, d.id, status=DeliveryStatus.failed)
        await ctx.publish([ev.AttemptFailed(d.retailer_id, d.id, reason="nobody home")])
        await fire_notifications(ctx)
        # "3" is "Note for the driver" in the chat's menu, "Talk to a person" in the notification
        replies = await engine.handle(sms_from_ada("3"))
        assert [r.template_key for r in replies] == ["handoff"], replies


class RecordingScheduler:
    """A NotificationScheduler that records what it was asked (the job store's own test is elsewhere)."""

    def __init__(self) -> None:
        self.scheduled: dict[int, datetime] = {}
        self.unscheduled: list[int] = []

    async def schedule(self, notifications):
        self.scheduled.update(dict(notifications))

    async def unschedule(self, notification_ids):
        self.unscheduled.extend(notification_ids)


class TestJobsFollowTheDelivery:
    async def test_jobs_move_with_the_window_and_disappear_with_the_delivery(self, ctx):
        jobs = RecordingScheduler()
        ctx.components["notifications.scheduler"] = jobs
        await setup(ctx)
        reminder = (await notes_of(ctx, "T001"))["day_before_reminder"]
        assert jobs.scheduled[reminder.id] == datetime(2026, 12, 2, 23, tzinfo=UTC)

        d = await delivery(ctx, "T001")
        start, end = d.window_start + timedelta(days=1), d.window_end + timedelta(days=1)
        await update(ctx, Delivery, d.id, window_start=start, window_end=end)
        await ctx.publish([ev.DeliveryRescheduled(d.retailer_id, d.id, start, end, actor="system")])
        assert reminder.id in jobs.unscheduled
        moved = [
            n
            for n in await rows(ctx, Notification, Notification.delivery_id == d.id)
            if n.status == "scheduled"
        ]
        assert {jobs.scheduled[n.id] for n in moved if n.event == "day_before_reminder"} == {
            datetime(2026, 12, 3, 23, tzinfo=UTC)
        }

        await update(ctx, Delivery, d.id, status=DeliveryStatus.cancelled)
        await ctx.publish([ev.DeliveryCancelled(d.retailer_id, d.id)])
        assert {n.id for n in moved} <= set(jobs.unscheduled)
