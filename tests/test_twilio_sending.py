"""Sending SMS and WhatsApp from the outbox with the real twilio client, against the loopback fake API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from httpx import AsyncClient
from twilio.base.exceptions import TwilioRestException

from channels.outbox_worker import OutboxMessageFailed, drain
from channels.rendering import OUTSIDE_WINDOW
from core import sms
from core.config import Settings
from core.context import AppContext
from core.models import Channel, Conversation, OutboxMessage, OutboxStatus, Recipient, utcnow
from core.outbox import enqueue
from tests.conftest import make_tenant
from tests.fakes.twilio_api import FakeTwilioApi
from tests.twilio_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    RECIPIENT,
    SHARED_SMS,
    SHARED_WHATSAPP,
    twilio_settings,
)

OPTIONS = [
    {"label": "Tomorrow 2–4 PM", "payload": "w:1"},
    {"label": "Pickup point", "payload": "pickup"},
]


@pytest.fixture
async def twilio_api() -> AsyncIterator[FakeTwilioApi]:
    fake = FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def settings(database_url: str, twilio_api: FakeTwilioApi) -> Settings:
    return twilio_settings(
        database_url, twilio_api.base_url, twilio_timeout_seconds=1.0, outbox_max_attempts=4
    )


@pytest.fixture
async def app_ctx(ctx: AppContext, client: AsyncClient) -> AppContext:
    """The context once the app started (the Twilio senders are registered)."""
    return ctx


async def put(ctx: AppContext, channel: Channel = Channel.sms, key: str = "m1", **fields: Any) -> int:
    fields.setdefault("to_address", RECIPIENT)
    fields.setdefault("body", "Your parcel arrives Thu 2–4 PM.")
    async with ctx.uow() as uow:
        row = await enqueue(uow.session, channel=channel, idempotency_key=key, **fields)
        await uow.commit()
        return row.id or 0


async def row_of(ctx: AppContext, row_id: int) -> OutboxMessage:
    async with ctx.uow() as uow:
        row = await uow.session.get(OutboxMessage, row_id)
        assert row is not None
        return row


class TestSms:
    async def test_an_sms_goes_from_the_shared_number_with_numbered_options_and_its_segments(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        row_id = await put(app_ctx, options=OPTIONS)
        report = await drain(app_ctx)
        assert report.sent == 1
        (message,) = twilio_api.messages
        assert message.to == RECIPIENT and message.from_ == SHARED_SMS
        assert message.body == (
            "Your parcel arrives Thu 2-4 PM.\nReply 1 for Tomorrow 2-4 PM\nReply 2 for Pickup point"
        )
        callback = urlsplit(message.status_callback or "")
        assert (
            f"{callback.scheme}://{callback.netloc}{callback.path}" == PUBLIC_URL + "/webhooks/twilio/status"
        )
        assert parse_qs(callback.query) == {"outbox": [str(row_id)]}
        row = await row_of(app_ctx, row_id)
        assert (row.status, row.provider_id, row.attempts) == (OutboxStatus.queued, message.sid, 1)
        assert (row.encoding, row.segments) == ("GSM-7", 1)

    async def test_a_retailer_with_its_own_number_sends_from_it_in_its_language(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "maple", sms_from="+15145550177", default_locale="fr")
        row_id = await put(
            app_ctx, retailer_id=tenant.retailer_id, body="Votre colis arrive jeudi.", options=OPTIONS
        )
        await drain(app_ctx)
        (message,) = twilio_api.messages
        assert message.from_ == "+15145550177"
        assert "Répondez 1 pour Tomorrow 2-4 PM" in message.body
        assert (await row_of(app_ctx, row_id)).encoding == "GSM-7"

    async def test_a_french_text_goes_in_gsm7_with_plain_letters_for_the_accents_gsm7_lacks(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        body = "Votre colis arrivera à la boîte aux lettres: " + "ça " * 20
        row_id = await put(app_ctx, body=body)
        await drain(app_ctx)
        row = await row_of(app_ctx, row_id)
        assert twilio_api.messages[0].body == "Votre colis arrivera à la boite aux lettres: " + "ca " * 20
        assert (row.encoding, row.segments) == ("GSM-7", 1)

    async def test_a_retailer_that_keeps_exact_accents_pays_ucs2_and_the_row_counts_its_segments(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "maple", settings={"sms_smart_encoding": False})
        body = "Votre colis arrivera à la boîte aux lettres: " + "ça " * 20
        row_id = await put(app_ctx, retailer_id=tenant.retailer_id, body=body)
        await drain(app_ctx)
        row = await row_of(app_ctx, row_id)
        assert (row.encoding, row.segments) == ("UCS-2", 2)
        assert twilio_api.messages[0].body == body

    async def test_a_spanish_reply_with_options_is_one_gsm7_segment(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "sol", default_locale="es")
        options = [{"label": "Sí", "payload": "yes"}, {"label": "Otra ventana", "payload": "no"}]
        body = "¿Confirmamos la entrega del jueves, de 14:00 a 16:00, en la dirección indicada?"
        row_id = await put(app_ctx, retailer_id=tenant.retailer_id, body=body, options=options)
        await drain(app_ctx)
        sent = twilio_api.messages[0].body
        assert sent.startswith(
            "¿Confirmamos la entrega del jueves, de 14:00 a 16:00, en la direccion indicada?"
        )
        assert sent.endswith("Responda 1 para Si\nResponda 2 para Otra ventana")
        row = await row_of(app_ctx, row_id)
        assert (row.encoding, row.segments) == ("GSM-7", 1)
        assert sms.cost(sent).segments == row.segments  # what Twilio will bill for

    async def test_the_rows_own_from_address_wins(self, app_ctx: AppContext, twilio_api: FakeTwilioApi):
        await put(app_ctx, from_address="+15145550188")
        await drain(app_ctx)
        assert twilio_api.messages[0].from_ == "+15145550188"


class TestRetries:
    async def test_server_errors_are_retried_until_twilio_accepts(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        twilio_api.fail_next(2, status=503)
        row_id = await put(app_ctx)
        report = await drain(app_ctx)
        assert (report.retried, report.sent) == (2, 1)
        assert len(twilio_api.messages) == 1
        row = await row_of(app_ctx, row_id)
        assert (row.status, row.attempts, row.last_error) == (OutboxStatus.queued, 3, "")

    async def test_a_429_waits_at_least_the_retry_after(self, app_ctx: AppContext, twilio_api: FakeTwilioApi):
        twilio_api.throttle_next(1, retry_after=30)
        row_id = await put(app_ctx)
        before = utcnow()
        await drain(app_ctx)
        row = await row_of(app_ctx, row_id)
        assert row.status == OutboxStatus.pending
        assert row.next_attempt_at >= before + timedelta(seconds=30)
        assert twilio_api.messages == []
        later = utcnow() + timedelta(seconds=31)
        app_ctx.clock = lambda: later
        await drain(app_ctx)
        assert (await row_of(app_ctx, row_id)).status == OutboxStatus.queued
        assert len(twilio_api.messages) == 1

    async def test_after_the_last_attempt_the_message_is_failed_and_announced(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        announced: list[Any] = []

        async def listen(events: list[Any]) -> None:
            announced.extend(events)

        app_ctx.event_handlers.append(listen)
        twilio_api.fail_next(10, status=500)
        row_id = await put(app_ctx)
        await drain(app_ctx)
        row = await row_of(app_ctx, row_id)
        assert (row.status, row.attempts) == (OutboxStatus.failed, 4)
        assert "gave up after 4 attempts" in row.last_error and "500" in row.last_error
        assert [type(e) for e in announced] == [OutboxMessageFailed]
        assert announced[0].outbox_id == row_id

    async def test_a_timeout_after_twilio_accepted_is_not_sent_twice(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        twilio_api.hang_next(1.3, accept=True)
        row_id = await put(app_ctx)
        await drain(app_ctx)
        assert len(twilio_api.messages) == 1  # the second attempt asked Twilio first
        row = await row_of(app_ctx, row_id)
        assert (row.status, row.provider_id, row.attempts) == (
            OutboxStatus.queued,
            twilio_api.messages[0].sid,
            2,
        )
        assert row.uncertain_since is None
        assert ("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json") in twilio_api.requests

    async def test_the_check_before_resending_ignores_a_message_that_belongs_to_another_row(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        await put(app_ctx, key="first")
        await drain(app_ctx)
        row_id = await put(app_ctx, key="second")  # same text, same recipient
        async with app_ctx.uow() as uow:
            row = await uow.session.get(OutboxMessage, row_id)
            assert row is not None
            row.uncertain_since = utcnow() - timedelta(seconds=1)
            await uow.commit()
        await drain(app_ctx)
        assert len(twilio_api.messages) == 2
        assert (await row_of(app_ctx, row_id)).provider_id == twilio_api.messages[1].sid

    async def test_a_timeout_before_twilio_accepted_is_sent_again(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        twilio_api.hang_next(1.3, accept=False)
        row_id = await put(app_ctx)
        await drain(app_ctx)
        assert len(twilio_api.messages) == 1
        assert (await row_of(app_ctx, row_id)).status == OutboxStatus.queued

    async def test_an_invalid_number_fails_at_once_with_twilios_code(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        row_id = await put(app_ctx, to_address="12")
        await drain(app_ctx)
        row = await row_of(app_ctx, row_id)
        assert (row.status, row.attempts) == (OutboxStatus.failed, 1)
        assert "21211" in row.last_error


class TestRateLimits:
    async def test_one_sender_number_is_paced_and_the_waiting_rows_keep_their_attempts(
        self, settings: Settings, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        settings.twilio_messages_per_second = 1.0
        ids = [await put(app_ctx, key=f"k{i}", to_address=f"+1416555010{i}") for i in range(3)]
        other = await put(app_ctx, key="other", from_address="+15145550188")
        report = await drain(app_ctx)
        assert (report.sent, report.deferred) == (2, 2)
        rows = [await row_of(app_ctx, i) for i in ids]
        assert sorted(r.status for r in rows) == [
            OutboxStatus.pending,
            OutboxStatus.pending,
            OutboxStatus.queued,
        ]
        assert [r.attempts for r in rows if r.status == OutboxStatus.pending] == [0, 0]
        assert (await row_of(app_ctx, other)).status == OutboxStatus.queued

    async def test_a_retailers_own_short_code_or_pool_gets_its_own_pace(
        self, settings: Settings, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        settings.twilio_messages_per_second = 1.0
        tenant = await make_tenant(
            app_ctx, "fast", sms_from="+15145550199", settings={"twilio_messages_per_second": 100}
        )
        for i in range(3):
            await put(app_ctx, key=f"f{i}", retailer_id=tenant.retailer_id, to_address=f"+1416555011{i}")
        report = await drain(app_ctx)
        assert (report.sent, report.deferred) == (3, 0)


class TestFakeIsStrict:
    """The fake refuses what Twilio's spec refuses, so the tests above prove real requests are valid."""

    async def test_an_unknown_field_is_refused(self, app_ctx: AppContext, twilio_api: FakeTwilioApi):
        client = app_ctx.components["twilio_client"]
        with pytest.raises(TwilioRestException) as refused:
            await client.messages.create_async(
                to=RECIPIENT, from_=SHARED_SMS, body="x", message_intent="delivery"
            )
        assert refused.value.status == 400 and "MessageIntent" in refused.value.msg

    async def test_a_message_without_body_or_content_is_refused(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        client = app_ctx.components["twilio_client"]
        with pytest.raises(TwilioRestException) as refused:
            await client.messages.create_async(to=RECIPIENT, from_=SHARED_SMS)
        assert refused.value.code == 21602

    async def test_wrong_credentials_fail_the_message_with_twilios_answer(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        twilio_api.auth_token = "rotated"
        row_id = await put(app_ctx)
        await drain(app_ctx)
        row = await row_of(app_ctx, row_id)
        assert row.status == OutboxStatus.failed and "20003" in row.last_error
        assert twilio_api.messages == []


async def whatsapp_recipient(ctx: AppContext, tenant_id: int, hours_ago: float | None) -> int:
    async with ctx.uow() as uow:
        recipient = Recipient(retailer_id=tenant_id, phone=RECIPIENT, name="Ada")
        uow.session.add(recipient)
        await uow.session.flush()
        if hours_ago is not None:
            uow.session.add(
                Conversation(
                    channel=Channel.whatsapp,
                    address=RECIPIENT,
                    service_address="",
                    retailer_id=tenant_id,
                    recipient_id=recipient.id,
                    last_inbound_at=utcnow() - timedelta(hours=hours_ago),
                )
            )
        await uow.commit()
        return recipient.id or 0


TEMPLATES = {
    "whatsapp_templates": {"eta": {"content_sid": "HX" + "1" * 32, "variables": ["name", "window"]}},
    "whatsapp_quick_reply": {"2": "HX" + "2" * 32},
}


class TestWhatsAppWindow:
    async def test_inside_the_window_free_text_goes_with_numbered_options(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "acme")
        recipient_id = await whatsapp_recipient(app_ctx, tenant.retailer_id, hours_ago=2)
        row_id = await put(
            app_ctx,
            Channel.whatsapp,
            retailer_id=tenant.retailer_id,
            recipient_id=recipient_id,
            options=OPTIONS,
        )
        await drain(app_ctx)
        (message,) = twilio_api.messages
        assert (message.to, message.from_) == (f"whatsapp:{RECIPIENT}", f"whatsapp:{SHARED_WHATSAPP}")
        assert message.body.endswith(
            "Reply 1 for Tomorrow 2–4 PM\nReply 2 for Pickup point"
        )  # no GSM folding
        assert message.content_sid is None
        assert (await row_of(app_ctx, row_id)).status == OutboxStatus.queued

    async def test_inside_the_window_options_become_quick_reply_buttons_when_the_retailer_has_the_content(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "acme", settings=TEMPLATES)
        recipient_id = await whatsapp_recipient(app_ctx, tenant.retailer_id, hours_ago=23.5)
        await put(
            app_ctx,
            Channel.whatsapp,
            retailer_id=tenant.retailer_id,
            recipient_id=recipient_id,
            body="When?",
            options=OPTIONS,
        )
        await drain(app_ctx)
        (message,) = twilio_api.messages
        assert message.content_sid == "HX" + "2" * 32
        assert message.content_variables == {
            "1": "When?",
            "2": "Tomorrow 2–4 PM",
            "3": "w:1",
            "4": "Pickup point",
            "5": "pickup",
        }
        assert "Body" not in message.form

    async def test_outside_the_window_without_a_template_nothing_is_sent_and_the_row_says_why(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "acme")
        recipient_id = await whatsapp_recipient(app_ctx, tenant.retailer_id, hours_ago=25)
        row_id = await put(
            app_ctx, Channel.whatsapp, retailer_id=tenant.retailer_id, recipient_id=recipient_id
        )
        await drain(app_ctx)
        row = await row_of(app_ctx, row_id)
        assert (row.status, row.last_error) == (OutboxStatus.failed, OUTSIDE_WINDOW)
        assert twilio_api.requests == []

    async def test_a_recipient_who_never_wrote_is_outside_the_window(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "acme")
        recipient_id = await whatsapp_recipient(app_ctx, tenant.retailer_id, hours_ago=None)
        row_id = await put(
            app_ctx, Channel.whatsapp, retailer_id=tenant.retailer_id, recipient_id=recipient_id
        )
        await drain(app_ctx)
        assert (await row_of(app_ctx, row_id)).last_error == OUTSIDE_WINDOW

    async def test_outside_the_window_the_retailers_approved_template_goes_with_its_variables(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "acme", settings=TEMPLATES)
        recipient_id = await whatsapp_recipient(app_ctx, tenant.retailer_id, hours_ago=48)
        row_id = await put(
            app_ctx,
            Channel.whatsapp,
            retailer_id=tenant.retailer_id,
            recipient_id=recipient_id,
            template_key="eta",
            content_variables={"name": "Ada", "window": "Thu 2–4 PM"},
        )
        await drain(app_ctx)
        (message,) = twilio_api.messages
        assert message.content_sid == "HX" + "1" * 32
        assert json.loads(message.form["ContentVariables"][0]) == {"1": "Ada", "2": "Thu 2–4 PM"}
        assert (await row_of(app_ctx, row_id)).status == OutboxStatus.queued

    async def test_a_template_missing_a_variable_fails_without_sending(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "acme", settings=TEMPLATES)
        recipient_id = await whatsapp_recipient(app_ctx, tenant.retailer_id, hours_ago=48)
        row_id = await put(
            app_ctx,
            Channel.whatsapp,
            retailer_id=tenant.retailer_id,
            recipient_id=recipient_id,
            template_key="eta",
            content_variables={"name": "Ada"},
        )
        await drain(app_ctx)
        row = await row_of(app_ctx, row_id)
        assert row.status == OutboxStatus.failed and "window" in row.last_error
        assert twilio_api.messages == []

    async def test_the_recipients_last_whatsapp_message_opens_the_window_too(
        self, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        tenant = await make_tenant(app_ctx, "acme")
        recipient_id = await whatsapp_recipient(app_ctx, tenant.retailer_id, hours_ago=None)
        async with app_ctx.uow() as uow:
            recipient = await uow.session.get(Recipient, recipient_id)
            assert recipient is not None
            recipient.whatsapp_last_inbound_at = utcnow() - timedelta(hours=1)
            await uow.commit()
        await put(app_ctx, Channel.whatsapp, retailer_id=tenant.retailer_id, recipient_id=recipient_id)
        await drain(app_ctx)
        assert len(twilio_api.messages) == 1


class TestEndToEnd:
    async def test_a_signed_sms_reaches_the_real_engine_and_its_reply_goes_out_through_twilio(
        self, client: AsyncClient, app_ctx: AppContext, twilio_api: FakeTwilioApi, acme
    ):
        from tests.plans import small_plan
        from tests.twilio_support import inbound_form, post_signed

        assert (
            await client.post("/api/v1/plans", json=small_plan(), headers=acme.headers)
        ).status_code == 201
        response = await post_signed(
            client, "/webhooks/twilio/messages", inbound_form(body="When is my parcel coming?")
        )
        assert response.status_code == 200 and response.text.endswith("<Response/>")
        report = await drain(app_ctx)
        assert report.sent >= 1
        (reply, *_) = twilio_api.sent_to(RECIPIENT)
        assert reply.from_ == SHARED_SMS and reply.body
        assert "T001" in reply.body and "\nReply 1 for " in reply.body  # numbered options on SMS
        async with app_ctx.uow() as uow:
            from sqlmodel import select

            rows = (
                await uow.session.exec(select(OutboxMessage).where(OutboxMessage.provider_id == reply.sid))
            ).all()
        assert len(rows) == 1 and rows[0].encoding in ("GSM-7", "UCS-2")

    async def test_twilios_status_callback_for_a_sent_message_reaches_its_row(
        self, client: AsyncClient, app_ctx: AppContext, twilio_api: FakeTwilioApi
    ):
        from tests.twilio_support import post_signed

        row_id = await put(app_ctx)
        await drain(app_ctx)
        (message,) = twilio_api.messages
        callback = urlsplit(message.status_callback or "")
        path = f"{callback.path}?{callback.query}"
        for status in ("sent", "delivered", "sent"):
            response = await post_signed(client, path, twilio_api.callback_form(message, status))
            assert response.status_code == 204
        row = await row_of(app_ctx, row_id)
        assert (row.status, row.provider_id) == (OutboxStatus.delivered, message.sid)

    async def test_a_message_to_a_retailers_own_number_is_answered_from_that_number(
        self, client: AsyncClient, app_ctx: AppContext, twilio_api: FakeTwilioApi, acme
    ):
        from core.models import Retailer
        from tests.plans import small_plan
        from tests.twilio_support import inbound_form, post_signed

        own = "+15145550177"
        async with app_ctx.uow() as uow:
            retailer = await uow.session.get(Retailer, acme.retailer_id)
            retailer.sms_from = own
            await uow.commit()
        assert (
            await client.post("/api/v1/plans", json=small_plan(), headers=acme.headers)
        ).status_code == 201
        await post_signed(
            client, "/webhooks/twilio/messages", inbound_form(body="When is my parcel coming?", to=own)
        )
        await drain(app_ctx)
        (reply,) = twilio_api.sent_to(RECIPIENT)
        assert reply.from_ == own and "T001" in reply.body

    async def test_no_phone_number_or_message_text_is_logged(
        self, client: AsyncClient, app_ctx: AppContext, twilio_api: FakeTwilioApi, acme
    ):
        from structlog.testing import capture_logs

        from tests.plans import small_plan
        from tests.twilio_support import inbound_form, post_signed

        assert (
            await client.post("/api/v1/plans", json=small_plan(), headers=acme.headers)
        ).status_code == 201
        twilio_api.fail_next(1)
        with capture_logs() as logs:
            await post_signed(client, "/webhooks/twilio/messages", inbound_form(body="Secret words"))
            await post_signed(
                client, "/webhooks/twilio/messages", inbound_form(body="Secret words")
            )  # duplicate
            await drain(app_ctx)
            (message,) = twilio_api.sent_to(RECIPIENT)
            callback = urlsplit(message.status_callback or "")
            await post_signed(
                client, f"{callback.path}?{callback.query}", twilio_api.callback_form(message, "sent")
            )
        events = {entry["event"] for entry in logs}
        assert {"twilio_inbound_duplicate", "outbox_retry", "outbox_sent", "twilio_status"} <= events
        flat = repr(logs)
        assert RECIPIENT not in flat and RECIPIENT[2:] not in flat and "Secret words" not in flat


class TestWithoutAnAccount:
    async def test_sms_waits_in_the_outbox_until_the_process_has_twilio_credentials(self, database_url):
        """`make run` has no Twilio account: nothing knocks at api.twilio.com with the placeholder."""
        from app import build_context, create_app
        from channels.outbox_worker import senders

        settings = Settings(
            environment="test",
            database_url=database_url,
            outbox_enabled=False,
            _env_file=None,  # type: ignore[call-arg]
        )
        assert not settings.twilio_sends
        assert settings.model_copy(update={"twilio_account_sid": ACCOUNT_SID}).twilio_sends
        ctx = build_context(settings)
        app = create_app(settings, ctx=ctx)
        try:
            async with app.router.lifespan_context(app):
                assert Channel.sms not in senders(ctx) and Channel.whatsapp not in senders(ctx)
                tenant = await make_tenant(ctx, "acme")
                row_id = await put(ctx, retailer_id=tenant.retailer_id)
                report = await drain(ctx)
                assert report.sent == 0
                assert (await row_of(ctx, row_id)).status == OutboxStatus.pending
        finally:
            await ctx.engine.dispose()
